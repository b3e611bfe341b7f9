//! SQLite connection settings: pragmas applied to every connection, and WAL.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::CustomizeConnection;
use diesel::sqlite::SqliteConnection;

/// Milliseconds a SQLite connection waits for a lock before reporting busy.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 30_000;

/// Applies simdb's settings to every SQLite connection a pool opens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqliteSettings;

pub(crate) fn configure_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;"
    ))
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        configure_sqlite(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

pub(crate) fn enable_wal(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    // Switching to WAL needs a moment of exclusive access; concurrent first
    // opens can see SQLITE_BUSY here despite busy_timeout, so retry briefly.
    let mut attempt = 0;
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL;") {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 50 => {
                tracing::debug!(error = %e, "retrying PRAGMA journal_mode = WAL");
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}
