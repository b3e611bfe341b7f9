//! Live progress of a running simulation, polled with a cursor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rollups::RollupReadStore;
use super::Analytics;
use crate::error::Result;
use crate::ids::SimulationId;
use crate::models::{Simulation, SimulationStatus, SimulationStep};
use crate::store::prelude::*;
use crate::with_connection;

/// Where a [`Progress`] poll left off.
///
/// A cursor moves with the simulation's commit watermark: every step at or
/// below `step` has been delivered, with all of its rows counted, and no
/// later poll delivers it again. Rows of steps above the watermark (a step
/// still being recorded, a batch still in flight) are delivered once the
/// watermark passes them, so the counts are exact whatever the batch
/// boundaries. A simulation that ended (completed, failed, cancelled) has
/// everything delivered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Highest step already delivered (-1 before any).
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
    /// Step rows of the steps delivered by this poll, by step.
    pub new_steps: Vec<SimulationStep>,
    /// The highest step delivered so far (the commit watermark).
    pub latest_step: Option<i64>,
    /// Agent-state rows of every step delivered so far.
    pub rows: i64,
    /// Agent-state rows per second since the previous poll.
    pub rows_per_sec: Option<f64>,
    /// Seconds since the last heartbeat, by the database's clock, while the
    /// run may still record (`None` once it completed, failed or was
    /// cancelled: nothing heartbeats any more).
    pub heartbeat_age_secs: Option<f64>,
    /// When the run completed, failed or was cancelled (`None` before).
    pub ended_at: Option<DateTime<Utc>>,
}

/// The highest step whose rows are final: everything once the run ended,
/// before that the commit watermark (-1 before any).
fn final_upto(sim: &Simulation) -> i64 {
    if sim.status.is_final() {
        i64::MAX
    } else {
        sim.committed_step.unwrap_or(-1)
    }
}

/// Seconds since the run's last heartbeat, by the database's clock; none
/// once the run ended.
fn heartbeat_age(sim: &Simulation, db_now: DateTime<Utc>) -> Option<f64> {
    if sim.status.is_final() {
        return None;
    }
    sim.heartbeat_at
        .and_then(|h| (db_now - h).num_microseconds())
        .map(|us| us as f64 / 1e6)
}

/// When the run ended, once it did.
fn ended_at(sim: &Simulation) -> Option<DateTime<Utc>> {
    sim.ended_at.filter(|_| sim.status.is_final())
}

impl Analytics {
    /// What is new since `cursor` (everything, for `None`): the steps the
    /// commit watermark passed since, with their step rows, the rows counted
    /// so far, recent rows/s and the heartbeat's age. Works from another
    /// process while a recorder writes; see [`Cursor`] for what it guarantees.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn progress(&self, id: &SimulationId, cursor: Option<Cursor>) -> Result<Progress> {
        let now = Utc::now();
        let from = cursor.map_or(-1, |c| c.step);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let db_now = c.database_now()?;
            let upto = final_upto(&sim);
            let (new_steps, new_rows, top) = if upto > from {
                let steps = c.steps(sim.sim_key, from.saturating_add(1), upto)?;
                let (rows, top) = c.rolled_rows(sim.sim_key, from, upto)?;
                (steps, rows, top)
            } else {
                (Vec::new(), 0, None)
            };
            let delivered = if upto == i64::MAX {
                top.max(new_steps.last().map(|s| s.step))
                    .unwrap_or(from)
                    .max(from)
            } else {
                upto.max(from)
            };
            let rows = cursor.map_or(0, |c| c.rows) + new_rows;
            let rows_per_sec = cursor.and_then(|c| {
                let secs = (now - c.at).num_microseconds()? as f64 / 1e6;
                (secs > 0.0).then(|| new_rows as f64 / secs)
            });
            Ok(Progress {
                cursor: Cursor {
                    step: delivered,
                    rows,
                    at: now,
                },
                status: sim.status,
                new_steps,
                latest_step: (delivered >= 0).then_some(delivered),
                rows,
                rows_per_sec,
                heartbeat_age_secs: heartbeat_age(&sim, db_now),
                ended_at: ended_at(&sim),
            })
        })
    }

    /// The progress of many simulations at once, for a live list: for each,
    /// what [`Analytics::progress`] gives without a cursor (the same
    /// `rows`, `latest_step`, status and heartbeat age), except the step
    /// rows (`new_steps` is empty), in two statements whatever the number
    /// of simulations or steps. Compute rows/s from two calls' `rows` and
    /// `cursor.at`.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) if a statement fails.
    pub fn progress_of(&self, sims: &[Simulation]) -> Result<Vec<Progress>> {
        let now = Utc::now();
        let (db_now, counts) = with_connection!(self.db.connection()?, |c| {
            let keys: Vec<(i32, i64)> = sims.iter().map(|s| (s.sim_key, final_upto(s))).collect();
            (c.database_now()?, c.listed_counts(&keys)?)
        });
        let counts: std::collections::HashMap<i32, _> =
            counts.into_iter().map(|c| (c.sim_key, c)).collect();
        Ok(sims
            .iter()
            .map(|sim| {
                let upto = final_upto(sim);
                let (rows, delivered) = match counts.get(&sim.sim_key) {
                    Some(c) => {
                        let rows = c.stored.unwrap_or(0) - c.above.unwrap_or(0);
                        let delivered = if upto == i64::MAX {
                            c.top.max(c.last_step).unwrap_or(-1)
                        } else {
                            upto
                        };
                        (rows, delivered)
                    }
                    None => (0, -1),
                };
                Progress {
                    cursor: Cursor {
                        step: delivered,
                        rows,
                        at: now,
                    },
                    status: sim.status,
                    new_steps: Vec::new(),
                    latest_step: (delivered >= 0).then_some(delivered),
                    rows,
                    rows_per_sec: None,
                    heartbeat_age_secs: heartbeat_age(sim, db_now),
                    ended_at: ended_at(sim),
                }
            })
            .collect())
    }
}
