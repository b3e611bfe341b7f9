//! The one error type of simdb.

use crate::models::SimulationStatus;

/// Everything that can go wrong in simdb.
///
/// Variants carry what a caller needs to react: the id that was not found,
/// the transition that was refused, the field that was invalid. Messages never
/// contain a database password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A row the caller named does not exist.
    #[error("{entity} `{id}` not found")]
    NotFound {
        /// What kind of row: "experiment", "simulation", "agent", ...
        entity: &'static str,
        /// The id that was looked up.
        id: String,
    },

    /// A row with this identity already exists; nothing was written.
    #[error("{entity} `{id}` already exists")]
    Duplicate {
        /// What kind of row: "experiment", "simulation", "agent state", ...
        entity: &'static str,
        /// The identity that collided.
        id: String,
    },

    /// The simulation's status does not allow this transition.
    #[error("simulation `{id}` cannot go from {from} to {to}")]
    InvalidTransition {
        /// The simulation's public id.
        id: String,
        /// Its current status.
        from: SimulationStatus,
        /// The status that was asked for.
        to: SimulationStatus,
    },

    /// An argument was rejected before anything was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which argument or field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The database was migrated by a newer simdb; it was left untouched.
    #[error(
        "database schema is newer than this simdb: it has migration {database_version}, \
         this library knows up to {library_version}; upgrade simdb"
    )]
    SchemaTooNew {
        /// The newest migration version recorded in the database.
        database_version: String,
        /// The newest migration version embedded in this library.
        library_version: String,
    },

    /// A read-only open found an older simdb schema; `simdb migrate` (or a
    /// normal open) upgrades it.
    #[error("{url} has an older simdb schema (missing migration {missing_version}); run `simdb migrate`")]
    SchemaTooOld {
        /// The first embedded migration the database lacks.
        missing_version: String,
        /// The URL, with any password replaced by `***`.
        url: String,
    },

    /// A read-only open found no simdb schema in the database.
    #[error("{url} holds no simdb schema (nothing was recorded into it)")]
    NoSchema {
        /// The URL, with any password replaced by `***`.
        url: String,
    },

    /// The PostgreSQL role lacks a privilege this open needs; nothing was
    /// changed. The README's PostgreSQL section gives each role's grants.
    #[error("role `{role}` lacks {privilege}, needed for {needed_for}")]
    Privilege {
        /// The role simdb connected as.
        role: String,
        /// The missing privilege, e.g. `USAGE on schema simdb` or
        /// `INSERT on simdb.simdb_agent_state_chunks`.
        privilege: String,
        /// What the open was going to do with it.
        needed_for: String,
    },

    /// simdb's schema name is taken by a schema simdb did not create (it
    /// holds objects but no simdb ledger); nothing was changed.
    #[error(
        "schema `{schema}` already exists and is not simdb's (it holds objects but no simdb \
         migration ledger); give simdb a schema of its own with Database::builder(url).schema(\"...\")"
    )]
    SchemaInUse {
        /// The schema's name.
        schema: String,
    },

    /// The database URL is not one simdb understands (or none was given:
    /// `url` is then empty and the message says how to give one).
    #[error("{}", invalid_url_message(url, reason))]
    InvalidUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No read replica answered, and reads were configured not to fall
    /// back to the primary ([`ReplicaFallback::Fail`](crate::ReplicaFallback::Fail)).
    #[error("no read replica answers (last tried {url}: {message})")]
    ReplicaUnavailable {
        /// The last replica tried, with any password replaced by `***`.
        url: String,
        /// Why it could not be used.
        message: String,
    },

    /// The database could not be reached or opened.
    #[error("cannot connect to {url}: {message}")]
    Connection {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The driver's message, with any password replaced by `***`.
        message: String,
    },

    /// Applying or reverting migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),

    /// An import file is malformed; nothing of it was written.
    #[error("{path}: {}{reason}", if *line > 0 { format!("line {line}: ") } else { String::new() })]
    Import {
        /// The file.
        path: String,
        /// 1-based line number (0 for the file as a whole, and then the
        /// message names no line).
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The background writer of a [`crate::Recorder`] failed; rows recorded
    /// after the failure were kept in memory, not written.
    #[error("recorder writer failed ({unpersisted_rows} rows not persisted): {source}")]
    Recorder {
        /// Rows handed to the recorder that are not in the database; they
        /// are kept, and [`crate::Recorder::retry`] writes them again.
        unpersisted_rows: u64,
        /// What the writer ran into (shared: every later call reports it).
        #[source]
        source: std::sync::Arc<Error>,
    },

    /// The simulation a recorder was writing for was deleted; its rows were
    /// kept in memory, nothing was written anywhere else.
    #[error("simulation `{id}` was deleted while being recorded")]
    SimulationDeleted {
        /// The simulation's public id.
        id: String,
    },

    /// The simulation a recorder was writing for is no longer running (it
    /// was completed, failed, cancelled or interrupted meanwhile).
    #[error("simulation `{id}` is {status}, no longer running; the recorder stopped")]
    SimulationNotRunning {
        /// The simulation's public id.
        id: String,
        /// Its status now.
        status: SimulationStatus,
    },

    /// Another recorder took the run over (after it was interrupted and
    /// resumed); this recorder stopped writing.
    #[error("simulation `{id}` was taken over by another recorder")]
    LeaseLost {
        /// The simulation's public id.
        id: String,
    },

    /// A live recorder holds the run: it heartbeated within the lease
    /// timeout, so it may not be recorded or resumed by anyone else.
    #[error(
        "simulation `{id}` is held by a live recorder (last heartbeat {age_secs:.1}s ago, \
         lease timeout {timeout_secs}s)"
    )]
    LeaseHeld {
        /// The simulation's public id.
        id: String,
        /// Seconds since the holder's last heartbeat, by the database's clock.
        age_secs: f64,
        /// Seconds without a heartbeat after which the lease lapses.
        timeout_secs: u64,
    },

    /// A single recorded row is larger than a whole batch may be.
    #[error("row of {bytes} bytes exceeds the recorder's batch limit of {limit} bytes (RecorderOptions::batch_bytes)")]
    RowTooLarge {
        /// The row's size.
        bytes: usize,
        /// `RecorderOptions::batch_bytes`.
        limit: usize,
    },

    /// A stored chunk of per-agent data cannot be decoded (written by
    /// something other than simdb, or damaged on disk).
    #[error("a stored chunk of agent data is corrupt: {detail}")]
    CorruptChunk {
        /// What is wrong with it.
        detail: String,
    },

    /// The recorder was used after `close()` or after its writer stopped.
    #[error("recorder is closed")]
    RecorderClosed,

    /// A value could not be serialized to JSON.
    #[error("cannot serialize to JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// Any other error reported by the database.
    #[error(transparent)]
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for Error {
    /// Wraps a database error; one that a dead connection gives makes this
    /// thread's next connection from a pool checked first
    /// (`database/connection.rs::note_connection_error`).
    fn from(e: diesel::result::Error) -> Self {
        if matches!(&e, diesel::result::Error::DatabaseError(kind, _) if is_connection_lost(kind)) {
            crate::database::note_connection_error();
        }
        Error::Database(e)
    }
}

