//! SQLite connection settings: pragmas applied to every connection, WAL, and
//! the in-memory database that outlives any one connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::CustomizeConnection;
use diesel::sqlite::SqliteConnection;

use super::options::Durability;

/// Applies simdb's settings to every SQLite connection a pool opens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqliteSettings {
    pub(crate) busy_timeout_ms: u32,
    pub(crate) durability: Durability,
    pub(crate) read_only: bool,
    /// The database's one writer connection: its statement journals (the
    /// undo of one multi-row INSERT inside a transaction, spilled to a
    /// file in the temporary directory past 64 KiB) stay in memory, where
    /// the engine bench records a third more steps per second than with
    /// the files created and removed per statement. Readers keep files
    /// for their sorts. Its page cache is 8 MiB, not 16 (a batch's
    /// appends need a few hundred pages): that pays for the journals in
    /// a 10,000-agent run's peak RSS (99.7-105.0 MiB with 16, 87.8-90.4
    /// with 8), at the same speed.
    pub(crate) writer: bool,
}

pub(crate) fn configure_sqlite(
    conn: &mut SqliteConnection,
    settings: SqliteSettings,
) -> diesel::QueryResult<()> {
    let synchronous = match settings.durability {
        Durability::ProcessCrash => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = {synchronous};
         PRAGMA cache_size = {};
         PRAGMA query_only = {};
         PRAGMA temp_store = {};",
        settings.busy_timeout_ms,
        if settings.writer { -8192 } else { -16384 },
        if settings.read_only { "ON" } else { "OFF" },
        if settings.writer { "MEMORY" } else { "DEFAULT" }
    ))
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        configure_sqlite(conn, *self).map_err(diesel::r2d2::Error::QueryError)
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

/// A private in-memory database that every connection of one [`super::Database`]
/// shares (a named shared-cache memory database), held open by a connection
/// of its own: when the pool replaces a connection (after a panic left it
/// broken) the replacement sees the same data, never an empty database.
pub(crate) struct MemoryKeeper {
    _conn: Mutex<SqliteConnection>,
}

impl std::fmt::Debug for MemoryKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryKeeper")
    }
}

impl MemoryKeeper {
    pub(crate) fn new(conn: SqliteConnection) -> Self {
        MemoryKeeper {
            _conn: Mutex::new(conn),
        }
    }

    /// A URI naming a fresh in-memory database, unique in this process.
    pub(crate) fn fresh_uri() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!(
            "file:simdb-memory-{}-{n}?mode=memory&cache=shared",
            std::process::id()
        )
    }
}
