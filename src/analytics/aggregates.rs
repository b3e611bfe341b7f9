//! Count / sum / mean / min / max / standard deviation of a field across
//! agents, per step bucket.

use diesel::dsl::{count_star, max, min, sum};
use std::ops::RangeBounds;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::rollups::RollupReadStore;
use super::source::{Source, SourceStore, StatePathStore};
use super::{Analytics, Field};
use crate::error::Result;
use crate::ids::SimulationId;
use crate::schema::step_metrics;
use crate::store::for_each_backend;
use crate::store::prelude::*;
use crate::store::step_bounds;
use crate::with_connection;

/// Count / sum / mean / min / max / standard deviation of a field across
/// agents over a step bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAggregate {
    /// First step in the bucket that has data.
    pub first_step: i64,
    /// Last step in the bucket that has data.
    pub last_step: i64,
    /// Values aggregated.
    pub count: i64,
    /// Their sum.
    pub sum: f64,
    /// Their mean.
    pub mean: f64,
    /// Their minimum.
    pub min: f64,
    /// Their maximum.
    pub max: f64,
    /// Their population standard deviation, from the sums of the values and
    /// of their squares (`None` where those overflowed).
    pub std_dev: Option<f64>,
}

/// first step, last step, count, sum, min, max, sum of squares.
pub(super) type AggRow = (
    Option<i64>,
    Option<i64>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

/// The population standard deviation of `n` values from their sum and
/// the sum of their squares; 0 where rounding makes the variance negative.
fn std_dev(n: i64, sum: f64, sum_sq: f64) -> Option<f64> {
    let mean = sum / n as f64;
    let variance = (sum_sq / n as f64 - mean * mean).max(0.0);
    let sd = variance.sqrt();
    sd.is_finite().then_some(sd)
}

/// The width of `buckets` equal step buckets over `lo..=hi` (1: per step).
pub(super) fn bucket_width(lo: i64, hi: i64, buckets: usize) -> i64 {
    let span = hi.saturating_sub(lo).saturating_add(1);
    let width = if buckets == 0 {
        1
    } else {
        let b = buckets as i64;
        span / b + i64::from(span % b != 0)
    };
    width.max(1)
}

pub(super) fn to_aggregates(rows: Vec<AggRow>) -> Vec<StepAggregate> {
    let mut out: Vec<StepAggregate> = rows
        .into_iter()
        .filter_map(|(first, last, count, s, lo, hi, sq)| {
            let (first_step, last_step, sum, min, max) = (first?, last?, s?, lo?, hi?);
            (count > 0).then(|| StepAggregate {
                first_step,
                last_step,
                count,
                sum,
                mean: sum / count as f64,
                min,
                max,
                std_dev: sq.and_then(|sq| std_dev(count, sum, sq)),
            })
        })
        .collect();
    out.sort_by_key(|a| a.first_step);
    out
}

/// Step spans and bucketed aggregates of a field.
pub(super) trait AggregateStore {
    /// The first and last step with a value of the source.
    fn step_span(&mut self, sim_key: i32, source: &Source) -> Result<Option<(i64, i64)>>;
    /// Aggregates of the rows of steps `lo..=hi`, in buckets of `width`
    /// steps from `lo`.
    fn aggregate(
        &mut self,
        sim_key: i32,
        source: &Source,
        lo: i64,
        hi: i64,
        width: i64,
    ) -> Result<Vec<StepAggregate>> {
        self.aggregate_from(
            sim_key,
            source,
            Buckets {
                origin: lo,
                from: lo,
                hi,
                width,
            },
        )
    }
    /// Aggregates of the rows of steps `from..=hi`, in buckets of `width`
    /// steps from `origin` (at or before `from`).
    fn aggregate_from(
        &mut self,
        sim_key: i32,
        source: &Source,
        buckets: Buckets,
    ) -> Result<Vec<StepAggregate>>;
}

/// Step buckets over a range: bucket `k` holds steps `origin + k*width ..
/// origin + (k+1)*width - 1`, of which those in `from..=hi` count.
#[derive(Debug, Clone, Copy)]
pub(super) struct Buckets {
    pub(super) origin: i64,
    pub(super) from: i64,
    pub(super) hi: i64,
    pub(super) width: i64,
}

/// Groups a numeric column of a per-step table into step buckets.
macro_rules! bucketed {
    ($conn:expr, $table:ident, $value:ident, $b:expr, $($filter:expr),*) => {
        $table::table
            $(.filter($filter))*
            .filter($table::step.between($b.from, $b.hi))
            .group_by(($table::step - $b.origin) / $b.width)
            .select((
                min($table::step),
                max($table::step),
                count_star(),
                sum($table::$value),
                min($table::$value),
                max($table::$value),
                sum($table::$value * $table::$value),
            ))
            .load::<AggRow>($conn)?
    };
}

for_each_backend! {
    impl AggregateStore {
        fn step_span(&mut self, sim_key: i32, source: &Source) -> Result<Option<(i64, i64)>> {
            match source {
                Source::Reward => self.rolled_span(sim_key, REWARD_FIELD),
                Source::AgentMetric(metric) => self.rolled_span(sim_key, *metric),
                // The steps that have the path, not every agent state's.
                Source::State(keys) => self.state_span(sim_key, keys),
                Source::StepMetric(metric) => {
                    let span: (Option<i64>, Option<i64>) = step_metrics::table
                        .filter(step_metrics::sim_key.eq(sim_key))
                        .filter(step_metrics::metric_id.eq(metric))
                        .select((min(step_metrics::step), max(step_metrics::step)))
                        .first(self)?;
                    Ok(span.0.zip(span.1))
                }
            }
        }

        fn aggregate_from(&mut self, sim_key: i32, source: &Source, b: Buckets) -> Result<Vec<StepAggregate>> {
            let rows = match source {
                Source::Reward => self.rolled(sim_key, REWARD_FIELD, b)?,
                Source::AgentMetric(metric) => self.rolled(sim_key, *metric, b)?,
                Source::StepMetric(metric) => bucketed!(
                    self,
                    step_metrics,
                    value,
                    b,
                    step_metrics::sim_key.eq(sim_key),
                    step_metrics::metric_id.eq(*metric)
                ),
                Source::State(keys) => return self.state_aggregate(sim_key, keys, b),
            };
            Ok(to_aggregates(rows))
        }
    }
}

/// The steps of `span` (a field's first and last step) inside `window`
/// (inclusive bounds), if any.
pub(super) fn clamp_span(span: (i64, i64), window: (i64, i64)) -> Option<(i64, i64)> {
    let (lo, hi) = (span.0.max(window.0), span.1.min(window.1));
    (lo <= hi).then_some((lo, hi))
}

impl Analytics {
    /// Count / sum / mean / min / max / standard deviation of `field` (see [`Field`]) across
    /// agents, per step (`buckets == 0`) or in at most `buckets` step buckets.
    ///
    /// Buckets: with `lo..=hi` the steps that have the field, every bucket is
    /// `width = ceil((hi - lo + 1) / buckets)` steps wide and bucket `k`
    /// holds steps `lo + k*width ..= lo + (k+1)*width - 1` (the origin is the
    /// first step with data; the last bucket may be partly empty). A bucket
    /// without values is left out; `first_step`/`last_step` are the first
    /// and last steps in it that have values.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation or a field it never
    /// recorded; [`Error::InvalidInput`](crate::Error::InvalidInput) for a malformed state path.
    pub fn step_aggregates(
        &self,
        id: &SimulationId,
        field: impl Into<Field>,
        buckets: usize,
    ) -> Result<Vec<StepAggregate>> {
        self.step_aggregates_within(id, field, .., buckets)
    }

    /// As [`Analytics::step_aggregates`] over the steps of `steps` only (a
    /// zoom): `lo..=hi` are then the steps that have the field inside
    /// `steps`, and the buckets are laid over them.
    ///
    /// # Errors
    /// As [`Analytics::step_aggregates`].
    pub fn step_aggregates_within(
        &self,
        id: &SimulationId,
        field: impl Into<Field>,
        steps: impl RangeBounds<i64>,
        buckets: usize,
    ) -> Result<Vec<StepAggregate>> {
        let field = field.into();
        let window = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let source = c.resolve(sim.sim_key, &field)?;
            let Some(span) = c.step_span(sim.sim_key, &source)? else {
                return match source {
                    Source::State(_) => Err(super::source::state_not_recorded(&field)),
                    _ => Ok(Vec::new()),
                };
            };
            let Some((lo, hi)) = clamp_span(span, window) else {
                return Ok(Vec::new());
            };
            c.aggregate(sim.sim_key, &source, lo, hi, bucket_width(lo, hi, buckets))
        })
    }
}
