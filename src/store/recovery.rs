//! What a crash left behind: cutting the rows above the commit watermark
//! from every per-step table.

use diesel::prelude::*;

use crate::error::Result;
use crate::schema::{agent_memories, agent_metrics, agent_states, simulation_steps, step_metrics};

pub(crate) trait RecoveryStore {
    /// Deletes every per-step row after `step`; returns how many.
    fn truncate_after(&mut self, sim_key: i32, step: i64) -> Result<usize>;
}

for_each_backend! {
    impl RecoveryStore {
        fn truncate_after(&mut self, sim_key: i32, step: i64) -> Result<usize> {
            macro_rules! delete_after {
                ($table:ident) => {
                    diesel::delete(
                        $table::table
                            .filter($table::sim_key.eq(sim_key))
                            .filter($table::step.gt(step)),
                    )
                    .execute(self)?
                };
            }
            Ok(delete_after!(agent_states)
                + delete_after!(simulation_steps)
                + delete_after!(step_metrics)
                + delete_after!(agent_metrics)
                + delete_after!(agent_memories))
        }
    }
}
