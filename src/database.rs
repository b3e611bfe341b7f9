//! Opening a database: URL parsing, connection pools, per-connection
//! settings and embedded migrations applied on first connect.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "sqlite")]
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
#[cfg(feature = "sqlite")]
use diesel::r2d2::CustomizeConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::Connection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

#[cfg(feature = "postgres")]
use diesel::pg::{Pg, PgConnection};
#[cfg(feature = "sqlite")]
use diesel::sqlite::{Sqlite, SqliteConnection};

use crate::error::{Error, Result};

#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");

/// Milliseconds a SQLite connection waits for a lock before reporting busy.
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_TIMEOUT_MS: u32 = 30_000;
/// Key of the PostgreSQL advisory lock that serializes migrations
/// (the bytes of "simdbmig").
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x73696d_64626d6967;

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, a file or in memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A pooled connection of either backend, from [`Database::connection`].
///
/// Run your own Diesel queries against the public [`crate::schema`] by
/// matching on it, or write the body once with [`crate::with_connection!`].
pub enum DbConnection {
    /// A SQLite connection.
    #[cfg(feature = "sqlite")]
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    /// A PostgreSQL connection.
    #[cfg(feature = "postgres")]
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(_) => f.write_str("DbConnection::Sqlite"),
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(_) => f.write_str("DbConnection::Postgres"),
        }
    }
}

/// Runs `$body` with `$c` bound to `&mut SqliteConnection` or `&mut
/// PgConnection`, whichever backend the [`DbConnection`] holds. The body is
/// compiled once per backend, so any Diesel query valid on both works:
///
/// ```
/// # fn main() -> simdb::Result<()> {
/// use simdb::diesel::prelude::*;
/// use simdb::schema::simulations;
///
/// let db = simdb::Database::open("sqlite::memory:")?;
/// let count: i64 = simdb::with_connection!(db.connection()?, |c| {
///     simulations::table.count().get_result(c)?
/// });
/// assert_eq!(count, 0);
/// # Ok(()) }
/// ```
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[macro_export]
macro_rules! with_connection {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite(mut __simdb_conn) => {
                let $c: &mut $crate::diesel::sqlite::SqliteConnection = &mut *__simdb_conn;
                $body
            }
            $crate::DbConnection::Postgres(mut __simdb_conn) => {
                let $c: &mut $crate::diesel::pg::PgConnection = &mut *__simdb_conn;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the connection's `&mut SqliteConnection`.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
#[macro_export]
macro_rules! with_connection {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite(mut __simdb_conn) => {
                let $c: &mut $crate::diesel::sqlite::SqliteConnection = &mut *__simdb_conn;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the connection's `&mut PgConnection`.
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
#[macro_export]
macro_rules! with_connection {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::DbConnection::Postgres(mut __simdb_conn) => {
                let $c: &mut $crate::diesel::pg::PgConnection = &mut *__simdb_conn;
                $body
            }
        }
    };
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

/// What a database URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    SqliteFile(PathBuf),
    SqliteMemory,
    Postgres(String),
}

fn parse_url(url: &str) -> Result<Target> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: redact(url),
        reason: reason.to_string(),
    };
    if url.trim().is_empty() {
        return Err(invalid("empty"));
    }
    if url.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_string()));
    }
    if matches!(url, "sqlite::memory:" | ":memory:" | "sqlite://:memory:") {
        return Ok(Target::SqliteMemory);
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(invalid(&format!(
            "unknown scheme `{scheme}` (use sqlite://PATH, a file path, sqlite::memory: or postgres://...)"
        )));
    } else {
        url
    };
    if path.is_empty() {
        return Err(invalid("no file path after the scheme"));
    }
    Ok(Target::SqliteFile(PathBuf::from(path)))
}

