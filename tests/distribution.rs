//! Ready for a distributed PostgreSQL (issue 24), read off the catalog of a
//! freshly migrated database and of one upgraded from the earliest
//! release: Citus-style distribution by `sim_key` needs every primary key
//! and unique constraint of the per-simulation tables to include `sim_key`,
//! every foreign key between them to include it, and the shared tables
//! (experiments, metric names, the simulations themselves) to be reference
//! tables that point at no per-simulation table. A new table must be
//! classified here before this test passes. PostgreSQL only: it is a rule
//! of a PostgreSQL extension.

mod common;
use common::*;

use std::collections::BTreeSet;

use simdb::diesel::prelude::*;
use simdb::diesel::sql_types::{Array, Text};

/// Tables sharded by `sim_key` (README, "Scaling out").
const DISTRIBUTED: [&str; 11] = [
    "simdb_agent_memories",
    "simdb_agent_metric_chunks",
    "simdb_agent_state_chunks",
    "simdb_agent_totals",
    "simdb_agents",
    "simdb_events",
    "simdb_simulation_steps",
    "simdb_simulation_tags",
    "simdb_step_metrics",
    "simdb_step_rollups",
    "simdb_block_rollups",
];

/// Tables every node holds whole.
const REFERENCE: [&str; 5] = [
    "simdb_experiments",
    "simdb_metric_names",
    "simdb_migrations",
    "simdb_pending_deletes",
    "simdb_simulations",
];

#[derive(QueryableByName, Debug)]
struct Key {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    definition: String,
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
    #[diesel(sql_type = Text)]
    target: String,
    #[diesel(sql_type = Array<Text>)]
    target_columns: Vec<String>,
}

#[derive(QueryableByName, Debug)]
struct Table {
    #[diesel(sql_type = Text)]
    relname: String,
}

/// What breaks distribution by `sim_key` in the `simdb` schema of `url`.
fn violations(url: &str) -> Result<Vec<String>> {
    // simdb migrates it first; then the catalog is read as a host would.
    drop(Database::open(url)?);
    let mut c = <PgConnection as Connection>::establish(url).map_err(|e| Error::Connection {
        url: "test".into(),
        message: e.to_string(),
    })?;
    let tables: Vec<Table> = simdb::diesel::sql_query(
        "SELECT c.relname::text AS relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'simdb' AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .load(&mut c)?;
    let keys: Vec<Key> = simdb::diesel::sql_query(
        "SELECT k.conrelid::regclass::text AS table_name, k.contype::text AS kind,
                pg_get_constraintdef(k.oid) AS definition,
                ARRAY(SELECT a.attname::text FROM unnest(k.conkey) u(n)
                      JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n) AS columns,
                COALESCE(k.confrelid::regclass::text, '') AS target,
                ARRAY(SELECT a.attname::text FROM unnest(COALESCE(k.confkey, '{}')) u(n)
                      JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n) AS target_columns
         FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
         WHERE n.nspname = 'simdb' AND k.contype IN ('p', 'u', 'f', 'x')",
    )
    .load(&mut c)?;
    let bare = |t: &str| t.rsplit('.').next().unwrap_or(t).to_string();
    let distributed: BTreeSet<&str> = DISTRIBUTED.into_iter().collect();
    let reference: BTreeSet<&str> = REFERENCE.into_iter().collect();
    let mut found = Vec::new();
    for t in &tables {
        let name = t.relname.as_str();
        if !distributed.contains(name) && !reference.contains(name) {
            found.push(format!(
                "{name}: neither distributed nor reference; classify it"
            ));
        }
    }
    for k in &keys {
        let table = bare(&k.table_name);
        let target = bare(&k.target);
        let has_key = k.columns.iter().any(|c| c == "sim_key");
        match (distributed.contains(table.as_str()), k.kind.as_str()) {
            (true, "p" | "u" | "x") if !has_key => {
                found.push(format!("{table}: {} lacks sim_key", k.definition));
            }
            (true, "f") if distributed.contains(target.as_str()) => {
                let paired = k
                    .columns
                    .iter()
                    .zip(&k.target_columns)
                    .any(|(a, b)| a == "sim_key" && b == "sim_key");
                if !paired {
                    found.push(format!(
                        "{table}: {} joins two distributed tables without sim_key",
                        k.definition
                    ));
                }
            }
            (false, "f") if distributed.contains(target.as_str()) => {
                found.push(format!(
                    "{table} (reference): {} points at a distributed table",
                    k.definition
                ));
            }
            _ => {}
        }
    }
    for name in &distributed {
        if !tables.iter().any(|t| t.relname == *name) {
            found.push(format!("{name}: classified here but not in the schema"));
        }
        if !keys
            .iter()
            .any(|k| bare(&k.table_name) == *name && k.kind == "p")
        {
            found.push(format!("{name}: no primary key"));
        }
    }
    Ok(found)
}

#[test]
fn postgres_keys_allow_distribution_by_sim_key() -> Result<()> {
    let db = TestDatabase::postgres()?;
    assert_eq!(violations(db.url())?, Vec::<String>::new());
    Ok(())
}

#[test]
fn postgres_an_upgraded_database_allows_distribution_by_sim_key() -> Result<()> {
    let db = common::fixtures::fixture(simdb::Backend::Postgres, "v1")?;
    assert_eq!(violations(db.url())?, Vec::<String>::new());
    Ok(())
}
