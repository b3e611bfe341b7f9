//! Embedded migrations: applied once under a lock, refused when the database
//! is newer than this library.

use diesel::migration::MigrationSource;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

#[cfg(feature = "postgres")]
use diesel::pg::{Pg, PgConnection};
#[cfg(feature = "sqlite")]
use diesel::sqlite::{Sqlite, SqliteConnection};

use super::{Backend, Database, DbConnection};
use crate::error::{Error, Result};

#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");
/// Key of the PostgreSQL advisory lock that serializes migrations
/// (the bytes of "simdbmig").
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x73696d_64626d6967;

impl Database {
    /// Versions of the migrations applied to this database, oldest first.
    ///
    /// # Errors
    /// [`Error::Migration`](crate::Error::Migration) if the migration table cannot be read.
    pub fn applied_migrations(&self) -> Result<Vec<String>> {
        let mut versions: Vec<String> = match self.writer()? {
            // simdb's own ledger: Diesel's table may hold a host's versions.
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(mut c) => super::ledger::versions(&mut c)?.unwrap_or_default(),
            #[cfg(feature = "postgres")]
            // Read, never created (Diesel's harness would create the table,
            // which a read-only connection refuses).
            DbConnection::Postgres(mut c) => super::pg_ledger::versions(
                &mut c,
                self.schema().unwrap_or("simdb"),
                &embedded_versions::<Pg>(&POSTGRES_MIGRATIONS)?,
            )?
            .unwrap_or_default(),
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
    /// [`Error::Migration`](crate::Error::Migration) if a down migration fails.
    pub fn revert_all_migrations(&self) -> Result<()> {
        match self.writer()? {
            // simdb's migrations only, newest first: a host's stay.
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(mut c) => {
                super::ledger::Ledger(&mut c)
                    .revert_all_migrations(SQLITE_MIGRATIONS)
                    .map_err(migration_error)?;
            }
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(mut c) => {
                let schema = self.schema().unwrap_or("simdb");
                super::pg_ledger::PgLedger {
                    conn: &mut c,
                    schema,
                }
                .revert_all_migrations(POSTGRES_MIGRATIONS)
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
            DbConnection::Postgres(mut c) => {
                migrate_postgres(&mut c, self.schema().unwrap_or("simdb"))
            }
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

/// [`Error::SchemaTooNew`] if `applied` holds a version this library does
/// not know (the newest such one is named).
fn refuse_newer(applied: &[String], known: &[String]) -> Result<()> {
    match applied.iter().filter(|v| !known.contains(v)).max() {
        Some(database_version) => Err(Error::SchemaTooNew {
            database_version: database_version.clone(),
            library_version: known.last().cloned().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

#[cfg(feature = "sqlite")]
pub(crate) fn migrate_sqlite(conn: &mut SqliteConnection) -> Result<()> {
    // BEGIN IMMEDIATE takes the write lock before anything is read, so
    // concurrent first opens queue here and apply migrations exactly once;
    // Diesel runs each migration in a savepoint inside it.
    conn.immediate_transaction(|conn| {
        let known = embedded_versions::<Sqlite>(&SQLITE_MIGRATIONS)?;
        super::ledger::ensure(conn, &known)?;
        // Judged by simdb's own ledger: a host's migrations in Diesel's
        // table are not a newer simdb (nor does simdb book its own there).
        let ours = super::ledger::versions(conn)?.unwrap_or_default();
        refuse_newer(&ours, &known)?;
        super::upgrade_guard::sqlite(conn, &ours)?;
        super::prefix::rename_unprefixed(conn, &ours)?;
        let applied = super::ledger::Ledger(conn)
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(migration_error)?
            .len();
        if applied > 0 {
            tracing::info!(count = applied, "applied simdb migrations (sqlite)");
        }
        super::fold::FoldStore::fold_row_states(conn)?;
        super::fold::FoldStore::fold_row_metrics(conn)?;
        Ok(())
    })
}

/// simdb's tables as the releases before the `simdb_` prefix named them,
/// oldest first: the first release created the first 11 (in `public` on
/// PostgreSQL), the next one added the rest.
pub(crate) const UNPREFIXED_TABLES: [&str; 14] = [
    "experiments",
    "simulations",
    "simulation_tags",
    "agents",
    "agent_states",
    "simulation_steps",
    "metric_names",
    "step_metrics",
    "agent_metrics",
    "agent_memories",
    "events",
    "key_sequences",
    "step_rollups",
    "agent_totals",
];

/// The first release's tables (all in `public` on PostgreSQL).
#[cfg(feature = "postgres")]
const FIRST_RELEASE_TABLES: &[&str] = UNPREFIXED_TABLES.split_at(11).0;

#[cfg(feature = "postgres")]
#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    found: bool,
}

#[cfg(feature = "postgres")]
use super::pg_ledger::table_exists;

/// Moves a database laid out by the release before namespacing (simdb's
/// tables and bookkeeping in `public`) into simdb's schema, in one
/// transaction; the host's own migration rows stay where they were.
#[cfg(feature = "postgres")]
fn relocate_from_public(conn: &mut PgConnection, schema: &str) -> Result<()> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    if schema == "public"
        || table_exists(conn, schema, "simdb_migrations")?
        || table_exists(conn, schema, "__diesel_schema_migrations")?
        || !table_exists(conn, "public", "simulations")?
        || !table_exists(conn, "public", "__diesel_schema_migrations")?
    {
        return Ok(());
    }
    // Only if simdb's own first migration ran there: a host's table that
    // happens to be called `simulations` is never moved.
    let known = embedded_versions::<Pg>(&POSTGRES_MIGRATIONS)?;
    let first = known.first().cloned().unwrap_or_default();
    let ran: Exists = {
        use diesel::RunQueryDsl;
        diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM public.__diesel_schema_migrations WHERE version = $1) AS found",
        )
        .bind::<diesel::sql_types::Text, _>(&first)
        .get_result(conn)?
    };
    if !ran.found {
        return Ok(());
    }
    let ours = super::harness::version_list(&known);
    let mut sql = String::new();
    for table in FIRST_RELEASE_TABLES {
        sql.push_str(&format!(
            "ALTER TABLE public.{table} SET SCHEMA \"{schema}\";\n"
        ));
    }
    sql.push_str(&format!(
        "CREATE TABLE \"{schema}\".__diesel_schema_migrations (LIKE public.__diesel_schema_migrations INCLUDING ALL);
         INSERT INTO \"{schema}\".__diesel_schema_migrations
             SELECT * FROM public.__diesel_schema_migrations WHERE version IN ({ours});
         DELETE FROM public.__diesel_schema_migrations WHERE version IN ({ours});"
    ));
    conn.transaction(|c| c.batch_execute(&sql))?;
    tracing::info!(
        schema,
        "moved simdb's tables from public into their own schema"
    );
    Ok(())
}

/// Brings simdb's schema up to this library's version. A current schema
/// costs no DDL and no right beyond a recorder's (checked, with the missing
/// privilege named); pending migrations are the owner's work and are
/// applied all together in one transaction under the migration lock, so a
/// failed or refused open changes nothing.
#[cfg(feature = "postgres")]
pub(crate) fn migrate_postgres(conn: &mut PgConnection, schema: &str) -> Result<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")).execute(conn)?;
    let outcome = migrate_postgres_locked(conn, schema);
    let unlocked =
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")).execute(conn);
    outcome?;
    unlocked?;
    Ok(())
}

#[cfg(feature = "postgres")]
fn migrate_postgres_locked(conn: &mut PgConnection, schema: &str) -> Result<()> {
    use super::privileges::{self, Access};
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let known = embedded_versions::<Pg>(&POSTGRES_MIGRATIONS)?;
    privileges::check_usage(conn, schema, Access::Record)?;
    privileges::check_tables(conn, schema, Access::Record)?;
    if let Some(ours) = super::pg_ledger::ledger_versions(conn, schema)? {
        refuse_newer(&ours, &known)?;
        if known.iter().all(|v| ours.contains(v)) {
            return Ok(());
        }
    }
    let exists = privileges::schema_exists(conn, schema)?;
    if exists
        && super::pg_ledger::versions(conn, schema, &known)?.is_none()
        && privileges::schema_has_objects(conn, schema)?
    {
        // A host's schema of that name: never adopted.
        return Err(Error::SchemaInUse {
            schema: schema.to_string(),
        });
    }
    privileges::check_can_migrate(conn, schema)?;
    conn.transaction(|c| {
        c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
        relocate_from_public(c, schema)?;
        super::pg_ledger::ensure(c, schema, &known)?;
        // simdb's own versions, read once: refused if newer than this
        // library, held back while an earlier release records.
        let applied = super::pg_ledger::ledger_versions(c, schema)?.unwrap_or_default();
        refuse_newer(&applied, &known)?;
        super::upgrade_guard::postgres(c, &applied)?;
        let mut ledger = super::pg_ledger::PgLedger { conn: c, schema };
        let count = ledger
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(migration_error)?
            .len();
        if count > 0 {
            tracing::info!(count, "applied simdb migrations (postgres)");
        }
        super::fold::FoldStore::fold_row_states(c)?;
        super::fold::FoldStore::fold_row_metrics(c)?;
        Ok::<_, Error>(())
    })
}

#[cfg(feature = "sqlite")]
#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// For read-only opens: checks, without writing anything, that the database
/// holds simdb's schema at exactly this library's version.
fn check_versions(applied: Option<Vec<String>>, known: Vec<String>, url: &str) -> Result<()> {
    let Some(applied) = applied.filter(|a| !a.is_empty()) else {
        return Err(Error::NoSchema {
            url: url.to_string(),
        });
    };
    refuse_newer(&applied, &known)?;
    if let Some(missing) = known.iter().find(|v| !applied.contains(v)) {
        return Err(Error::SchemaTooOld {
            missing_version: missing.clone(),
            url: url.to_string(),
        });
    }
    Ok(())
}

#[cfg(feature = "sqlite")]
pub(crate) fn check_schema_sqlite(conn: &mut SqliteConnection, url: &str) -> Result<()> {
    use diesel::RunQueryDsl;
    // simdb's own ledger; a file migrated before the ledger existed has
    // simdb's versions in Diesel's table.
    let applied = match super::ledger::versions(conn)? {
        Some(ours) => Some(ours),
        None if super::ledger::has_table(conn, "__diesel_schema_migrations")? => {
            // Only simdb's versions: the host's share that table.
            let known = embedded_versions::<Sqlite>(&SQLITE_MIGRATIONS)?;
            let rows: Vec<Version> =
                diesel::sql_query("SELECT version FROM __diesel_schema_migrations").load(conn)?;
            Some(
                rows.into_iter()
                    .map(|v| v.version)
                    .filter(|v| known.contains(v))
                    .collect(),
            )
        }
        None => None,
    };
    check_versions(
        applied,
        embedded_versions::<Sqlite>(&SQLITE_MIGRATIONS)?,
        url,
    )
}

#[cfg(feature = "postgres")]
pub(crate) fn check_schema_postgres(
    conn: &mut PgConnection,
    url: &str,
    schema: &str,
) -> Result<()> {
    use super::privileges::{self, Access};
    privileges::check_usage(conn, schema, Access::Read)?;
    privileges::check_tables(conn, schema, Access::Read)?;
    let known = embedded_versions::<Pg>(&POSTGRES_MIGRATIONS)?;
    let Some(applied) = super::pg_ledger::versions(conn, schema, &known)? else {
        // Laid out by the release before namespacing: a migration moves it.
        if schema != "public" && table_exists(conn, "public", "simulations")? {
            return Err(Error::SchemaTooOld {
                missing_version: format!("the move into schema {schema}"),
                url: url.to_string(),
            });
        }
        return Err(Error::NoSchema {
            url: url.to_string(),
        });
    };
    check_versions(Some(applied), known, url)
}
