//! Deleting a run's rows in bounded transactions: the tables without a
//! foreign key to the simulation (chunks, memories, rollups, totals; on
//! PostgreSQL also step rows and simulation metrics) are
//! emptied of a deleted run's rows a few thousand rows per transaction, so
//! that other writers — on SQLite, every other writer — wait for one small
//! transaction at a time, never for the whole delete. The run's key stays
//! in `pending_deletes` until its last row is gone; a delete cut short is
//! finished by the next one.

use diesel::prelude::*;
use diesel::sql_types::Integer;

use super::prelude::*;
use crate::error::Result;
use crate::schema::pending_deletes;

/// Rows removed per transaction (a state chunk row holds up to 64 steps of
/// one agent: at most 128,000 agent states per transaction).
pub(crate) const DELETE_BATCH: usize = 2_000;

/// Each table a run's rows are removed from in batches, and the columns
/// after `sim_key` of its primary key.
const TABLES: [(&str, &str); 8] = [
    ("simdb_agent_state_chunks", "agent_index, chunk"),
    ("simdb_agent_metric_chunks", "metric_id, agent_index, chunk"),
    ("simdb_agent_memories", "agent_index, step"),
    ("simdb_step_rollups", "field_id, kind, step"),
    ("simdb_block_rollups", "field_id, block"),
    ("simdb_agent_totals", "agent_index"),
    // Cascaded from the run's row on SQLite, which keeps their foreign
    // keys; on PostgreSQL removed here (2026-12-08-000002).
    ("simdb_simulation_steps", "step"),
    ("simdb_step_metrics", "metric_id, step"),
];

pub(crate) trait RunDeletion {
    /// The keys of runs whose deletion is not finished.
    fn pending_deletes(&mut self) -> Result<Vec<i32>>;
    /// One bounded transaction of a deleted run's removal: up to
    /// [`DELETE_BATCH`] rows of the first table that still holds some; once
    /// none does, its `pending_deletes` row. True once every row is gone.
    fn clear_batch(&mut self, sim_key: i32) -> Result<bool>;
    /// Every row of a deleted run, on this connection (inside a caller's
    /// transaction, as an import's replace: all or nothing).
    fn clear_run(&mut self, sim_key: i32) -> Result<()> {
        while !self.clear_batch(sim_key)? {}
        Ok(())
    }
    /// Finishes every delete cut short, on this connection.
    fn finish_deletes(&mut self) -> Result<()> {
        for key in self.pending_deletes()? {
            self.clear_run(key)?;
        }
        Ok(())
    }
}

super::for_each_backend! {
    impl RunDeletion {
        fn pending_deletes(&mut self) -> Result<Vec<i32>> {
            Ok(pending_deletes::table
                .select(pending_deletes::sim_key)
                .order(pending_deletes::sim_key)
                .load(self)?)
        }

        fn clear_batch(&mut self, sim_key: i32) -> Result<bool> {
            let p = Self::P;
            self.write(|c| {
                for (table, key) in TABLES {
                    let removed = diesel::sql_query(format!(
                        "DELETE FROM {table} WHERE sim_key = {p}1 AND ({key}) IN \
                         (SELECT {key} FROM {table} WHERE sim_key = {p}1 LIMIT {DELETE_BATCH})"
                    ))
                    .bind::<Integer, _>(sim_key)
                    .execute(c)?;
                    if removed > 0 {
                        return Ok(false);
                    }
                }
                diesel::delete(pending_deletes::table.filter(pending_deletes::sim_key.eq(sim_key)))
                    .execute(c)?;
                Ok(true)
            })
        }
    }
}
