//! One agent's numbers or states over a step range.

use std::ops::RangeBounds;

use diesel::prelude::*;
use serde_json::Value;

use super::source::{Source, SourceStore, StatePathStore};
use super::{Analytics, Field};
use crate::chunk::chunk_of;
use crate::error::Result;
use crate::ids::{AgentIndex, SimulationId};
use crate::schema::step_metrics;
use crate::store::for_each_backend;
use crate::store::prelude::*;
use crate::store::step_bounds;
use crate::with_connection;

/// One agent's field by step.
trait SeriesStore {
    fn series(
        &mut self,
        sim_key: i32,
        agent: i32,
        source: &Source,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>>;
}

for_each_backend! {
    impl SeriesStore {
        fn series(&mut self, sim_key: i32, agent: i32, source: &Source, lo: i64, hi: i64) -> Result<Vec<(i64, f64)>> {
            Ok(match source {
                // Rewards read from their chunks without decompressing states.
                Source::Reward => {
                    if hi < lo || hi < 0 {
                        return Ok(Vec::new());
                    }
                    let mut points = Vec::new();
                    for chunk in self.state_chunks(sim_key, agent, chunk_of(lo.max(0)), chunk_of(hi))? {
                        points.extend(chunk.rewards()?.into_iter().filter(|p| p.0 >= lo && p.0 <= hi));
                    }
                    points
                }
                Source::AgentMetric(metric) => self.agent_metric_range(sim_key, agent, *metric, lo, hi)?,
                // A simulation-level metric is the same for every agent.
                Source::StepMetric(metric) => step_metrics::table
                    .filter(step_metrics::sim_key.eq(sim_key))
                    .filter(step_metrics::metric_id.eq(metric))
                    .filter(step_metrics::step.between(lo, hi))
                    .select((step_metrics::step, step_metrics::value))
                    .order(step_metrics::step)
                    .load(self)?,
                Source::State(keys) => self.state_series(sim_key, agent, keys, lo, hi)?,
            })
        }
    }
}

impl Analytics {
    /// One agent's `field` over a step range, by step: its reward, an agent
    /// metric, a simulation-level metric (the same for every agent) or a
    /// numeric field of its state (see [`Field`]).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation, an agent it never
    /// registered (entity `"agent"`) or a field it never recorded (entity
    /// `"field"`; the rule is [`Field`]'s); [`Error::InvalidInput`](crate::Error::InvalidInput) for a
    /// malformed state path.
    pub fn agent_series(
        &self,
        id: &SimulationId,
        agent: impl Into<AgentIndex>,
        field: impl Into<Field>,
        steps: impl RangeBounds<i64>,
    ) -> Result<Vec<(i64, f64)>> {
        let (agent, field) = (agent.into(), field.into());
        let (lo, hi) = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.require_agent(sim.sim_key, sim.id.as_str(), agent.0)?;
            let source = c.resolve(sim.sim_key, &field)?;
            let series = c.series(sim.sim_key, agent.0, &source, lo, hi)?;
            if let (true, Source::State(keys)) = (series.is_empty(), &source) {
                if !c.state_recorded(sim.sim_key, keys)? {
                    return Err(super::source::state_not_recorded(&field));
                }
            }
            Ok(series)
        })
    }

    /// One agent's state JSON over a step range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation or an agent it never
    /// registered.
    pub fn state_series(
        &self,
        id: &SimulationId,
        agent: impl Into<AgentIndex>,
        steps: impl RangeBounds<i64>,
    ) -> Result<Vec<(i64, Value)>> {
        let agent = agent.into();
        let (lo, hi) = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.require_agent(sim.sim_key, sim.id.as_str(), agent.0)?;
            Ok(c.agent_states(sim.sim_key, agent.0, lo, hi)?
                .into_iter()
                .map(|s| (s.step, s.state))
                .collect())
        })
    }
}
