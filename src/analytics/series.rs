//! One agent's numbers or states over a step range.

use std::ops::RangeBounds;

use diesel::prelude::*;
use serde_json::Value;

use super::{Analytics, Field};
use crate::error::Result;
use crate::ids::{AgentIndex, SimulationId};
use crate::schema::{agent_metrics, agent_states};
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
        field: &Field,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>>;
}

for_each_backend! {
    impl SeriesStore {
        fn series(
            &mut self,
            sim_key: i32,
            agent: i32,
            field: &Field,
            lo: i64,
            hi: i64,
        ) -> Result<Vec<(i64, f64)>> {
            Ok(match field {
                Field::Reward => agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::agent_index.eq(agent))
                    .filter(agent_states::step.between(lo, hi))
                    .select((agent_states::step, agent_states::reward))
                    .order(agent_states::step)
                    .load(self)?,
                Field::Metric(name) => match self.metric_lookup(name)? {
                    None => Vec::new(),
                    Some(metric) => agent_metrics::table
                        .filter(agent_metrics::sim_key.eq(sim_key))
                        .filter(agent_metrics::agent_index.eq(agent))
                        .filter(agent_metrics::metric_id.eq(metric))
                        .filter(agent_metrics::step.between(lo, hi))
                        .select((agent_metrics::step, agent_metrics::value))
                        .order(agent_metrics::step)
                        .load(self)?,
                },
            })
        }
    }
}

impl Analytics {
    /// One agent's `field` (reward or a metric) over a step range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
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
            c.series(sim.sim_key, agent.0, &field, lo, hi)
        })
    }

    /// One agent's state JSON over a step range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
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
            Ok(c.agent_states(sim.sim_key, agent.0, lo, hi)?
                .into_iter()
                .map(|s| (s.step, s.state))
                .collect())
        })
    }
}
