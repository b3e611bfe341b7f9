//! Deleting a run without stalling other writers: the run's row (and what
//! cascades from it) goes in one short transaction, then its chunks,
//! memories, rollups and totals a bounded transaction at a time
//! (`store/deletion.rs`), the writer connection given back between them
//! and a pause twice as long as the transaction took, so that a recorder —
//! in this process, waiting for SQLite's one writer connection, or in
//! another, polling the lock through SQLite's busy handler — gets its turn. A delete cut short (a crash)
//! leaves the run's key in `pending_deletes`; the next delete finishes it
//! first.

use std::time::{Duration, Instant};

use super::SimulationService;
use crate::error::Result;
use crate::ids::SimulationId;
use crate::store::prelude::*;
use crate::with_connection;

/// The pause between two transactions of a delete: twice as long as the
/// last one took, within these bounds.
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(100);

impl SimulationService {
    /// Deletes `id`, stopping after `budget` bounded transactions if given.
    pub(super) fn delete_cut_after(&self, id: &SimulationId, budget: Option<usize>) -> Result<()> {
        let pending = with_connection!(self.db.writer()?, |c| c.pending_deletes())?;
        for key in pending {
            self.clear_deleted(key, None)?;
        }
        let sim_key = with_connection!(self.db.writer()?, |c| c.begin_delete(id))?;
        self.clear_deleted(sim_key, budget)
    }

    /// Removes a deleted run's rows, one bounded transaction per writer
    /// connection taken (at most `budget` of them if given).
    fn clear_deleted(&self, sim_key: i32, budget: Option<usize>) -> Result<()> {
        let mut left = budget;
        loop {
            if left == Some(0) {
                return Ok(());
            }
            left = left.map(|n| n - 1);
            let started = Instant::now();
            if with_connection!(self.db.writer()?, |c| c.clear_batch(sim_key))? {
                return Ok(());
            }
            std::thread::sleep((started.elapsed() * 2).max(MIN_PAUSE).min(MAX_PAUSE));
        }
    }
}
