//! What a crash left behind: cutting the rows above the commit watermark
//! from every per-step table.

use diesel::prelude::*;

use super::prelude::{AgentKeyStore, RollupStore, AGENT_CHUNK};
use crate::error::Result;
use crate::schema::{agent_memories, simulation_steps, step_metrics};

pub(crate) trait RecoveryStore {
    /// Deletes every per-step row after `step`; returns how many.
    fn truncate_after(&mut self, sim_key: i32, step: i64) -> Result<usize>;
}

for_each_backend! {
    impl RecoveryStore {
        fn truncate_after(&mut self, sim_key: i32, step: i64) -> Result<usize> {
            macro_rules! delete_after {
                ($table:ident $(, $filter:expr)*) => {
                    diesel::delete(
                        $table::table
                            .filter($table::sim_key.eq(sim_key))
                            $(.filter($filter))*
                            .filter($table::step.gt(step)),
                    )
                    .execute(self)?
                };
            }
            let mut deleted = delete_after!(simulation_steps) + delete_after!(step_metrics);
            // The hot tables have no by-step index: their key ranges are
            // walked per agent (and per metric), from `step` on.
            deleted += super::metric_chunks::cut_metrics_after(self, sim_key, step)?;
            let agents = self.agent_indexes(sim_key)?;
            for &agent in &agents {
                deleted += super::state_chunks::cut_states_after(self, sim_key, agent, step)?;
            }
            for chunk in agents.chunks(AGENT_CHUNK) {
                deleted += delete_after!(agent_memories, agent_memories::agent_index.eq_any(chunk));
            }
            self.cut_rollups(sim_key, step)?;
            Ok(deleted)
        }
    }
}
