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
    /// agent-step: `step,agent,kind,reward,<agent metrics...>,state`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation; [`Error::Io`](crate::Error::Io).
    pub fn export_csv(&self, id: &SimulationId, out: impl Write) -> Result<u64> {
        let mut out = BufWriter::new(out);
        let io = |e| Error::Io {
            path: "export".into(),
            source: e,
        };
        let sim = self.simulation(id)?;
        let agents = self.agents(id)?;
        let mut per_agent_metrics = Vec::with_capacity(agents.len());
        let mut names = BTreeSet::new();
        for agent in &agents {
            let rows = with_connection!(self.database().connection()?, |c| c
                .named_agent_metrics(sim.sim_key, agent.agent_index.0))?;
            names.extend(rows.iter().map(|r| r.0.clone()));
            per_agent_metrics.push(rows);
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
        write_csv(&mut out, &header).map_err(io)?;
        let mut rows = 0;
        for (agent, metrics) in agents.iter().zip(per_agent_metrics) {
            let mut by_step: HashMap<(i64, &str), f64> = HashMap::new();
            for (name, step, value) in &metrics {
                by_step.insert((*step, name.as_str()), *value);
            }
            self.for_each_state_page(sim.sim_key, agent.agent_index.0, |page| {
                for s in page {
                    let mut cells = vec![
                        s.step.to_string(),
                        s.agent_index.to_string(),
                        agent.kind.clone().unwrap_or_default(),
                        s.reward.to_string(),
                    ];
                    for name in &names {
                        cells.push(
                            by_step
                                .get(&(s.step, name.as_str()))
                                .map(|v| v.to_string())
                                .unwrap_or_default(),
                        );
                    }
                    cells.push(s.state.to_string());
                    write_csv(&mut out, &cells).map_err(io)?;
                    rows += 1;
                }
                Ok(())
            })?;
        }
        out.flush().map_err(io)?;
        Ok(rows)
    }
}

fn write_csv(out: &mut impl Write, cells: &[String]) -> std::io::Result<()> {
    let mut first = true;
    for c in cells {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        if c.contains([',', '"', '\n', '\r']) {
            write!(out, "\"{}\"", c.replace('"', "\"\""))?;
        } else {
            out.write_all(c.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}