/// Byte ranges of the secrets in a URL: the password of
/// `scheme://user:password@host`, and the value of every `password=`
/// parameter (a fuzzer found a second one slipping by an earlier version).
fn password_spans(url: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let rest = scheme_end + 3;
        let authority_end = url[rest..].find(['/', '?']).map_or(url.len(), |i| rest + i);
        if let Some(at) = url[rest..authority_end].rfind('@') {
            if let Some(colon) = url[rest..rest + at].find(':') {
                spans.push(rest + colon + 1..rest + at);
            }
        }
    }
    let mut from = 0;
    while let Some(pos) = url[from..].find("password=") {
        let start = from + pos + "password=".len();
        let end = url[start..]
            .find(['&', ' '])
            .map_or(url.len(), |i| start + i);
        if spans.last().is_none_or(|last| last.end <= start) {
            spans.push(start..end);
        }
        from = start;
    }
    spans
}

/// Replaces every password in a URL by `***`.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_string();
    for span in password_spans(url).into_iter().rev() {
        out.replace_range(span, "***");
    }
    out
}

/// Removes every occurrence of the URL's passwords from a driver message,
/// in one left-to-right pass (replacing password by password could feed a
/// password like `*` its own `***`: a fuzzer found that blow-up).
fn scrub(message: &str, url: &str) -> String {
    let mut passwords: Vec<&str> = password_spans(url)
        .into_iter()
        .map(|span| &url[span])
        .filter(|pw| !pw.is_empty())
        .collect();
    if passwords.is_empty() {
        return message.to_string();
    }
    // Longest first, so a password containing another is replaced whole.
    passwords.sort_by_key(|pw| std::cmp::Reverse(pw.len()));
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        match passwords.iter().find(|pw| rest.starts_with(**pw)) {
            Some(pw) => {
                out.push_str("***");
                rest = &rest[pw.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// For fuzzing: parsing never panics; no alphanumeric password survives
/// redaction of a URL, nor scrubbing of a message that quotes the URL.
#[doc(hidden)]
#[allow(clippy::panic)]
pub(crate) fn check_url_invariants(text: &str) {
    let _ = parse_url(text);
    let redacted = redact(text);
    let scrubbed = scrub(text, text);
    for span in password_spans(text) {
        let pw = &text[span];
        // Alphanumeric passwords only: `***` and its neighbours cannot form them.
        if !pw.is_empty() && pw.chars().all(char::is_alphanumeric) && text.matches(pw).count() == 1
        {
            assert!(!redacted.contains(pw), "password survived redaction");
            assert!(!scrubbed.contains(pw), "password survived scrubbing");
        }
    }
}

/// Applies simdb's settings to every SQLite connection a pool opens.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, Copy)]
struct SqliteSettings;

#[cfg(feature = "sqlite")]
fn configure_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;"
    ))
}

#[cfg(feature = "sqlite")]
impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        configure_sqlite(conn).map_err(diesel::r2d2::Error::QueryError)
    }
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
    /// [`Error::InvalidUrl`] for a URL of no known form, [`Error::Connection`]
    /// if the database cannot be reached or opened, [`Error::SchemaTooNew`] if
    /// a newer simdb migrated it (it is then left untouched),
    /// [`Error::Migration`] if a migration fails.
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
    /// [`Error::Connection`] if no connection could be had in time.
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
    /// [`Error::Connection`] if no connection could be had in time.
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

    /// Versions of the migrations applied to this database, oldest first.
    ///
    /// # Errors
    /// [`Error::Migration`] if the migration table cannot be read.
    pub fn applied_migrations(&self) -> Result<Vec<String>> {
        let mut versions: Vec<String> = match self.writer()? {
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(mut c) => c
                .applied_migrations()
                .map_err(migration_error)?
                .iter()
                .map(|v| v.to_string())
                .collect(),
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(mut c) => c
                .applied_migrations()
                .map_err(migration_error)?
                .iter()
                .map(|v| v.to_string())
                .collect(),
        };
        versions.sort();
        Ok(versions)
    }

    /// Versions of the migrations embedded in this library, oldest first.
    pub fn embedded_migrations(&self) -> Result<Vec<String>> {
        match self.backend() {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => embedded_versions::<Sqlite>(&SQLITE_MIGRATIONS),
            #[cfg(feature = "postgres")]
            Backend::Postgres => embedded_versions::<Pg>(&POSTGRES_MIGRATIONS),
            #[allow(unreachable_patterns)]
            _ => Ok(Vec::new()),
        }
    }

    /// Reverts every applied migration: **drops all simdb tables and data**.
    /// For tooling and tests of the migrations themselves.
    ///
    /// # Errors
    /// [`Error::Migration`] if a down migration fails.
    pub fn revert_all_migrations(&self) -> Result<()> {
        match self.writer()? {
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(mut c) => {
                c.revert_all_migrations(SQLITE_MIGRATIONS)
                    .map_err(migration_error)?;
            }
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(mut c) => {
                c.revert_all_migrations(POSTGRES_MIGRATIONS)
                    .map_err(migration_error)?;
            }
        }
        Ok(())
    }

    /// Applies pending embedded migrations under the migration lock (done by
    /// [`Database::open`] already; useful after [`Database::revert_all_migrations`]).
    ///
    /// # Errors
    /// As for [`Database::open`].
    pub fn run_pending_migrations(&self) -> Result<()> {
        match self.writer()? {
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(mut c) => migrate_sqlite(&mut c),
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(mut c) => migrate_postgres(&mut c),
        }
    }
}

