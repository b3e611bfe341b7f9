//! simdb's own ledger of its migrations on SQLite.
//!
//! A SQLite file has one namespace, and Diesel keeps every migration it ran
//! in one `__diesel_schema_migrations` table, shared with a host
//! application's own Diesel migrations. simdb therefore also records its own
//! versions in `simdb_migrations`, and judges "schema too new" by that
//! ledger alone: a host's migrations are never mistaken for a newer simdb.
//! (On PostgreSQL simdb's schema holds a bookkeeping table of its own.)

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;

use crate::error::Result;

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// `'v1', 'v2'`: simdb's own version strings (digits only), for SQL text.
fn list(versions: &[String]) -> String {
    versions
        .iter()
        .map(|v| {
            format!(
                "'{}'",
                v.chars().filter(char::is_ascii_digit).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// True if the file has a table of that name.
pub(crate) fn has_table(conn: &mut SqliteConnection, name: &str) -> Result<bool> {
    let found: Vec<Version> = diesel::sql_query(
        "SELECT name AS version FROM sqlite_master WHERE type = 'table' AND name = ?",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .load(conn)?;
    Ok(!found.is_empty())
}

/// Creates the ledger if missing; a file migrated before the ledger existed
/// enters simdb's versions found in Diesel's table.
pub(crate) fn ensure(conn: &mut SqliteConnection, embedded: &[String]) -> Result<()> {
    if has_table(conn, "simdb_migrations")? {
        return Ok(());
    }
    conn.batch_execute(
        "CREATE TABLE simdb_migrations (
             version TEXT PRIMARY KEY NOT NULL,
             run_on  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )?;
    record(conn, embedded)
}

/// Enters every embedded version that Diesel has applied.
pub(crate) fn record(conn: &mut SqliteConnection, embedded: &[String]) -> Result<()> {
    if has_table(conn, "__diesel_schema_migrations")? && !embedded.is_empty() {
        conn.batch_execute(&format!(
            "INSERT OR IGNORE INTO simdb_migrations (version)
             SELECT version FROM __diesel_schema_migrations WHERE version IN ({})",
            list(embedded)
        ))?;
    }
    Ok(())
}

/// The versions in the ledger, oldest first; `None` without a ledger.
pub(crate) fn versions(conn: &mut SqliteConnection) -> Result<Option<Vec<String>>> {
    if !has_table(conn, "simdb_migrations")? {
        return Ok(None);
    }
    let rows: Vec<Version> =
        diesel::sql_query("SELECT version FROM simdb_migrations ORDER BY version").load(conn)?;
    Ok(Some(rows.into_iter().map(|v| v.version).collect()))
}

/// Forgets a reverted version.
pub(crate) fn forget(conn: &mut SqliteConnection, version: &str) -> Result<()> {
    diesel::sql_query("DELETE FROM simdb_migrations WHERE version = ?")
        .bind::<diesel::sql_types::Text, _>(version)
        .execute(conn)?;
    Ok(())
}
