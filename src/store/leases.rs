//! A recorder's hold on its run: the lease, the per-batch proof of
//! ownership that also records the commit watermark, and heartbeats. Time is
//! the database's ([`super::clock`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::clock::Clock;
use super::prelude::*;
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::{Simulation, SimulationStatus};
use crate::schema::simulations;

/// Statements on `simulations.lease_token`, `batch_seq`, `committed_step`
/// and `heartbeat_at`.
pub(crate) trait LeaseStore {
    /// The database's current time.
    fn database_now(&mut self) -> Result<DateTime<Utc>>;
    /// Takes the lease of a running simulation for `token`, unless a live
    /// holder (one that heartbeated within `timeout`) has it; restarts the
    /// batch sequence.
    fn acquire_lease(&mut self, sim: &Simulation, token: i64, timeout: Duration) -> Result<()>;
    /// For a one-row write (a call that holds no lease): the run, locked,
    /// if it is running and no live recorder holds it (one that heartbeated
    /// within the default lease timeout), a lapsed holder's lease taken
    /// away; otherwise the typed refusal.
    fn lock_for_one_row_write(&mut self, id: &SimulationId) -> Result<Simulation>;
    /// Refuses with [`Error::LeaseHeld`] while a live holder has the run.
    fn check_no_live_lease(&mut self, sim: &Simulation, timeout: Duration) -> Result<()>;
    /// Inside a batch's transaction: proves that the run still exists, is
    /// running and is held by `token`, and records the batch (heartbeat,
    /// sequence number and, if given, the new watermark) in one statement.
    fn mark_batch(
        &mut self,
        sim_key: i32,
        id: &SimulationId,
        token: i64,
        seq: i64,
        watermark: Option<i64>,
    ) -> Result<()>;
    /// Moves the watermark of a running simulation up to `step` (never down).
    fn advance_watermark(&mut self, sim_key: i32, step: i64) -> Result<()>;
    /// Heartbeats a held run; fails as [`LeaseStore::mark_batch`] does.
    fn heartbeat_lease(&mut self, sim_key: i32, id: &SimulationId, token: i64) -> Result<()>;
    /// The sequence number of the last batch `token` committed, if it still
    /// holds the run.
    fn committed_batch(&mut self, sim_key: i32, token: i64) -> Result<Option<i64>>;
    /// Gives the lease up (if `token` still holds it).
    fn release_lease(&mut self, sim_key: i32, token: i64) -> Result<()>;
    /// Forgets any holder: the run is being resumed.
    fn clear_lease(&mut self, sim_key: i32) -> Result<()>;
    /// Why a held run refused a batch: deleted, not running, or taken over.
    fn ownership_error(&mut self, sim_key: i32, id: &SimulationId) -> Error;
}

