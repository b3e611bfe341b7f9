//! Crash recovery: finding runs whose process died, and resuming them
//! exactly at the commit watermark.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::{AgentMemory, AgentState, Simulation, SimulationStatus};
use crate::recorder::RecorderOptions;
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
    /// The commit watermark: every row of every step up to it was committed
    /// and is kept; `None` if no step was — start over from step 0.
    pub last_complete_step: Option<i64>,
    /// Every agent's latest state at or before that step, by agent (an
    /// agent that stopped reporting earlier has its last state; one without
    /// any has none).
    pub states: Vec<AgentState>,
    /// Every agent's latest memory snapshot at or before that step.
    pub memories: Vec<AgentMemory>,
    /// Rows after that step that were removed (what the crash left of
    /// steps that were not ended).
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
    /// having heartbeated, started) for `max_age`, by the database's clock,
    /// as `interrupted`, with an event each. A live recorder heartbeats at
    /// least every `lease_timeout / 4` however slowly it records. Any
    /// `max_age` is accepted; beyond 100 years it counts as 100 years.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) on a database failure.
    pub fn recover_stale(&self, max_age: Duration) -> Result<Vec<SimulationId>> {
        let stale = with_connection!(self.database().writer()?, |c| c
            .stale_running(max_age.as_secs_f64()))?;
        let mut recovered = Vec::new();
        for sim in stale {
            // Re-judged under the run's lock: one that finished, was
            // recovered by another process or heartbeated since is skipped.
            let interrupted = with_connection!(self.database().writer()?, |c| c
                .interrupt_if_stale(&sim.id, max_age.as_secs_f64()));
            match interrupted {
                Ok(Some(_)) => recovered.push(sim.id),
                Ok(None) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(recovered)
    }

    /// Prepares an `interrupted` simulation to continue, in one
    /// transaction: removes every row above the commit watermark from every
    /// per-step table (what a crash left of steps that were not ended) and
    /// nothing at or below it, and sets the run `running` again with a
    /// `resumed` event. Record from [`ResumePoint::next_step`] on, restoring
    /// agents from [`ResumePoint::states`] and [`ResumePoint::memories`].
    ///
    /// Refused while the run's last recorder still heartbeats (within the
    /// default lease timeout, 30 s): see [`SimulationService::resume_with`].
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) unless the simulation is interrupted;
    /// [`Error::LeaseHeld`](crate::Error::LeaseHeld) while its recorder is alive;
    /// [`Error::NotFound`](crate::Error::NotFound).
    pub fn resume(&self, id: &SimulationId) -> Result<ResumePoint> {
        self.resume_with(id, RecorderOptions::default().lease_timeout)
    }

    /// As [`SimulationService::resume`], for recorders that ran with another
    /// `lease_timeout`.
    ///
    /// # Errors
    /// As for [`SimulationService::resume`].
    pub fn resume_with(&self, id: &SimulationId, lease_timeout: Duration) -> Result<ResumePoint> {
        let (simulation, last_complete_step, discarded_rows) =
            with_connection!(self.database().writer()?, |c| c.write(|c| {
                // Locked before anything is read or cut: of concurrent
                // resumes one wins, the others then find it running.
                let sim = c.lock_simulation(id)?;
                if sim.status != SimulationStatus::Interrupted {
                    return Err(Error::InvalidTransition {
                        id: id.to_string(),
                        from: sim.status,
                        to: SimulationStatus::Running,
                    });
                }
                c.check_no_live_lease(&sim, lease_timeout)?;
                let last = sim.committed_step;
                let discarded = c.truncate_after(sim.sim_key, last.unwrap_or(-1))?;
                c.clear_lease(sim.sim_key)?;
                let mut ev = event(sim.sim_key, "resumed", None, None, None);
                ev.data = Some(JsonParam(serde_json::json!({
                    "last_complete_step": last,
                    "discarded_rows": discarded,
                })));
                c.record_event(&ev)?;
                let running = c.transition(id, SimulationStatus::Running, None, None)?;
                Ok((running, last, discarded))
            }))?;
        let (states, memories) = match last_complete_step {
            Some(step) => with_connection!(self.database().connection()?, |c| {
                let key = simulation.sim_key;
                let mut states = Vec::new();
                let mut memories = Vec::new();
                for agent in c.agents(key)? {
                    let i = agent.agent_index.0;
                    states.extend(c.latest_state(key, i, step)?);
                    memories.extend(c.latest_memory(key, i, step)?);
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
