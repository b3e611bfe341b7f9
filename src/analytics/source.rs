//! Where a field's numbers live for one simulation: resolving a [`Field`]
//! to a table, and reading numeric fields out of the JSON states (decoded
//! from their chunks).

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable};

use super::aggregates::StepAggregate;
use super::json_path::number_at;
use super::Field;
use crate::chunk::chunk_of;
use crate::error::{Error, Result};
use crate::schema::step_metrics;
use crate::store::for_each_backend;
use crate::store::prelude::*;

/// A field, resolved for one simulation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// The rewards of `agent_state_chunks`.
    Reward,
    /// `agent_metric_chunks` of this metric id.
    AgentMetric(i32),
    /// `step_metrics` of this metric id.
    StepMetric(i32),
    /// A numeric field of the states of `agent_state_chunks`, by keys.
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
                    if self.has_metric_chunk(sim_key, metric)? {
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

/// Numeric fields of the JSON state, decoded from the state chunks in Rust
/// and read by PostgreSQL's `#>` rules (`json_path::number_at`).
/// Non-numeric values are skipped.
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
    /// Aggregates of a state field across agents in `buckets`.
    fn state_aggregate(
        &mut self,
        sim_key: i32,
        keys: &[String],
        buckets: super::aggregates::Buckets,
    ) -> Result<Vec<StepAggregate>>;
    /// The first and last step at which any agent's state has a number at
    /// the path: the span a state field's buckets are laid over.
    fn state_span(&mut self, sim_key: i32, keys: &[String]) -> Result<Option<(i64, i64)>>;
    /// True if any agent's state has a number at the path (stops at the
    /// first one).
    fn state_recorded(&mut self, sim_key: i32, keys: &[String]) -> Result<bool>;
    /// Calls `f(agent, step, number)` for every registered agent's state
    /// from step `lo` on that has a number at the path, agent by agent and
    /// by step; stops when `f` returns `false`.
    fn state_numbers(
        &mut self,
        sim_key: i32,
        keys: &[String],
        lo: i64,
        f: &mut dyn FnMut(i32, i64, f64) -> bool,
    ) -> Result<()>;
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

/// One step bucket's aggregate, as SQL returns it (the rollups' reads).
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

/// One step bucket's aggregate, accumulated in Rust as SQL's aggregates
/// would be.
#[derive(Debug, Default)]
pub(super) struct BucketSum {
    first: Option<i64>,
    last: Option<i64>,
    n: i64,
    total: f64,
    lo: f64,
    hi: f64,
    total_sq: f64,
}

impl BucketSum {
    /// Adds the value `v` of step `step`.
    pub(super) fn add(&mut self, step: i64, v: f64) {
        if self.n == 0 {
            (self.lo, self.hi) = (v, v);
        } else {
            self.lo = self.lo.min(v);
            self.hi = self.hi.max(v);
        }
        self.first = Some(self.first.map_or(step, |f| f.min(step)));
        self.last = Some(self.last.map_or(step, |l| l.max(step)));
        self.n += 1;
        self.total += v;
        self.total_sq += v * v;
    }

    /// The row shape of the aggregates' Diesel queries.
    pub(super) fn row(self) -> super::aggregates::AggRow {
        (
            self.first,
            self.last,
            self.n,
            Some(self.total),
            Some(self.lo),
            Some(self.hi),
            Some(self.total_sq),
        )
    }
}

/// The bucket of `step` counted from `lo` in buckets of `width`.
pub(super) fn bucket_of(step: i64, lo: i64, width: i64) -> i64 {
    (step - lo) / width.max(1)
}

for_each_backend! {
    impl StatePathStore {
        fn state_series(
            &mut self,
            sim_key: i32,
            agent: i32,
            keys: &[String],
            lo: i64,
            hi: i64,
        ) -> Result<Vec<(i64, f64)>> {
            if hi < lo || hi < 0 {
                return Ok(Vec::new());
            }
            let mut points = Vec::new();
            for chunk in self.state_chunks(sim_key, agent, chunk_of(lo.max(0)), chunk_of(hi))? {
                chunk.for_each_text(lo, hi, |step, _, text| {
                    if let Some(v) = number_at(text, keys) {
                        points.push((step, v));
                    }
                    Ok(())
                })?;
            }
            Ok(points)
        }

        fn state_aggregate(
            &mut self,
            sim_key: i32,
            keys: &[String],
            b: super::aggregates::Buckets,
        ) -> Result<Vec<StepAggregate>> {
            let mut buckets: BTreeMap<i64, BucketSum> = BTreeMap::new();
            self.state_numbers(sim_key, keys, b.from, &mut |_, step, v| {
                if step <= b.hi {
                    buckets.entry(bucket_of(step, b.origin, b.width)).or_default().add(step, v);
                }
                true
            })?;
            Ok(super::aggregates::to_aggregates(
                buckets.into_values().map(BucketSum::row).collect(),
            ))
        }

        fn state_span(&mut self, sim_key: i32, keys: &[String]) -> Result<Option<(i64, i64)>> {
            let mut span: Option<(i64, i64)> = None;
            self.state_numbers(sim_key, keys, 0, &mut |_, step, _| {
                span = Some(span.map_or((step, step), |(a, b)| (a.min(step), b.max(step))));
                true
            })?;
            Ok(span)
        }

        fn state_recorded(&mut self, sim_key: i32, keys: &[String]) -> Result<bool> {
            let mut found = false;
            self.state_numbers(sim_key, keys, 0, &mut |_, _, _| {
                found = true;
                false
            })?;
            Ok(found)
        }

        fn state_numbers(
            &mut self,
            sim_key: i32,
            keys: &[String],
            lo: i64,
            f: &mut dyn FnMut(i32, i64, f64) -> bool,
        ) -> Result<()> {
            for agent in self.agent_indexes(sim_key)? {
                let mut from = chunk_of(lo.max(0));
                loop {
                    let page = self.state_chunks_from(sim_key, agent, from, 256)?;
                    let Some(last) = page.last() else { break };
                    from = last.chunk + 1;
                    let mut more = true;
                    for chunk in &page {
                        chunk.for_each_text(lo, i64::MAX, |step, _, text| {
                            if more {
                                if let Some(v) = number_at(text, keys) {
                                    more = f(agent, step, v);
                                }
                            }
                            Ok(())
                        })?;
                        if !more {
                            return Ok(());
                        }
                    }
                }
            }
            Ok(())
        }
    }
}
