//! simdb as a guest in the host application's own database, on both
//! backends: simdb's tables are `simdb_<name>` (on PostgreSQL also in their
//! own schema) and its migrations are booked apart from the host's, so the
//! host's real Diesel migrations (with its own `experiments`, `agents` and
//! `events`) run before or after simdb's and both keep working, down
//! migrations included; the host points foreign keys at simdb's rows and
//! joins across both.

mod common;
use common::fixtures::Host;
use common::*;

use simdb::diesel::prelude::*;
use simdb::diesel::sql_types::{BigInt, Double, Text};
use simdb::Backend;

use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

/// The host's own Diesel migrations: `2024-01-01` its tables,
/// `2024-02-01` its training runs with a foreign key into simdb's runs.
const HOST_SQLITE: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("tests/host_migrations/sqlite");
const HOST_POSTGRES: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("tests/host_migrations/postgres");

macro_rules! on_host {
    ($host:expr, |$c:ident, $m:ident| $body:expr) => {
        match $host {
            Host::Sqlite($c) => {
                let $m = HOST_SQLITE;
                $body
            }
            Host::Postgres($c) => {
                let $m = HOST_POSTGRES;
                $body
            }
        }
    };
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    v: String,
}

fn migration_failed(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::Migration(e.to_string())
}

impl Host {
    /// The host's next migration only.
    fn migrate_next(&mut self) -> Result<()> {
        on_host!(self, |c, m| c.run_next_migration(m).map(|_| ())).map_err(migration_failed)
    }

    fn migrate_all(&mut self) -> Result<()> {
        on_host!(self, |c, m| c.run_pending_migrations(m).map(|_| ())).map_err(migration_failed)
    }

    fn revert_last(&mut self) -> Result<()> {
        on_host!(self, |c, m| c.revert_last_migration(m).map(|_| ())).map_err(migration_failed)
    }

    /// The versions the host's Diesel harness says it applied.
    fn versions(&mut self) -> Result<Vec<String>> {
        let mut v: Vec<String> = on_host!(self, |c, _m| c.applied_migrations())
            .map_err(migration_failed)?
            .iter()
            .map(|v| v.to_string())
            .collect();
        v.sort();
        Ok(v)
    }

    fn count(&mut self, sql: &str) -> Result<i64> {
        Ok(on_host!(self, |c, _m| simdb::diesel::sql_query(sql)
            .get_result::<Count>(c))?
        .n)
    }
}

/// A recorded run of two policies; returns the simulation.
fn record(svc: &SimulationService) -> Result<Simulation> {
    let exp = svc.create_experiment(NewExperiment::new("foraging"))?;
    let sim = svc.create_simulation(NewSimulation::new(json!({})).experiment(&exp.id))?;
    svc.register_agents(
        &sim.id,
        &[
            NewAgent::new(0).policy("ppo", 1),
            NewAgent::new(1).policy("dqn", 1),
        ],
    )?;
    svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..10 {
        rec.agent_state(step, 0, 1.0, &json!({}))?;
        rec.agent_state(step, 1, 0.25, &json!({}))?;
    }
    rec.close()?;
    Ok(sim)
}

/// The host's rows and bookkeeping are as the host left them, and simdb's
/// own bookkeeping holds all of simdb's migrations.
fn host_untouched(host: &mut Host, db: &Database, host_versions: &[&str]) -> Result<()> {
    for table in ["experiments", "agents", "events"] {
        assert_eq!(
            host.count(&format!("SELECT COUNT(*) AS n FROM {table}"))?,
            1,
            "{table}"
        );
    }
    assert_eq!(host.versions()?, host_versions);
    assert_eq!(db.applied_migrations()?, db.embedded_migrations()?);
    Ok(())
}

