//! `SimulationService`: the facade over everything simdb stores.

use std::ops::RangeBounds;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::database::Database;
use crate::error::{Error, Result};
use crate::ids::{validate_text, AgentIndex, ExperimentId, SimulationId};
use crate::models::*;
use crate::store::prelude::*;
use crate::store::{step_bounds, SimulationFilter};
use crate::with_connection;

/// Longest experiment, agent or simulation name, kind, policy or tag.
const MAX_NAME_LEN: usize = 256;

/// The facade over a [`Database`]: experiments, simulations and their
/// lifecycle, agents, and the simple one-row-per-call recording path.
///
/// Cheap to clone (it shares the database's pools); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct SimulationService {
    db: Database,
}

/// Accepts finite numbers only (NaN and infinities would read back
/// differently on the two backends) and turns -0.0 into 0.0 (SQLite stores
/// it as integer 0), so that both backends return the same bits.
pub(crate) fn finite(field: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value + 0.0)
    } else {
        Err(Error::invalid(
            field,
            format!("{value} is not a finite number"),
        ))
    }
}

/// Refuses JSON whose strings or keys contain NUL: PostgreSQL's JSONB cannot
/// store it, and both backends must accept the same documents.
pub(crate) fn check_json(field: &'static str, value: &Value) -> Result<()> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if has_nul(value) {
        Err(nul_error(field))
    } else {
        Ok(())
    }
}

