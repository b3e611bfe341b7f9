//! The second pass of an import: a validated file written in one
//! transaction through the recorder's bulk path.

use std::path::Path;

use super::jsonl::{for_each_line, unhex, Line, Numbered, SimulationLine};
use super::validate::validate;
use super::{ImportOutcome, OnConflict};
use crate::error::{Error, Result};
use crate::models::{NewAgent, NewAgentMemory, NewEvent, NewExperiment};
use crate::recorder::{write_batch, Batch, Bulk, MetricCache, RowBuffers};
use crate::service::SimulationService;
use crate::sql_types::{JsonParam, TimeParam};
use crate::store::prelude::*;
use crate::store::FullSimulation;
use crate::with_connection;

/// Rows per write during import (one transaction holds them all).
const IMPORT_BATCH_ROWS: usize = 10_000;

impl SimulationService {
    /// Imports one simulation from a JSONL export, all or nothing: the file
    /// is validated completely first (an error names the line), then written
    /// in one transaction. Experiments merge: one whose id exists is reused
    /// unchanged; one with a new id but an existing name joins that
    /// experiment (the simulation is filed under the existing id); otherwise
    /// it is created.
    ///
    /// # Errors
    /// [`Error::Import`](crate::Error::Import) for a malformed or truncated file;
    /// [`Error::Duplicate`](crate::Error::Duplicate) if the simulation exists and `on_conflict` is
    /// [`OnConflict::Error`]; [`Error::Io`](crate::Error::Io).
    pub fn import_jsonl(&self, path: &Path, on_conflict: OnConflict) -> Result<ImportOutcome> {
        self.import_jsonl_with_progress(path, on_conflict, |_| {})
    }

    /// As [`SimulationService::import_jsonl`], calling `progress` with the
    /// number of lines imported so far every 10,000 lines.
    ///
    /// # Errors
    /// As for [`SimulationService::import_jsonl`].
    pub fn import_jsonl_with_progress(
        &self,
        path: &Path,
        on_conflict: OnConflict,
        mut progress: impl FnMut(u64),
    ) -> Result<ImportOutcome> {
        let (header_sim, total) = validate(path)?;
        let exists = match self.simulation(&header_sim) {
            Ok(_) => true,
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        if exists {
            match on_conflict {
                OnConflict::Error => {
                    return Err(Error::Duplicate {
                        entity: "simulation",
                        id: header_sim.to_string(),
                    })
                }
                OnConflict::Skip => {
                    return Ok(ImportOutcome::Skipped {
                        simulation: header_sim,
                    })
                }
                OnConflict::Replace => {}
            }
        }
        let replace = exists && on_conflict == OnConflict::Replace;
        with_connection!(self.database().writer()?, |c| c.write(|c| {
            if replace {
                c.delete_simulation(&header_sim)?;
            }
            import_lines(c, path, &mut progress)
        }))?;
        Ok(ImportOutcome::Imported {
            simulation: header_sim,
            lines: total,
        })
    }
}

/// Second pass: writes a validated file (inside the caller's transaction).
fn import_lines<C: Store + Bulk>(
    c: &mut C,
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut done: u64 = 0;
    let mut sim_key: Option<i32> = None;
    // An experiment of the file merged by name into an existing one.
    let mut merged_into: Option<(crate::ids::ExperimentId, crate::ids::ExperimentId)> = None;
    let mut batch = Batch::default();
    let mut cache = MetricCache::default();
    let flush = |c: &mut C, batch: &mut Batch, cache: &mut MetricCache, key: i32| -> Result<()> {
        let interned =
            write_batch(c, key, batch, cache, None, None, &mut RowBuffers::default())?.interned;
        cache.learned(interned);
        *batch = Batch::default();
        Ok(())
    };
    for_each_line(path, |Numbered { value, .. }| {
        done += 1;
        if done % 10_000 == 0 {
            progress(done);
        }
        match value {
            Line::Header(_) | Line::End(_) => {}
            Line::Experiment(e) => {
                // Experiments merge: the same id is reused unchanged; a new
                // id whose name exists joins that experiment (two laptops'
                // runs of "foraging" land in one experiment).
                match c.find_experiment(&e.id) {
                    Ok(_) => {}
                    Err(Error::NotFound { .. }) => match c.experiment_named(&e.name) {
                        Ok(existing) => merged_into = Some((e.id, existing.id)),
                        Err(Error::NotFound { .. }) => {
                            c.insert_experiment(&NewExperiment {
                                id: e.id,
                                name: e.name,
                                description: e.description,
                                metadata: e.metadata,
                                external_ref: e.external_ref,
                                created_at: e.created_at,
                            })?;
                        }
                        Err(other) => return Err(other),
                    },
                    Err(other) => return Err(other),
                }
            }
            Line::Simulation(SimulationLine {
                simulation: s,
                tags,
            }) => {
                let experiment_id = match (&merged_into, s.experiment_id) {
                    (Some((from, to)), Some(id)) if &id == from => Some(to.clone()),
                    (_, id) => id,
                };
                let row = FullSimulation {
                    id: s.id.clone(),
                    experiment_id,
                    name: s.name,
                    status: s.status,
                    parameters: JsonParam(s.parameters),
                    results_summary: s.results_summary.map(JsonParam),
                    data_uri: s.data_uri,
                    error_message: s.error_message,
                    created_at: TimeParam(s.created_at),
                    started_at: s.started_at.map(TimeParam),
                    ended_at: s.ended_at.map(TimeParam),
                    heartbeat_at: s.heartbeat_at.map(TimeParam),
                    committed_step: s.committed_step,
                };
                sim_key = Some(c.insert_full_simulation(row, &tags)?);
            }
            Line::Agent(a) => {
                let key = sim_key.ok_or(Error::RecorderClosed)?;
                c.insert_agent(NewAgent {
                    sim_key: key,
                    agent_index: a.agent_index,
                    name: a.name,
                    kind: a.kind,
                    policy_name: a.policy_name,
                    policy_version: a.policy_version,
                    checkpoint_uri: a.checkpoint_uri,
                    metadata: a.metadata,
                    created_at: a.created_at,
                })?;
            }
            Line::Event(e) => {
                let key = sim_key.ok_or(Error::RecorderClosed)?;
                c.insert_event(&NewEvent {
                    sim_key: key,
                    occurred_at: TimeParam(e.occurred_at),
                    kind: e.kind,
                    from_status: e.from_status,
                    to_status: e.to_status,
                    message: e.message,
                    data: e.data.map(JsonParam),
                })?;
            }
            Line::State(agent, step, reward, state) => {
                batch.push_state(agent, step, reward, &state, usize::MAX)?;
            }
            Line::Step(step, at, metrics) => {
                batch.push_step(step, at, &metrics, usize::MAX)?;
            }
            Line::Metric(name, agent, step, value) => {
                let local = cache.local(&name);
                batch.push_metric(agent, local, step, value);
            }
            Line::Memory(m) => {
                let data = unhex(&m.data).unwrap_or_default();
                batch.push_memory(
                    m.agent,
                    m.step,
                    NewAgentMemory::new(m.dtype, m.shape, data),
                    m.recorded_at,
                    usize::MAX,
                )?;
            }
        }
        if batch.rows() >= IMPORT_BATCH_ROWS {
            let key = sim_key.ok_or(Error::RecorderClosed)?;
            flush(c, &mut batch, &mut cache, key)?;
        }
        Ok(())
    })?;
    if let Some(key) = sim_key {
        flush(c, &mut batch, &mut cache, key)?;
    }
    Ok(())
}