/// The host's training runs point at a simdb run; one query over both on
/// simdb's connection; the run cannot be deleted from under the host.
fn cross_system(host: &mut Host, svc: &SimulationService, sim: &Simulation) -> Result<()> {
    host.run(&format!(
        "INSERT INTO training_runs (policy, simulation_key) VALUES ('ppo', {0}), ('dqn', {0})",
        sim.sim_key
    ))?;
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Ranked {
        #[diesel(sql_type = Text)]
        policy: String,
        #[diesel(sql_type = Double)]
        reward: f64,
    }
    // The same SQL on both backends: the host's tables and simdb's meet
    // without qualification (simdb's connections also search `public`).
    let ranked: Vec<Ranked> = simdb::with_connection!(svc.database().connection()?, |c| {
        simdb::diesel::sql_query(
            "SELECT t.policy AS policy, SUM(s.total) / CAST(SUM(s.n) AS DOUBLE PRECISION) AS reward
             FROM training_runs t
             JOIN simdb_agents a ON a.sim_key = t.simulation_key AND a.policy_name = t.policy
             JOIN simdb_agent_totals s ON s.sim_key = a.sim_key AND s.agent_index = a.agent_index
             GROUP BY t.policy ORDER BY reward DESC",
        )
        .load(c)?
    });
    assert_eq!(
        ranked,
        vec![
            Ranked {
                policy: "ppo".into(),
                reward: 1.0
            },
            Ranked {
                policy: "dqn".into(),
                reward: 0.25
            }
        ]
    );
    let refused = svc.delete_simulation(&sim.id);
    assert!(matches!(
        refused,
        Err(Error::InvalidInput {
            field: "simulation",
            ..
        })
    ));
    assert_eq!(svc.simulation(&sim.id)?.id, sim.id);
    assert_eq!(svc.agent_states(&sim.id, 0, 0..10)?.len(), 10);
    Ok(())
}

const FIRST: &str = "20240101000000";
const SECOND: &str = "20240201000000";

