//! Typed options for opening a database: [`Database::builder`].

use std::time::Duration;

use super::Database;
use crate::error::Result;

/// What a committed write — an acknowledged [`crate::Recorder::flush`] —
/// survives.
///
/// | | SQLite (WAL) | PostgreSQL |
/// |---|---|---|
/// | `ProcessCrash` | `synchronous = NORMAL`: a crash of the recording process; a power cut may lose the last commits | `synchronous_commit = off`: a crash of the recording process; a crash of the server or a power cut may lose the last ~0.6 s of commits |
/// | `PowerLoss` (default) | every commit is on disk before it is acknowledged: `synchronous = FULL`, except a recorder's batches, committed with the WAL unsynced and acknowledged (watermark, `flush`, `close`) only once a thread of the recorder has fsynced the WAL | `synchronous_commit = on`: every commit is flushed to the server's disk (with the server's `fsync = on`) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Survives a crash of the recording process.
    ProcessCrash,
    /// Survives a power cut too.
    #[default]
    PowerLoss,
}

/// Options for [`Database::builder`]; [`Database::open`] is
/// `Database::builder(url).open()`.
///
/// ```
/// use std::time::Duration;
/// # fn main() -> simdb::Result<()> {
/// let db = simdb::Database::builder("sqlite::memory:")
///     .durability(simdb::Durability::ProcessCrash)
///     .connect_timeout(Duration::from_secs(5))
///     .open()?;
/// # let _ = db;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct DatabaseBuilder {
    pub(super) url: String,
    pub(super) durability: Durability,
    pub(super) connect_timeout: Duration,
    pub(super) busy_timeout: Duration,
    pub(super) create_if_missing: bool,
    pub(super) read_only: bool,
    pub(super) pool_size: u32,
    pub(super) application_name: Option<String>,
    pub(super) schema: String,
    pub(super) read_replicas: Vec<String>,
    pub(super) replica_fallback: super::ReplicaFallback,
}

impl Database {
    /// Options for opening `url` (see [`Database::open`] for its forms).
    pub fn builder(url: impl Into<String>) -> DatabaseBuilder {
        DatabaseBuilder {
            url: url.into(),
            durability: Durability::default(),
            connect_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(30),
            create_if_missing: true,
            read_only: false,
            pool_size: 8,
            application_name: None,
            schema: "simdb".into(),
            read_replicas: Vec::new(),
            replica_fallback: super::ReplicaFallback::default(),
        }
    }
}

impl DatabaseBuilder {
    /// What an acknowledged write survives. Default [`Durability::PowerLoss`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long connecting to PostgreSQL may take, including a server that
    /// accepts the connection and never answers. Default 10 s; whole
    /// seconds, at least 1 (libpq's `connect_timeout`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a SQLite connection waits for another's lock before
    /// reporting the database busy. Default 30 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Whether a missing SQLite file is created (default true; never for a
    /// [read-only](DatabaseBuilder::read_only) open). Otherwise opening a
    /// path that does not exist is [`Error::Connection`](crate::Error::Connection)
    /// naming the path, and nothing is created.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Opens for reading only (default false): never migrates, never
    /// switches the journal mode, and checks that the schema is simdb's at
    /// this library's version ([`Error::NoSchema`](crate::Error::NoSchema),
    /// [`Error::SchemaTooOld`](crate::Error::SchemaTooOld), [`Error::SchemaTooNew`](crate::Error::SchemaTooNew)).
    /// Connections refuse writes (`PRAGMA query_only` on SQLite,
    /// `default_transaction_read_only` on PostgreSQL), so a SELECT-only
    /// PostgreSQL role or a read-only SQLite file will do. A SQLite file in
    /// WAL mode in a directory this process cannot write, with no writer
    /// running, is opened immutable (SQLite cannot create its `-shm` file
    /// there): it is read as it is when opened.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Connections pooled for reading (PostgreSQL: all connections; SQLite
    /// files: the readers beside the one writer). Default 8 on PostgreSQL,
    /// at most 4 readers on SQLite; at least 1.
    pub fn pool_size(mut self, connections: u32) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// The name PostgreSQL shows for simdb's connections
    /// (`pg_stat_activity.application_name`), unless the URL sets one.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// The PostgreSQL schema that holds simdb's tables, sequences and
    /// migration bookkeeping (default `simdb`), beside the host
    /// application's own tables: a lower-case identifier. simdb's
    /// connections search it first, then `public`. On SQLite, whose file
    /// has one namespace, it does not apply: simdb's tables and indexes are
    /// named `simdb_<name>` there (as on PostgreSQL, inside the schema).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// PostgreSQL: a hot standby of this database (a streaming replica,
    /// `postgres://…`) that the [reading view](crate::Database::for_reading)
    /// reads from; repeat for several (reads take them in turn). Connections
    /// to it are read-only and use this builder's timeouts, schema and
    /// application name; it is not checked at open, so a replica that is
    /// down then is used once it answers. See
    /// [`DatabaseBuilder::replica_fallback`] for reads while none answers.
    pub fn read_replica(mut self, url: impl Into<String>) -> Self {
        self.read_replicas.push(url.into());
        self
    }

    /// What reads do while no read replica answers: go to the primary
    /// (the default) or fail with [`Error::ReplicaUnavailable`](crate::Error::ReplicaUnavailable).
    pub fn replica_fallback(mut self, fallback: super::ReplicaFallback) -> Self {
        self.replica_fallback = fallback;
        self
    }

    /// Opens (creating if needed) and migrates the database.
    ///
    /// # Errors
    /// As for [`Database::open`].
    pub fn open(self) -> Result<Database> {
        super::open::open(self)
    }

    /// The connect timeout in whole seconds, as libpq takes it.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) fn connect_timeout_secs(&self) -> u64 {
        self.connect_timeout.as_secs().max(1)
    }

    /// The busy timeout in milliseconds, as SQLite takes it.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(super) fn busy_timeout_ms(&self) -> u32 {
        u32::try_from(self.busy_timeout.as_millis()).unwrap_or(u32::MAX)
    }
}
