//! Step aggregates per agent kind: which strategy does better over time, on
//! any per-agent field (reward, an agent metric, a numeric state field).

use std::collections::BTreeMap;

use super::aggregates::{to_aggregates, AggRow, AggregateStore, StepAggregate};
use super::rollups::RollupReadStore;
use super::source::{bucket_of, BucketSum, Source, SourceStore, StatePathStore};
use super::{Analytics, Field};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::store::prelude::*;
use crate::with_connection;

/// A step bucket's aggregate of one agent kind.
type KindRow = (Option<String>, AggRow);

/// Aggregates of a numeric state field by kind and step bucket, decoded
/// from the state chunks (the reward and agent metrics come from the
/// rollups).
fn state_by_kind<C: StatePathStore + AgentStore>(
    c: &mut C,
    sim_key: i32,
    keys: &[String],
    lo: i64,
    hi: i64,
    width: i64,
) -> Result<Vec<KindRow>> {
    let kinds: std::collections::HashMap<i32, Option<String>> = c
        .agents(sim_key)?
        .into_iter()
        .map(|a| (a.agent_index.0, a.kind))
        .collect();
    let mut buckets: BTreeMap<(Option<String>, i64), BucketSum> = BTreeMap::new();
    c.state_numbers(sim_key, keys, lo, &mut |agent, step, v| {
        if step > hi {
            return true;
        }
        let kind = kinds.get(&agent).cloned().flatten();
        buckets
            .entry((kind, bucket_of(step, lo, width)))
            .or_default()
            .add(step, v);
        true
    })?;
    Ok(buckets
        .into_iter()
        .map(|((kind, _), b)| (kind, b.row()))
        .collect())
}

/// A simulation-level metric asked for by kind.
fn no_kind() -> Error {
    Error::invalid(
        "field",
        "a simulation-level metric belongs to no agent kind",
    )
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
        self.step_aggregates_by_kind_within(id, field, .., buckets)
    }

    /// As [`Analytics::step_aggregates_by_kind`] over the steps of `steps`
    /// only, bucketed as [`Analytics::step_aggregates_within`] does.
    ///
    /// # Errors
    /// As [`Analytics::step_aggregates_by_kind`].
    pub fn step_aggregates_by_kind_within(
        &self,
        id: &SimulationId,
        field: impl Into<Field>,
        steps: impl std::ops::RangeBounds<i64>,
        buckets: usize,
    ) -> Result<BTreeMap<String, Vec<StepAggregate>>> {
        let field = field.into();
        let window = crate::store::step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let source = c.resolve(sim.sim_key, &field)?;
            let Some(span) = c.step_span(sim.sim_key, &source)? else {
                return match source {
                    Source::State(_) => Err(super::source::state_not_recorded(&field)),
                    _ => Ok(BTreeMap::new()),
                };
            };
            // Before any window: whatever the steps asked, such a field
            // has no kinds.
            if let Source::StepMetric(_) = source {
                return Err(no_kind());
            }
            let Some((lo, hi)) = super::aggregates::clamp_span(span, window) else {
                return Ok(BTreeMap::new());
            };
            let width = super::aggregates::bucket_width(lo, hi, buckets);
            let mut grouped: BTreeMap<String, Vec<AggRow>> = BTreeMap::new();
            let rows = match &source {
                Source::Reward => c.rolled_by_kind(sim.sim_key, REWARD_FIELD, lo, hi, width)?,
                Source::AgentMetric(metric) => {
                    c.rolled_by_kind(sim.sim_key, *metric, lo, hi, width)?
                }
                Source::State(keys) => state_by_kind(c, sim.sim_key, keys, lo, hi, width)?,
                Source::StepMetric(_) => return Err(no_kind()),
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