backend_tests! {
    fn a_deferred_foreign_key_refuses_a_delete_at_commit(db) {
        let svc = service(db);
        let sim = record(&svc)?;
        let mut host = Host::open(db.url())?;
        let schema = if db.backend() == simdb::Backend::Postgres { "simdb." } else { "" };
        host.run(&format!(
            "CREATE TABLE host_links (id INTEGER PRIMARY KEY, sim_key INTEGER NOT NULL
                 REFERENCES {schema}simdb_simulations(sim_key) DEFERRABLE INITIALLY DEFERRED)"
        ))?;
        host.run(&format!("INSERT INTO host_links (id, sim_key) VALUES (1, {})", sim.sim_key))?;
        let refused = svc.delete_simulation(&sim.id);
        assert!(
            matches!(refused, Err(Error::InvalidInput { field: "simulation", .. })),
            "{refused:?}"
        );
        // Nothing changed.
        assert_eq!(svc.simulation(&sim.id)?.id, sim.id);
        assert_eq!(svc.agent_states(&sim.id, 0, 0..10)?.len(), 10);
        host.run("DELETE FROM host_links")?;
        svc.delete_simulation(&sim.id)?;
        assert!(matches!(svc.simulation(&sim.id), Err(Error::NotFound { .. })));
        Ok(())
    }

    fn host_migrations_first_then_simdb(db) {
        let empty = TestDatabase::empty(db.backend())?;
        let mut host = Host::open(empty.url())?;
        host.migrate_next()?;
        let database = Database::open(empty.url())?;
        let svc = SimulationService::new(database.clone());
        let sim = record(&svc)?;
        host_untouched(&mut host, &database, &[FIRST])?;
        // The host's next migration points a foreign key at simdb's runs.
        host.migrate_all()?;
        host_untouched(&mut host, &database, &[FIRST, SECOND])?;
        cross_system(&mut host, &svc, &sim)?;
        // simdb reopens; the host's harness still reverts and reapplies its
        // own last migration (simdb's newer versions are not in its way).
        let svc = SimulationService::new(Database::open(empty.url())?);
        host.revert_last()?;
        host_untouched(&mut host, svc.database(), &[FIRST])?;
        host.migrate_all()?;
        host_untouched(&mut host, svc.database(), &[FIRST, SECOND])?;
        assert_eq!(svc.simulation(&sim.id)?.id, sim.id);
        let _ = db;
        Ok(())
    }

    fn simdb_first_then_host_migrations(db) {
        let empty = TestDatabase::empty(db.backend())?;
        let database = Database::open(empty.url())?;
        let svc = SimulationService::new(database.clone());
        let sim = record(&svc)?;
        let mut host = Host::open(empty.url())?;
        assert!(host.versions()?.is_empty(), "simdb booked nothing in the host's table");
        host.migrate_all()?;
        let svc = SimulationService::new(Database::open(empty.url())?);
        host_untouched(&mut host, svc.database(), &[FIRST, SECOND])?;
        cross_system(&mut host, &svc, &sim)?;
        // Once the host's rows let go of the run, it can be deleted.
        host.run("DELETE FROM training_runs")?;
        svc.delete_simulation(&sim.id)?;
        let _ = db;
        Ok(())
    }

    /// A host that runs its own Diesel migrations on simdb's connection
    /// (whose search path starts with simdb's schema on PostgreSQL) books
    /// its versions beside simdb's tables; simdb judges "too new" by its
    /// own ledger only, so every later open still works.
    fn host_migrations_on_simdbs_connection_leave_simdb_openable(db) {
        let empty = TestDatabase::empty(db.backend())?;
        let database = Database::open(empty.url())?;
        let svc = SimulationService::new(database.clone());
        let sim = record(&svc)?;
        match database.connection()? {
            simdb::DbConnection::Sqlite(mut c) => {
                (*c).run_next_migration(HOST_SQLITE).map_err(migration_failed)?;
            }
            simdb::DbConnection::Postgres(mut c) => {
                (*c).run_next_migration(HOST_POSTGRES).map_err(migration_failed)?;
            }
        }
        let again = Database::open(empty.url())?;
        assert_eq!(again.applied_migrations()?, again.embedded_migrations()?);
        assert_eq!(SimulationService::new(again).simulation(&sim.id)?.id, sim.id);
        let read_only = Database::builder(empty.url()).read_only(true).open()?;
        assert_eq!(SimulationService::new(read_only).simulation(&sim.id)?.id, sim.id);
        let _ = db;
        Ok(())
    }

    /// A host table that happens to be called `simulations` is not taken for
    /// an earlier simdb's and is never touched.
    fn a_hosts_simulations_table_stays_the_hosts(db) {
        let empty = TestDatabase::empty(db.backend())?;
        let mut host = Host::open(empty.url())?;
        host.migrate_next()?;
        host.run("CREATE TABLE simulations (id INTEGER PRIMARY KEY, title TEXT);
                  INSERT INTO simulations (id, title) VALUES (1, 'the host''s');")?;
        let svc = SimulationService::new(Database::open(empty.url())?);
        record(&svc)?;
        assert_eq!(host.count("SELECT COUNT(*) AS n FROM simulations")?, 1);
        assert_eq!(svc.list_simulations(&SimulationFilter::new())?.len(), 1);
        host_untouched(&mut host, svc.database(), &[FIRST])?;
        let _ = db;
        Ok(())
    }
}

/// PostgreSQL: simdb's schema name is settable, and each schema is its own.
#[test]
fn another_schema_is_another_simdb() -> Result<()> {
    let db = TestDatabase::empty(Backend::Postgres)?;
    let svc = SimulationService::new(Database::open(db.url())?);
    record(&svc)?;
    let other = SimulationService::new(Database::builder(db.url()).schema("sims_b").open()?);
    assert!(other.list_simulations(&SimulationFilter::new())?.is_empty());
    assert_eq!(svc.list_simulations(&SimulationFilter::new())?.len(), 1);
    assert!(matches!(
        Database::builder(db.url()).schema("Bad-Name").open(),
        Err(Error::InvalidInput { .. })
    ));
    Ok(())
}

#[derive(QueryableByName)]
struct Object {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
}

