//! Statements on agents.

use diesel::prelude::*;

use super::event;
use super::prelude::*;
use crate::error::{Error, Result};
use crate::models::{Agent, NewAgent, Simulation};
use crate::schema::{agents, events};

pub(crate) trait AgentStore {
    fn insert_agents(&mut self, sim: &Simulation, agents: &[NewAgent]) -> Result<Vec<Agent>>;
    fn agents(&mut self, sim_key: i32) -> Result<Vec<Agent>>;
    /// Inserts one agent.
    fn insert_agent(&mut self, row: NewAgent) -> Result<()>;
}

for_each_backend! {
    impl AgentStore {
        fn insert_agents(&mut self, sim: &Simulation, agents: &[NewAgent]) -> Result<Vec<Agent>> {
            self.write(|c| {
                let rows: Vec<NewAgent> = agents
                    .iter()
                    .map(|a| NewAgent { sim_key: sim.sim_key, ..a.clone() })
                    .collect();
                // Under both bind-parameter limits (9 columns per row).
                for chunk in rows.chunks(1000) {
                    diesel::insert_into(agents::table)
                        .values(chunk.to_vec())
                        .execute(c)
                        .map_err(|e| {
                            Error::from_write(e, "agent", format!("one or more agents of {}", sim.id), None)
                        })?;
                }
                diesel::insert_into(events::table)
                    .values(&event(
                        sim.sim_key,
                        "agents_registered",
                        None,
                        None,
                        Some(format!("{} agents", rows.len())),
                    ))
                    .execute(c)?;
                let indexes: Vec<i32> = rows.iter().map(|r| r.agent_index.0).collect();
                let mut out = Vec::with_capacity(indexes.len());
                for chunk in indexes.chunks(1000) {
                    out.extend(
                        agents::table
                            .filter(agents::sim_key.eq(sim.sim_key))
                            .filter(agents::agent_index.eq_any(chunk))
                            .select(Agent::as_select())
                            .order(agents::agent_index)
                            .load(c)?,
                    );
                }
                Ok(out)
            })
        }

        fn agents(&mut self, sim_key: i32) -> Result<Vec<Agent>> {
            Ok(agents::table
                .filter(agents::sim_key.eq(sim_key))
                .select(Agent::as_select())
                .order(agents::agent_index)
                .load(self)?)
        }

        fn insert_agent(&mut self, row: NewAgent) -> Result<()> {
            let id = row.agent_index;
            diesel::insert_into(agents::table)
                .values(row)
                .execute(self)
                .map_err(|e| Error::from_write(e, "agent", id, None))?;
            Ok(())
        }
    }
}
