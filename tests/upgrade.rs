//! Databases written by earlier releases upgrade in place on first open, on
//! both backends, with every row intact; the upgraded runs then behave as
//! new ones (watermark, resume, keys). The fixtures were made with each
//! release's own code (`tests/fixtures/README.md`):
//! - `v1.*`: the first release (no watermark, leases, rollups or namespacing);
//! - `v2.*`: the release before simdb's tables got their `simdb_` prefix
//!   (PostgreSQL: schema `simdb`; SQLite: unprefixed names);
//! - `v3.*`: the last release of the row-per-agent-step layout, before
//!   per-agent data was stored in chunks.

mod common;
use common::fixtures::{fixture, host};
use common::*;

use std::time::Duration;

use simdb::Backend;

/// Each fixture holds 1 experiment; 3 simulations (completed, interrupted,
/// running) of 4 agents x 50 steps, an agent metric per agent-step, step
/// metric per step, a memory every 10 steps per agent.
const STATES: i64 = 3 * 4 * 50;

/// Opens an earlier release's database and checks every row of it.
fn upgrades_in_place(backend: Backend, version: &str) -> Result<()> {
    let old = fixture(backend, version)?;
    // Read-only, an earlier layout is reported, not upgraded or misread.
    assert!(
        matches!(
            Database::builder(old.url()).read_only(true).open(),
            Err(Error::SchemaTooOld { .. })
        ),
        "{version}"
    );
    let database = Database::open(old.url())?;
    assert_eq!(
        database.applied_migrations()?,
        database.embedded_migrations()?
    );
    let svc = SimulationService::new(database.clone());
    let sims = svc.list_simulations(&SimulationFilter::new())?;
    assert_eq!(sims.len(), 3);
    let mut statuses: Vec<String> = sims.iter().map(|s| s.status.to_string()).collect();
    statuses.sort();
    assert_eq!(statuses, ["completed", "interrupted", "running"]);
    let mut total = (0, 0, 0, 0, 0);
    for sim in &sims {
        let c = table_counts(&database, sim.sim_key)?;
        assert_eq!(c, (200, 50, 50, 200, 20), "{}", sim.id);
        total.0 += c.0;
        // Recorded before the watermark existed: committed up to its last step.
        assert_eq!(sim.committed_step, Some(49));
        assert_eq!(svc.simulation_tags(&sim.id)?.len(), 2);
        assert_eq!(svc.agents(&sim.id)?.len(), 4);
        assert!(!svc.events(&sim.id)?.is_empty());
        let first = svc.agent_states(&sim.id, 1, 0..1)?;
        assert_eq!(first[0].state, json!({"energy": 1, "pos": [1, 0]}));
        // The migration rolled up every row the earlier release wrote.
        assert_rollups_match_rows(&svc, &sim.id)?;
    }
    assert_eq!(total.0, STATES);
    let exp = svc.experiment_by_name("fixture-sweep")?;
    assert_eq!(
        (exp.description.as_str(), exp.external_ref.as_deref()),
        (format!("{version} fixture").as_str(), Some("mlflow:42"))
    );

    // The interrupted run resumes at its last step, losing nothing.
    let interrupted = sims
        .iter()
        .find(|s| s.status == SimulationStatus::Interrupted)
        .ok_or(Error::RecorderClosed)?;
    let point = svc.resume_with(&interrupted.id, Duration::ZERO)?;
    assert_eq!(
        (
            point.last_complete_step,
            point.discarded_rows,
            point.states.len()
        ),
        (Some(49), 0, 4)
    );
    let mut rec = svc.recorder(&interrupted.id)?;
    for agent in 0..4 {
        rec.agent_state(50, agent, 1.0, &json!({}))?;
    }
    rec.end_step(50)?;
    assert_eq!(rec.flush()?, Some(50));
    rec.close()?;

    // Keys after the upgrade are new, even after deleting the newest.
    let newest = sims.iter().map(|s| s.sim_key).max().unwrap_or(0);
    let a = running_sim(&svc, 1)?;
    assert!(a.sim_key > newest);
    svc.delete_simulation(&a.id)?;
    assert!(running_sim(&svc, 1)?.sim_key > a.sim_key);
    drop(old);
    Ok(())
}

backend_tests! {
    fn v1_database_upgrades_in_place(db) {
        upgrades_in_place(db.backend(), "v1")
    }

    fn v2_database_upgrades_in_place(db) {
        upgrades_in_place(db.backend(), "v2")
    }

    fn v3_database_upgrades_in_place(db) {
        upgrades_in_place(db.backend(), "v3")
    }
}

