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

/// After a failure that may have been the connection's: runs a trivial
/// statement on `c`, so that a PostgreSQL connection that died is marked
/// broken and its pool opens a new one instead of handing the dead one out
/// again. (Diesel marks a connection broken when a statement runs on it,
/// not when preparing one fails — and the first run of a cached statement
/// on a connection prepares it.) Harmless on a live connection.
pub(crate) fn mark_if_dead<C: diesel::connection::SimpleConnection>(c: &mut C) {
    // The outcome is the point, not the result: a dead connection fails.
    let _ = c.batch_execute("SELECT 1");
}
