//! simdb as a guest in the host application's PostgreSQL database: its
//! tables and migration bookkeeping live in their own schema (`simdb`), the
//! host's Diesel migrations (with their own `experiments`, `agents` and
//! `events`) run before or after simdb's, both keep working, and the host
//! can point foreign keys at simdb's rows and join across both.

mod common;
use common::*;

use simdb::diesel::connection::SimpleConnection;
use simdb::diesel::prelude::*;
use simdb::diesel::sql_types::{BigInt, Double, Text};

/// The host's first Diesel migration, as Diesel would record it.
const HOST_V1: &str = "
    CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
        version VARCHAR(50) PRIMARY KEY NOT NULL,
        run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
    CREATE TABLE public.experiments (id SERIAL PRIMARY KEY, title TEXT NOT NULL);
    CREATE TABLE public.agents (id SERIAL PRIMARY KEY, login TEXT NOT NULL);
    CREATE TABLE public.events (id SERIAL PRIMARY KEY, what TEXT NOT NULL);
    INSERT INTO public.experiments (title) VALUES ('host experiment');
    INSERT INTO public.agents (login) VALUES ('alice');
    INSERT INTO public.events (what) VALUES ('signup');
    INSERT INTO public.__diesel_schema_migrations (version) VALUES ('20240101000000');";

/// The host's second migration: its training runs point at simdb's runs.
const HOST_V2: &str = "
    CREATE TABLE public.training_runs (
        id SERIAL PRIMARY KEY,
        policy TEXT NOT NULL,
        simulation_key INTEGER NOT NULL REFERENCES simdb.simulations (sim_key) ON DELETE RESTRICT);
    INSERT INTO public.__diesel_schema_migrations (version) VALUES ('20240201000000');";

fn host(url: &str, sql: &str) -> Result<()> {
    let mut conn = simdb::diesel::PgConnection::establish(url).map_err(|e| Error::Connection {
        url: "host".into(),
        message: e.to_string(),
    })?;
    conn.batch_execute(sql)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(url: &str, sql: &str) -> Result<i64> {
    let mut conn = simdb::diesel::PgConnection::establish(url).map_err(|e| Error::Connection {
        url: "host".into(),
        message: e.to_string(),
    })?;
    Ok(simdb::diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)?
        .n)
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

fn host_untouched(url: &str) -> Result<()> {
    for table in ["experiments", "agents", "events"] {
        assert_eq!(
            count(url, &format!("SELECT COUNT(*) AS n FROM public.{table}"))?,
            1,
            "{table}"
        );
    }
    // simdb judges its schema by its own bookkeeping only.
    assert_eq!(count(url, "SELECT COUNT(*) AS n FROM public.__diesel_schema_migrations WHERE version LIKE '2026%'")?, 0);
    assert!(
        count(
            url,
            "SELECT COUNT(*) AS n FROM simdb.__diesel_schema_migrations"
        )? >= 2
    );
    Ok(())
}

fn cross_system(url: &str, svc: &SimulationService, sim: &Simulation) -> Result<()> {
    host(url, HOST_V2)?;
    host(url, &format!(
        "INSERT INTO public.training_runs (policy, simulation_key) VALUES ('ppo', {0}), ('dqn', {0})",
        sim.sim_key
    ))?;
    // One query, one connection: the host's runs ranked by the reward their
    // policies' agents earned in simdb.
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Ranked {
        #[diesel(sql_type = Text)]
        policy: String,
        #[diesel(sql_type = Double)]
        reward: f64,
    }
    let ranked: Vec<Ranked> = simdb::with_connection!(svc.database().connection()?, |c| {
        simdb::diesel::sql_query(
            "SELECT t.policy AS policy, AVG(s.reward) AS reward
             FROM public.training_runs t
             JOIN agents a ON a.sim_key = t.simulation_key AND a.policy_name = t.policy
             JOIN agent_states s ON s.sim_key = a.sim_key AND s.agent_index = a.agent_index
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
    // A run the host points at cannot be deleted from under it.
    assert!(matches!(
        svc.delete_simulation(&sim.id),
        Err(Error::InvalidInput {
            field: "simulation",
            ..
        })
    ));
    assert_eq!(svc.simulation(&sim.id)?.id, sim.id);
    Ok(())
}

#[test]
fn host_migrations_first_then_simdb() -> Result<()> {
    let db = TestDatabase::empty(simdb::Backend::Postgres)?;
    host(db.url(), HOST_V1)?;
    let svc = SimulationService::new(Database::open(db.url())?);
    let sim = record(&svc)?;
    host_untouched(db.url())?;
    cross_system(db.url(), &svc, &sim)?;
    // Reopening after the host's second migration still works.
    SimulationService::new(Database::open(db.url())?).simulation(&sim.id)?;
    host_untouched(db.url())
}

#[test]
fn simdb_first_then_host_migrations() -> Result<()> {
    let db = TestDatabase::empty(simdb::Backend::Postgres)?;
    let svc = SimulationService::new(Database::open(db.url())?);
    let sim = record(&svc)?;
    host(db.url(), HOST_V1)?;
    let svc = SimulationService::new(Database::open(db.url())?);
    host_untouched(db.url())?;
    cross_system(db.url(), &svc, &sim)?;
    // A schema of another name is just as separate.
    let other = SimulationService::new(Database::builder(db.url()).schema("sims_b").open()?);
    assert!(other.list_simulations(&SimulationFilter::new())?.is_empty());
    assert!(matches!(
        Database::builder(db.url()).schema("Bad-Name").open(),
        Err(Error::InvalidInput { .. })
    ));
    Ok(())
}

/// A host table that happens to be called `simulations` (and the host's own
/// Diesel bookkeeping) is not taken for an earlier simdb and never moved.
#[test]
fn a_hosts_simulations_table_stays_the_hosts() -> Result<()> {
    let db = TestDatabase::empty(simdb::Backend::Postgres)?;
    host(db.url(), HOST_V1)?;
    host(
        db.url(),
        "CREATE TABLE public.simulations (id SERIAL PRIMARY KEY, title TEXT);
                    INSERT INTO public.simulations (title) VALUES ('the host''s');",
    )?;
    let svc = SimulationService::new(Database::open(db.url())?);
    record(&svc)?;
    assert_eq!(
        count(db.url(), "SELECT COUNT(*) AS n FROM public.simulations")?,
        1
    );
    assert_eq!(
        count(db.url(), "SELECT COUNT(*) AS n FROM simdb.simulations")?,
        1
    );
    host_untouched(db.url())
}
