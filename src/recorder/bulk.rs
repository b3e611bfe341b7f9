//! Writing a batch: agent states merged into their chunks
//! (`store/state_chunks.rs`), the other rows in primary-key order, as
//! multi-row prepared INSERTs on SQLite and binary `COPY` on PostgreSQL
//! (import reuses it).

use std::sync::Arc;

use diesel::prelude::*;
use serde_json::Value;

use super::batch::{Batch, Span};
use super::metric_names::MetricCache;
use crate::error::{Error, Result};
use crate::ids::AgentIndex;
use crate::models::{AgentMemory, AgentMetric, AgentMetricChunk, AgentStateChunk, StepMetric};
use crate::schema::{simulation_steps, step_metrics};
use crate::sql_types::{RawJson, TimeParam};
use crate::store::known_chunks::KnownChunks;
use crate::store::prelude::*;

/// What writing a batch learned: the metric ids it had to intern, and the
/// state and metric chunks as it wrote them.
pub(crate) type Written = (
    Vec<(usize, i32)>,
    Vec<AgentStateChunk>,
    Vec<AgentMetricChunk>,
);

/// Inserts every row of `batch` for simulation `sim_key` (inside the
/// caller's transaction), using what `known` says of the stored chunks.
pub(crate) fn write_batch<C: Store + Bulk>(
    c: &mut C,
    sim_key: i32,
    batch: &Batch,
    cache: &MetricCache,
    known: Option<&KnownChunks>,
) -> Result<Written> {
    // One UTF-8 check and copy per batch; rows share the text by Arc.
    let text: Arc<str> = std::str::from_utf8(&batch.json)
        .map_err(|_| Error::invalid("state", "recorder buffer holds invalid UTF-8"))?
        .into();
    let raw = |span: Span| {
        RawJson::new(&text, span.0 as usize, span.1 as usize)
            .ok_or_else(|| Error::invalid("state", "recorder span out of bounds"))
    };
    let mut states: Vec<StateInput<'_>> = batch
        .states
        .iter()
        .map(|r| {
            let state = text
                .get(r.state.0 as usize..r.state.1 as usize)
                .ok_or_else(|| Error::invalid("state", "recorder span out of bounds"))?;
            Ok((r.agent, r.step, r.reward, state))
        })
        .collect::<Result<_>>()?;
    let steps: Vec<StepRow> = batch
        .steps
        .iter()
        .map(|r| {
            Ok(StepRow {
                sim_key,
                step: r.step,
                recorded_at: TimeParam(r.at),
                metrics: raw(r.metrics)?,
            })
        })
        .collect::<Result<_>>()?;
    let mut interned = Vec::new();
    let mut ids = cache.ids.clone();
    // New names are interned in name order: two writers inserting the same
    // new names wait for each other in one order, never in a cycle (on
    // PostgreSQL an insert waits on the other's uncommitted equal key).
    let mut missing: Vec<(&str, usize)> = batch
        .metrics
        .iter()
        .map(|rec| rec.metric as usize)
        .filter(|&i| ids.get(i).copied().flatten().is_none())
        .map(|i| (cache.names.get(i).map(String::as_str).unwrap_or(""), i))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    for (name, i) in missing {
        let id = c.metric_id(name)?;
        if ids.len() <= i {
            ids.resize(i + 1, None);
        }
        ids[i] = Some(id);
        interned.push((i, id));
    }
    // Every id was interned just above; no foreign key backs this up any
    // more, so a missing one is an error, never a made-up id.
    let id_of = |m: u32| {
        ids.get(m as usize)
            .copied()
            .flatten()
            .ok_or_else(|| Error::invalid("metric", "recorder metric id not interned"))
    };
    let step_metrics: Vec<StepMetric> = batch
        .metrics
        .iter()
        .filter(|m| m.agent.is_none())
        .map(|m| {
            Ok(StepMetric {
                sim_key,
                metric_id: id_of(m.metric)?,
                step: m.step,
                value: m.value,
            })
        })
        .collect::<Result<_>>()?;
    let mut agent_metrics: Vec<AgentMetric> = batch
        .metrics
        .iter()
        .filter_map(|m| {
            m.agent.map(|a| {
                Ok(AgentMetric {
                    sim_key,
                    agent_index: AgentIndex(a),
                    metric_id: id_of(m.metric)?,
                    step: m.step,
                    value: m.value,
                })
            })
        })
        .collect::<Result<_>>()?;
    // The rollups of these rows, written in the same transaction.
    let mut rollups = RollupBuilder::new(sim_key, c.agent_kinds(sim_key)?);
    for r in &states {
        rollups.reward(r.0, r.1, r.2);
    }
    for m in &agent_metrics {
        rollups.metric(m.agent_index.0, m.metric_id, m.step, m.value);
    }
    let written = (|| -> Result<(Vec<AgentStateChunk>, Vec<AgentMetricChunk>)> {
        let chunks = crate::store::write_states(c, sim_key, &mut states, known.map(|k| &k.states))?;
        c.copy_steps(&steps)?;
        c.copy_step_metrics(&step_metrics)?;
        let metric_chunks = crate::store::metric_chunks::write_metrics(
            c,
            sim_key,
            &mut agent_metrics,
            known.map(|k| &k.metrics),
        )?;
        c.add_rollups(rollups)?;
        for m in &batch.memories {
            c.insert_memory(&AgentMemory {
                sim_key,
                agent_index: AgentIndex(m.agent),
                step: m.step,
                dtype: m.memory.dtype.clone(),
                shape: Value::from(m.memory.shape.clone()),
                data: m.memory.data.clone(),
                recorded_at: m.at,
            })?;
        }
        Ok((chunks, metric_chunks))
    })();
    let (chunks, metric_chunks) = written.map_err(|e| match e {
        Error::Database(err) => Error::from_write(
            err,
            "row in batch",
            "(simulation, agent, step) already recorded",
            Some(("simulation or agent", format!("sim_key {sim_key}"))),
        ),
        other => other,
    })?;
    Ok((interned, chunks, metric_chunks))
}

