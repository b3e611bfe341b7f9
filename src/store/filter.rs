//! Filters for listing simulations.

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
    /// Caps the number of results.
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = Some(limit);
        self
    }
}