for_each_backend! {
    impl LeaseStore {
        fn database_now(&mut self) -> Result<DateTime<Utc>> {
            let now: Option<DateTime<Utc>> = diesel::select(Self::db_now()).get_result(self)?;
            now.ok_or_else(|| Error::invalid("database clock", "the database returned no time"))
        }

        fn acquire_lease(&mut self, sim: &Simulation, token: i64, timeout: Duration) -> Result<()> {
            let updated = diesel::update(
                simulations::table
                    .find(sim.sim_key)
                    .filter(simulations::status.eq(SimulationStatus::Running))
                    .filter(
                        simulations::lease_token
                            .is_null()
                            .or(simulations::heartbeat_at.is_null())
                            .or(simulations::heartbeat_at.lt(Self::db_ago(timeout.as_secs_f64()))),
                    ),
            )
            .set((
                simulations::lease_token.eq(Some(token)),
                simulations::batch_seq.eq(0),
                simulations::heartbeat_at.eq(Self::db_now()),
            ))
            .execute(self)?;
            if updated == 1 {
                return Ok(());
            }
            let now = self.find_simulation(&sim.id)?;
            crate::validate::check_running(&now)?;
            self.check_no_live_lease(&now, timeout)?;
            // The holder lapsed between the two statements: try once more.
            self.acquire_lease(&now, token, timeout)
        }

        fn lock_for_one_row_write(&mut self, id: &SimulationId) -> Result<Simulation> {
            let sim = self.lock_simulation(id)?;
            crate::validate::check_running(&sim)?;
            self.check_no_live_lease(&sim, crate::recorder::RecorderOptions::default().lease_timeout)?;
            // A lapsed recorder's lease ends here: were it to come back, its
            // batches would build on what it last knew of the run and could
            // write over this row; its ownership proof now fails instead.
            diesel::update(
                simulations::table
                    .find(sim.sim_key)
                    .filter(simulations::lease_token.is_not_null()),
            )
            .set(simulations::lease_token.eq(None::<i64>))
            .execute(self)?;
            Ok(sim)
        }

        fn check_no_live_lease(&mut self, sim: &Simulation, timeout: Duration) -> Result<()> {
            let (token, beat): (Option<i64>, Option<DateTime<Utc>>) = simulations::table
                .find(sim.sim_key)
                .select((simulations::lease_token, simulations::heartbeat_at))
                .first(self)?;
            let (Some(_), Some(beat)) = (token, beat) else {
                return Ok(());
            };
            let age = (self.database_now()? - beat)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if age < timeout {
                return Err(Error::LeaseHeld {
                    id: sim.id.to_string(),
                    age_secs: age.as_secs_f64(),
                    timeout_secs: timeout.as_secs(),
                });
            }
            Ok(())
        }

        fn mark_batch(
            &mut self,
            sim_key: i32,
            id: &SimulationId,
            token: i64,
            seq: i64,
            watermark: Option<i64>,
        ) -> Result<()> {
            let held = simulations::table
                .find(sim_key)
                .filter(simulations::status.eq(SimulationStatus::Running))
                .filter(simulations::lease_token.eq(token));
            let updated = diesel::update(held)
                .set((
                    simulations::heartbeat_at.eq(Self::db_now()),
                    simulations::batch_seq.eq(seq),
                ))
                .execute(self)?;
            if updated != 1 {
                return Err(self.ownership_error(sim_key, id));
            }
            // The watermark only ever rises, whatever wrote it last.
            match watermark {
                Some(w) => self.advance_watermark(sim_key, w),
                None => Ok(()),
            }
        }

        fn advance_watermark(&mut self, sim_key: i32, step: i64) -> Result<()> {
            diesel::update(
                simulations::table
                    .find(sim_key)
                    .filter(simulations::status.eq(SimulationStatus::Running))
                    .filter(
                        simulations::committed_step
                            .is_null()
                            .or(simulations::committed_step.lt(step)),
                    ),
            )
            .set(simulations::committed_step.eq(step))
            .execute(self)?;
            Ok(())
        }

        fn heartbeat_lease(&mut self, sim_key: i32, id: &SimulationId, token: i64) -> Result<()> {
            let updated = diesel::update(
                simulations::table
                    .find(sim_key)
                    .filter(simulations::status.eq(SimulationStatus::Running))
                    .filter(simulations::lease_token.eq(token)),
            )
            .set(simulations::heartbeat_at.eq(Self::db_now()))
            .execute(self)?;
            if updated == 1 {
                Ok(())
            } else {
                Err(self.ownership_error(sim_key, id))
            }
        }

        fn committed_batch(&mut self, sim_key: i32, token: i64) -> Result<Option<i64>> {
            Ok(simulations::table
                .find(sim_key)
                .filter(simulations::lease_token.eq(token))
                .select(simulations::batch_seq)
                .first(self)
                .optional()?)
        }

        fn release_lease(&mut self, sim_key: i32, token: i64) -> Result<()> {
            diesel::update(
                simulations::table
                    .find(sim_key)
                    .filter(simulations::lease_token.eq(token)),
            )
            .set(simulations::lease_token.eq(None::<i64>))
            .execute(self)?;
            Ok(())
        }

        fn clear_lease(&mut self, sim_key: i32) -> Result<()> {
            diesel::update(simulations::table.find(sim_key))
                .set(simulations::lease_token.eq(None::<i64>))
                .execute(self)?;
            Ok(())
        }

        fn ownership_error(&mut self, sim_key: i32, id: &SimulationId) -> Error {
            let found = simulations::table
                .find(sim_key)
                .select(simulations::status)
                .first::<SimulationStatus>(self)
                .optional();
            match found {
                Ok(None) => Error::SimulationDeleted { id: id.to_string() },
                Ok(Some(status)) if status != SimulationStatus::Running => {
                    Error::SimulationNotRunning { id: id.to_string(), status }
                }
                Ok(Some(_)) => Error::LeaseLost { id: id.to_string() },
                Err(e) => e.into(),
            }
        }
    }
}
