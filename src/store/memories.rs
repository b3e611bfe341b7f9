//! Agent memory snapshots.

use diesel::prelude::*;

use crate::error::{Error, Result};
use crate::models::{AgentMemory, MemorySummary};
use crate::schema::agent_memories;

pub(crate) trait MemoryStore {
    fn insert_memory(&mut self, row: &AgentMemory) -> Result<()>;
    /// An agent's latest memory snapshot at or before step `at`.
    fn latest_memory(&mut self, sim_key: i32, agent: i32, at: i64) -> Result<Option<AgentMemory>>;
    fn memories(&mut self, sim_key: i32, agent: i32) -> Result<Vec<AgentMemory>>;
    fn memory_summaries(&mut self, sim_key: i32, agent: i32) -> Result<Vec<MemorySummary>>;
}

for_each_backend! {
    impl MemoryStore {
        fn insert_memory(&mut self, row: &AgentMemory) -> Result<()> {
            diesel::insert_into(agent_memories::table)
                .values(row.clone())
                .execute(self)
                .map_err(|e| {
                    Error::from_write(
                        e,
                        "agent memory",
                        format!("agent {} step {}", row.agent_index, row.step),
                        Some(("agent", row.agent_index.to_string())),
                    )
                })?;
            Ok(())
        }

        fn latest_memory(
            &mut self,
            sim_key: i32,
            agent: i32,
            at: i64,
        ) -> Result<Option<AgentMemory>> {
            Ok(agent_memories::table
                .filter(agent_memories::sim_key.eq(sim_key))
                .filter(agent_memories::agent_index.eq(agent))
                .filter(agent_memories::step.le(at))
                .select(AgentMemory::as_select())
                .order(agent_memories::step.desc())
                .first(self)
                .optional()?)
        }

        fn memory_summaries(&mut self, sim_key: i32, agent: i32) -> Result<Vec<MemorySummary>> {
            Ok(agent_memories::table
                .filter(agent_memories::sim_key.eq(sim_key))
                .filter(agent_memories::agent_index.eq(agent))
                .select((
                    agent_memories::step,
                    agent_memories::dtype,
                    agent_memories::shape,
                    diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(length(data) AS BIGINT)"),
                ))
                .order(agent_memories::step)
                .load(self)?)
        }

        fn memories(&mut self, sim_key: i32, agent: i32) -> Result<Vec<AgentMemory>> {
            Ok(agent_memories::table
                .filter(agent_memories::sim_key.eq(sim_key))
                .filter(agent_memories::agent_index.eq(agent))
                .select(AgentMemory::as_select())
                .order(agent_memories::step)
                .load(self)?)
        }
    }
}
