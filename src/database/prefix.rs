//! Files written before simdb's tables carried the `simdb_` prefix
//! (migration `2026-11-27-000004_table_prefix`) get it on their first
//! normal open, on SQLite.
//!
//! A SQLite file has one namespace, so simdb's tables and indexes are named
//! `simdb_<name>`; the earlier migrations create those names on a new file
//! (a new file must never create a table a host may already have, such as
//! `experiments`). A file written by an earlier release has them without the
//! prefix, and SQL cannot rename conditionally, so this module renames them
//! in the migration transaction, just before the prefix migration records
//! the layout. `ALTER TABLE ... RENAME` also rewrites the references in every
//! other table, so a host's foreign keys into simdb's tables follow them.
//! (On PostgreSQL the prefix migration renames the tables itself.)

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;

use super::ledger::has_table;
use super::migrate::UNPREFIXED_TABLES;
use super::upgrade_guard::PREFIX_VERSION;
use crate::error::Result;

/// simdb's indexes as the releases before the prefix named them.
const UNPREFIXED_INDEXES: [&str; 6] = [
    "simulations_experiment",
    "simulations_status",
    "simulation_tags_tag",
    "agent_states_by_step",
    "agent_metrics_by_step",
    "events_by_simulation",
];

#[derive(diesel::QueryableByName)]
struct Index {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    sql: String,
}

/// Renames simdb's unprefixed tables and indexes, if `applied` (simdb's own
/// ledger) shows a schema from before the prefix. Runs inside the caller's
/// write transaction: all or nothing.
pub(crate) fn rename_unprefixed(conn: &mut SqliteConnection, applied: &[String]) -> Result<()> {
    // Only simdb's own schema from before the prefix: its ledger lists
    // simdb's migrations but not the prefix, so `simulations` is simdb's
    // (no host table of that name could have stood beside it).
    if applied.is_empty()
        || applied.iter().any(|v| v == PREFIX_VERSION)
        || !has_table(conn, "simulations")?
        || has_table(conn, "simdb_simulations")?
    {
        return Ok(());
    }
    let mut sql = String::new();
    for table in UNPREFIXED_TABLES {
        if has_table(conn, table)? {
            sql.push_str(&format!(
                "ALTER TABLE \"{table}\" RENAME TO \"simdb_{table}\";\n"
            ));
        }
    }
    conn.batch_execute(&sql)?;
    // Index names share the file's namespace too: simdb's are rebuilt under
    // the prefix (SQLite cannot rename an index). Any other index on these
    // tables is a host's, and keeps its name.
    let indexes: Vec<Index> = diesel::sql_query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    )
    .load(conn)?;
    for index in indexes
        .iter()
        .filter(|i| UNPREFIXED_INDEXES.contains(&i.name.as_str()))
    {
        let renamed = format!("simdb_{}", index.name);
        conn.batch_execute(&format!(
            "DROP INDEX \"{}\";\n{};",
            index.name,
            index.sql.replacen(&index.name, &renamed, 1)
        ))?;
    }
    tracing::info!("gave simdb's tables and indexes their simdb_ prefix (sqlite)");
    Ok(())
}
