//! Reading recorded rows back.

use std::ops::RangeBounds;

use super::SimulationService;
use crate::error::Result;
use crate::ids::{AgentIndex, SimulationId};
use crate::models::*;
use crate::store::prelude::*;
use crate::store::step_bounds;
use crate::with_connection;

impl SimulationService {
    /// One agent's states over a step range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation or an agent it never
    /// registered.
    pub fn agent_states(
        &self,
        sim: &SimulationId,
        agent: impl Into<AgentIndex>,
        steps: impl RangeBounds<i64>,
    ) -> Result<Vec<AgentState>> {
        let agent = agent.into();
        let (lo, hi) = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.require_agent(sim.sim_key, sim.id.as_str(), agent.0)?;
            c.agent_states(sim.sim_key, agent.0, lo, hi)
        })
    }

    /// Every agent's state at one step, by agent.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn states_at_step(&self, sim: &SimulationId, step: i64) -> Result<Vec<AgentState>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.states_at_step(sim.sim_key, step)
        })
    }

    /// Steps over a range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn steps(
        &self,
        sim: &SimulationId,
        steps: impl RangeBounds<i64>,
    ) -> Result<Vec<SimulationStep>> {
        let (lo, hi) = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.steps(sim.sim_key, lo, hi)
        })
    }

    /// An agent's memory snapshots, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation or an agent it never
    /// registered.
    pub fn memories(
        &self,
        sim: &SimulationId,
        agent: impl Into<AgentIndex>,
    ) -> Result<Vec<AgentMemory>> {
        let agent = agent.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.require_agent(sim.sim_key, sim.id.as_str(), agent.0)?;
            c.memories(sim.sim_key, agent.0)
        })
    }

    /// What an agent's memory snapshots hold (step, dtype, shape, size),
    /// by step, without reading their bytes.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation or an agent it never
    /// registered.
    pub fn memory_summaries(
        &self,
        sim: &SimulationId,
        agent: impl Into<AgentIndex>,
    ) -> Result<Vec<MemorySummary>> {
        let agent = agent.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.require_agent(sim.sim_key, sim.id.as_str(), agent.0)?;
            c.memory_summaries(sim.sim_key, agent.0)
        })
    }

    /// An agent's latest memory snapshot, if any.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation or an agent it never
    /// registered.
    pub fn latest_memory(
        &self,
        sim: &SimulationId,
        agent: impl Into<AgentIndex>,
    ) -> Result<Option<AgentMemory>> {
        let agent = agent.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.require_agent(sim.sim_key, sim.id.as_str(), agent.0)?;
            c.latest_memory(sim.sim_key, agent.0, i64::MAX)
        })
    }
}
