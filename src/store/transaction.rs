//! Write transactions, which differ per backend.

#[cfg(feature = "sqlite")]
use diesel::connection::{TransactionManager, TransactionManagerStatus};
use diesel::Connection;

use crate::error::Result;

/// Transactions that nest as savepoints.
pub(crate) trait Transactional: Sized {
    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE` on SQLite).
    fn write<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T>;
}

/// True inside a transaction, where a new one must be a savepoint.
#[cfg(feature = "sqlite")]
fn in_transaction<C: Connection>(c: &mut C) -> bool {
    matches!(
        C::TransactionManager::transaction_manager_status_mut(c),
        TransactionManagerStatus::Valid(v) if v.transaction_depth().is_some()
    )
}

#[cfg(feature = "sqlite")]
impl Transactional for diesel::sqlite::SqliteConnection {
    fn write<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if in_transaction(self) {
            self.transaction(f)
        } else {
            // Takes the write lock up front: no upgrade deadlock with readers.
            self.immediate_transaction(f)
        }
    }
}

#[cfg(feature = "postgres")]
impl Transactional for diesel::pg::PgConnection {
    fn write<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.transaction(f)
    }
}

/// Runs `f` with the connection's own WAL checkpoints deferred (SQLite:
/// `wal_autocheckpoint = 0` for its commits, then SQLite's default again,
/// whatever `f` returned), for a writer whose checkpoints a thread of the
/// database takes over (`database/checkpointer.rs`); with `unsynced`, its
/// commits also leave the WAL unsynced (`synchronous = NORMAL`, then
/// `FULL` again) for a writer that has it synced apart
/// (`recorder/syncer.rs`); with `finish_checkpoint`, it first checkpoints
/// on its own connection what the checkpoint thread left (`PASSIVE`), so
/// that the WAL starts over. PostgreSQL has neither.
pub(crate) trait DeferCheckpoints: Sized {
    fn deferring_checkpoints<T>(
        &mut self,
        unsynced: bool,
        finish_checkpoint: bool,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T>;
}

#[cfg(feature = "sqlite")]
impl DeferCheckpoints for diesel::sqlite::SqliteConnection {
    fn deferring_checkpoints<T>(
        &mut self,
        unsynced: bool,
        finish_checkpoint: bool,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        use diesel::connection::SimpleConnection;
        if finish_checkpoint {
            // The frames committed since the checkpoint thread's last
            // checkpoint; copied all, the WAL starts over at this batch.
            // Busy or failing, the thread's next round asks again.
            if let Err(e) = self.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                tracing::debug!(error = %e, "simdb writer's checkpoint deferred");
            }
        }
        let (set, reset) = if unsynced {
            (
                "PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL;",
                "PRAGMA wal_autocheckpoint = 1000; PRAGMA synchronous = FULL;",
            )
        } else {
            (
                "PRAGMA wal_autocheckpoint = 0;",
                "PRAGMA wal_autocheckpoint = 1000;",
            )
        };
        if let Err(e) = self.batch_execute(set) {
            // Whatever part of it took, undone.
            let _ = self.batch_execute(reset);
            return Err(e.into());
        }
        let result = f(self);
        let restored = self.batch_execute(reset);
        let out = result?;
        restored?;
        Ok(out)
    }
}

#[cfg(feature = "postgres")]
impl DeferCheckpoints for diesel::pg::PgConnection {
    fn deferring_checkpoints<T>(
        &mut self,
        _unsynced: bool,
        _finish_checkpoint: bool,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        f(self)
    }
}