fn migration_error(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::Migration(e.to_string())
}

fn embedded_versions<DB: diesel::backend::Backend>(
    source: &EmbeddedMigrations,
) -> Result<Vec<String>>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    let mut versions: Vec<String> = MigrationSource::<DB>::migrations(source)
        .map_err(migration_error)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    Ok(versions)
}

/// Refuses a database that has migrations this library does not know.
fn check_not_newer<C, DB>(conn: &mut C, source: &EmbeddedMigrations) -> Result<()>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let known = embedded_versions::<DB>(source)?;
    let applied = conn.applied_migrations().map_err(migration_error)?;
    let unknown = applied
        .iter()
        .map(|v| v.to_string())
        .filter(|v| !known.contains(v))
        .max();
    match unknown {
        Some(database_version) => Err(Error::SchemaTooNew {
            database_version,
            library_version: known.last().cloned().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

#[cfg(feature = "sqlite")]
fn enable_wal(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
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

#[cfg(feature = "sqlite")]
fn migrate_sqlite(conn: &mut SqliteConnection) -> Result<()> {
    // BEGIN IMMEDIATE takes the write lock before anything is read, so
    // concurrent first opens queue here and apply migrations exactly once;
    // Diesel runs each migration in a savepoint inside it.
    conn.immediate_transaction(|conn| {
        check_not_newer::<_, Sqlite>(conn, &SQLITE_MIGRATIONS)?;
        let applied = conn
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(migration_error)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied simdb migrations (sqlite)");
        }
        Ok(())
    })
}

#[cfg(feature = "postgres")]
fn migrate_postgres(conn: &mut PgConnection) -> Result<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")).execute(conn)?;
    let outcome = check_not_newer::<_, Pg>(conn, &POSTGRES_MIGRATIONS).and_then(|()| {
        let applied = conn
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(migration_error)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied simdb migrations (postgres)");
        }
        Ok(())
    });
    let unlocked =
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")).execute(conn);
    outcome?;
    unlocked?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("sqlite::memory:").ok(),
            Some(Target::SqliteMemory)
        );
        assert_eq!(
            parse_url("sqlite://runs.db").ok(),
            Some(Target::SqliteFile("runs.db".into()))
        );
        assert_eq!(
            parse_url("/tmp/x.db").ok(),
            Some(Target::SqliteFile("/tmp/x.db".into()))
        );
        assert!(matches!(
            parse_url("mysql://u:secret@h/db"),
            Err(Error::InvalidUrl { url, .. }) if !url.contains("secret")
        ));
        assert!(parse_url("").is_err());
        assert!(parse_url("sqlite://").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:hunter2@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(
            redact("postgres://db/x?password=hunter2&sslmode=off"),
            "postgres://db/x?password=***&sslmode=off"
        );
        assert_eq!(
            scrub("failed for hunter2", "postgres://bob:hunter2@db/x"),
            "failed for ***"
        );
        assert_eq!(
            redact("postgres://db/x?password=a1&password=b2"),
            "postgres://db/x?password=***&password=***"
        );
        // The input the fuzzer found.
        check_url_invariants(
            "** =[`\0[Q[`\n=+`=4ooopassword=password=****** \n2\n=0[o0ooopassword=**\n",
        );
    }
}
