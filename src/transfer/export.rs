//! Exporting a simulation as JSON Lines, page by page.

use std::io::{BufWriter, Write};

use serde_json::Value;

use super::jsonl::{
    hex, End, Header, Line, LineWriter, MemoryLine, SimulationLine, JSONL_FORMAT, JSONL_VERSION,
};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::AgentState;
use crate::service::SimulationService;
use crate::store::prelude::*;
use crate::with_connection;

/// Rows per page of an export.
const PAGE_ROWS: i64 = 10_000;
/// State chunks per page (up to 64 states each).
#[cfg(feature = "parquet")]
const CHUNK_PAGE: i64 = 160;
/// Memory snapshots per page (each may be large).
const MEMORY_PAGE_ROWS: i64 = 256;

/// Calls `f` with page after page from `fetch` (keyset pagination: `fetch`
/// gets the key of the last row of the previous page), until one comes back
/// empty.
pub(crate) fn pages<T>(
    mut fetch: impl FnMut(i64) -> Result<Vec<T>>,
    key: impl Fn(&T) -> i64,
    mut f: impl FnMut(Vec<T>) -> Result<()>,
) -> Result<()> {
    let mut after = i64::MIN;
    loop {
        let page = fetch(after)?;
        let Some(last) = page.last().map(&key) else {
            return Ok(());
        };
        f(page)?;
        after = last;
    }
}

impl SimulationService {
    /// Writes a simulation, with its experiment, agents, events and every
    /// per-step row, as JSON Lines. Every table is read in keyset pages:
    /// memory stays flat however large the simulation. One JSON value per
    /// line, in this order (states per agent by step, metrics per name by
    /// step, simulation-level first, then per agent):
    ///
    /// ```text
    /// {"header":{"format":"simdb-jsonl","version":1,"simulation":"<id>"}}
    /// {"experiment":{...}}                         if it has one
    /// {"simulation":{"simulation":{...},"tags":[...]}}
    /// {"agent":{...}}                              one per agent
    /// {"event":{...}}                              the audit trail
    /// {"state":[agent,step,reward,state]}          one per agent-step
    /// {"step":[step,recorded_at,metrics]}
    /// {"metric":[name,agent_or_null,step,value]}
    /// {"memory":{"agent":..,"step":..,"dtype":..,"shape":[..],"data":"<hex>","recorded_at":..}}
    /// {"end":{"lines":<number of lines before this one>}}
    /// ```
    ///
    /// Public ids are kept; `sim_key`s are reassigned by the importing
    /// database. The end line lets an import detect truncation.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation; [`Error::Io`](crate::Error::Io) if
    /// writing fails.
    pub fn export_jsonl(&self, id: &SimulationId, out: impl Write) -> Result<u64> {
        self.export_jsonl_with_progress(id, out, |_| {})
    }

