//! Which fields a simulation recorded: what a dashboard can chart.

use diesel::dsl::exists;
use diesel::prelude::*;

use super::Analytics;
use crate::error::Result;
use crate::ids::SimulationId;
use crate::schema::{agent_metric_chunks, metric_names, step_metrics};
use crate::store::for_each_backend;
use crate::store::prelude::*;
use crate::with_connection;

/// The metrics a simulation recorded, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordedFields {
    /// Metrics recorded per agent (`Recorder::agent_metric`), by name.
    pub agent_metrics: Vec<String>,
    /// Metrics recorded for the whole simulation (`Recorder::metric`), by name.
    pub simulation_metrics: Vec<String>,
}

trait RecordedStore {
    /// Names of the metrics with at least one row in the simulation: one
    /// key probe per known metric name (both tables are keyed
    /// `(sim_key, metric_id, ...)`).
    fn recorded(&mut self, sim_key: i32) -> Result<RecordedFields>;
}

for_each_backend! {
    impl RecordedStore {
        fn recorded(&mut self, sim_key: i32) -> Result<RecordedFields> {
            let agent = metric_names::table
                .filter(exists(
                    agent_metric_chunks::table
                        .filter(agent_metric_chunks::sim_key.eq(sim_key))
                        .filter(agent_metric_chunks::metric_id.eq(metric_names::metric_id)),
                ))
                .select(metric_names::name)
                .order(metric_names::name)
                .load(self)?;
            let simulation = metric_names::table
                .filter(exists(
                    step_metrics::table
                        .filter(step_metrics::sim_key.eq(sim_key))
                        .filter(step_metrics::metric_id.eq(metric_names::metric_id)),
                ))
                .select(metric_names::name)
                .order(metric_names::name)
                .load(self)?;
            Ok(RecordedFields {
                agent_metrics: agent,
                simulation_metrics: simulation,
            })
        }
    }
}

impl Analytics {
    /// The metrics `id` recorded, per agent and per simulation (the reward
    /// and `state.<path>` fields are always available).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn recorded_fields(&self, id: &SimulationId) -> Result<RecordedFields> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.recorded(sim.sim_key)
        })
    }
}
