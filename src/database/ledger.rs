//! simdb's own ledger of its migrations on SQLite.
//!
//! A SQLite file has one namespace, and Diesel's own harness keeps every
//! migration it runs in `__diesel_schema_migrations`, the table a host
//! application's Diesel migrations use too. Sharing it would make each
//! side's versions unknown to the other's harness (a host's
//! `revert_last_migration` would find simdb's newer version and refuse), so
//! simdb runs its migrations through [`Ledger`], a harness that books them in
//! `simdb_migrations` only, and judges "schema too new" by that ledger
//! alone. (On PostgreSQL simdb's schema holds a bookkeeping table of its own.)

use crate::error::Result;
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
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

/// Creates the ledger if missing, and moves simdb's versions out of
/// Diesel's shared table, where releases before the ledger booked them.
pub(crate) fn ensure(conn: &mut SqliteConnection, embedded: &[String]) -> Result<()> {
    if !has_table(conn, "simdb_migrations")? {
        conn.batch_execute(
            "CREATE TABLE simdb_migrations (
                 version TEXT PRIMARY KEY NOT NULL,
                 run_on  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        )?;
    }
    if !has_table(conn, "__diesel_schema_migrations")? || embedded.is_empty() {
        return Ok(());
    }
    let ours = super::harness::version_list(embedded);
    conn.batch_execute(&format!(
        "INSERT OR IGNORE INTO simdb_migrations (version, run_on)
             SELECT version, run_on FROM __diesel_schema_migrations WHERE version IN ({ours})"
    ))?;
    let moved = diesel::sql_query(format!(
        "DELETE FROM __diesel_schema_migrations WHERE version IN ({ours})"
    ))
    .execute(conn)?;
    // Emptied of simdb's versions only, it was simdb's: dropped. A host's
    // table keeps its own rows (and stays, even if it held none).
    if moved > 0 {
        #[derive(diesel::QueryableByName)]
        struct Left {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let left: Left = diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")
            .get_result(conn)?;
        if left.n == 0 {
            conn.batch_execute("DROP TABLE __diesel_schema_migrations")?;
        }
    }
    Ok(())
}

/// simdb's migration harness on SQLite: Diesel's, booked in
/// `simdb_migrations` instead of Diesel's shared table.
pub(crate) struct Ledger<'a>(pub(crate) &'a mut SqliteConnection);

impl Ledger<'_> {
    fn conn(&mut self) -> &mut SqliteConnection {
        self.0
    }
    fn insert_sql(&self) -> String {
        "INSERT INTO simdb_migrations (version) VALUES (?)".into()
    }
    fn delete_sql(&self) -> String {
        "DELETE FROM simdb_migrations WHERE version = ?".into()
    }
    fn booked(&mut self) -> Result<Vec<String>> {
        Ok(versions(self.0)?.unwrap_or_default())
    }
}

super::harness::ledger_harness!(Ledger, SqliteConnection, diesel::sqlite::Sqlite);

/// The versions in the ledger, oldest first; `None` without a ledger.
pub(crate) fn versions(conn: &mut SqliteConnection) -> Result<Option<Vec<String>>> {
    if !has_table(conn, "simdb_migrations")? {
        return Ok(None);
    }
    let rows: Vec<Version> =
        diesel::sql_query("SELECT version FROM simdb_migrations ORDER BY version").load(conn)?;
    Ok(Some(rows.into_iter().map(|v| v.version).collect()))
}
