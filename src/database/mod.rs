//! Opening a database: connection pools over one SQLite file (or memory) or
//! one PostgreSQL database, migrated on first connect.

mod backup;
#[cfg(feature = "sqlite")]
mod checkpointer;
mod connection;
#[cfg(feature = "postgres")]
mod conninfo;
mod fold;
mod harness;
#[cfg(feature = "sqlite")]
mod ledger;
mod migrate;
mod open;
mod options;
#[cfg(feature = "postgres")]
mod pg_ledger;
#[cfg(feature = "sqlite")]
mod prefix;
#[cfg(feature = "postgres")]
mod privileges;
mod replicas;
#[cfg(feature = "sqlite")]
mod sqlite;
mod upgrade_guard;
mod url;

use std::path::PathBuf;
use std::sync::Arc;

use diesel::r2d2::{ConnectionManager, Pool};

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::sqlite::SqliteConnection;

pub(crate) use connection::note_connection_error;
pub use connection::DbConnection;
pub use options::{DatabaseBuilder, Durability};
pub use replicas::{ReplicaFallback, ReplicaStatus};
pub(crate) use url::check_url_invariants;
#[cfg(all(feature = "test-support", feature = "postgres"))]
pub(crate) use url::redact;

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
    /// Opened with `read_only(true)`.
    read_only: bool,
    /// PostgreSQL: the schema of simdb's tables.
    schema: Option<String>,
    /// PostgreSQL: hot standbys the reading view reads from.
    replicas: replicas::Replicas,
    /// Holds an in-memory database open.
    #[cfg(feature = "sqlite")]
    _keeper: Option<sqlite::MemoryKeeper>,
    /// A SQLite file's WAL checkpoints, off the writer's commits.
    #[cfg(feature = "sqlite")]
    checkpointer: Option<checkpointer::Checkpointer>,
}

/// A simdb database: connection pools for one SQLite file (or memory) or one
/// PostgreSQL database, migrated to this library's schema.
///
/// Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Database {
    inner: Arc<Inner>,
    /// This handle's reads come from the read replicas
    /// ([`Database::for_reading`]).
    replica_reads: bool,
}

impl Database {
    /// Opens (creating if needed) and migrates a database.
    ///
    /// `url` is `sqlite://PATH`, `sqlite:PATH`, a bare file path,
    /// `sqlite::memory:` (one private in-memory database, shared by the clones
    /// of this `Database` and gone with the last of them), or
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
        Database::builder(url).open()
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

    /// PostgreSQL: the schema that holds simdb's tables (see
    /// [`DatabaseBuilder::schema`]); `None` on SQLite.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// True if opened with [`DatabaseBuilder::read_only`].
    pub fn read_only(&self) -> bool {
        self.inner.read_only
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
    ///
    /// On the [reading view](Database::for_reading) of a database opened
    /// with [read replicas](DatabaseBuilder::read_replica), a connection to
    /// a replica (read-only), or as [`ReplicaFallback`] says when none
    /// answers: then also [`Error::ReplicaUnavailable`](crate::Error::ReplicaUnavailable).
    pub fn connection(&self) -> Result<DbConnection> {
        if self.replica_reads {
            if let Some(conn) = self.inner.replicas.connection()? {
                return Ok(conn);
            }
        }
        match &self.inner.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { reader, .. } => reader
                .get()
                .map(DbConnection::Sqlite)
                .map_err(|e| self.pool_error(e)),
            #[cfg(feature = "postgres")]
            Pools::Postgres(pool) => self.live_postgres(pool).map(DbConnection::Postgres),
        }
    }

    /// This database with its reads from its read replicas
    /// ([`DatabaseBuilder::read_replica`]): [`Database::connection`], and so
    /// every read of a [`SimulationService`](crate::SimulationService) made
    /// from it, goes to a replica; writes still go to the primary. Reads
    /// there may be behind the primary (by [`Database::replica_status`]),
    /// never inconsistent: rows below a run's commit watermark are complete
    /// wherever the watermark is seen. [`SimulationService::analytics`](crate::SimulationService::analytics)
    /// always reads through this view. Without replicas, the same database.
    pub fn for_reading(&self) -> Database {
        Database {
            inner: Arc::clone(&self.inner),
            replica_reads: true,
        }
    }

    /// True if reads through this handle go to read replicas.
    pub fn reads_from_replicas(&self) -> bool {
        self.replica_reads && !self.inner.replicas.is_empty()
    }

