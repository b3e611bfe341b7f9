//! The run's row lock: every call that reads a simulation's status and then
//! changes the run (a status transition, a resume, a one-row write) takes it
//! first, so that two such calls on one run never interleave.
//!
//! On PostgreSQL it is `SELECT … FOR UPDATE` on the simulation's row: a
//! second caller waits until the first commits, then reads what the first
//! wrote. On SQLite the write transaction (`BEGIN IMMEDIATE`) already holds
//! the database's only write lock, so the plain read is the locked read.

#[cfg(feature = "postgres")]
use diesel::prelude::*;

#[cfg(feature = "sqlite")]
use super::prelude::*;
#[cfg(feature = "postgres")]
use crate::error::Error;
use crate::error::Result;
use crate::ids::SimulationId;
use crate::models::Simulation;
#[cfg(feature = "postgres")]
use crate::schema::simulations;

/// Reads a simulation and holds its row until the transaction ends.
pub(crate) trait RowLock {
    /// Inside a write transaction: the simulation as it is now, locked
    /// against every other status change or write until commit.
    fn lock_simulation(&mut self, id: &SimulationId) -> Result<Simulation>;
}

#[cfg(feature = "sqlite")]
impl RowLock for diesel::sqlite::SqliteConnection {
    fn lock_simulation(&mut self, id: &SimulationId) -> Result<Simulation> {
        self.find_simulation(id)
    }
}

#[cfg(feature = "postgres")]
impl RowLock for diesel::pg::PgConnection {
    fn lock_simulation(&mut self, id: &SimulationId) -> Result<Simulation> {
        simulations::table
            .filter(simulations::id.eq(id))
            .select(Simulation::as_select())
            .for_update()
            .first(self)
            .optional()?
            .ok_or_else(|| Error::not_found("simulation", id))
    }
}
