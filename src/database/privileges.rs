//! What a PostgreSQL role may do with simdb's schema, checked when a
//! database is opened, so that a role without a right it needs is told
//! which one, before anything is changed (rather than by a `permission
//! denied` in the middle of a recording, in the server's language).
//!
//! Three roles (the README gives their grants): the **owner** applies
//! migrations (CREATE on the database for the first open, then owning the
//! schema); a **recorder** needs USAGE on the schema and SELECT, INSERT,
//! UPDATE, DELETE on simdb's tables; a **reader** (`read_only(true)`) needs
//! USAGE and SELECT. Once the schema is current, an open runs no DDL.

use diesel::pg::PgConnection;
use diesel::RunQueryDsl;

use crate::error::{Error, Result};

/// What an open is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// `read_only(true)`: analytics, dashboards, exports.
    Read,
    /// A normal open: recording, lifecycle calls, resumes, deletes.
    Record,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

#[derive(diesel::QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ok: bool,
}

fn role(conn: &mut PgConnection) -> Result<String> {
    let r: Row = diesel::sql_query("SELECT current_user::text AS text").get_result(conn)?;
    Ok(r.text)
}

fn flag(conn: &mut PgConnection, sql: &str, arg: &str) -> Result<bool> {
    let f: Flag = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Text, _>(arg)
        .get_result(conn)?;
    Ok(f.ok)
}

fn refuse(conn: &mut PgConnection, privilege: String, needed_for: &str) -> Result<()> {
    Err(Error::Privilege {
        role: role(conn)?,
        privilege,
        needed_for: needed_for.to_string(),
    })
}

/// True if a schema of that name exists.
pub(crate) fn schema_exists(conn: &mut PgConnection, schema: &str) -> Result<bool> {
    flag(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) AS ok",
        schema,
    )
}

/// [`Error::Privilege`] unless the role may look into `schema` (USAGE).
pub(crate) fn check_usage(conn: &mut PgConnection, schema: &str, access: Access) -> Result<()> {
    if schema_exists(conn, schema)?
        && !flag(
            conn,
            "SELECT has_schema_privilege($1, 'USAGE') AS ok",
            schema,
        )?
    {
        let what = match access {
            Access::Read => "reading simdb's tables",
            Access::Record => "recording into simdb's tables",
        };
        return refuse(conn, format!("USAGE on schema {schema}"), what);
    }
    Ok(())
}

/// [`Error::Privilege`] naming the first table privilege of simdb's that
/// `access` needs and the role lacks.
pub(crate) fn check_tables(conn: &mut PgConnection, schema: &str, access: Access) -> Result<()> {
    let (privileges, what) = match access {
        Access::Read => ("'SELECT'", "reading (read_only(true) needs SELECT only)"),
        Access::Record => (
            "'SELECT', 'INSERT', 'UPDATE', 'DELETE'",
            "a recording open (to only read, open with read_only(true))",
        ),
    };
    let missing: Vec<Row> = diesel::sql_query(format!(
        "SELECT p.privilege || ' on ' || n.nspname || '.' || c.relname AS text
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          CROSS JOIN unnest(ARRAY[{privileges}]) AS p(privilege)
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname LIKE 'simdb\\_%'
            AND NOT has_table_privilege(c.oid, p.privilege)
          ORDER BY c.relname, p.privilege
          LIMIT 1"
    ))
    .bind::<diesel::sql_types::Text, _>(schema)
    .load(conn)?;
    match missing.into_iter().next() {
        Some(m) => refuse(conn, m.text, what),
        None => Ok(()),
    }
}

/// Before pending migrations: the role may create the schema (CREATE on
/// the database) or, in an existing one, create and alter simdb's tables
/// (CREATE on the schema, and owning the tables already there).
pub(crate) fn check_can_migrate(conn: &mut PgConnection, schema: &str) -> Result<()> {
    const WHY: &str = "applying simdb's migrations (open once as the schema's owner)";
    if !schema_exists(conn, schema)? {
        if !flag(
            conn,
            "SELECT has_database_privilege(current_database(), $1) AS ok",
            "CREATE",
        )? {
            return refuse(conn, "CREATE on the database".into(), WHY);
        }
        return Ok(());
    }
    if !flag(
        conn,
        "SELECT has_schema_privilege($1, 'CREATE') AS ok",
        schema,
    )? {
        return refuse(conn, format!("CREATE on schema {schema}"), WHY);
    }
    let not_owned: Vec<Row> = diesel::sql_query(
        "SELECT n.nspname || '.' || c.relname AS text
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
            AND (c.relname LIKE 'simdb\\_%' OR c.relname = '__diesel_schema_migrations')
            AND NOT pg_has_role(c.relowner, 'USAGE')
          ORDER BY c.relname
          LIMIT 1",
    )
    .bind::<diesel::sql_types::Text, _>(schema)
    .load(conn)?;
    match not_owned.into_iter().next() {
        Some(t) => refuse(conn, format!("ownership of {}", t.text), WHY),
        None => Ok(()),
    }
}

/// True if `schema` holds any object (table, view, sequence, function,
/// type): a schema simdb did not create, unless it is empty.
pub(crate) fn schema_has_objects(conn: &mut PgConnection, schema: &str) -> Result<bool> {
    flag(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1)
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typrelid = 0 AND t.typelem = 0)
             AS ok",
        schema,
    )
}