    /// Each read replica's lag behind the primary (empty without replicas).
    /// A replica that cannot be reached, or is not a standby, says why in
    /// [`ReplicaStatus::error`].
    pub fn replica_status(&self) -> Vec<ReplicaStatus> {
        if self.inner.replicas.is_empty() {
            return Vec::new();
        }
        let primary_lsn = self.primary_lsn();
        self.inner
            .replicas
            .list
            .iter()
            .map(|r| r.status(primary_lsn.as_deref()))
            .collect()
    }

    /// The primary's current write-ahead log position, as text.
    fn primary_lsn(&self) -> Option<String> {
        #[cfg(feature = "postgres")]
        {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Lsn {
                #[diesel(sql_type = diesel::sql_types::Text)]
                lsn: String,
            }
            if let Ok(DbConnection::Postgres(mut conn)) = self.writer() {
                return diesel::sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
                    .get_result::<Lsn>(&mut *conn)
                    .ok()
                    .map(|l| l.lsn);
            }
        }
        None
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
            Pools::Postgres(pool) => self.live_postgres(pool).map(DbConnection::Postgres),
        }
    }

    /// A connection of the PostgreSQL pool, checked first if a statement on
    /// this thread failed as on a dead connection (`connection.rs::live`).
    #[cfg(feature = "postgres")]
    fn live_postgres(
        &self,
        pool: &Pool<ConnectionManager<PgConnection>>,
    ) -> Result<diesel::r2d2::PooledConnection<ConnectionManager<PgConnection>>> {
        let get = || pool.get().map_err(|e| self.pool_error(e));
        connection::live(get()?, get, pool.max_size() + 1)
    }

    /// True if a thread of this database checkpoints its WAL (a SQLite file
    /// opened for writing), so that a recorder's commits need not.
    pub(crate) fn checkpoints_in_background(&self) -> bool {
        #[cfg(feature = "sqlite")]
        if self.inner.checkpointer.is_some() {
            return true;
        }
        false
    }

    /// The WAL file of a SQLite file opened for writing with
    /// [`Durability::PowerLoss`] (the database file's resolved path plus
    /// `-wal`, where SQLite keeps it): a recorder commits its batches
    /// without syncing it and has it synced apart
    /// (`recorder/syncer.rs`). `None` elsewhere.
    pub(crate) fn wal_synced_apart(&self) -> Option<PathBuf> {
        #[cfg(feature = "sqlite")]
        if let (Some(c), Some(path)) = (&self.inner.checkpointer, &self.inner.path) {
            if c.durability == Durability::PowerLoss {
                let mut wal = std::fs::canonicalize(path).ok()?.into_os_string();
                wal.push("-wal");
                return Some(PathBuf::from(wal));
            }
        }
        None
    }

    /// A recorder committed a batch of about `bytes`: the checkpoint thread
    /// ([`Database::checkpoints_in_background`]) copies the WAL back once
    /// such commits add up to what SQLite itself would checkpoint at.
    #[cfg(feature = "sqlite")]
    pub(crate) fn committed(&self, bytes: u64) {
        if let Some(c) = &self.inner.checkpointer {
            c.wrote(bytes);
        }
    }

    /// Without SQLite there is no checkpoint thread.
    #[cfg(not(feature = "sqlite"))]
    pub(crate) fn committed(&self, _bytes: u64) {}

    /// True (once) if the database's checkpoint thread could not copy all
    /// of a long WAL back beside a writer that kept committing: the writer
    /// finishes that checkpoint before its next batch, so that SQLite
    /// starts the WAL over (`checkpointer.rs`).
    #[cfg(feature = "sqlite")]
    pub(crate) fn take_checkpoint_to_finish(&self) -> bool {
        self.inner
            .checkpointer
            .as_ref()
            .is_some_and(|c| c.take_unfinished())
    }

    /// Without SQLite there is no checkpoint thread.
    #[cfg(not(feature = "sqlite"))]
    pub(crate) fn take_checkpoint_to_finish(&self) -> bool {
        false
    }

    /// Sets the WAL frames past which a recorder's writer finishes the
    /// checkpoint thread's checkpoints (`checkpointer.rs`); no effect
    /// without that thread.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn restart_wal_after(&self, frames: i32) {
        #[cfg(feature = "sqlite")]
        if let Some(c) = &self.inner.checkpointer {
            c.restart_after(frames);
        }
        let _ = frames;
    }

    fn pool_error(&self, e: diesel::r2d2::PoolError) -> Error {
        Error::Connection {
            url: self.inner.url.clone(),
            message: e.to_string(),
        }
    }
}
