//! Step aggregates per agent kind: which strategy does better over time, on
//! any per-agent field (reward, an agent metric, a numeric state field).

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use super::aggregates::{to_aggregates, AggRow, AggregateStore, StepAggregate};
use super::rollups::{rolled_field, RollupReadStore};
use super::source::{Bucket, Source, SourceStore};
use super::{Analytics, Field};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::store::prelude::*;
use crate::with_connection;

/// The label of agents without a kind.
const NO_KIND: &str = "(none)";

/// A step bucket's aggregate of one agent kind.
type KindRow = (Option<String>, AggRow);

#[derive(QueryableByName)]
struct KindBucket {
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(embed)]
    bucket: Bucket,
}

/// The statement grouping `values` (rows of `agent_index, step, v`) by the
/// agents' kind and a step bucket. Placeholders: `{p}1` the simulation,
/// `{p}2` the first step, `{p}3` the bucket width.
fn by_kind_sql(p: char, values: &str) -> String {
    format!(
        "SELECT g.kind AS kind, MIN(s.step) AS first, MAX(s.step) AS last, COUNT(s.v) AS n, \
         SUM(s.v) AS total, MIN(s.v) AS lo, MAX(s.v) AS hi FROM ({values}) AS s \
         JOIN agents AS g ON g.sim_key = {p}1 AND g.agent_index = s.agent_index \
         GROUP BY g.kind, (s.step - {p}2) / {p}3"
    )
}

/// The per-agent rows of a source from step `{p}2` on; a metric id is `{p}4`,
/// a state path `{p}4`.
fn values_sql(p: char, source: &Source, json: &str, is_number: &str) -> Result<String> {
    Ok(match source {
        Source::Reward => format!(
            "SELECT agent_index, step, reward AS v FROM agent_states WHERE sim_key = {p}1 AND step >= {p}2"
        ),
        Source::AgentMetric(_) => format!(
            "SELECT agent_index, step, value AS v FROM agent_metrics \
             WHERE sim_key = {p}1 AND step >= {p}2 AND metric_id = {p}4"
        ),
        Source::State(_) => format!(
            "SELECT agent_index, step, {json} AS v FROM agent_states \
             WHERE sim_key = {p}1 AND step >= {p}2 AND {is_number}"
        ),
        Source::StepMetric(_) => {
            return Err(Error::invalid(
                "field",
                "a simulation-level metric belongs to no agent kind",
            ))
        }
    })
}

fn kind_rows(buckets: Vec<KindBucket>) -> Vec<KindRow> {
    buckets
        .into_iter()
        .map(|b| (b.kind, b.bucket.row()))
        .collect()
}

/// Aggregates of a per-agent source by kind and step bucket.
trait KindStore {
    fn aggregate_by_kind(
        &mut self,
        sim_key: i32,
        source: &Source,
        lo: i64,
        width: i64,
    ) -> Result<Vec<KindRow>>;
}

macro_rules! run_by_kind {
    ($conn:expr, $p:expr, $source:expr, $json:expr, $is_number:expr, $sim_key:expr, $lo:expr, $width:expr, $path_ty:ty, $path:expr) => {{
        let sql = by_kind_sql($p, &values_sql($p, $source, $json, $is_number)?);
        let q = diesel::sql_query(sql)
            .bind::<Integer, _>($sim_key)
            .bind::<BigInt, _>($lo)
            .bind::<BigInt, _>($width);
        let buckets: Vec<KindBucket> = match $source {
            Source::AgentMetric(metric) => q.bind::<Integer, _>(*metric).load($conn)?,
            Source::State(_) => q.bind::<$path_ty, _>($path).load($conn)?,
            _ => q.load($conn)?,
        };
        Ok(kind_rows(buckets))
    }};
}

#[cfg(feature = "sqlite")]
impl KindStore for diesel::sqlite::SqliteConnection {
    fn aggregate_by_kind(
        &mut self,
        sim_key: i32,
        source: &Source,
        lo: i64,
        width: i64,
    ) -> Result<Vec<KindRow>> {
        run_by_kind!(
            self,
            '?',
            source,
            "json_extract(state, ?4)",
            "json_type(state, ?4) IN ('integer', 'real')",
            sim_key,
            lo,
            width,
            Text,
            match source {
                Source::State(keys) => super::source::sqlite_path(keys),
                _ => String::new(),
            }
        )
    }
}

#[cfg(feature = "postgres")]
impl KindStore for diesel::pg::PgConnection {
    fn aggregate_by_kind(
        &mut self,
        sim_key: i32,
        source: &Source,
        lo: i64,
        width: i64,
    ) -> Result<Vec<KindRow>> {
        run_by_kind!(
            self,
            '$',
            source,
            "(state #>> $4)::float8",
            "json_typeof(state #> $4) = 'number'",
            sim_key,
            lo,
            width,
            diesel::sql_types::Array<Text>,
            match source {
                Source::State(keys) => keys.clone(),
                _ => Vec::new(),
            }
        )
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
                return Ok(BTreeMap::new());
            };
            let width = super::aggregates::bucket_width(lo, hi, buckets);
            let mut grouped: BTreeMap<String, Vec<AggRow>> = BTreeMap::new();
            let rows = match rolled_field(&source) {
                Some(field) => c.rolled_by_kind(sim.sim_key, field, lo, width)?,
                None => c.aggregate_by_kind(sim.sim_key, &source, lo, width)?,
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
