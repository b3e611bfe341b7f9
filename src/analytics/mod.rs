//! Reading results back: summaries, series, step aggregates, comparisons,
//! leaderboards, parameter search and live progress. Aggregates run in SQL;
//! only their results are loaded. One file per kind of question.

mod aggregates;
mod by_kind;
mod compare;
mod field;
mod json_path;
mod leaderboard;
mod overlay;
mod progress;
mod recorded;
mod rollups;
mod search;
mod series;
mod source;
mod summary;

pub use aggregates::StepAggregate;
pub use compare::{flatten_json, Comparison, ComparisonRow};
pub use field::Field;
pub use leaderboard::{GroupBy, LeaderboardRow};
pub use overlay::{GroupPoint, Overlay, ParameterGroup, RunSeries, MAX_OVERLAY_RUNS};
pub use progress::{Cursor, Progress};
pub use recorded::RecordedFields;
pub use search::ParameterQuery;
pub use summary::{AgentSummary, Summary};

use crate::database::Database;
use crate::error::Result;
use crate::ids::SimulationId;
use crate::models::Simulation;
use crate::service::SimulationService;
use crate::store::prelude::*;
use crate::with_connection;

/// Read-side queries; get one from [`SimulationService::analytics`].
#[derive(Debug, Clone)]
pub struct Analytics {
    db: Database,
}

impl SimulationService {
    /// Summaries, series, aggregates, comparisons and leaderboards.
    pub fn analytics(&self) -> Analytics {
        Analytics {
            db: self.database().clone(),
        }
    }
}

impl Analytics {
    fn simulation(&self, id: &SimulationId) -> Result<Simulation> {
        with_connection!(self.db.connection()?, |c| c.find_simulation(id))
    }
}