    /// As [`SimulationService::export_jsonl`], calling `progress` with the
    /// number of lines written so far every 10,000 lines.
    ///
    /// # Errors
    /// As for [`SimulationService::export_jsonl`].
    pub fn export_jsonl_with_progress(
        &self,
        id: &SimulationId,
        out: impl Write,
        progress: impl FnMut(u64),
    ) -> Result<u64> {
        let mut w = LineWriter {
            out: BufWriter::new(out),
            lines: 0,
            progress: Box::new(progress),
        };
        let sim = self.simulation(id)?;
        w.write(&Line::Header(Header {
            format: JSONL_FORMAT.into(),
            version: JSONL_VERSION,
            simulation: sim.id.clone(),
        }))?;
        if let Some(exp) = &sim.experiment_id {
            w.write(&Line::Experiment(self.experiment(exp)?))?;
        }
        let tags = self.simulation_tags(id)?;
        let agents = self.agents(id)?;
        let key = sim.sim_key;
        w.write(&Line::Simulation(SimulationLine {
            simulation: sim.clone(),
            tags,
        }))?;
        for agent in &agents {
            w.write(&Line::Agent(agent.clone()))?;
        }
        let db = self.database();
        pages(
            |after| with_connection!(db.connection()?, |c| c.events_page(key, after, PAGE_ROWS)),
            |e| e.event_id,
            |page| page.into_iter().try_for_each(|e| w.write(&Line::Event(e))),
        )?;
        for agent in &agents {
            self.for_each_state_page(key, agent.agent_index.0, |page| {
                for s in page {
                    w.write(&Line::State(s.agent_index.0, s.step, s.reward, s.state))?;
                }
                Ok(())
            })?;
        }
        pages(
            |after| with_connection!(db.connection()?, |c| c.steps_page(key, after, PAGE_ROWS)),
            |s| s.step,
            |page| {
                page.into_iter()
                    .try_for_each(|s| w.write(&Line::Step(s.step, s.recorded_at, s.metrics)))
            },
        )?;
        let names = with_connection!(db.connection()?, |c| c.step_metric_names(key))?;
        for (metric, name) in names {
            pages(
                |after| {
                    with_connection!(db.connection()?, |c| c
                        .step_metric_page(key, metric, after, PAGE_ROWS))
                },
                |&(step, _)| step,
                |page| {
                    page.into_iter().try_for_each(|(step, value)| {
                        w.write(&Line::Metric(name.clone(), None, step, value))
                    })
                },
            )?;
        }
        for agent in &agents {
            let a = agent.agent_index.0;
            let names = with_connection!(db.connection()?, |c| c.agent_metric_names(key, a))?;
            for (metric, name) in names {
                pages(
                    |after| {
                        with_connection!(db.connection()?, |c| c
                            .agent_metric_page(key, a, metric, after, PAGE_ROWS))
                    },
                    |&(step, _)| step,
                    |page| {
                        page.into_iter().try_for_each(|(step, value)| {
                            w.write(&Line::Metric(name.clone(), Some(a), step, value))
                        })
                    },
                )?;
            }
            pages(
                |after| {
                    with_connection!(db.connection()?, |c| c.memories_page(
                        key,
                        a,
                        after,
                        MEMORY_PAGE_ROWS
                    ))
                },
                |m| m.step,
                |page| {
                    page.into_iter().try_for_each(|m| {
                        let shape = m
                            .shape
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_u64).collect())
                            .unwrap_or_default();
                        w.write(&Line::Memory(MemoryLine {
                            agent: m.agent_index.0,
                            step: m.step,
                            dtype: m.dtype,
                            shape,
                            data: hex(&m.data),
                            recorded_at: m.recorded_at,
                        }))
                    })
                },
            )?;
        }
        let lines = w.lines;
        w.write(&Line::End(End { lines }))?;
        w.out.flush().map_err(|e| Error::Io {
            path: "export".into(),
            source: e,
        })?;
        Ok(w.lines)
    }
}

impl SimulationService {
    /// Calls `f` with one agent's states in step order, a page at a time
    /// (keyset pagination), so an export's memory stays flat.
    pub(crate) fn for_each_state_page(
        &self,
        sim_key: i32,
        agent: i32,
        f: impl FnMut(Vec<AgentState>) -> Result<()>,
    ) -> Result<()> {
        let db = self.database();
        pages(
            |after| {
                with_connection!(db.connection()?, |c| c
                    .agent_states_page(sim_key, agent, after, PAGE_ROWS))
            },
            |s| s.step,
            f,
        )
    }

    /// Calls `f(step, reward, json_text)` for each of one agent's states in
    /// step order, the text as stored (never parsed): a page of chunks at a
    /// time, so memory stays flat.
    #[cfg(feature = "parquet")]
    pub(crate) fn for_each_state_text(
        &self,
        sim_key: i32,
        agent: i32,
        mut f: impl FnMut(i64, f64, &str) -> Result<()>,
    ) -> Result<()> {
        let db = self.database();
        pages(
            |after| {
                with_connection!(db.connection()?, |c| c.state_chunks_from(
                    sim_key,
                    agent,
                    after.saturating_add(1),
                    CHUNK_PAGE
                ))
            },
            |c| c.chunk,
            |page| {
                page.iter()
                    .try_for_each(|chunk| chunk.for_each_text(i64::MIN, i64::MAX, &mut f))
            },
        )
    }
}
