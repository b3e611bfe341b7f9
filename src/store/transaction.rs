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
