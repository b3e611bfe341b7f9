//! Where a field's numbers live for one simulation: resolving a [`Field`]
//! to a table, and reading numeric fields out of the JSON state in SQL.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable};

use super::aggregates::StepAggregate;
use super::Field;
use crate::error::{Error, Result};
use crate::schema::{agent_metrics, step_metrics};
use crate::store::for_each_backend;
use crate::store::prelude::*;

/// A field, resolved for one simulation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// `agent_states.reward`.
    Reward,
    /// `agent_metrics` of this metric id.
    AgentMetric(i32),
    /// `step_metrics` of this metric id.
    StepMetric(i32),
    /// A numeric field of `agent_states.state`, by keys.
    State(Vec<String>),
}

/// Resolves fields against what a simulation recorded.
pub(crate) trait SourceStore {
    /// The source of `field` in simulation `sim_key`.
    fn resolve(&mut self, sim_key: i32, field: &Field) -> Result<Source>;
}

fn unknown(field: &Field) -> Error {
    Error::not_found(
        "field",
        format!("{} (not recorded by this simulation)", field.name()),
    )
}

/// The keys of a state path (see `json_path::keys`).
fn state_keys(path: &str) -> Result<Vec<String>> {
    super::json_path::keys("state field", &format!("state.{path}"), path)
}

for_each_backend! {
    impl SourceStore {
        fn resolve(&mut self, sim_key: i32, field: &Field) -> Result<Source> {
            match field {
                Field::Reward => Ok(Source::Reward),
                Field::State(path) => Ok(Source::State(state_keys(path)?)),
                Field::Metric(name) => {
                    let Some(metric) = self.metric_lookup(name)? else {
                        return Err(unknown(field));
                    };
                    let per_agent = agent_metrics::table
                        .filter(agent_metrics::sim_key.eq(sim_key))
                        .filter(agent_metrics::metric_id.eq(metric))
                        .select(agent_metrics::step)
                        .first::<i64>(self)
                        .optional()?;
                    if per_agent.is_some() {
                        return Ok(Source::AgentMetric(metric));
                    }
                    let per_step = step_metrics::table
                        .filter(step_metrics::sim_key.eq(sim_key))
                        .filter(step_metrics::metric_id.eq(metric))
                        .select(step_metrics::step)
                        .first::<i64>(self)
                        .optional()?;
                    match per_step {
                        Some(_) => Ok(Source::StepMetric(metric)),
                        None => Err(unknown(field)),
                    }
                }
            }
        }
    }
}

#[derive(QueryableByName)]
struct Point {
    #[diesel(sql_type = BigInt)]
    step: i64,
    #[diesel(sql_type = Double)]
    value: f64,
}

/// One step bucket's aggregate, as SQL returns it.
#[derive(QueryableByName)]
pub(super) struct Bucket {
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Double>)]
    total: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    lo: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    hi: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    total_sq: Option<f64>,
}