#[derive(Debug, Insertable)]
#[diesel(table_name = simulation_steps, treat_none_as_default_value = false)]
pub(crate) struct StepRow {
    sim_key: i32,
    step: i64,
    recorded_at: TimeParam,
    metrics: RawJson,
}

/// Bulk inserts of the recorder's row kinds other than states (which go
/// into chunks, `store/state_chunks.rs`), per backend.
pub(crate) trait Bulk {
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()>;
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()>;
}

/// Rows per multi-row INSERT on SQLite: a fixed-size array gives Diesel a
/// static query id, so the statement is prepared once per connection and
/// reused (a slice of rows would be re-prepared on every call). 5 columns x
/// 128 rows stays far below SQLite's 32766 bind parameters.
#[cfg(feature = "sqlite")]
const SQLITE_CHUNK: usize = 128;

/// Multi-row INSERTs of `SQLITE_CHUNK` rows, then one for the remainder.
#[cfg(feature = "sqlite")]
macro_rules! sqlite_insert {
    ($conn:expr, $table:expr, $rows:expr, $row:ty) => {
        crate::store::sqlite_insert_rows!($conn, $table, $rows, $row, SQLITE_CHUNK)
    };
}

#[cfg(feature = "sqlite")]
impl Bulk for diesel::sqlite::SqliteConnection {
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()> {
        sqlite_insert!(self, simulation_steps::table, rows, StepRow)
    }
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()> {
        sqlite_insert!(self, step_metrics::table, rows, StepMetric)
    }
}

/// Binary `COPY ... FROM STDIN`: PostgreSQL's fastest ingest path.
#[cfg(feature = "postgres")]
macro_rules! pg_copy {
    ($conn:expr, $table:expr, $rows:expr) => {{
        if !$rows.is_empty() {
            diesel::copy_from($table)
                .from_insertable($rows)
                .execute($conn)?;
        }
        Ok(())
    }};
}

#[cfg(feature = "postgres")]
impl Bulk for diesel::pg::PgConnection {
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()> {
        pg_copy!(self, simulation_steps::table, rows)
    }
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()> {
        pg_copy!(self, step_metrics::table, rows)
    }
}
