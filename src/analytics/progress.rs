//! Live progress of a running simulation, polled with a cursor.

use chrono::{DateTime, Utc};
use diesel::dsl::{count_star, max};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::Analytics;
use crate::error::Result;
use crate::ids::SimulationId;
use crate::models::{SimulationStatus, SimulationStep};
use crate::schema::agent_states;
use crate::store::for_each_backend;
use crate::store::prelude::*;
use crate::with_connection;

/// Where a [`Progress`] poll left off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Highest step already returned (-1 before any).
    pub step: i64,
    /// Agent-state rows counted so far.
    pub rows: i64,
    /// When the poll happened.
    pub at: DateTime<Utc>,
}

/// What is new in a simulation since a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Pass to the next poll.
    pub cursor: Cursor,
    /// Current status.
    pub status: SimulationStatus,
    /// Steps recorded after the cursor, by step.
    pub new_steps: Vec<SimulationStep>,
    /// Highest step with agent states.
    pub latest_step: Option<i64>,
    /// Agent-state rows in the database.
    pub rows: i64,
    /// Agent-state rows per second since the previous poll.
    pub rows_per_sec: Option<f64>,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_secs: Option<f64>,
}

/// Agent-state rows after a step.
trait ProgressStore {
    fn rows_after(&mut self, sim_key: i32, step: i64) -> Result<(i64, Option<i64>)>;
}

for_each_backend! {
    impl ProgressStore {
        fn rows_after(&mut self, sim_key: i32, step: i64) -> Result<(i64, Option<i64>)> {
            Ok(agent_states::table
                .filter(agent_states::sim_key.eq(sim_key))
                .filter(agent_states::step.gt(step))
                .select((count_star(), max(agent_states::step)))
                .first(self)?)
        }
    }
}

impl Analytics {
    /// What is new since `cursor` (everything, for `None`): new steps and
    /// their metrics, latest step, rows written, recent rows/s, heartbeat
    /// age. Works from another process while a recorder writes.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn progress(&self, id: &SimulationId, cursor: Option<Cursor>) -> Result<Progress> {
        let now = Utc::now();
        let from = cursor.map_or(-1, |c| c.step);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let new_steps = c.steps(sim.sim_key, from.saturating_add(1), i64::MAX)?;
            let (new_rows, latest) = c.rows_after(sim.sim_key, from)?;
            let rows = cursor.map_or(0, |c| c.rows) + new_rows;
            let latest_step = latest.or(cursor.and_then(|c| (c.step >= 0).then_some(c.step)));
            let rows_per_sec = cursor.and_then(|c| {
                let secs = (now - c.at).num_microseconds()? as f64 / 1e6;
                (secs > 0.0).then(|| new_rows as f64 / secs)
            });
            Ok(Progress {
                cursor: Cursor {
                    step: latest_step
                        .unwrap_or(from)
                        .max(new_steps.last().map_or(from, |s| s.step)),
                    rows,
                    at: now,
                },
                status: sim.status,
                new_steps,
                latest_step,
                rows,
                rows_per_sec,
                heartbeat_age_secs: sim
                    .heartbeat_at
                    .and_then(|h| (now - h).num_microseconds())
                    .map(|us| us as f64 / 1e6),
            })
        })
    }
}
