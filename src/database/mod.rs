//! Opening a database: connection pools over one SQLite file (or memory) or
//! one PostgreSQL database, migrated on first connect.

mod connection;
mod migrate;
#[cfg(feature = "sqlite")]
mod sqlite;
mod url;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool};
#[cfg(feature = "sqlite")]
use diesel::Connection;

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::sqlite::SqliteConnection;

pub use connection::DbConnection;
#[cfg(feature = "postgres")]
use migrate::migrate_postgres;
#[cfg(feature = "sqlite")]
use migrate::migrate_sqlite;
#[cfg(feature = "sqlite")]
use sqlite::{configure_sqlite, enable_wal, SqliteSettings};
pub(crate) use url::{check_url_invariants, redact};
use url::{parse_url, scrub, Target};

use crate::error::{Error, Result};

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, a file or in memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

#[derive(Debug, Clone)]
enum Pools {
    #[cfg(feature = "sqlite")]
    Sqlite {
        writer: Pool<ConnectionManager<SqliteConnection>>,
        reader: Pool<ConnectionManager<SqliteConnection>>,
    },
    #[cfg(feature = "postgres")]
    Postgres(Pool<ConnectionManager<PgConnection>>),
}

#[derive(Debug)]
struct Inner {
    pools: Pools,
    /// The URL as given, password replaced by `***`.
    url: String,
    /// Where a SQLite database lives (None for memory and PostgreSQL).
    path: Option<PathBuf>,
}

/// A simdb database: connection pools for one SQLite file (or memory) or one
/// PostgreSQL database, migrated to this library's schema.
///
/// Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

impl Database {
    /// Opens (creating if needed) and migrates a database.
    ///
    /// `url` is `sqlite://PATH`, `sqlite:PATH`, a bare file path,
    /// `sqlite::memory:` (one private in-memory database), or
    /// `postgres://user[:password]@host[:port]/dbname`. Pending embedded
    /// migrations are applied under a lock, so concurrent first opens of the
    /// same database apply them exactly once.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`](crate::Error::InvalidUrl) for a URL of no known form, [`Error::Connection`](crate::Error::Connection)
    /// if the database cannot be reached or opened, [`Error::SchemaTooNew`](crate::Error::SchemaTooNew) if
    /// a newer simdb migrated it (it is then left untouched),
    /// [`Error::Migration`](crate::Error::Migration) if a migration fails.
    pub fn open(url: &str) -> Result<Database> {
        let target = parse_url(url)?;
        let redacted = redact(url);
        let connection_error = |message: String| Error::Connection {
            url: redacted.clone(),
            message: scrub(&message, url),
        };
        match target {
            #[cfg(feature = "sqlite")]
            Target::SqliteMemory => {
                // Every connection to ":memory:" is its own database, so the
                // pool holds exactly one, forever.
                let pool = Pool::builder()
                    .max_size(1)
                    .min_idle(Some(1))
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .test_on_check_out(false)
                    .connection_customizer(Box::new(SqliteSettings))
                    .build(ConnectionManager::<SqliteConnection>::new(":memory:"))
                    .map_err(|e| connection_error(e.to_string()))?;
                {
                    let mut conn = pool.get().map_err(|e| connection_error(e.to_string()))?;
                    migrate_sqlite(&mut conn)?;
                }
                Ok(Database::from_parts(
                    Pools::Sqlite {
                        writer: pool.clone(),
                        reader: pool,
                    },
                    redacted,
                    None,
                ))
            }
            #[cfg(feature = "sqlite")]
            Target::SqliteFile(path) => {
                let path_str = path
                    .to_str()
                    .ok_or_else(|| connection_error("path is not valid UTF-8".into()))?
                    .to_string();
                if path.is_dir() {
                    return Err(connection_error("path is a directory".into()));
                }
                {
                    let mut conn = SqliteConnection::establish(&path_str)
                        .map_err(|e| connection_error(e.to_string()))?;
                    configure_sqlite(&mut conn).map_err(|e| connection_error(e.to_string()))?;
                    enable_wal(&mut conn).map_err(|e| connection_error(e.to_string()))?;
                    migrate_sqlite(&mut conn)?;
                }
                let manager = || ConnectionManager::<SqliteConnection>::new(path_str.clone());
                // One writer connection: SQLite serializes writers anyway,
                // and queueing in the pool is cheaper than busy-waiting.
                let writer = Pool::builder()
                    .max_size(1)
                    .min_idle(Some(0))
                    .test_on_check_out(false)
                    .connection_timeout(Duration::from_secs(60))
                    .connection_customizer(Box::new(SqliteSettings))
                    .build_unchecked(manager());
                let reader = Pool::builder()
                    .max_size(4)
                    .min_idle(Some(0))
                    .test_on_check_out(false)
                    .connection_customizer(Box::new(SqliteSettings))
                    .build_unchecked(manager());
                Ok(Database::from_parts(
                    Pools::Sqlite { writer, reader },
                    redacted,
                    Some(path),
                ))
            }
            #[cfg(feature = "postgres")]
            Target::Postgres(url) => {
                {
                    let mut conn = PgConnection::establish(&url)
                        .map_err(|e| connection_error(e.to_string()))?;
                    migrate_postgres(&mut conn)?;
                }
                let pool = Pool::builder()
                    .max_size(8)
                    .min_idle(Some(0))
                    .test_on_check_out(false)
                    .connection_timeout(Duration::from_secs(30))
                    .build_unchecked(ConnectionManager::<PgConnection>::new(url));
                Ok(Database::from_parts(Pools::Postgres(pool), redacted, None))
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::InvalidUrl {
                url: redacted,
                reason: "this build of simdb lacks the feature for this backend".into(),
            }),
        }
    }

    fn from_parts(pools: Pools, url: String, path: Option<PathBuf>) -> Database {
        Database {
            inner: Arc::new(Inner { pools, url, path }),
        }
    }

    /// The backend this database runs on.
    pub fn backend(&self) -> Backend {
        match &self.inner.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { .. } => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL it was opened with, password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The file of a SQLite database (None in memory or on PostgreSQL).
    pub fn path(&self) -> Option<&std::path::Path> {
        self.inner.path.as_deref()
    }

    /// A pooled connection for your own queries (see [`crate::with_connection!`]).
    /// On a SQLite file this is a reader connection: writes through it work
    /// but wait for simdb's single writer.
    ///
    /// # Errors
    /// [`Error::Connection`](crate::Error::Connection) if no connection could be had in time.
    pub fn connection(&self) -> Result<DbConnection> {
        match &self.inner.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { reader, .. } => reader
                .get()
                .map(DbConnection::Sqlite)
                .map_err(|e| self.pool_error(e)),
            #[cfg(feature = "postgres")]
            Pools::Postgres(pool) => pool
                .get()
                .map(DbConnection::Postgres)
                .map_err(|e| self.pool_error(e)),
        }
    }

    /// The writer connection (the only one on SQLite).
    ///
    /// # Errors
    /// [`Error::Connection`](crate::Error::Connection) if no connection could be had in time.
    pub fn writer(&self) -> Result<DbConnection> {
        match &self.inner.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { writer, .. } => writer
                .get()
                .map(DbConnection::Sqlite)
                .map_err(|e| self.pool_error(e)),
            #[cfg(feature = "postgres")]
            Pools::Postgres(pool) => pool
                .get()
                .map(DbConnection::Postgres)
                .map_err(|e| self.pool_error(e)),
        }
    }

    fn pool_error(&self, e: diesel::r2d2::PoolError) -> Error {
        Error::Connection {
            url: self.inner.url.clone(),
            message: e.to_string(),
        }
    }
}