/// An earlier release's database shared with a host: the host's own
/// Diesel migration, its tables and a foreign key into simdb's runs. After
/// the upgrade the host's rows and bookkeeping are its own as before, and
/// its foreign key follows simdb's tables (moved and renamed).
fn shared_with_a_host_upgrades(backend: Backend, version: &str) -> Result<()> {
    let old = fixture(backend, version)?;
    let sims = match (backend, version) {
        (Backend::Sqlite, "v3") => "simdb_simulations",
        (Backend::Sqlite, _) => "simulations",
        (Backend::Postgres, "v1") => "public.simulations",
        (Backend::Postgres, "v3") => "simdb.simdb_simulations",
        (Backend::Postgres, _) => "simdb.simulations",
    };
    host(
        old.url(),
        &format!(
            "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
                 version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000');
             CREATE TABLE policies (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO policies (id, name) VALUES (1, 'ppo');
             CREATE TABLE training_runs (
                 id INTEGER PRIMARY KEY,
                 simulation_key INTEGER NOT NULL REFERENCES {sims} (sim_key) ON DELETE RESTRICT);
             INSERT INTO training_runs (id, simulation_key) SELECT 1, MIN(sim_key) FROM {sims};
             CREATE INDEX host_runs_by_name ON {sims} (name);"
        ),
    )?;
    let database = Database::open(old.url())?;
    assert_eq!(
        database.applied_migrations()?,
        database.embedded_migrations()?
    );
    let svc = SimulationService::new(database.clone());
    let mut sims = svc.list_simulations(&SimulationFilter::new())?;
    assert_eq!(sims.len(), 3);
    sims.sort_by_key(|s| s.sim_key);
    #[derive(simdb::diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = simdb::diesel::sql_types::Text)]
        name: String,
    }
    let names = |sql: &str| -> Result<Vec<String>> {
        Ok(simdb::with_connection!(database.connection()?, |c| {
            use simdb::diesel::RunQueryDsl;
            simdb::diesel::sql_query(sql)
                .load::<Name>(c)?
                .into_iter()
                .map(|n| n.name)
                .collect::<Vec<_>>()
        }))
    };
    let host_bookkeeping = match backend {
        Backend::Sqlite => "__diesel_schema_migrations",
        Backend::Postgres => "public.__diesel_schema_migrations",
    };
    assert_eq!(
        names(&format!(
            "SELECT CAST(version AS TEXT) AS name FROM {host_bookkeeping}"
        ))?,
        ["20240101000000"]
    );
    assert_eq!(names("SELECT name FROM policies")?, ["ppo"]);
    // The host's own index on simdb's table keeps its name (simdb renames
    // only its own indexes).
    let index_names = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'host_runs_by_name'"
        }
        Backend::Postgres => {
            "SELECT indexname::text AS name FROM pg_indexes WHERE indexname = 'host_runs_by_name'"
        }
    };
    assert_eq!(names(index_names)?, ["host_runs_by_name"]);
    // The host's foreign key now guards simdb's renamed table.
    assert!(matches!(
        svc.delete_simulation(&sims[0].id),
        Err(Error::InvalidInput { .. })
    ));
    svc.delete_simulation(&sims[1].id)?;
    assert_eq!(svc.list_simulations(&SimulationFilter::new())?.len(), 2);
    assert_eq!(
        names("SELECT CAST(simulation_key AS TEXT) AS name FROM training_runs")?,
        [sims[0].sim_key.to_string()]
    );
    Ok(())
}

backend_tests! {
    fn v1_database_shared_with_a_host_upgrades(db) {
        shared_with_a_host_upgrades(db.backend(), "v1")
    }

    fn v2_database_shared_with_a_host_upgrades(db) {
        shared_with_a_host_upgrades(db.backend(), "v2")
    }

    fn v3_database_shared_with_a_host_upgrades(db) {
        shared_with_a_host_upgrades(db.backend(), "v3")
    }
}

backend_tests! {
    /// A recorder of the previous release still heartbeats: the upgrade that
    /// renames its tables is refused, changing nothing, until its lease
    /// lapses.
    fn an_upgrade_waits_for_a_live_recorder_of_the_previous_release(db) {
        let old = fixture(db.backend(), "v2")?;
        let (sims, now, hour_ago) = match db.backend() {
            Backend::Sqlite => (
                "simulations",
                "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000+00:00'",
                "strftime('%Y-%m-%d %H:%M:%f', 'now', '-3600 seconds') || '000+00:00'",
            ),
            Backend::Postgres => ("simdb.simulations", "now()", "now() - interval '1 hour'"),
        };
        host(old.url(), &format!(
            "UPDATE {sims} SET lease_token = 7, heartbeat_at = {now} WHERE status = 'running'"
        ))?;
        match Database::open(old.url()) {
            Err(Error::Migration(message)) => assert!(message.contains("live recorder"), "{message}"),
            other => panic!("expected a refusal, got {:?}", other.err()),
        }
        // Nothing changed: the earlier release's table is still there, as it was.
        host(old.url(), &format!("UPDATE {sims} SET heartbeat_at = {hour_ago} WHERE lease_token = 7"))?;
        let database = Database::open(old.url())?;
        assert_eq!(database.applied_migrations()?, database.embedded_migrations()?);
        let svc = SimulationService::new(database);
        assert_eq!(svc.list_simulations(&SimulationFilter::new())?.len(), 3);
        let _ = db;
        Ok(())
    }
}
