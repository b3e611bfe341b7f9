//! Count / sum / mean / min / max of a field across agents, per step bucket.

use diesel::dsl::{count_star, max, min, sum};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Analytics, Field};
use crate::error::Result;
use crate::ids::SimulationId;
use crate::schema::{agent_metrics, agent_states};
use crate::store::for_each_backend;
use crate::store::prelude::*;
use crate::with_connection;

/// Count / sum / mean / min / max of a field across agents over a step bucket.
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
}

type AggRow = (
    Option<i64>,
    Option<i64>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

fn to_aggregates(rows: Vec<AggRow>) -> Vec<StepAggregate> {
    let mut out: Vec<StepAggregate> = rows
        .into_iter()
        .filter_map(|(first, last, count, s, lo, hi)| {
            let (first_step, last_step, sum, min, max) = (first?, last?, s?, lo?, hi?);
            (count > 0).then(|| StepAggregate {
                first_step,
                last_step,
                count,
                sum,
                mean: sum / count as f64,
                min,
                max,
            })
        })
        .collect();
    out.sort_by_key(|a| a.first_step);
    out
}

/// Step spans and bucketed aggregates of a field.
pub(super) trait AggregateStore {
    fn step_span(&mut self, sim_key: i32, field: &Field) -> Result<Option<(i64, i64)>>;
    /// Aggregates of the rows from step `lo` on, in buckets of `width` steps.
    fn aggregate(
        &mut self,
        sim_key: i32,
        field: &Field,
        lo: i64,
        width: i64,
    ) -> Result<Vec<StepAggregate>>;
}

for_each_backend! {
    impl AggregateStore {
        fn step_span(&mut self, sim_key: i32, field: &Field) -> Result<Option<(i64, i64)>> {
            let span: (Option<i64>, Option<i64>) = match field {
                Field::Reward => agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .select((min(agent_states::step), max(agent_states::step)))
                    .first(self)?,
                Field::Metric(name) => match self.metric_lookup(name)? {
                    None => (None, None),
                    Some(metric) => agent_metrics::table
                        .filter(agent_metrics::sim_key.eq(sim_key))
                        .filter(agent_metrics::metric_id.eq(metric))
                        .select((min(agent_metrics::step), max(agent_metrics::step)))
                        .first(self)?,
                },
            };
            Ok(span.0.zip(span.1))
        }

        fn aggregate(
            &mut self,
            sim_key: i32,
            field: &Field,
            lo: i64,
            width: i64,
        ) -> Result<Vec<StepAggregate>> {
            let rows: Vec<AggRow> = match field {
                Field::Reward => agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::step.ge(lo))
                    .group_by((agent_states::step - lo) / width)
                    .select((
                        min(agent_states::step),
                        max(agent_states::step),
                        count_star(),
                        sum(agent_states::reward),
                        min(agent_states::reward),
                        max(agent_states::reward),
                    ))
                    .load(self)?,
                Field::Metric(name) => match self.metric_lookup(name)? {
                    None => Vec::new(),
                    Some(metric) => agent_metrics::table
                        .filter(agent_metrics::sim_key.eq(sim_key))
                        .filter(agent_metrics::metric_id.eq(metric))
                        .filter(agent_metrics::step.ge(lo))
                        .group_by((agent_metrics::step - lo) / width)
                        .select((
                            min(agent_metrics::step),
                            max(agent_metrics::step),
                            count_star(),
                            sum(agent_metrics::value),
                            min(agent_metrics::value),
                            max(agent_metrics::value),
                        ))
                        .load(self)?,
                },
            };
            Ok(to_aggregates(rows))
        }
    }
}

impl Analytics {
    /// Count / sum / mean / min / max of `field` across agents, per step
    /// (`buckets == 0`) or in at most `buckets` equal-width step buckets.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn step_aggregates(
        &self,
        id: &SimulationId,
        field: impl Into<Field>,
        buckets: usize,
    ) -> Result<Vec<StepAggregate>> {
        let field = field.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let Some((lo, hi)) = c.step_span(sim.sim_key, &field)? else {
                return Ok(Vec::new());
            };
            let span = hi.saturating_sub(lo).saturating_add(1);
            let width = if buckets == 0 {
                1
            } else {
                let b = buckets as i64;
                span / b + i64::from(span % b != 0)
            };
            c.aggregate(sim.sim_key, &field, lo, width.max(1))
        })
    }
}
