//! The hot tables (`agent_state_chunks`, `agent_metrics`, `agent_memories`)
//! have their primary key and nothing else: no by-step index, no foreign
//! key (see migration `2026-11-27-000002_hot_tables`). What reads across agents
//! at a step walks that key once per registered agent, through the agent
//! lists and spans here; what the foreign key guaranteed (no row of an
//! unregistered agent) is checked here before a write.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable};

use crate::error::{Error, Result};
use crate::schema::agents;

/// Agents per `IN`/`= ANY` list: SQLite binds one parameter per agent and
/// allows 32,766.
pub(crate) const AGENT_CHUNK: usize = 10_000;

/// What hand-written SQL differs in per backend.
pub(crate) trait Dialect {
    /// The bind placeholder: `?1` on SQLite, `$1` on PostgreSQL.
    const P: char;
    /// Holds a simulation's row for the rest of the transaction against a
    /// concurrent delete (which locks it first), as the foreign key's check
    /// did, and against a recorder's batch (whose ownership check updates
    /// that row), so that their rollup merges of one step never interleave.
    /// SQLite needs none: its write transactions run one at a time.
    const HOLD_SIMULATION: Option<&'static str>;
}

#[cfg(feature = "sqlite")]
impl Dialect for diesel::sqlite::SqliteConnection {
    const P: char = '?';
    const HOLD_SIMULATION: Option<&'static str> = None;
}

#[cfg(feature = "postgres")]
impl Dialect for diesel::pg::PgConnection {
    const P: char = '$';
    const HOLD_SIMULATION: Option<&'static str> =
        Some("SELECT sim_key FROM simdb_simulations WHERE sim_key = $1 FOR NO KEY UPDATE");
}

/// The first and last step of a span query (`lo`, `hi`; NULL when empty).
#[derive(QueryableByName)]
pub(crate) struct StepSpan {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) lo: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) hi: Option<i64>,
}

pub(crate) trait AgentKeyStore {
    /// The registered agents' indexes, ascending.
    fn agent_indexes(&mut self, sim_key: i32) -> Result<Vec<i32>>;
    /// Fails with [`Error::NotFound`] unless `agent` is registered in the
    /// simulation (what the foreign key used to refuse), and holds the
    /// simulation against a concurrent delete until the transaction ends.
    fn check_registered(&mut self, sim_key: i32, sim: &str, agent: i32) -> Result<()>;
    /// For reads: [`Error::NotFound`] of entity `"agent"` unless the agent is
    /// registered (no lock taken).
    fn require_agent(&mut self, sim_key: i32, sim: &str, agent: i32) -> Result<()>;
}

super::for_each_backend! {
    impl AgentKeyStore {
        fn agent_indexes(&mut self, sim_key: i32) -> Result<Vec<i32>> {
            Ok(agents::table
                .filter(agents::sim_key.eq(sim_key))
                .select(agents::agent_index)
                .order(agents::agent_index)
                .load::<i32>(self)?)
        }

        fn check_registered(&mut self, sim_key: i32, sim: &str, agent: i32) -> Result<()> {
            if let Some(hold) = Self::HOLD_SIMULATION {
                diesel::sql_query(hold).bind::<Integer, _>(sim_key).execute(self)?;
            }
            self.require_agent(sim_key, sim, agent)
        }

        fn require_agent(&mut self, sim_key: i32, sim: &str, agent: i32) -> Result<()> {
            let found = agents::table
                .filter(agents::sim_key.eq(sim_key))
                .filter(agents::agent_index.eq(agent))
                .count()
                .get_result::<i64>(self)?;
            if found == 1 {
                Ok(())
            } else {
                Err(Error::unregistered_agent(agent, sim))
            }
        }

    }
}
