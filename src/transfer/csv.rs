//! Exporting a simulation's agent states as CSV, one row per agent-step.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufWriter, Write};

use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::service::SimulationService;
use crate::store::prelude::*;
use crate::with_connection;

impl SimulationService {
    /// Writes a simulation's agent states as CSV with a header, one row per
    /// agent-step: `step,agent,kind,reward,<agent metrics...>,state`, read
    /// page by page (memory stays flat).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation; [`Error::Io`](crate::Error::Io).
    pub fn export_csv(&self, id: &SimulationId, out: impl Write) -> Result<u64> {
        let mut out = csv::Writer::from_writer(BufWriter::new(out));
        let io = |e| Error::Io {
            path: "export".into(),
            source: e,
        };
        let sim = self.simulation(id)?;
        let key = sim.sim_key;
        let agents = self.agents(id)?;
        let db = self.database();
        // Each agent's metrics, and the union of their names for the header.
        let mut per_agent = Vec::with_capacity(agents.len());
        let mut names = BTreeSet::new();
        for agent in &agents {
            let ids = with_connection!(db.connection()?, |c| c
                .agent_metric_names(key, agent.agent_index.0))?;
            names.extend(ids.iter().map(|(_, name)| name.clone()));
            per_agent.push(ids);
        }
        let names: Vec<String> = names.into_iter().collect();
        let mut header = vec![
            "step".to_string(),
            "agent".into(),
            "kind".into(),
            "reward".into(),
        ];
        header.extend(names.iter().cloned());
        header.push("state".into());
        out.write_record(&header).map_err(csv_error)?;
        let mut rows = 0;
        for (agent, metrics) in agents.iter().zip(per_agent) {
            let a = agent.agent_index.0;
            // Column of each of this agent's metrics.
            let columns: Vec<(i32, usize)> = metrics
                .iter()
                .filter_map(|(id, name)| names.iter().position(|n| n == name).map(|col| (*id, col)))
                .collect();
            self.for_each_state_page(key, a, |page| {
                let (Some(lo), Some(hi)) =
                    (page.first().map(|s| s.step), page.last().map(|s| s.step))
                else {
                    return Ok(());
                };
                // The metrics of this page's steps only: memory stays flat.
                let mut values: HashMap<(i64, usize), f64> = HashMap::new();
                for &(metric, col) in &columns {
                    let range = with_connection!(db.connection()?, |c| c
                        .agent_metric_range(key, a, metric, lo, hi))?;
                    values.extend(range.into_iter().map(|(step, v)| ((step, col), v)));
                }
                for s in page {
                    let mut cells = vec![
                        s.step.to_string(),
                        s.agent_index.to_string(),
                        agent.kind.clone().unwrap_or_default(),
                        s.reward.to_string(),
                    ];
                    for col in 0..names.len() {
                        cells.push(
                            values
                                .get(&(s.step, col))
                                .map(|v| v.to_string())
                                .unwrap_or_default(),
                        );
                    }
                    cells.push(s.state.to_string());
                    out.write_record(&cells).map_err(csv_error)?;
                    rows += 1;
                }
                Ok(())
            })?;
        }
        out.flush().map_err(io)?;
        Ok(rows)
    }
}

/// A CSV writer's failure is an I/O failure of the export.
fn csv_error(e: csv::Error) -> Error {
    Error::Io {
        path: "export".into(),
        source: e.into(),
    }
}
