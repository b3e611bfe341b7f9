//! Step aggregates per agent kind: which strategy does better over time, on
//! any per-agent field (reward, an agent metric, a numeric state field).

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use super::aggregates::{to_aggregates, AggRow, AggregateStore, StepAggregate};
use super::rollups::RollupReadStore;
use super::source::{Bucket, Source, SourceStore};
use super::{Analytics, Field};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::store::prelude::*;
use crate::with_connection;

/// A step bucket's aggregate of one agent kind.
type KindRow = (Option<String>, AggRow);

#[derive(QueryableByName)]
struct KindBucket {
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(embed)]
    bucket: Bucket,
}

/// A numeric state field (`value`: the number, or NULL where there is
/// none) grouped by the agents' kind and a step bucket: the reward and
/// agent metrics come from the rollups, state fields from the rows.
/// Placeholders: `{p}1` the simulation, `{p}2` the first step, `{p}3` the
/// bucket width.
fn state_by_kind_sql(p: char, value: &str) -> String {
    format!(
        "SELECT g.kind AS kind, MIN(s.step) AS first, MAX(s.step) AS last, COUNT(s.v) AS n, \
         SUM(s.v) AS total, MIN(s.v) AS lo, MAX(s.v) AS hi, SUM(s.v * s.v) AS total_sq FROM ( \
           SELECT agent_index, step, {value} AS v FROM simdb_agent_states \
           WHERE sim_key = {p}1 AND step >= {p}2 \
         ) AS s JOIN simdb_agents AS g ON g.sim_key = {p}1 AND g.agent_index = s.agent_index \
         WHERE s.v IS NOT NULL GROUP BY g.kind, (s.step - {p}2) / {p}3"
    )
}

/// Aggregates of a numeric state field by kind and step bucket.
trait KindStore {
    fn state_by_kind(
        &mut self,
        sim_key: i32,
        keys: &[String],
        lo: i64,
        width: i64,
    ) -> Result<Vec<KindRow>>;
}

/// Rows of `state_by_kind_sql`'s buckets.
fn kind_rows(buckets: Vec<KindBucket>) -> Vec<KindRow> {
    buckets
        .into_iter()
        .map(|b| (b.kind, b.bucket.row()))
        .collect()
}

#[cfg(feature = "sqlite")]
impl KindStore for diesel::sqlite::SqliteConnection {
    fn state_by_kind(
        &mut self,
        sim_key: i32,
        keys: &[String],
        lo: i64,
        width: i64,
    ) -> Result<Vec<KindRow>> {
        // The number at the path, as PostgreSQL's `#>` reads it (json_path).
        let (value, paths) = super::json_path::sqlite_number("state", keys, 4);
        let mut query = diesel::sql_query(state_by_kind_sql('?', &value))
            .into_boxed()
            .bind::<Integer, _>(sim_key)
            .bind::<BigInt, _>(lo)
            .bind::<BigInt, _>(width);
        for path in paths {
            query = query.bind::<Text, _>(path);
        }
        let buckets: Vec<KindBucket> = query.load(self)?;
        Ok(kind_rows(buckets))
    }
}

#[cfg(feature = "postgres")]
impl KindStore for diesel::pg::PgConnection {
    fn state_by_kind(
        &mut self,
        sim_key: i32,
        keys: &[String],
        lo: i64,
        width: i64,
    ) -> Result<Vec<KindRow>> {
        let buckets: Vec<KindBucket> = diesel::sql_query(state_by_kind_sql(
            '$',
            "CASE WHEN json_typeof(state #> $4) = 'number' THEN (state #>> $4)::float8 END",
        ))
        .bind::<Integer, _>(sim_key)
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(width)
        .bind::<diesel::sql_types::Array<Text>, _>(keys)
        .load(self)?;
        Ok(kind_rows(buckets))
    }
}

impl Analytics {
    /// As [`Analytics::step_aggregates`], one series per agent kind (agents
    /// without a kind are `(none)`): compares strategies over time on any
    /// per-agent field — `reward`, an agent metric, `state.<path>`.
    ///
    /// # Errors
    /// As for [`Analytics::step_aggregates`]; [`Error::InvalidInput`](crate::Error::InvalidInput) for a
    /// simulation-level metric, which belongs to no agent.
    pub fn step_aggregates_by_kind(
        &self,
        id: &SimulationId,
        field: impl Into<Field>,
        buckets: usize,
    ) -> Result<BTreeMap<String, Vec<StepAggregate>>> {
        let field = field.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let source = c.resolve(sim.sim_key, &field)?;
            let Some((lo, hi)) = c.step_span(sim.sim_key, &source)? else {
                return match source {
                    Source::State(_) => Err(super::source::state_not_recorded(&field)),
                    _ => Ok(BTreeMap::new()),
                };
            };
            let width = super::aggregates::bucket_width(lo, hi, buckets);
            let mut grouped: BTreeMap<String, Vec<AggRow>> = BTreeMap::new();
            let rows = match &source {
                Source::Reward => c.rolled_by_kind(sim.sim_key, REWARD_FIELD, lo, width)?,
                Source::AgentMetric(metric) => c.rolled_by_kind(sim.sim_key, *metric, lo, width)?,
                Source::State(keys) => c.state_by_kind(sim.sim_key, keys, lo, width)?,
                Source::StepMetric(_) => {
                    return Err(Error::invalid(
                        "field",
                        "a simulation-level metric belongs to no agent kind",
                    ))
                }
            };
            for (kind, row) in rows {
                grouped
                    .entry(kind.unwrap_or_else(|| NO_KIND.into()))
                    .or_default()
                    .push(row);
            }
            Ok(grouped
                .into_iter()
                .map(|(kind, rows)| (kind, to_aggregates(rows)))
                .filter(|(_, aggs)| !aggs.is_empty())
                .collect())
        })
    }
}
