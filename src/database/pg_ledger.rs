//! simdb's own ledger of its migrations on PostgreSQL:
//! `<schema>.simdb_migrations`.
//!
//! Releases before this one booked simdb's versions in Diesel's table inside
//! simdb's schema. A host that ran its own Diesel migrations on a
//! connection of simdb's (whose `search_path` starts with simdb's schema)
//! booked its versions there too, and simdb then took them for a newer simdb
//! (`SchemaTooNew`) on every later open. As on SQLite ([`super::ledger`]),
//! simdb now books its versions in a table no other harness uses, and judges
//! "too new" by that ledger alone; simdb's versions found in Diesel's table
//! are moved into it on the first open by the owner.

use diesel::pg::PgConnection;
use diesel::RunQueryDsl;

use crate::error::Result;

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    found: bool,
}

/// True if `schema.table` exists (and this role can see it).
pub(crate) fn table_exists(conn: &mut PgConnection, schema: &str, table: &str) -> Result<bool> {
    let row: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')) AS found",
    )
    .bind::<diesel::sql_types::Text, _>(schema)
    .bind::<diesel::sql_types::Text, _>(table)
    .get_result(conn)?;
    Ok(row.found)
}

/// simdb's versions in its ledger, oldest first; `None` without a ledger.
pub(crate) fn ledger_versions(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<Vec<String>>> {
    if !table_exists(conn, schema, "simdb_migrations")? {
        return Ok(None);
    }
    let rows: Vec<Version> = diesel::sql_query(format!(
        "SELECT version FROM \"{schema}\".simdb_migrations ORDER BY version"
    ))
    .load(conn)?;
    Ok(Some(rows.into_iter().map(|v| v.version).collect()))
}

/// simdb's versions (those in `embedded`) booked in Diesel's table of
/// `schema` by an earlier release, oldest first; `None` without that table.
pub(crate) fn legacy_versions(
    conn: &mut PgConnection,
    schema: &str,
    embedded: &[String],
) -> Result<Option<Vec<String>>> {
    if !table_exists(conn, schema, "__diesel_schema_migrations")? {
        return Ok(None);
    }
    let rows: Vec<Version> = diesel::sql_query(format!(
        "SELECT version::text AS version FROM \"{schema}\".__diesel_schema_migrations ORDER BY version"
    ))
    .load(conn)?;
    Ok(Some(
        rows.into_iter()
            .map(|v| v.version)
            .filter(|v| embedded.contains(v))
            .collect(),
    ))
}

/// simdb's applied versions, read without writing anything: the ledger's,
/// or, in a schema an earlier release laid out, simdb's own in Diesel's
/// table (a host's versions there are not simdb's).
pub(crate) fn versions(
    conn: &mut PgConnection,
    schema: &str,
    embedded: &[String],
) -> Result<Option<Vec<String>>> {
    match ledger_versions(conn, schema)? {
        Some(ours) => Ok(Some(ours)),
        None => legacy_versions(conn, schema, embedded),
    }
}

/// Inside the migration's transaction: creates the ledger if missing and
/// moves simdb's versions out of Diesel's table, which is dropped if they
/// were all it held (a host's versions keep it).
pub(crate) fn ensure(conn: &mut PgConnection, schema: &str, embedded: &[String]) -> Result<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS \"{schema}\".simdb_migrations (
             version VARCHAR(50) PRIMARY KEY NOT NULL,
             run_on  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ))?;
    if embedded.is_empty() || !table_exists(conn, schema, "__diesel_schema_migrations")? {
        return Ok(());
    }
    let ours = super::harness::version_list(embedded);
    conn.batch_execute(&format!(
        "INSERT INTO \"{schema}\".simdb_migrations (version, run_on)
             SELECT version, run_on FROM \"{schema}\".__diesel_schema_migrations WHERE version IN ({ours})
             ON CONFLICT (version) DO NOTHING;
         DELETE FROM \"{schema}\".__diesel_schema_migrations WHERE version IN ({ours})"
    ))?;
    #[derive(diesel::QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let left: Left = diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM \"{schema}\".__diesel_schema_migrations"
    ))
    .get_result(conn)?;
    if left.n == 0 {
        conn.batch_execute(&format!(
            "DROP TABLE \"{schema}\".__diesel_schema_migrations"
        ))?;
    }
    Ok(())
}

/// simdb's migration harness on PostgreSQL: Diesel's, booked in
/// `<schema>.simdb_migrations`.
pub(crate) struct PgLedger<'a> {
    pub(crate) conn: &'a mut PgConnection,
    pub(crate) schema: &'a str,
}

impl PgLedger<'_> {
    fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }
    fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO \"{}\".simdb_migrations (version) VALUES ($1)",
            self.schema
        )
    }
    fn delete_sql(&self) -> String {
        format!(
            "DELETE FROM \"{}\".simdb_migrations WHERE version = $1",
            self.schema
        )
    }
    fn booked(&mut self) -> Result<Vec<String>> {
        Ok(ledger_versions(self.conn, self.schema)?.unwrap_or_default())
    }
}

super::harness::ledger_harness!(PgLedger, PgConnection, diesel::pg::Pg);
