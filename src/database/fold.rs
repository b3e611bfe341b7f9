//! The step after migrations `2026-12-02-000001_agent_state_chunks` and
//! `-000002_agent_metric_chunks`: the rows an earlier release wrote to
//! `simdb_agent_states` and `simdb_agent_metrics` (one per agent-step) are
//! folded into chunks, then those tables are dropped. It runs inside the
//! migrations' transaction (compression cannot be written in SQL), so an
//! upgrade is whole or not at all.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Text};

use crate::chunk::chunk_of;
use crate::error::Result;
use crate::store::metric_chunks;
use crate::store::prelude::{MetricChunkStore, StateChunkStore};
use crate::store::state_chunks::encode;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    sim_key: i32,
    #[diesel(sql_type = Integer)]
    agent_index: i32,
    #[diesel(sql_type = BigInt)]
    step: i64,
    #[diesel(sql_type = Double)]
    reward: f64,
    #[diesel(sql_type = Text)]
    state: String,
}

#[derive(QueryableByName)]
struct MetricRow {
    #[diesel(sql_type = Integer)]
    sim_key: i32,
    #[diesel(sql_type = Integer)]
    metric_id: i32,
    #[diesel(sql_type = Integer)]
    agent_index: i32,
    #[diesel(sql_type = BigInt)]
    step: i64,
    #[diesel(sql_type = Double)]
    value: f64,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows read per page.
const PAGE: i64 = 20_000;

/// What the fold's SQL differs in per backend.
pub(crate) trait FoldSql {
    /// Counts (0 or 1) a table named `simdb_agent_states` where simdb's
    /// tables are.
    const EXISTS: &'static str;
    /// A page of rows after the key `(?1, ?2, ?3)`, in key order, at most `?4`.
    const PAGE: &'static str;
    /// Counts (0 or 1) a table named `simdb_agent_metrics`.
    const METRICS_EXIST: &'static str;
    /// A page of metric rows after the key `(?1, ?2, ?3, ?4)`, at most `?5`.
    const METRICS_PAGE: &'static str;
}

#[cfg(feature = "sqlite")]
impl FoldSql for diesel::sqlite::SqliteConnection {
    const EXISTS: &'static str = "SELECT COUNT(*) AS n FROM sqlite_master \
         WHERE type = 'table' AND name = 'simdb_agent_states'";
    const PAGE: &'static str = "SELECT sim_key, agent_index, step, reward, state \
         FROM simdb_agent_states WHERE (sim_key, agent_index, step) > (?1, ?2, ?3) \
         ORDER BY sim_key, agent_index, step LIMIT ?4";
    const METRICS_EXIST: &'static str = "SELECT COUNT(*) AS n FROM sqlite_master \
         WHERE type = 'table' AND name = 'simdb_agent_metrics'";
    const METRICS_PAGE: &'static str = "SELECT sim_key, metric_id, agent_index, step, value \
         FROM simdb_agent_metrics WHERE (sim_key, metric_id, agent_index, step) > (?1, ?2, ?3, ?4) \
         ORDER BY sim_key, metric_id, agent_index, step LIMIT ?5";
}

#[cfg(feature = "postgres")]
impl FoldSql for diesel::pg::PgConnection {
    const EXISTS: &'static str = "SELECT COUNT(*) AS n FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
         WHERE c.relname = 'simdb_agent_states' AND s.nspname = current_schema()";
    const PAGE: &'static str = "SELECT sim_key, agent_index, step, reward, state::text AS state \
         FROM simdb_agent_states WHERE (sim_key, agent_index, step) > ($1, $2, $3) \
         ORDER BY sim_key, agent_index, step LIMIT $4";
    const METRICS_EXIST: &'static str = "SELECT COUNT(*) AS n FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
         WHERE c.relname = 'simdb_agent_metrics' AND s.nspname = current_schema()";
    const METRICS_PAGE: &'static str = "SELECT sim_key, metric_id, agent_index, step, value \
         FROM simdb_agent_metrics WHERE (sim_key, metric_id, agent_index, step) > ($1, $2, $3, $4) \
         ORDER BY sim_key, metric_id, agent_index, step LIMIT $5";
}

/// Folding the row layout into chunks.
pub(crate) trait FoldStore {
    /// Folds every row of the row layout into chunks and drops its table;
    /// returns the rows folded (none, and nothing done, once it is gone).
    fn fold_row_states(&mut self) -> Result<u64>;
    /// The same for agent metrics.
    fn fold_row_metrics(&mut self) -> Result<u64>;
}

crate::store::for_each_backend! {
    impl FoldStore {
        fn fold_row_states(&mut self) -> Result<u64> {
            let found: Found = diesel::sql_query(Self::EXISTS).get_result(self)?;
            if found.n == 0 {
                return Ok(0);
            }
            let mut folded = 0u64;
            let mut after = (i32::MIN, i32::MIN, i64::MIN);
            // The chunk being filled: its key and rows.
            let mut open: Option<(i32, i32, i64)> = None;
            let mut rows: Vec<(i64, f64, String)> = Vec::new();
            let mut out = Vec::new();
            loop {
                let page: Vec<Row> = diesel::sql_query(Self::PAGE)
                    .bind::<Integer, _>(after.0)
                    .bind::<Integer, _>(after.1)
                    .bind::<BigInt, _>(after.2)
                    .bind::<BigInt, _>(PAGE)
                    .load(self)?;
                let Some(last) = page.last() else { break };
                after = (last.sim_key, last.agent_index, last.step);
                for row in page {
                    let key = (row.sim_key, row.agent_index, chunk_of(row.step));
                    if open != Some(key) {
                        if let Some((sim_key, agent, chunk)) = open {
                            let refs: Vec<(i64, f64, &str)> =
                                rows.iter().map(|(s, r, t)| (*s, *r, t.as_str())).collect();
                            out.push(encode(sim_key, agent, chunk, &refs)?);
                            rows.clear();
                        }
                        open = Some(key);
                    }
                    rows.push((row.step, row.reward, row.state));
                    folded += 1;
                }
                if out.len() >= 1024 {
                    self.insert_state_chunks(&out)?;
                    out.clear();
                }
            }
            if let Some((sim_key, agent, chunk)) = open {
                let refs: Vec<(i64, f64, &str)> =
                    rows.iter().map(|(s, r, t)| (*s, *r, t.as_str())).collect();
                out.push(encode(sim_key, agent, chunk, &refs)?);
            }
            self.insert_state_chunks(&out)?;
            diesel::sql_query("DROP TABLE simdb_agent_states").execute(self)?;
            if folded > 0 {
                tracing::info!(rows = folded, "folded agent states into chunks");
            }
            Ok(folded)
        }

        fn fold_row_metrics(&mut self) -> Result<u64> {
            let found: Found = diesel::sql_query(Self::METRICS_EXIST).get_result(self)?;
            if found.n == 0 {
                return Ok(0);
            }
            let mut folded = 0u64;
            let mut after = (i32::MIN, i32::MIN, i32::MIN, i64::MIN);
            let mut open: Option<(i32, i32, i32, i64)> = None;
            let mut rows: Vec<(i64, f64)> = Vec::new();
            let mut out = Vec::new();
            loop {
                let page: Vec<MetricRow> = diesel::sql_query(Self::METRICS_PAGE)
                    .bind::<Integer, _>(after.0)
                    .bind::<Integer, _>(after.1)
                    .bind::<Integer, _>(after.2)
                    .bind::<BigInt, _>(after.3)
                    .bind::<BigInt, _>(PAGE)
                    .load(self)?;
                let Some(last) = page.last() else { break };
                after = (last.sim_key, last.metric_id, last.agent_index, last.step);
                for row in page {
                    let key = (row.sim_key, row.metric_id, row.agent_index, chunk_of(row.step));
                    if open != Some(key) {
                        if let Some((sim_key, metric, agent, chunk)) = open {
                            out.push(metric_chunks::encode(sim_key, metric, agent, chunk, &rows));
                            rows.clear();
                        }
                        open = Some(key);
                    }
                    rows.push((row.step, row.value));
                    folded += 1;
                }
                if out.len() >= 1024 {
                    self.insert_metric_chunks(&out)?;
                    out.clear();
                }
            }
            if let Some((sim_key, metric, agent, chunk)) = open {
                out.push(metric_chunks::encode(sim_key, metric, agent, chunk, &rows));
            }
            self.insert_metric_chunks(&out)?;
            diesel::sql_query("DROP TABLE simdb_agent_metrics").execute(self)?;
            if folded > 0 {
                tracing::info!(rows = folded, "folded agent metrics into chunks");
            }
            Ok(folded)
        }
    }
}