/// As [`check_json`], on serialized JSON text (where NUL is `\u0000`).
pub(crate) fn check_json_text(field: &'static str, text: &[u8]) -> Result<()> {
    const NUL: &[u8] = b"\\u0000";
    let mut from = 0;
    while let Some(i) = text[from..].windows(NUL.len()).position(|w| w == NUL) {
        let at = from + i;
        // An escape only if preceded by an even number of backslashes.
        let backslashes = text[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 0 {
            return Err(nul_error(field));
        }
        from = at + 1;
    }
    Ok(())
}

fn nul_error(field: &'static str) -> Error {
    Error::invalid(
        field,
        "JSON text contains a NUL character (\\u0000), which PostgreSQL JSONB cannot store",
    )
}

pub(crate) fn check_step(step: i64) -> Result<()> {
    if step < 0 {
        Err(Error::invalid("step", format!("{step} is negative")))
    } else {
        Ok(())
    }
}

fn check_optional(field: &'static str, value: &Option<String>) -> Result<()> {
    match value {
        Some(v) => validate_text(field, v, MAX_NAME_LEN),
        None => Ok(()),
    }
}

pub(crate) fn check_running(sim: &Simulation) -> Result<()> {
    if sim.status == SimulationStatus::Running {
        Ok(())
    } else {
        Err(Error::invalid(
            "simulation status",
            format!(
                "simulation `{}` is {}; only running simulations accept records (call start_simulation)",
                sim.id, sim.status
            ),
        ))
    }
}

impl SimulationService {
    /// A service over `db`.
    pub fn new(db: Database) -> Self {
        SimulationService { db }
    }

    /// The underlying database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    // ----- experiments -------------------------------------------------

    /// Creates an experiment.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty, over-long or control-character
    /// name; [`Error::Duplicate`] if its id or name is taken.
    pub fn create_experiment(&self, new: NewExperiment) -> Result<Experiment> {
        validate_text("experiment name", &new.name, MAX_NAME_LEN)?;
        check_optional("external ref", &new.external_ref)?;
        check_json("experiment metadata", &new.metadata)?;
        with_connection!(self.db.writer()?, |c| c.insert_experiment(&new))
    }

    /// The experiment with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn experiment(&self, id: &ExperimentId) -> Result<Experiment> {
        with_connection!(self.db.connection()?, |c| c.find_experiment(id))
    }

    /// The experiment with this name.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn experiment_by_name(&self, name: &str) -> Result<Experiment> {
        with_connection!(self.db.connection()?, |c| c.experiment_named(name))
    }

    /// Every experiment, oldest first.
    ///
    /// # Errors
    /// [`Error::Database`] on a database failure.
    pub fn list_experiments(&self) -> Result<Vec<Experiment>> {
        with_connection!(self.db.connection()?, |c| c.list_experiments())
    }

    // ----- simulations -------------------------------------------------

    /// Creates a `pending` simulation (and its `created` event).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the parameters are not a JSON object or a
    /// name or tag is invalid; [`Error::NotFound`] for an unknown experiment;
    /// [`Error::Duplicate`] if the id is taken.
    pub fn create_simulation(&self, new: NewSimulation) -> Result<Simulation> {
        if !new.parameters.is_object() {
            return Err(Error::invalid(
                "parameters",
                format!("must be a JSON object, got {}", json_kind(&new.parameters)),
            ));
        }
        check_json("parameters", &new.parameters)?;
        check_optional("simulation name", &new.name)?;
        check_optional("data uri", &new.data_uri)?;
        for tag in &new.tags {
            validate_text("tag", tag, MAX_NAME_LEN)?;
        }
        with_connection!(self.db.writer()?, |c| c.insert_simulation(&new))
    }

    /// The simulation with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn simulation(&self, id: &SimulationId) -> Result<Simulation> {
        with_connection!(self.db.connection()?, |c| c.find_simulation(id))
    }

    /// Simulations matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::Database`] on a database failure.
    pub fn list_simulations(&self, filter: &SimulationFilter) -> Result<Vec<Simulation>> {
        with_connection!(self.db.connection()?, |c| c.list_simulations(filter))
    }

    /// The tags of a simulation, sorted.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn simulation_tags(&self, id: &SimulationId) -> Result<Vec<String>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.tags(sim.sim_key)
        })
    }

    /// Deletes a simulation and every row that belongs to it (agents,
    /// states, steps, metrics, memories, events, tags).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn delete_simulation(&self, id: &SimulationId) -> Result<()> {
        with_connection!(self.db.writer()?, |c| c.delete_simulation(id))
    }

    // ----- agents ------------------------------------------------------

    /// Registers agents (all or none).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a negative index or invalid name/kind/policy;
    /// [`Error::Duplicate`] if an index is already registered (or repeated);
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn register_agents(&self, sim: &SimulationId, agents: &[NewAgent]) -> Result<Vec<Agent>> {
        let mut seen = std::collections::HashSet::new();
        for agent in agents {
            agent.agent_index.checked()?;
            if !seen.insert(agent.agent_index) {
                return Err(Error::Duplicate {
                    entity: "agent",
                    id: format!("{} of {sim} (repeated in the list)", agent.agent_index),
                });
            }
            check_optional("agent name", &agent.name)?;
            check_optional("agent kind", &agent.kind)?;
            check_optional("policy name", &agent.policy_name)?;
            check_optional("checkpoint uri", &agent.checkpoint_uri)?;
            check_json("agent metadata", &agent.metadata)?;
        }
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let sim = c.find_simulation(sim)?;
            c.insert_agents(&sim, agents)
        }))
    }

    /// The agents of a simulation, by index.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn agents(&self, sim: &SimulationId) -> Result<Vec<Agent>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.agents(sim.sim_key)
        })
    }

    // ----- lifecycle ---------------------------------------------------

    /// `pending` (or `interrupted`) -> `running`.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] from any other status; [`Error::NotFound`].
    pub fn start_simulation(&self, id: &SimulationId) -> Result<Simulation> {
        self.transition(id, SimulationStatus::Running, None, None)
    }

    /// `running` -> `completed`, storing a results summary.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] unless running; [`Error::NotFound`].
    pub fn complete_simulation(&self, id: &SimulationId, summary: Value) -> Result<Simulation> {
        self.transition(id, SimulationStatus::Completed, Some(summary), None)
    }

    /// -> `failed`, storing the error message.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] from a final status; [`Error::NotFound`].
    pub fn fail_simulation(&self, id: &SimulationId, message: &str) -> Result<Simulation> {
        self.transition(
            id,
            SimulationStatus::Failed,
            None,
            Some(message.to_string()),
        )
    }

    /// -> `cancelled`.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] from a final status; [`Error::NotFound`].
    pub fn cancel_simulation(&self, id: &SimulationId) -> Result<Simulation> {
        self.transition(id, SimulationStatus::Cancelled, None, None)
    }

    /// `running` -> `interrupted` (the recording process is gone).
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] unless running; [`Error::NotFound`].
    pub fn interrupt_simulation(&self, id: &SimulationId, reason: &str) -> Result<Simulation> {
        self.transition(
            id,
            SimulationStatus::Interrupted,
            None,
            Some(reason.to_string()),
        )
    }

    fn transition(
        &self,
        id: &SimulationId,
        to: SimulationStatus,
        summary: Option<Value>,
        message: Option<String>,
    ) -> Result<Simulation> {
        with_connection!(self.db.writer()?, |c| c.transition(
            id,
            to,
            summary.clone(),
            message.clone()
        ))
    }

    /// Marks a running simulation alive now.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if it is not running; [`Error::NotFound`].
    pub fn heartbeat(&self, id: &SimulationId) -> Result<DateTime<Utc>> {
        with_connection!(self.db.writer()?, |c| c.heartbeat(id))
    }

    /// The audit trail of a simulation, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn events(&self, id: &SimulationId) -> Result<Vec<Event>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.events(sim.sim_key)
        })
    }

    // ----- simple recording (one row per call) --------------------------

    /// Records one agent's reward and state at a step. For loops, use the
    /// batched [`crate::Recorder`] instead.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a negative step or agent, a non-finite
    /// reward or a simulation that is not running; [`Error::NotFound`] for an
    /// unknown simulation or unregistered agent; [`Error::Duplicate`] if that
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
            let sim = c.find_simulation(sim)?;
            check_running(&sim)?;
            c.insert_agent_state(&AgentState {
                sim_key: sim.sim_key,
                agent_index: agent,
                step,
                reward,
                state: state.clone(),
            })
        }))
    }

    /// Records a step with its metrics JSON object.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a negative step, metrics that are not an
    /// object, or a simulation that is not running; [`Error::Duplicate`] if
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
            let sim = c.find_simulation(sim)?;
            check_running(&sim)?;
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
    /// [`Error::InvalidInput`] for a bad name, step or agent, or a non-finite
    /// value; [`Error::NotFound`] for an unregistered agent;
    /// [`Error::Duplicate`] if already recorded.
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
            let sim = c.find_simulation(sim)?;
            check_running(&sim)?;
            let metric_id = c.metric_id(name)?;
            match agent {
                Some(agent_index) => c.insert_agent_metric(&AgentMetric {
                    sim_key: sim.sim_key,
                    agent_index,
                    metric_id,
                    step,
                    value,
                }),
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
    /// [`Error::InvalidInput`] if the bytes do not fit dtype and shape;
    /// [`Error::NotFound`] for an unregistered agent; [`Error::Duplicate`].
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
            let sim = c.find_simulation(sim)?;
            check_running(&sim)?;
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

    // ----- reading back ------------------------------------------------

    /// One agent's states over a step range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
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
            c.agent_states(sim.sim_key, agent.0, lo, hi)
        })
    }

    /// Every agent's state at one step, by agent.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn states_at_step(&self, sim: &SimulationId, step: i64) -> Result<Vec<AgentState>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.states_at_step(sim.sim_key, step)
        })
    }

    /// Steps over a range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
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
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn memories(
        &self,
        sim: &SimulationId,
        agent: impl Into<AgentIndex>,
    ) -> Result<Vec<AgentMemory>> {
        let agent = agent.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.memories(sim.sim_key, agent.0)
        })
    }

    /// An agent's latest memory snapshot, if any.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation.
    pub fn latest_memory(
        &self,
        sim: &SimulationId,
        agent: impl Into<AgentIndex>,
    ) -> Result<Option<AgentMemory>> {
        let agent = agent.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.latest_memory(sim.sim_key, agent.0, i64::MAX)
        })
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
