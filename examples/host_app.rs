//! A host application that keeps its own tables beside simdb's in one
//! database: its policies and training runs (a foreign key into simdb's
//! simulations), its own Diesel migrations, and one Diesel query across both
//! that ranks the host's policies by the reward their agents earned.
//!
//! ```sh
//! cargo run --example host_app                       # host_app.db (SQLite)
//! cargo run --example host_app -- postgres://me@localhost/app
//! ```

use std::error::Error;

use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use serde_json::json;
use simdb::{Database, NewAgent, NewExperiment, NewSimulation, SimulationService};

/// The host's own Diesel schema, and the columns of simdb's tables it joins.
///
/// Diesel lets tables share a query only when one crate declares them all
/// (`allow_tables_to_appear_in_same_query!` between two foreign crates'
/// tables is refused by Rust's orphan rule), so the host declares the few
/// simdb columns it reads, under simdb's table names (`simdb_<name>` on both
/// backends); on PostgreSQL simdb's connections find them by their search
/// path (`simdb`, then `public`).
mod host {
    diesel::table! {
        policies (policy_id) {
            policy_id -> Integer,
            name -> Text,
            version -> Integer,
        }
    }
    diesel::table! {
        training_runs (run_id) {
            run_id -> Integer,
            policy_id -> Integer,
            simulation_key -> Integer,
        }
    }
    diesel::table! {
        /// simdb's agents (the columns the host reads).
        simdb_agents (sim_key, agent_index) {
            sim_key -> Integer,
            agent_index -> Integer,
            policy_name -> Nullable<Text>,
        }
    }
    diesel::table! {
        /// simdb's per-agent reward totals (rows and their sum; the states
        /// themselves are in compressed chunks).
        simdb_agent_totals (sim_key, agent_index) {
            sim_key -> Integer,
            agent_index -> Integer,
            n -> BigInt,
            total -> Double,
        }
    }
    diesel::joinable!(training_runs -> policies (policy_id));
    diesel::allow_tables_to_appear_in_same_query!(
        policies,
        training_runs,
        simdb_agents,
        simdb_agent_totals
    );
}
use host::{policies, simdb_agent_totals, simdb_agents, training_runs};

const HOST_SQLITE: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("examples/host_app/migrations/sqlite");
const HOST_POSTGRES: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("examples/host_app/migrations/postgres");

/// The host runs its own migrations with its own connection, as it always
/// did; simdb's schema is already there for its foreign key.
fn host_migrations(url: &str) -> Result<(), Box<dyn Error + Send + Sync>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut conn = diesel::PgConnection::establish(url)?;
        conn.run_pending_migrations(HOST_POSTGRES)?;
    } else {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let mut conn = diesel::SqliteConnection::establish(path)?;
        conn.run_pending_migrations(HOST_SQLITE)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "host_app.db".into());
    // 1. simdb opens the host's database: its tables are `simdb_<name>` (on
    //    PostgreSQL in schema `simdb` too) and its migrations are booked
    //    apart from the host's; nothing of the host's changes.
    let db = Database::open(&url)?;
    let svc = SimulationService::new(db.clone());
    // 2. The host's own migrations, in the same database.
    host_migrations(&url)?;

    // 3. The host's policies, and a simdb run that trains each of them.
    let exp = match svc.experiment_by_name("host-app") {
        Ok(exp) => exp,
        Err(_) => svc.create_experiment(NewExperiment::new("host-app"))?,
    };
    for (name, version, skill) in [("ppo", 3, 0.8), ("dqn", 1, 0.5), ("random", 1, 0.1)] {
        simdb::with_connection!(db.connection()?, |c| {
            diesel::insert_into(policies::table)
                .values((policies::name.eq(name), policies::version.eq(version)))
                .on_conflict(policies::name)
                .do_nothing()
                .execute(c)?
        });
        let sim = svc.create_simulation(
            NewSimulation::new(json!({"policy": name, "skill": skill})).experiment(&exp.id),
        )?;
        let roster: Vec<NewAgent> = (0..4)
            .map(|i| NewAgent::new(i).policy(name, version))
            .collect();
        svc.register_agents(&sim.id, &roster)?;
        svc.start_simulation(&sim.id)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..200 {
            for agent in 0..4 {
                let reward = skill * (1.0 + ((step * 7 + agent as i64) % 10) as f64 / 10.0);
                rec.agent_state(step, agent, reward, &json!({"step": step}))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        svc.complete_simulation(&sim.id, json!({}))?;
        // The host links its training run to simdb's row.
        simdb::with_connection!(db.connection()?, |c| {
            let policy: i32 = policies::table
                .filter(policies::name.eq(name))
                .select(policies::policy_id)
                .first(c)?;
            diesel::insert_into(training_runs::table)
                .values((
                    training_runs::policy_id.eq(policy),
                    training_runs::simulation_key.eq(sim.sim_key),
                ))
                .execute(c)?
        });
    }

    // 4. One Diesel query over the host's tables and simdb's: the host's
    //    policies ranked by the mean reward their agents earned.
    let rows: Vec<(String, i64, f64)> = simdb::with_connection!(db.connection()?, |c| {
        training_runs::table
            .inner_join(policies::table)
            .inner_join(
                simdb_agents::table.on(simdb_agents::sim_key
                    .eq(training_runs::simulation_key)
                    .and(simdb_agents::policy_name.eq(policies::name.nullable()))),
            )
            .inner_join(
                simdb_agent_totals::table.on(simdb_agent_totals::sim_key
                    .eq(simdb_agents::sim_key)
                    .and(simdb_agent_totals::agent_index.eq(simdb_agents::agent_index))),
            )
            .select((
                policies::name,
                simdb_agent_totals::n,
                simdb_agent_totals::total,
            ))
            .load(c)?
    });
    // Mean reward per agent-step of each policy: its totals over their rows.
    let mut sums: std::collections::BTreeMap<String, (i64, f64)> = Default::default();
    for (name, n, total) in rows {
        let entry = sums.entry(name).or_default();
        entry.0 += n;
        entry.1 += total;
    }
    let mut ranking: Vec<(String, Option<f64>)> = sums
        .into_iter()
        .map(|(name, (n, total))| (name, (n > 0).then(|| total / n as f64)))
        .collect();
    ranking.sort_by(|a, b| b.1.unwrap_or(0.0).total_cmp(&a.1.unwrap_or(0.0)));
    println!(
        "policies ranked by the mean reward of their agents ({}):",
        db.url()
    );
    for (rank, (name, reward)) in ranking.iter().enumerate() {
        println!("{:>2}. {name:<8} {:.4}", rank + 1, reward.unwrap_or(0.0));
    }
    if ranking.first().map(|r| r.0.as_str()) != Some("ppo") {
        return Err("expected ppo to win".into());
    }
    Ok(())
}
