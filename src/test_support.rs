//! Isolated, migrated databases for tests (feature `test-support`).
//!
//! Each [`TestDatabase`] is a fresh database that no other test sees: a new
//! SQLite file in the temp directory, or a new PostgreSQL database created on
//! the server named by `SIMDB_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Both are removed on drop.
//! An unreachable PostgreSQL server is an error, never a skipped test.
//!
//! ```no_run
//! use simdb::test_support::TestDatabase;
//!
//! # fn main() -> simdb::Result<()> {
//! for test_db in [TestDatabase::sqlite()?, TestDatabase::postgres()?] {
//!     let svc = simdb::SimulationService::new(test_db.database().clone());
//!     assert!(svc.list_experiments()?.is_empty());
//! }
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::database::{Backend, Database};
use crate::error::{Error, Result};

/// Environment variable naming the PostgreSQL server tests create their
/// databases on (the URL's database is only used to run `CREATE DATABASE`).
pub const POSTGRES_URL_VAR: &str = "SIMDB_TEST_POSTGRES_URL";
/// The server used when [`POSTGRES_URL_VAR`] is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "simdb_test_{}_{}_{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos & 0xffff_ffff
    )
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    // Declared first so it drops (closing its pools) before the cleanup below.
    db: Option<Database>,
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    PgDatabase {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// A fresh database on `backend`.
    ///
    /// # Errors
    /// [`Error::Connection`] if the backend cannot be reached.
    pub fn new(backend: Backend) -> Result<TestDatabase> {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// A fresh SQLite file database (WAL) in the temp directory.
    ///
    /// # Errors
    /// [`Error::Connection`] if the file cannot be created.
    pub fn sqlite() -> Result<TestDatabase> {
        let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
        let url = format!("sqlite://{}", path.display());
        let db = Database::open(&url)?;
        Ok(TestDatabase {
            db: Some(db),
            url,
            cleanup: Cleanup::File(path),
        })
    }

    /// A fresh PostgreSQL database on the test server.
    ///
    /// # Errors
    /// [`Error::Connection`] if the server cannot be reached — the test
    /// fails rather than silently skipping PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Result<TestDatabase> {
        let (admin_url, name, url) = Self::create_postgres_database()?;
        let db = Database::open(&url)?;
        Ok(TestDatabase {
            db: Some(db),
            url,
            cleanup: Cleanup::PgDatabase { admin_url, name },
        })
    }

    /// Without the `postgres` feature there is no PostgreSQL backend.
    ///
    /// # Errors
    /// Always [`Error::InvalidUrl`].
    #[cfg(not(feature = "postgres"))]
    pub fn postgres() -> Result<TestDatabase> {
        Err(Error::InvalidUrl {
            url: DEFAULT_POSTGRES_URL.into(),
            reason: "simdb was built without the `postgres` feature".into(),
        })
    }

    /// Creates an empty PostgreSQL database (not migrated) and returns the
    /// admin URL, its name and its URL.
    #[cfg(feature = "postgres")]
    fn create_postgres_database() -> Result<(String, String, String)> {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        let admin_url =
            std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
        let name = unique_name();
        let mut admin = PgConnection::establish(&admin_url).map_err(|e| Error::Connection {
            url: crate::database::redact(&admin_url),
            message: format!(
                "{e} (set {POSTGRES_URL_VAR} to a server where tests may create databases)"
            ),
        })?;
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin)?;
        let url = replace_database(&admin_url, &name);
        Ok((admin_url, name, url))
    }

    /// An empty, unmigrated database URL of the same backend, dropped with
    /// this guard: for tests of first-open behaviour (concurrent migration).
    ///
    /// # Errors
    /// [`Error::Connection`] if the backend cannot be reached.
    pub fn empty(backend: Backend) -> Result<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
                Ok(TestDatabase {
                    db: None,
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::File(path),
                })
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let (admin_url, name, url) = Self::create_postgres_database()?;
                Ok(TestDatabase {
                    db: None,
                    url,
                    cleanup: Cleanup::PgDatabase { admin_url, name },
                })
            }
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => Self::postgres(),
        }
    }

    /// The migrated database.
    ///
    /// # Panics
    /// Never for databases from [`TestDatabase::sqlite`] /
    /// [`TestDatabase::postgres`]; for [`TestDatabase::empty`] open
    /// [`TestDatabase::url`] yourself.
    #[allow(clippy::expect_used)]
    pub fn database(&self) -> &Database {
        self.db
            .as_ref()
            .expect("TestDatabase::empty() has no open Database; use url()")
    }

    /// Its URL, for opening it again (another process, a second handle).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The plan the database would run `sql` by, one line per node:
    /// SQLite's `EXPLAIN QUERY PLAN` details, PostgreSQL's `EXPLAIN` text.
    /// For tests that pin a statement to an index.
    ///
    /// # Errors
    /// [`Error::Database`] if the statement cannot be planned.
    pub fn plan(&self, sql: &str) -> Result<Vec<String>> {
        use diesel::RunQueryDsl;
        #[cfg(feature = "postgres")]
        #[derive(diesel::QueryableByName)]
        struct PgLine {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
            line: String,
        }
        #[cfg(feature = "sqlite")]
        #[derive(diesel::QueryableByName)]
        struct SqliteLine {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        Ok(match self.database().connection()? {
            #[cfg(feature = "sqlite")]
            crate::DbConnection::Sqlite(mut c) => {
                diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                    .load::<SqliteLine>(&mut *c)?
                    .into_iter()
                    .map(|l| l.detail)
                    .collect()
            }
            #[cfg(feature = "postgres")]
            crate::DbConnection::Postgres(mut c) => diesel::sql_query(format!("EXPLAIN {sql}"))
                .load::<PgLine>(&mut *c)?
                .into_iter()
                .map(|l| l.line)
                .collect(),
        })
    }

    /// Its backend.
    pub fn backend(&self) -> Backend {
        match self.cleanup {
            Cleanup::File(_) => Backend::Sqlite,
            Cleanup::PgDatabase { .. } => Backend::Postgres,
        }
    }
}

