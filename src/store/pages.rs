//! Keyset pages of every per-step table, in primary-key order, so that an
//! export streams a simulation of any size in flat memory.

use diesel::prelude::*;

use super::prelude::MetricChunkStore;
use crate::chunk::{chunk_of, STEPS};
use crate::error::Result;
use crate::models::{AgentMemory, Event, SimulationStep};
use crate::schema::{
    agent_memories, agent_metric_chunks, events, metric_names, simulation_steps, step_metrics,
};

pub(crate) trait PageStore {
    /// At most `limit` steps after step `after`, by step.
    fn steps_page(&mut self, sim_key: i32, after: i64, limit: i64) -> Result<Vec<SimulationStep>>;
    /// At most `limit` events after event id `after`, oldest first.
    fn events_page(&mut self, sim_key: i32, after: i64, limit: i64) -> Result<Vec<Event>>;
    /// At most `limit` of an agent's memory snapshots after step `after`.
    fn memories_page(
        &mut self,
        sim_key: i32,
        agent: i32,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AgentMemory>>;
    /// The simulation-level metrics it recorded, `(id, name)` by name.
    fn step_metric_names(&mut self, sim_key: i32) -> Result<Vec<(i32, String)>>;
    /// The metrics one agent recorded, `(id, name)` by name.
    fn agent_metric_names(&mut self, sim_key: i32, agent: i32) -> Result<Vec<(i32, String)>>;
    /// At most `limit` values of a simulation-level metric after step `after`.
    fn step_metric_page(
        &mut self,
        sim_key: i32,
        metric: i32,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, f64)>>;
    /// At most `limit` of an agent's values of one metric after step `after`.
    fn agent_metric_page(
        &mut self,
        sim_key: i32,
        agent: i32,
        metric: i32,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, f64)>>;
    /// An agent's values of one metric for steps `lo..=hi`, by step.
    fn agent_metric_range(
        &mut self,
        sim_key: i32,
        agent: i32,
        metric: i32,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>>;
}

for_each_backend! {
    impl PageStore {
        fn steps_page(&mut self, sim_key: i32, after: i64, limit: i64) -> Result<Vec<SimulationStep>> {
            Ok(simulation_steps::table
                .filter(simulation_steps::sim_key.eq(sim_key))
                .filter(simulation_steps::step.gt(after))
                .select(SimulationStep::as_select())
                .order(simulation_steps::step)
                .limit(limit)
                .load(self)?)
        }

        fn events_page(&mut self, sim_key: i32, after: i64, limit: i64) -> Result<Vec<Event>> {
            Ok(events::table
                .filter(events::sim_key.eq(sim_key))
                .filter(events::event_id.gt(after))
                .select(Event::as_select())
                .order(events::event_id)
                .limit(limit)
                .load(self)?)
        }

        fn memories_page(&mut self, sim_key: i32, agent: i32, after: i64, limit: i64) -> Result<Vec<AgentMemory>> {
            Ok(agent_memories::table
                .filter(agent_memories::sim_key.eq(sim_key))
                .filter(agent_memories::agent_index.eq(agent))
                .filter(agent_memories::step.gt(after))
                .select(AgentMemory::as_select())
                .order(agent_memories::step)
                .limit(limit)
                .load(self)?)
        }

        fn step_metric_names(&mut self, sim_key: i32) -> Result<Vec<(i32, String)>> {
            Ok(step_metrics::table
                .inner_join(metric_names::table)
                .filter(step_metrics::sim_key.eq(sim_key))
                .select((metric_names::metric_id, metric_names::name))
                .distinct()
                .order(metric_names::name)
                .load(self)?)
        }

        fn agent_metric_names(&mut self, sim_key: i32, agent: i32) -> Result<Vec<(i32, String)>> {
            Ok(agent_metric_chunks::table
                .inner_join(metric_names::table)
                .filter(agent_metric_chunks::sim_key.eq(sim_key))
                .filter(agent_metric_chunks::agent_index.eq(agent))
                .select((metric_names::metric_id, metric_names::name))
                .distinct()
                .order(metric_names::name)
                .load(self)?)
        }

        fn step_metric_page(&mut self, sim_key: i32, metric: i32, after: i64, limit: i64) -> Result<Vec<(i64, f64)>> {
            Ok(step_metrics::table
                .filter(step_metrics::sim_key.eq(sim_key))
                .filter(step_metrics::metric_id.eq(metric))
                .filter(step_metrics::step.gt(after))
                .select((step_metrics::step, step_metrics::value))
                .order(step_metrics::step)
                .limit(limit)
                .load(self)?)
        }

        fn agent_metric_page(&mut self, sim_key: i32, agent: i32, metric: i32, after: i64, limit: i64) -> Result<Vec<(i64, f64)>> {
            let want = usize::try_from(limit).unwrap_or(0);
            let mut out = Vec::new();
            let mut from = chunk_of(after.saturating_add(1).max(0));
            while out.len() < want {
                // Enough chunks for the page if every one were full.
                let chunks = (want - out.len()).div_ceil(STEPS as usize) as i64;
                let page = self.metric_chunks_after(sim_key, metric, agent, from, chunks)?;
                let Some(last) = page.last() else { break };
                from = last.chunk + 1;
                for chunk in &page {
                    out.extend(chunk.points()?.into_iter().filter(|p| p.0 > after));
                }
            }
            out.truncate(want);
            Ok(out)
        }

        fn agent_metric_range(&mut self, sim_key: i32, agent: i32, metric: i32, lo: i64, hi: i64) -> Result<Vec<(i64, f64)>> {
            if hi < lo || hi < 0 {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for chunk in self.metric_chunks(sim_key, metric, agent, chunk_of(lo.max(0)), chunk_of(hi))? {
                out.extend(chunk.points()?.into_iter().filter(|p| p.0 >= lo && p.0 <= hi));
            }
            Ok(out)
        }
    }
}
