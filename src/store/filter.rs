//! Filters for listing simulations.

use crate::error::{Error, Result};
use crate::ids::ExperimentId;
use crate::models::SimulationStatus;

/// Filters for [`crate::SimulationService::list_simulations`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimulationFilter {
    /// Only simulations of this experiment.
    pub experiment: Option<ExperimentId>,
    /// Only simulations in this status.
    pub status: Option<SimulationStatus>,
    /// Only simulations carrying this tag.
    pub tag: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<i64>,
}

impl SimulationFilter {
    /// No filter: every simulation.
    pub fn new() -> Self {
        Self::default()
    }
    /// Restricts to one experiment.
    pub fn experiment(mut self, id: &ExperimentId) -> Self {
        self.experiment = Some(id.clone());
        self
    }
    /// Restricts to one status.
    pub fn status(mut self, status: SimulationStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Restricts to one tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
    /// Refuses a negative limit (SQLite would read it as "no limit",
    /// PostgreSQL as an error: both refuse it here).
    pub(crate) fn check(&self) -> Result<()> {
        match self.limit {
            Some(limit) if limit < 0 => {
                Err(Error::invalid("limit", format!("{limit} is negative")))
            }
            _ => Ok(()),
        }
    }

    /// Caps the number of results (not negative).
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = Some(limit);
        self
    }
}
