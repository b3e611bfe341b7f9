//! Connections handed to callers, and `with_connection!`, which compiles one
//! body for each backend.

use diesel::r2d2::{ConnectionManager, PooledConnection};

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::sqlite::SqliteConnection;

/// A pooled connection of either backend, from [`Database::connection`](crate::Database::connection).
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

thread_local! {
    /// A statement on this thread failed as one on a dead connection does.
    static SUSPECT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Notes that a statement on this thread failed as one on a dead
/// connection does (`Error`'s conversion of a database error calls it),
/// so that this thread's next connection from a PostgreSQL pool is
/// checked first ([`live`]).
pub(crate) fn note_connection_error() {
    SUSPECT.with(|s| s.set(true));
}

/// `conn` itself if nothing failed as on a dead connection on this thread
/// since its last check-out; else the first of the pool's connections that
/// answers `SELECT 1`. A dead one is dropped: the failed statement marks it
/// broken, and the pool opens a new one. Why: Diesel marks a connection
/// broken when a statement runs on it, not when preparing one fails (a
/// cached statement's first run on a connection prepares it), so a
/// connection that died (a server restart, a cut network) would otherwise
/// go back to the pool and be handed out again, failing every call whose
/// statements it had not prepared before. The pool checks nothing on
/// check-out otherwise: that would cost a round trip every time.
#[cfg(feature = "postgres")]
pub(crate) fn live<M>(
    mut conn: PooledConnection<M>,
    mut next: impl FnMut() -> crate::error::Result<PooledConnection<M>>,
    tries: u32,
) -> crate::error::Result<PooledConnection<M>>
where
    M: diesel::r2d2::ManageConnection<Connection = PgConnection>,
{
    use diesel::connection::SimpleConnection;
    if !SUSPECT.with(|s| s.replace(false)) {
        return Ok(conn);
    }
    for _ in 0..tries {
        if conn.batch_execute("SELECT 1").is_ok() {
            return Ok(conn);
        }
        drop(conn);
        conn = next()?;
    }
    Ok(conn)
}