/// `scheme://authority/olddb?query` -> `scheme://authority/newdb?query`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.db = None;
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            #[cfg(feature = "postgres")]
            Cleanup::PgDatabase { admin_url, name } => {
                use diesel::{Connection, PgConnection, RunQueryDsl};
                match PgConnection::establish(admin_url) {
                    Ok(mut admin) => {
                        let dropped = diesel::sql_query(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut admin);
                        if let Err(e) = dropped {
                            tracing::warn!(database = %name, error = %e, "could not drop test database");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(database = %name, error = %e, "could not drop test database")
                    }
                }
            }
            #[cfg(not(feature = "postgres"))]
            Cleanup::PgDatabase { .. } => {}
        }
    }
}

/// Makes the checkpoint thread of `db` (a SQLite file opened for writing)
/// have a recorder's writer finish its checkpoints, so that the WAL starts
/// over, once the WAL holds more than `frames` pages instead of 16,384
/// (64 MiB): a test sees the WAL kept within a bound without writing many
/// times that default. Does nothing for any other database.
pub fn restart_wal_after(db: &Database, frames: i32) {
    db.restart_wal_after(frames);
}

/// WAL files whose syncs are held ([`hold_wal_syncs`]).
static HELD_SYNCS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
static SYNCS_RELEASED: std::sync::Condvar = std::sync::Condvar::new();

/// Holds the WAL syncs of the recorders of `db` (a SQLite file under
/// [`Durability::PowerLoss`](crate::Durability::PowerLoss), whose
/// recorders commit with the WAL unsynced and sync it apart) until the
/// returned guard is dropped: their commits go on, their watermark is not
/// published. Does nothing for any other database.
pub fn hold_wal_syncs(db: &Database) -> WalSyncHold {
    let wal = db.wal_synced_apart();
    if let Some(wal) = &wal {
        HELD_SYNCS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wal.clone());
    }
    WalSyncHold { wal }
}

/// Releases the syncs [`hold_wal_syncs`] held when dropped.
#[derive(Debug)]
pub struct WalSyncHold {
    wal: Option<PathBuf>,
}

impl WalSyncHold {
    /// True if the database syncs its recorders' WAL apart (and this holds it).
    pub fn holds(&self) -> bool {
        self.wal.is_some()
    }
}

impl Drop for WalSyncHold {
    fn drop(&mut self) {
        if let Some(wal) = self.wal.take() {
            let mut held = HELD_SYNCS.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = held.iter().position(|p| *p == wal) {
                held.remove(i);
            }
            SYNCS_RELEASED.notify_all();
        }
    }
}

/// Waits while the syncs of the WAL at `path` are held.
pub(crate) fn wal_sync_gate(path: &std::path::Path) {
    let mut held = HELD_SYNCS.lock().unwrap_or_else(|p| p.into_inner());
    while held.iter().any(|p| p == path) {
        held = SYNCS_RELEASED.wait(held).unwrap_or_else(|p| p.into_inner());
    }
}