/// Numeric fields of the JSON state, extracted in SQL with the path bound
/// as a parameter (never spliced into SQL text; on SQLite one per reading
/// of the path, see `json_path`). Non-numeric values are skipped.
pub(crate) trait StatePathStore {
    /// One agent's values of a state field over `lo..=hi`, by step.
    fn state_series(
        &mut self,
        sim_key: i32,
        agent: i32,
        keys: &[String],
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>>;
    /// Aggregates of a state field across agents, from `lo` in buckets of `width`.
    fn state_aggregate(
        &mut self,
        sim_key: i32,
        keys: &[String],
        lo: i64,
        width: i64,
    ) -> Result<Vec<StepAggregate>>;
    /// The first and last step at which any agent's state has a number at
    /// the path: the span a state field's buckets are laid over.
    fn state_span(&mut self, sim_key: i32, keys: &[String]) -> Result<Option<(i64, i64)>>;
    /// True if any agent's state has a number at the path (stops at the
    /// first one).
    fn state_recorded(&mut self, sim_key: i32, keys: &[String]) -> Result<bool>;
}

/// [`Error::NotFound`] of a state path no agent state has a number at.
pub(crate) fn state_not_recorded(field: &Field) -> Error {
    Error::not_found(
        "field",
        format!(
            "{} (no agent state of this simulation has a number there)",
            field.name()
        ),
    )
}

#[derive(QueryableByName)]
struct Span {
    #[diesel(sql_type = Nullable<BigInt>)]
    lo: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    hi: Option<i64>,
}

#[derive(QueryableByName)]
struct Any {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Bucket {
    /// The row shape of the aggregates' Diesel queries.
    pub(super) fn row(self) -> super::aggregates::AggRow {
        (
            self.first,
            self.last,
            self.n,
            self.total,
            self.lo,
            self.hi,
            self.total_sq,
        )
    }
}

fn to_aggregates(buckets: Vec<Bucket>) -> Vec<StepAggregate> {
    super::aggregates::to_aggregates(buckets.into_iter().map(Bucket::row).collect())
}

#[cfg(feature = "sqlite")]
impl StatePathStore for diesel::sqlite::SqliteConnection {
    fn state_series(
        &mut self,
        sim_key: i32,
        agent: i32,
        keys: &[String],
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>> {
        // The number at the path, as PostgreSQL's `#>` reads it (json_path).
        let (value, paths) = super::json_path::sqlite_number("state", keys, 5);
        let mut query = diesel::sql_query(format!(
            "SELECT step, value FROM ( \
               SELECT step, {value} AS value FROM simdb_agent_states \
               WHERE sim_key = ?1 AND agent_index = ?2 AND step BETWEEN ?3 AND ?4 \
             ) WHERE value IS NOT NULL ORDER BY step"
        ))
        .into_boxed()
        .bind::<Integer, _>(sim_key)
        .bind::<Integer, _>(agent)
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(hi);
        for path in paths {
            query = query.bind::<diesel::sql_types::Text, _>(path);
        }
        let points: Vec<Point> = query.load(self)?;
        Ok(points.into_iter().map(|p| (p.step, p.value)).collect())
    }

    fn state_aggregate(
        &mut self,
        sim_key: i32,
        keys: &[String],
        lo: i64,
        width: i64,
    ) -> Result<Vec<StepAggregate>> {
        let (value, paths) = super::json_path::sqlite_number("state", keys, 4);
        let mut query = diesel::sql_query(format!(
            "SELECT MIN(step) AS first, MAX(step) AS last, COUNT(v) AS n, SUM(v) AS total, \
             MIN(v) AS lo, MAX(v) AS hi, SUM(v * v) AS total_sq FROM ( \
               SELECT step, {value} AS v FROM simdb_agent_states \
               WHERE sim_key = ?1 AND step >= ?2 \
             ) WHERE v IS NOT NULL GROUP BY (step - ?2) / ?3"
        ))
        .into_boxed()
        .bind::<Integer, _>(sim_key)
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(width);
        for path in paths {
            query = query.bind::<diesel::sql_types::Text, _>(path);
        }
        let buckets: Vec<Bucket> = query.load(self)?;
        Ok(to_aggregates(buckets))
    }

    fn state_span(&mut self, sim_key: i32, keys: &[String]) -> Result<Option<(i64, i64)>> {
        let (value, paths) = super::json_path::sqlite_number("state", keys, 2);
        let mut query = diesel::sql_query(format!(
            "SELECT MIN(step) AS lo, MAX(step) AS hi FROM ( \
               SELECT step, {value} AS v FROM simdb_agent_states WHERE sim_key = ?1 \
             ) WHERE v IS NOT NULL"
        ))
        .into_boxed()
        .bind::<Integer, _>(sim_key);
        for path in paths {
            query = query.bind::<diesel::sql_types::Text, _>(path);
        }
        let span: Span = query.get_result(self)?;
        Ok(span.lo.zip(span.hi))
    }

    fn state_recorded(&mut self, sim_key: i32, keys: &[String]) -> Result<bool> {
        let (value, paths) = super::json_path::sqlite_number("state", keys, 2);
        let mut query = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM ( \
               SELECT 1 FROM simdb_agent_states WHERE sim_key = ?1 AND ({value}) IS NOT NULL LIMIT 1 \
             )"
        ))
        .into_boxed()
        .bind::<Integer, _>(sim_key);
        for path in paths {
            query = query.bind::<diesel::sql_types::Text, _>(path);
        }
        let any: Any = query.get_result(self)?;
        Ok(any.n > 0)
    }
}

#[cfg(feature = "postgres")]
impl StatePathStore for diesel::pg::PgConnection {
    fn state_series(
        &mut self,
        sim_key: i32,
        agent: i32,
        keys: &[String],
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>> {
        let points: Vec<Point> = diesel::sql_query(
            "SELECT step, (state #>> $1)::float8 AS value FROM simdb_agent_states \
             WHERE sim_key = $2 AND agent_index = $3 AND step BETWEEN $4 AND $5 \
             AND json_typeof(state #> $1) = 'number' ORDER BY step",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys)
        .bind::<Integer, _>(sim_key)
        .bind::<Integer, _>(agent)
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(hi)
        .load(self)?;
        Ok(points.into_iter().map(|p| (p.step, p.value)).collect())
    }

    fn state_aggregate(
        &mut self,
        sim_key: i32,
        keys: &[String],
        lo: i64,
        width: i64,
    ) -> Result<Vec<StepAggregate>> {
        let buckets: Vec<Bucket> = diesel::sql_query(
            "SELECT MIN(step) AS first, MAX(step) AS last, COUNT(v) AS n, SUM(v) AS total, \
             MIN(v) AS lo, MAX(v) AS hi, SUM(v * v) AS total_sq FROM ( \
               SELECT step, (state #>> $1)::float8 AS v FROM simdb_agent_states \
               WHERE sim_key = $2 AND step >= $3 AND json_typeof(state #> $1) = 'number' \
             ) AS numeric_values GROUP BY (step - $3) / $4",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys)
        .bind::<Integer, _>(sim_key)
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(width)
        .load(self)?;
        Ok(to_aggregates(buckets))
    }

    fn state_span(&mut self, sim_key: i32, keys: &[String]) -> Result<Option<(i64, i64)>> {
        let span: Span = diesel::sql_query(
            "SELECT MIN(step) AS lo, MAX(step) AS hi FROM simdb_agent_states \
             WHERE sim_key = $2 AND json_typeof(state #> $1) = 'number'",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys)
        .bind::<Integer, _>(sim_key)
        .get_result(self)?;
        Ok(span.lo.zip(span.hi))
    }

    fn state_recorded(&mut self, sim_key: i32, keys: &[String]) -> Result<bool> {
        let any: Any = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM simdb_agent_states \
             WHERE sim_key = $2 AND json_typeof(state #> $1) = 'number' LIMIT 1) AS one",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys)
        .bind::<Integer, _>(sim_key)
        .get_result(self)?;
        Ok(any.n > 0)
    }
}
