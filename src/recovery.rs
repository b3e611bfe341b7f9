//! Crash recovery: finding runs whose process died, and resuming them.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::{AgentMemory, AgentState, Simulation, SimulationStatus};
use crate::service::SimulationService;
use crate::sql_types::JsonParam;
use crate::store::event;
use crate::store::prelude::*;
use crate::with_connection;

/// Where a resumed simulation continues from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The simulation, now `running`.
    pub simulation: Simulation,
    /// The last step at which every registered agent has a state (and its
    /// step row, if the run records them); `None` if there is none — start
    /// over from step 0.
    pub last_complete_step: Option<i64>,
    /// Every agent's state at that step, by agent.
    pub states: Vec<AgentState>,
    /// Every agent's latest memory snapshot at or before that step.
    pub memories: Vec<AgentMemory>,
    /// Rows after that step that were removed (a partly written last step).
    pub discarded_rows: usize,
}

impl ResumePoint {
    /// The first step to record next.
    pub fn next_step(&self) -> i64 {
        self.last_complete_step.map_or(0, |s| s + 1)
    }
}

impl SimulationService {
    /// Marks `running` simulations that have not heartbeated (or, never
    /// having heartbeated, started) for `max_age` as `interrupted`, with an
    /// event each. A live recorder heartbeats with every batch it writes;
    /// call [`SimulationService::heartbeat`] in long quiet phases.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) on a database failure.
    pub fn recover_stale(&self, max_age: Duration) -> Result<Vec<SimulationId>> {
        let age = chrono::Duration::from_std(max_age)
            .map_err(|_| Error::invalid("max age", "too large"))?;
        let cutoff = Utc::now() - age;
        let stale = with_connection!(self.database().writer()?, |c| c.stale_running(cutoff))?;
        let mut recovered = Vec::new();
        for sim in stale {
            let reason = format!(
                "no heartbeat for over {}s (last: {})",
                max_age.as_secs(),
                sim.heartbeat_at
                    .or(sim.started_at)
                    .map_or_else(|| "never".to_string(), |t| t.to_rfc3339())
            );
            match self.interrupt_simulation(&sim.id, &reason) {
                Ok(_) => recovered.push(sim.id),
                // Finished or recovered meanwhile by someone else.
                Err(Error::InvalidTransition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(recovered)
    }

    /// Prepares an `interrupted` simulation to continue: finds the last
    /// complete step, removes anything recorded after it (a step the crash
    /// cut in half), and sets it `running` again, with a `resumed` event.
    /// Record from [`ResumePoint::next_step`] on, restoring agents from
    /// [`ResumePoint::states`] and [`ResumePoint::memories`].
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) unless the simulation is interrupted;
    /// [`Error::NotFound`](crate::Error::NotFound).
    pub fn resume(&self, id: &SimulationId) -> Result<ResumePoint> {
        let (last_complete_step, discarded_rows) =
            with_connection!(self.database().writer()?, |c| c.write(|c| {
                let sim = c.find_simulation(id)?;
                if sim.status != SimulationStatus::Interrupted {
                    return Err(Error::InvalidTransition {
                        id: id.to_string(),
                        from: sim.status,
                        to: SimulationStatus::Running,
                    });
                }
                let agents = c.agents(sim.sim_key)?.len() as i64;
                let last = c.last_complete_step(sim.sim_key, agents)?;
                let discarded = c.truncate_after(sim.sim_key, last.unwrap_or(-1))?;
                let mut ev = event(sim.sim_key, "resumed", None, None, None);
                ev.data = Some(JsonParam(serde_json::json!({
                    "last_complete_step": last,
                    "discarded_rows": discarded,
                })));
                c.insert_event(&ev)?;
                Ok((last, discarded))
            }))?;
        let simulation = self.start_simulation(id)?;
        let (states, memories) = match last_complete_step {
            Some(step) => with_connection!(self.database().connection()?, |c| {
                let key = simulation.sim_key;
                let states = c.states_at_step(key, step)?;
                let mut memories = Vec::new();
                for agent in c.agents(key)? {
                    memories.extend(c.latest_memory(key, agent.agent_index.0, step)?);
                }
                Ok::<_, Error>((states, memories))
            })?,
            None => (Vec::new(), Vec::new()),
        };
        Ok(ResumePoint {
            simulation,
            last_complete_step,
            states,
            memories,
            discarded_rows,
        })
    }
}
