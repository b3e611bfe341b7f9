//! The simple recording path: one row per call, one transaction each.

use chrono::Utc;
use serde_json::Value;

use super::SimulationService;
use crate::error::{Error, Result};
use crate::ids::{validate_text, AgentIndex, SimulationId};
use crate::models::*;
use crate::store::prelude::*;
use crate::validate::*;
use crate::with_connection;

impl SimulationService {
    /// Records one agent's reward and state at a step. For loops, use the
    /// batched [`crate::Recorder`] instead.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative step or agent, a non-finite
    /// reward or a simulation that is not running; [`Error::NotFound`](crate::Error::NotFound) for an
    /// unknown simulation or unregistered agent; [`Error::Duplicate`](crate::Error::Duplicate) if that
    /// (agent, step) is already recorded.
    pub fn record_agent_state(
        &self,
        sim: &SimulationId,
        step: i64,
        agent: impl Into<AgentIndex>,
        reward: f64,
        state: &Value,
    ) -> Result<()> {
        let agent = agent.into();
        agent.checked()?;
        check_step(step)?;
        let reward = finite("reward", reward)?;
        check_json("state", state)?;
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let sim = c.lock_for_one_row_write(sim)?;
            c.check_registered(sim.sim_key, sim.id.as_str(), agent.0)?;
            c.insert_agent_state(&AgentState {
                sim_key: sim.sim_key,
                agent_index: agent,
                step,
                reward,
                state: state.clone(),
            })?;
            let mut rollups = RollupBuilder::new(sim.sim_key, &c.agent_kinds(sim.sim_key)?);
            rollups.reward(agent.0, step, reward);
            c.add_rollups(rollups.finish()).map(drop)
        }))
    }

    /// Records a step with its metrics JSON object.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative step, metrics that are not an
    /// object, or a simulation that is not running; [`Error::Duplicate`](crate::Error::Duplicate) if
    /// the step is already recorded.
    pub fn record_step(&self, sim: &SimulationId, step: i64, metrics: &Value) -> Result<()> {
        check_step(step)?;
        if !metrics.is_object() {
            return Err(Error::invalid(
                "step metrics",
                format!("must be a JSON object, got {}", json_kind(metrics)),
            ));
        }
        check_json("step metrics", metrics)?;
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let sim = c.lock_for_one_row_write(sim)?;
            c.insert_step(&SimulationStep {
                sim_key: sim.sim_key,
                step,
                recorded_at: Utc::now(),
                metrics: metrics.clone(),
            })
        }))
    }

    /// Records a numeric metric of the simulation (`agent = None`) or of one
    /// agent at a step.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad name, step or agent, or a non-finite
    /// value; [`Error::NotFound`](crate::Error::NotFound) for an unregistered agent;
    /// [`Error::Duplicate`](crate::Error::Duplicate) if already recorded.
    pub fn record_metric(
        &self,
        sim: &SimulationId,
        step: i64,
        agent: Option<AgentIndex>,
        name: &str,
        value: f64,
    ) -> Result<()> {
        validate_text("metric name", name, MAX_NAME_LEN)?;
        check_step(step)?;
        let value = finite("metric value", value)?;
        if let Some(agent) = agent {
            agent.checked()?;
        }
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let sim = c.lock_for_one_row_write(sim)?;
            let metric_id = c.metric_id(name)?;
            match agent {
                Some(agent_index) => {
                    c.check_registered(sim.sim_key, sim.id.as_str(), agent_index.0)?;
                    c.insert_agent_metric(&AgentMetric {
                        sim_key: sim.sim_key,
                        agent_index,
                        metric_id,
                        step,
                        value,
                    })?;
                    let mut rollups = RollupBuilder::new(sim.sim_key, &c.agent_kinds(sim.sim_key)?);
                    rollups.metric(agent_index.0, metric_id, step, value);
                    c.add_rollups(rollups.finish()).map(drop)
                }
                None => c.insert_step_metric(&StepMetric {
                    sim_key: sim.sim_key,
                    metric_id,
                    step,
                    value,
                }),
            }
        }))
    }

    /// Records a snapshot of an agent's memory at a step.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) if the bytes do not fit dtype and shape;
    /// [`Error::NotFound`](crate::Error::NotFound) for an unregistered agent; [`Error::Duplicate`](crate::Error::Duplicate).
    pub fn record_memory(
        &self,
        sim: &SimulationId,
        step: i64,
        agent: impl Into<AgentIndex>,
        memory: &NewAgentMemory,
    ) -> Result<()> {
        let agent = agent.into();
        agent.checked()?;
        check_step(step)?;
        memory.validate()?;
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let sim = c.lock_for_one_row_write(sim)?;
            c.check_registered(sim.sim_key, sim.id.as_str(), agent.0)?;
            c.insert_memory(&AgentMemory {
                sim_key: sim.sim_key,
                agent_index: agent,
                step,
                dtype: memory.dtype.clone(),
                shape: Value::from(memory.shape.clone()),
                data: memory.data.clone(),
                recorded_at: Utc::now(),
            })
        }))
    }

    /// For runs written with the one-row calls above: declares every row of
    /// every step up to `step` recorded, moving the commit watermark there
    /// (never back). [`SimulationService::resume`] keeps what is at or below
    /// the watermark and cuts what is above it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative step or a simulation that is
    /// not running; [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn end_step(&self, sim: &SimulationId, step: i64) -> Result<()> {
        check_step(step)?;
        with_connection!(self.database().writer()?, |c| c.write(|c| {
            let found = c.lock_for_one_row_write(sim)?;
            c.advance_watermark(found.sim_key, step)
        }))
    }
}
