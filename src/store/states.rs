//! Agent states (decoded from their chunks) and step rows, one at a time
//! and by range.

use diesel::prelude::*;

use super::prelude::StateChunkStore;
use crate::chunk::{chunk_of, first_step, mask_between, STEPS};
use crate::error::{Error, Result};
use crate::models::{AgentState, SimulationStep};
use crate::schema::simulation_steps;

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
            let text = serde_json::to_string(&row.state)?;
            let state = crate::chunk::floats::StateText::plain(&text);
            let rows = [(row.agent_index.0, row.step, row.reward, state)];
            super::state_chunks::write_states(self, row.sim_key, &rows, None).map(|_| ())
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
            if hi < lo || hi < 0 {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for chunk in self.state_chunks(sim_key, agent, chunk_of(lo.max(0)), chunk_of(hi))? {
                out.extend(chunk.rows_between(lo, hi)?);
            }
            Ok(out)
        }

        fn agent_states_page(
            &mut self,
            sim_key: i32,
            agent: i32,
            after: i64,
            limit: i64,
        ) -> Result<Vec<AgentState>> {
            let want = usize::try_from(limit).unwrap_or(0);
            let mut out = Vec::new();
            let mut from = chunk_of(after.saturating_add(1).max(0));
            while out.len() < want {
                // Enough chunks for the page if every one were full.
                let chunks = (want - out.len()).div_ceil(STEPS as usize) as i64;
                let page = self.state_chunks_from(sim_key, agent, from, chunks)?;
                let Some(last) = page.last() else { break };
                from = last.chunk + 1;
                for chunk in &page {
                    out.extend(chunk.rows_between(after.saturating_add(1), i64::MAX)?);
                }
            }
            out.truncate(want);
            Ok(out)
        }

        fn states_at_step(&mut self, sim_key: i32, step: i64) -> Result<Vec<AgentState>> {
            if step < 0 {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for chunk in self.state_chunks_at(sim_key, chunk_of(step))? {
                out.extend(chunk.row_at(step)?);
            }
            Ok(out)
        }

        fn latest_state(&mut self, sim_key: i32, agent: i32, at: i64) -> Result<Option<AgentState>> {
            if at < 0 {
                return Ok(None);
            }
            let mut upto = chunk_of(at);
            loop {
                let page = self.state_chunks_back(sim_key, agent, upto, 16)?;
                let Some(last) = page.last() else { return Ok(None) };
                upto = last.chunk - 1;
                for chunk in &page {
                    let before = chunk.mask() & mask_between(chunk.chunk, 0, at);
                    if before != 0 {
                        // Its last step at or before `at`.
                        let last = first_step(chunk.chunk) + (STEPS - 1) - i64::from(before.leading_zeros());
                        return chunk.row_at(last);
                    }
                }
            }
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
