//! Shared fixtures: the both-backends test macro and small builders.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod cluster;
pub mod fixtures;
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

/// Where simdb books its own migrations: its own ledger on both backends
/// (Diesel's table belongs to the host's harness).
pub fn migration_table(_backend: simdb::Backend) -> &'static str {
    "simdb_migrations"
}

/// Agent states and agent metric values stored, counted inside their
/// chunks: of simulation `sim_key`, or of every simulation.
pub fn chunked_counts(db: &impl AsDatabase, sim_key: Option<i32>) -> Result<(i64, i64)> {
    use simdb::diesel::prelude::*;
    use simdb::models::{AgentMetricChunk, AgentStateChunk};
    use simdb::schema::{agent_metric_chunks as m, agent_state_chunks as s};
    Ok(simdb::with_connection!(
        db.as_database().connection()?,
        |c| {
            let mut states = s::table.select(AgentStateChunk::as_select()).into_boxed();
            let mut metrics = m::table.select(AgentMetricChunk::as_select()).into_boxed();
            if let Some(k) = sim_key {
                states = states.filter(s::sim_key.eq(k));
                metrics = metrics.filter(m::sim_key.eq(k));
            }
            (
                states
                    .load(c)?
                    .iter()
                    .map(|chunk| chunk.len() as i64)
                    .sum::<i64>(),
                metrics
                    .load(c)?
                    .iter()
                    .map(|chunk| chunk.len() as i64)
                    .sum::<i64>(),
            )
        }
    ))
}

/// Rows of a simulation in (agent states, simulation_steps, step_metrics,
/// agent metrics, agent_memories); states and metric values counted inside
/// their chunks.
pub fn table_counts(db: &impl AsDatabase, sim_key: i32) -> Result<(i64, i64, i64, i64, i64)> {
    use simdb::diesel::prelude::*;
    use simdb::schema::*;
    let (states, metrics) = chunked_counts(db, Some(sim_key))?;
    Ok(simdb::with_connection!(
        db.as_database().connection()?,
        |c| {
            (
                states,
                simulation_steps::table
                    .filter(simulation_steps::sim_key.eq(sim_key))
                    .count()
                    .get_result(c)?,
                step_metrics::table
                    .filter(step_metrics::sim_key.eq(sim_key))
                    .count()
                    .get_result(c)?,
                metrics,
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

/// The reward across agents per step, computed from the rows themselves
/// (every agent's states read back): `step -> (count, sum, min, max)`.
pub fn raw_reward_by_step(
    svc: &SimulationService,
    id: &SimulationId,
) -> Result<std::collections::BTreeMap<i64, (i64, f64, f64, f64)>> {
    let mut out = std::collections::BTreeMap::new();
    for agent in svc.agents(id)? {
        for s in svc.agent_states(id, agent.agent_index, ..)? {
            let e = out
                .entry(s.step)
                .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
            e.0 += 1;
            e.1 += s.reward;
            e.2 = e.2.min(s.reward);
            e.3 = e.3.max(s.reward);
        }
    }
    Ok(out)
}

/// Asserts that the per-step reward aggregates (read from the rollups)
/// equal the rows' own.
pub fn assert_rollups_match_rows(svc: &SimulationService, id: &SimulationId) -> Result<()> {
    let raw = raw_reward_by_step(svc, id)?;
    // The 64-step blocks hold what their steps' rows give.
    {
        use simdb::diesel::prelude::*;
        use simdb::schema::block_rollups as b;
        let sim_key = svc.simulation(id)?.sim_key;
        let blocks: Vec<(i64, i64, i64, i64, f64, f64, f64)> =
            simdb::with_connection!(svc.database().connection()?, |c| b::table
                .filter(b::sim_key.eq(sim_key))
                .filter(b::field_id.eq(0))
                .select((
                    b::block,
                    b::first_step,
                    b::last_step,
                    b::n,
                    b::total,
                    b::lo,
                    b::hi
                ))
                .order(b::block)
                .load(c)?);
        let mut want: std::collections::BTreeMap<i64, (i64, i64, i64, f64, f64, f64)> =
            std::collections::BTreeMap::new();
        for (&step, &(n, sum, lo, hi)) in &raw {
            let e = want.entry(step.div_euclid(64)).or_insert((
                step,
                step,
                0,
                0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ));
            *e = (
                e.0.min(step),
                e.1.max(step),
                e.2 + n,
                e.3 + sum,
                e.4.min(lo),
                e.5.max(hi),
            );
        }
        assert_eq!(blocks.len(), want.len(), "blocks with a reward: {blocks:?}");
        for (block, first, last, n, total, lo, hi) in blocks {
            let w = want[&block];
            assert_eq!(
                (first, last, n, lo, hi),
                (w.0, w.1, w.2, w.4, w.5),
                "block {block}"
            );
            assert!(
                (total - w.3).abs() <= 1e-9 * w.3.abs().max(1.0),
                "block {block}: {total} vs {}",
                w.3
            );
        }
    }
    let rolled = svc.analytics().step_aggregates(id, "reward", 0)?;
    assert_eq!(rolled.len(), raw.len(), "steps with a reward");
    for a in rolled {
        let (n, sum, lo, hi) = raw[&a.first_step];
        assert_eq!(a.first_step, a.last_step);
        assert_eq!(
            (a.count, a.min, a.max),
            (n, lo, hi),
            "step {}",
            a.first_step
        );
        assert!(
            (a.sum - sum).abs() <= 1e-9 * sum.abs().max(1.0),
            "step {}: {} vs {sum}",
            a.first_step,
            a.sum
        );
    }
    Ok(())
}
