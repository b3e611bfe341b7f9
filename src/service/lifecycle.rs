//! The status lifecycle: transitions, heartbeats and the audit trail.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SimulationService;
use crate::error::Result;
use crate::ids::SimulationId;
use crate::models::*;
use crate::store::prelude::*;
use crate::validate::{check_free_text, check_json};
use crate::with_connection;

impl SimulationService {
    /// `pending` (or `interrupted`) -> `running`.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) from any other status; [`Error::NotFound`](crate::Error::NotFound).
    pub fn start_simulation(&self, id: &SimulationId) -> Result<Simulation> {
        self.transition(id, SimulationStatus::Running, None, None)
    }

    /// `running` -> `completed`, storing a results summary.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) unless running; [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a summary with a NUL character.
    pub fn complete_simulation(&self, id: &SimulationId, summary: Value) -> Result<Simulation> {
        self.transition(id, SimulationStatus::Completed, Some(summary), None)
    }

    /// -> `failed`, storing the error message.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) from a final status; [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a message with a NUL character.
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
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) from a final status; [`Error::NotFound`](crate::Error::NotFound).
    pub fn cancel_simulation(&self, id: &SimulationId) -> Result<Simulation> {
        self.transition(id, SimulationStatus::Cancelled, None, None)
    }

    /// `running` -> `interrupted` (the recording process is gone).
    ///
    /// # Errors
    /// [`Error::InvalidTransition`](crate::Error::InvalidTransition) unless running; [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a reason with a NUL character.
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
        if let Some(summary) = &summary {
            check_json("results summary", summary)?;
        }
        if let Some(message) = &message {
            check_free_text("message", message)?;
        }
        with_connection!(self.db.writer()?, |c| c.transition(
            id,
            to,
            summary.clone(),
            message.clone()
        ))
    }

    /// Marks a running simulation alive now, by the database's clock, and
    /// returns that time.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) if it is not running; [`Error::NotFound`](crate::Error::NotFound).
    pub fn heartbeat(&self, id: &SimulationId) -> Result<DateTime<Utc>> {
        with_connection!(self.db.writer()?, |c| c.heartbeat(id))
    }

    /// The audit trail of a simulation, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn events(&self, id: &SimulationId) -> Result<Vec<Event>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.events(sim.sim_key)
        })
    }
}
