//! Agent states and step rows, one at a time and by range.

use diesel::prelude::*;

use super::prelude::AgentKeyStore;
use crate::error::{Error, Result};
use crate::models::{AgentState, SimulationStep};
use crate::schema::{agent_states, simulation_steps};

pub(crate) trait StateStore {
    fn insert_agent_state(&mut self, row: &AgentState) -> Result<()>;
    fn insert_step(&mut self, row: &SimulationStep) -> Result<()>;
    fn agent_states(
        &mut self,
        sim_key: i32,
        agent: i32,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<AgentState>>;
    /// At most `limit` of one agent's states after `after`, by step.
    fn agent_states_page(
        &mut self,
        sim_key: i32,
        agent: i32,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AgentState>>;
    fn states_at_step(&mut self, sim_key: i32, step: i64) -> Result<Vec<AgentState>>;
    /// An agent's latest state at or before step `at`.
    fn latest_state(&mut self, sim_key: i32, agent: i32, at: i64) -> Result<Option<AgentState>>;
    fn steps(&mut self, sim_key: i32, lo: i64, hi: i64) -> Result<Vec<SimulationStep>>;
}

for_each_backend! {
    impl StateStore {
        fn insert_agent_state(&mut self, row: &AgentState) -> Result<()> {
            diesel::insert_into(agent_states::table)
                .values(row.clone())
                .execute(self)
                .map_err(|e| {
                    Error::from_write(
                        e,
                        "agent state",
                        format!("agent {} step {}", row.agent_index, row.step),
                        Some(("agent", row.agent_index.to_string())),
                    )
                })?;
            Ok(())
        }

        fn insert_step(&mut self, row: &SimulationStep) -> Result<()> {
            diesel::insert_into(simulation_steps::table)
                .values(row.clone())
                .execute(self)
                .map_err(|e| Error::from_write(e, "step", row.step, None))?;
            Ok(())
        }

        fn agent_states(
            &mut self,
            sim_key: i32,
            agent: i32,
            lo: i64,
            hi: i64,
        ) -> Result<Vec<AgentState>> {
            Ok(agent_states::table
                .filter(agent_states::sim_key.eq(sim_key))
                .filter(agent_states::agent_index.eq(agent))
                .filter(agent_states::step.between(lo, hi))
                .select(AgentState::as_select())
                .order(agent_states::step)
                .load(self)?)
        }

        fn agent_states_page(
            &mut self,
            sim_key: i32,
            agent: i32,
            after: i64,
            limit: i64,
        ) -> Result<Vec<AgentState>> {
            Ok(agent_states::table
                .filter(agent_states::sim_key.eq(sim_key))
                .filter(agent_states::agent_index.eq(agent))
                .filter(agent_states::step.gt(after))
                .select(AgentState::as_select())
                .order(agent_states::step)
                .limit(limit)
                .load(self)?)
        }

        fn states_at_step(&mut self, sim_key: i32, step: i64) -> Result<Vec<AgentState>> {
            // One primary-key probe per registered agent (no by-step index).
            self.states_at_step_by_agent(sim_key, step)
        }

        fn latest_state(&mut self, sim_key: i32, agent: i32, at: i64) -> Result<Option<AgentState>> {
            Ok(agent_states::table
                .filter(agent_states::sim_key.eq(sim_key))
                .filter(agent_states::agent_index.eq(agent))
                .filter(agent_states::step.le(at))
                .select(AgentState::as_select())
                .order(agent_states::step.desc())
                .first(self)
                .optional()?)
        }

        fn steps(&mut self, sim_key: i32, lo: i64, hi: i64) -> Result<Vec<SimulationStep>> {
            Ok(simulation_steps::table
                .filter(simulation_steps::sim_key.eq(sim_key))
                .filter(simulation_steps::step.between(lo, hi))
                .select(SimulationStep::as_select())
                .order(simulation_steps::step)
                .load(self)?)
        }
    }
}