/// The kinds Diesel gives a statement whose connection is gone.
fn is_connection_lost(kind: &diesel::result::DatabaseErrorKind) -> bool {
    use diesel::result::DatabaseErrorKind as Kind;
    matches!(kind, Kind::ClosedConnection | Kind::UnableToSendCommand)
}

/// `Result` with [`Error`](crate::Error) as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// [`Error::NotFound`] of an agent the simulation never registered.
    pub(crate) fn unregistered_agent(
        agent: impl std::fmt::Display,
        sim: impl std::fmt::Display,
    ) -> Self {
        Error::NotFound {
            entity: "agent",
            id: format!("{agent} of simulation {sim} (register it first)"),
        }
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Turns a unique violation into [`Error::Duplicate`](crate::Error::Duplicate) and a foreign-key
    /// violation into [`Error::NotFound`](crate::Error::NotFound) of `parent`, keeping anything else.
    pub(crate) fn from_write(
        err: diesel::result::Error,
        entity: &'static str,
        id: impl ToString,
        parent: Option<(&'static str, String)>,
    ) -> Self {
        use diesel::result::{DatabaseErrorKind as Kind, Error as D};
        match (&err, parent) {
            (D::DatabaseError(Kind::UniqueViolation, _), _) => Error::Duplicate {
                entity,
                id: id.to_string(),
            },
            (e, Some((p, pid))) if is_foreign_key_violation(e) => {
                Error::NotFound { entity: p, id: pid }
            }
            _ => Error::Database(err),
        }
    }
}

impl Error {
    /// True for a failure that the same work may cure if tried again: a
    /// lost, refused or reset connection; a serialization failure
    /// (SQLSTATE 40001) or a deadlock (40P01), after which the server has
    /// rolled the transaction back; SQLite's busy or locked database after
    /// its busy timeout. The recorder's writer retries exactly these
    /// (bounded, settling each retried batch by its sequence number).
    ///
    /// Classified by error kind, never by the words of a server message,
    /// which follow the server's `lc_messages`: Diesel's connection and
    /// serialization kinds; SQLite's result codes, whose texts are SQLite's
    /// own (it has no translations); and PostgreSQL's deadlock, which Diesel
    /// reports without its SQLSTATE, by the shape of its detail: every line
    /// names the lock mode waited for (`ShareLock`, `ExclusiveLock`, …),
    /// which the server never translates.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as Kind, Error as D};
        match self {
            Error::Connection { .. } | Error::ReplicaUnavailable { .. } => true,
            Error::Database(D::BrokenTransactionManager) => true,
            Error::Database(D::DatabaseError(kind, info)) => match kind {
                _ if is_connection_lost(kind) => true,
                Kind::SerializationFailure => true,
                Kind::Unknown => {
                    is_sqlite_busy(info.message()) || is_pg_deadlock(info.message(), info.details())
                }
                _ => false,
            },
            Error::Recorder { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

/// SQLITE_BUSY and SQLITE_LOCKED, as SQLite itself words them (these are
/// `sqlite3_errstr` texts, the same in every locale).
fn is_sqlite_busy(message: &str) -> bool {
    matches!(message, "database is locked" | "database table is locked")
        || message.starts_with("database is locked")
        || message.starts_with("database table is locked")
}

/// PostgreSQL's deadlock report: "deadlock detected" on an English server;
/// on any server, a detail whose lines are "Process N waits for <lock mode>
/// on …; blocked by process M." — the lock mode names are not translated.
fn is_pg_deadlock(message: &str, details: Option<&str>) -> bool {
    const MODES: [&str; 8] = [
        "AccessShareLock",
        "RowShareLock",
        "RowExclusiveLock",
        "ShareUpdateExclusiveLock",
        "ShareLock",
        "ShareRowExclusiveLock",
        "ExclusiveLock",
        "AccessExclusiveLock",
    ];
    if message == "deadlock detected" {
        return true;
    }
    let Some(details) = details else {
        return false;
    };
    // At least two waiters, each naming a lock mode and two process ids.
    let waits: Vec<&str> = details
        .lines()
        .filter(|l| {
            let words: Vec<&str> = l
                .split(|c: char| !(c.is_ascii_alphanumeric()))
                .filter(|w| !w.is_empty())
                .collect();
            let numbers = words.iter().filter(|w| w.parse::<u32>().is_ok()).count();
            words.iter().any(|w| MODES.contains(w)) && numbers >= 2
        })
        .collect();
    waits.len() >= 2
}

fn invalid_url_message(url: &str, reason: &str) -> String {
    if url.is_empty() {
        format!("no database was given: {reason}")
    } else {
        format!("unsupported database url `{url}`: {reason}")
    }
}

/// True for a foreign-key violation on either backend. Diesel reports
/// SQLite's as `Unknown` (it reads SQLite's primary result code only), so
/// SQLite's own message is recognised too.
pub(crate) fn is_foreign_key_violation(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error as D};
    match err {
        D::DatabaseError(Kind::ForeignKeyViolation, _) => true,
        D::DatabaseError(_, info) => info.message().starts_with("FOREIGN KEY constraint failed"),
        _ => false,
    }
}
