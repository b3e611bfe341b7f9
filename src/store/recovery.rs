//! What a crash left behind: the last complete step, and cutting the rows
//! above it from every per-step table.

use diesel::prelude::*;

use crate::error::Result;
use crate::schema::{agent_memories, agent_metrics, agent_states, simulation_steps, step_metrics};

pub(crate) trait RecoveryStore {
    /// The highest step at which all `agents` registered agents have a state
    /// (and, if the simulation records step rows, its step row exists).
    fn last_complete_step(&mut self, sim_key: i32, agents: i64) -> Result<Option<i64>>;
    /// Deletes every per-step row after `step`; returns how many.
    fn truncate_after(&mut self, sim_key: i32, step: i64) -> Result<usize>;
}

for_each_backend! {
    impl RecoveryStore {
        fn last_complete_step(&mut self, sim_key: i32, agents: i64) -> Result<Option<i64>> {
            if agents == 0 {
                return Ok(None);
            }
            let has_step_rows = simulation_steps::table
                .filter(simulation_steps::sim_key.eq(sim_key))
                .select(simulation_steps::step)
                .first::<i64>(self)
                .optional()?
                .is_some();
            // Walk down from the highest step: after a crash only the
            // last one or two steps can be incomplete.
            let mut below = i64::MAX;
            loop {
                let candidate: Option<i64> = agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::step.le(below))
                    .select(diesel::dsl::max(agent_states::step))
                    .first(self)?;
                let Some(step) = candidate else { return Ok(None) };
                let present: i64 = agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::step.eq(step))
                    .count()
                    .get_result(self)?;
                let step_row = !has_step_rows
                    || simulation_steps::table
                        .find((sim_key, step))
                        .select(simulation_steps::step)
                        .first::<i64>(self)
                        .optional()?
                        .is_some();
                if present >= agents && step_row {
                    return Ok(Some(step));
                }
                if step == 0 {
                    return Ok(None);
                }
                below = step - 1;
            }
        }

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
