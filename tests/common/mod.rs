//! Shared fixtures: the both-backends test macro and small builders.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod proxy;

pub use serde_json::{json, Value};
pub use simdb::test_support::TestDatabase;
pub use simdb::{
    AgentIndex, Database, Error, ExperimentId, NewAgent, NewExperiment, NewSimulation, Result,
    Simulation, SimulationFilter, SimulationId, SimulationService, SimulationStatus,
};

/// Runs each test body once on a fresh SQLite file and once on a fresh
/// PostgreSQL database: `name::sqlite` and `name::postgres`.
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* fn $name:ident($db:ident) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                $(#[$meta])*
                fn body($db: &TestDatabase) -> Result<()> $body

                #[test]
                fn sqlite() -> Result<()> {
                    body(&TestDatabase::sqlite()?)
                }

                #[test]
                fn postgres() -> Result<()> {
                    body(&TestDatabase::postgres()?)
                }
            }
        )*
    };
}
pub(crate) use backend_tests;

pub fn service(db: &TestDatabase) -> SimulationService {
    SimulationService::new(db.database().clone())
}

/// A running simulation with agents `0..agents` of kinds "a"/"b".
pub fn running_sim(svc: &SimulationService, agents: i32) -> Result<Simulation> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"agents": agents})))?;
    let new: Vec<NewAgent> = (0..agents)
        .map(|i| NewAgent::new(i).kind(if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    svc.register_agents(&sim.id, &new)?;
    svc.start_simulation(&sim.id)
}

/// A ~70-byte state like the canonical workload's.
pub fn state(step: i64, agent: i32) -> Value {
    json!({"energy": step as f64 * 0.25 + agent as f64, "inventory": {"ore": agent % 5, "battery": 1}, "hp": 97})
}

/// Rows of a simulation in (agent_states, simulation_steps, step_metrics,
/// agent_metrics, agent_memories).
pub fn table_counts(db: &impl AsDatabase, sim_key: i32) -> Result<(i64, i64, i64, i64, i64)> {
    use simdb::diesel::prelude::*;
    use simdb::schema::*;
    Ok(simdb::with_connection!(
        db.as_database().connection()?,
        |c| {
            (
                agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .count()
                    .get_result(c)?,
                simulation_steps::table
                    .filter(simulation_steps::sim_key.eq(sim_key))
                    .count()
                    .get_result(c)?,
                step_metrics::table
                    .filter(step_metrics::sim_key.eq(sim_key))
                    .count()
                    .get_result(c)?,
                agent_metrics::table
                    .filter(agent_metrics::sim_key.eq(sim_key))
                    .count()
                    .get_result(c)?,
                agent_memories::table
                    .filter(agent_memories::sim_key.eq(sim_key))
                    .count()
                    .get_result(c)?,
            )
        }
    ))
}

/// A test database or an open one.
pub trait AsDatabase {
    fn as_database(&self) -> &Database;
}
impl AsDatabase for TestDatabase {
    fn as_database(&self) -> &Database {
        self.database()
    }
}
impl AsDatabase for Database {
    fn as_database(&self) -> &Database {
        self
    }
}