/// Every object of the database but the system's: SQLite's schema table;
/// PostgreSQL's relations (tables, indexes, views, sequences) and schemas.
fn objects(host: &mut Host) -> Result<Vec<(String, String)>> {
    let rows: Vec<Object> = match host {
        Host::Sqlite(c) => simdb::diesel::sql_query(
            "SELECT type AS kind, name FROM sqlite_master ORDER BY type, name",
        )
        .load(c)?,
        Host::Postgres(c) => simdb::diesel::sql_query(
            "SELECT kind, name FROM ( \
               SELECT c.relkind::text AS kind, n.nspname || '.' || c.relname AS name \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
               UNION ALL SELECT 'schema', nspname || '.' FROM pg_namespace \
               WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%' \
             ) AS o ORDER BY kind, name",
        )
        .load(c)?,
    };
    Ok(rows.into_iter().map(|o| (o.kind, o.name)).collect())
}

fn journal_mode(host: &mut Host) -> Result<String> {
    let Host::Sqlite(c) = host else {
        return Ok(String::new());
    };
    Ok(
        simdb::diesel::sql_query("SELECT journal_mode AS v FROM pragma_journal_mode")
            .get_result::<Version>(c)?
            .v,
    )
}

backend_tests! {
    /// Another application's database. A read-only or refused open changes
    /// nothing (on SQLite not even the journal mode); a normal open adds
    /// only simdb's objects: named `simdb_...` (and SQLite's own) on SQLite,
    /// inside schema `simdb` on PostgreSQL. Then, on SQLite, WAL.
    fn a_foreign_database_gains_only_simdb_objects(db) {
        let empty = TestDatabase::empty(db.backend())?;
        let sqlite = db.backend() == Backend::Sqlite;
        let mut host = Host::open(empty.url())?;
        host.migrate_next()?;
        host.run(
            "CREATE INDEX experiments_title ON experiments (title);
             CREATE VIEW recent AS SELECT * FROM events;",
        )?;
        let before = objects(&mut host)?;
        if sqlite {
            assert_eq!(journal_mode(&mut host)?, "delete");
        }

        let ro = Database::builder(empty.url()).read_only(true).open();
        assert!(matches!(ro, Err(Error::NoSchema { .. })), "{:?}", ro.err());
        assert_eq!(objects(&mut host)?, before);
        // Bookkeeping from a newer simdb: the normal open is refused.
        let (newer, gone) = if sqlite {
            (
                "CREATE TABLE simdb_migrations (version TEXT PRIMARY KEY NOT NULL, run_on TEXT);
                 INSERT INTO simdb_migrations (version) VALUES ('29991231000000');",
                "DROP TABLE simdb_migrations",
            )
        } else {
            (
                "CREATE SCHEMA simdb;
                 CREATE TABLE simdb.simdb_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL,
                     run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
                 INSERT INTO simdb.simdb_migrations (version) VALUES ('29991231000000');",
                "DROP SCHEMA simdb CASCADE",
            )
        };
        host.run(newer)?;
        let refused = Database::open(empty.url());
        assert!(matches!(refused, Err(Error::SchemaTooNew { .. })), "{:?}", refused.err());
        if sqlite {
            assert_eq!(journal_mode(&mut host)?, "delete");
        }
        host.run(gone)?;
        assert_eq!(objects(&mut host)?, before);

        let svc = SimulationService::new(Database::open(empty.url())?);
        record(&svc)?;
        let after = objects(&mut host)?;
        for object in &before {
            assert!(after.contains(object), "{object:?} is gone");
        }
        let added: Vec<_> = after.iter().filter(|o| !before.contains(o)).collect();
        assert!(added.len() >= 13, "{added:?}");
        for (kind, name) in added {
            let ours = if sqlite {
                name.starts_with("simdb_") || name.starts_with("sqlite_")
            } else {
                name.starts_with("simdb.")
            };
            assert!(ours, "simdb added {kind} {name}");
        }
        if sqlite {
            assert_eq!(journal_mode(&mut host)?, "wal");
        }
        assert_eq!(host.versions()?, [FIRST]);
        let _ = db;
        Ok(())
    }
}
