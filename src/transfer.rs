//! Moving simulations between databases: a lossless JSON Lines export, an
//! all-or-nothing import, and CSV for pandas.
//!
//! The JSONL format, one JSON value per line:
//!
//! ```text
//! {"header":{"format":"simdb-jsonl","version":1,"simulation":"<id>"}}
//! {"experiment":{...}}                         optional
//! {"simulation":{"simulation":{...},"tags":[...]}}
//! {"agent":{...}}                              one per agent
//! {"event":{...}}                              the audit trail
//! {"state":[agent,step,reward,state]}          one per agent-step
//! {"step":[step,recorded_at,metrics]}
//! {"metric":[name,agent_or_null,step,value]}
//! {"memory":{"agent":..,"step":..,"dtype":..,"shape":[..],"data":"<hex>","recorded_at":..}}
//! {"end":{"lines":<number of lines before this one>}}
//! ```
//!
//! Public ids are kept; the compact `sim_key`s are reassigned by the target.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::{AgentIndex, ExperimentId, SimulationId};
use crate::models::NewExperiment;
use crate::models::{
    Agent, AgentState, Event, Experiment, NewAgent, NewAgentMemory, NewEvent, Simulation,
};
use crate::store::prelude::*;
use crate::store::FullSimulation;
use crate::recorder::{write_batch, Batch, Bulk, MetricCache};
use crate::service::{check_json, finite, SimulationService};
use crate::sql_types::{JsonParam, TimeParam};
use crate::with_connection;

/// The format name in an export's header line.
pub const JSONL_FORMAT: &str = "simdb-jsonl";
/// The format version this library writes and reads.
pub const JSONL_VERSION: u32 = 1;

/// Rows per write during import (one transaction holds them all).
const IMPORT_BATCH_ROWS: usize = 10_000;
/// Rows per page when exporting one agent's states.
const EXPORT_PAGE_ROWS: i64 = 50_000;

/// What to do when an imported simulation's id already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnConflict {
    /// Refuse with [`Error::Duplicate`] (the default).
    #[default]
    Error,
    /// Leave the existing simulation and import nothing.
    Skip,
    /// Delete the existing simulation, then import.
    Replace,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportOutcome {
    /// The simulation was imported with this many lines.
    Imported {
        /// Its id.
        simulation: SimulationId,
        /// Data lines read.
        lines: u64,
    },
    /// It existed and [`OnConflict::Skip`] left it alone.
    Skipped {
        /// Its id.
        simulation: SimulationId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    simulation: SimulationId,
}

#[derive(Debug, Serialize, Deserialize)]
struct SimulationLine {
    simulation: Simulation,
    tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MemoryLine {
    agent: i32,
    step: i64,
    dtype: String,
    shape: Vec<u64>,
    data: String,
    recorded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct End {
    lines: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header(Header),
    Experiment(Experiment),
    Simulation(SimulationLine),
    Agent(Agent),
    Event(Event),
    State(i32, i64, f64, Value),
    Step(i64, DateTime<Utc>, Value),
    Metric(String, Option<i32>, i64, f64),
    Memory(MemoryLine),
    End(End),
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(data.len() * 2);
    for b in data {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Everything [`write_line`] needs to count lines.
struct LineWriter<'p, W: Write> {
    out: W,
    lines: u64,
    progress: Box<dyn FnMut(u64) + 'p>,
}

impl<W: Write> LineWriter<'_, W> {
    fn write(&mut self, line: &Line) -> Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n").map_err(|e| Error::Io {
            path: "export".into(),
            source: e,
        })?;
        self.lines += 1;
        if self.lines % 10_000 == 0 {
            (self.progress)(self.lines);
        }
        Ok(())
    }
}

/// A parsed import line with its line number.
struct Numbered {
    line: usize,
    value: Line,
}

impl SimulationService {
    /// Writes a simulation, with its experiment, agents, events and every
    /// per-step row, as JSON Lines. Reads page by page: memory stays flat
    /// however large the simulation. One JSON value per line:
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
    /// [`Error::NotFound`] for an unknown simulation; [`Error::Io`] if
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
        let events = self.events(id)?;
        w.write(&Line::Simulation(SimulationLine {
            simulation: sim.clone(),
            tags,
        }))?;
        for agent in &agents {
            w.write(&Line::Agent(agent.clone()))?;
        }
        for event in events {
            w.write(&Line::Event(event))?;
        }
        for agent in &agents {
            self.for_each_state_page(sim.sim_key, agent.agent_index.0, |page| {
                for s in page {
                    w.write(&Line::State(s.agent_index.0, s.step, s.reward, s.state))?;
                }
                Ok(())
            })?;
        }
        for step in self.steps(id, ..)? {
            w.write(&Line::Step(step.step, step.recorded_at, step.metrics))?;
        }
        let step_metrics = with_connection!(self.database().connection()?, |c| c
            .named_step_metrics(sim.sim_key))?;
        for (name, step, value) in step_metrics {
            w.write(&Line::Metric(name, None, step, value))?;
        }
        for agent in &agents {
            let rows = with_connection!(self.database().connection()?, |c| c
                .named_agent_metrics(sim.sim_key, agent.agent_index.0))?;
            for (name, step, value) in rows {
                w.write(&Line::Metric(name, Some(agent.agent_index.0), step, value))?;
            }
            for m in self.memories(id, agent.agent_index)? {
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
                }))?;
            }
        }
        let lines = w.lines;
        w.write(&Line::End(End { lines }))?;
        w.out.flush().map_err(|e| Error::Io {
            path: "export".into(),
            source: e,
        })?;
        Ok(w.lines)
    }

    /// Writes a simulation's agent states as CSV with a header, one row per
    /// agent-step: `step,agent,kind,reward,<agent metrics...>,state`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation; [`Error::Io`].
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

    /// Imports one simulation from a JSONL export, all or nothing: the file
    /// is validated completely first (an error names the line), then written
    /// in one transaction. Its experiment is created if missing (and reused,
    /// unchanged, if its id exists).
    ///
    /// # Errors
    /// [`Error::Import`] for a malformed or truncated file;
    /// [`Error::Duplicate`] if the simulation exists and `on_conflict` is
    /// [`OnConflict::Error`]; [`Error::Io`].
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

impl SimulationService {
    /// Calls `f` with one agent's states in step order, a page at a time
    /// (keyset pagination), so an export's memory stays flat.
    fn for_each_state_page(
        &self,
        sim_key: i32,
        agent: i32,
        mut f: impl FnMut(Vec<AgentState>) -> Result<()>,
    ) -> Result<()> {
        let mut after = i64::MIN;
        loop {
            let page = with_connection!(self.database().connection()?, |c| c.agent_states_page(
                sim_key,
                agent,
                after,
                EXPORT_PAGE_ROWS
            ))?;
            let Some(last) = page.last().map(|s| s.step) else {
                return Ok(());
            };
            let full = page.len() as i64 == EXPORT_PAGE_ROWS;
            f(page)?;
            if !full {
                return Ok(());
            }
            after = last;
        }
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

/// Reads `path` line by line, calling `f` with each parsed line.
fn for_each_line(path: &Path, f: impl FnMut(Numbered) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(io_error(path))?;
    for_each_line_in(BufReader::new(file), &path.display().to_string(), f)
}

fn for_each_line_in(
    reader: impl BufRead,
    label: &str,
    mut f: impl FnMut(Numbered) -> Result<()>,
) -> Result<()> {
    let bad = |line: usize, reason: String| Error::Import {
        path: label.to_string(),
        line,
        reason,
    };
    for (i, text) in reader.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(|e| bad(line, format!("unreadable: {e}")))?;
        if text.trim().is_empty() {
            return Err(bad(line, "empty line".into()));
        }
        let value: Line =
            serde_json::from_str(&text).map_err(|e| bad(line, format!("not a simdb line: {e}")))?;
        f(Numbered { line, value })?;
    }
    Ok(())
}

/// Checks the whole file; returns the simulation id and the data line count.
fn validate(path: &Path) -> Result<(SimulationId, u64)> {
    let file = File::open(path).map_err(io_error(path))?;
    validate_reader(BufReader::new(file), &path.display().to_string())
}

/// Checks a whole export; returns the simulation id and the data line count.
pub(crate) fn validate_reader(reader: impl BufRead, label: &str) -> Result<(SimulationId, u64)> {
    let bad = |line: usize, reason: String| Error::Import {
        path: label.to_string(),
        line,
        reason,
    };
    let mut header: Option<SimulationId> = None;
    let mut simulation_seen = false;
    let mut experiment: Option<ExperimentId> = None;
    let mut agents: BTreeSet<i32> = BTreeSet::new();
    let mut end: Option<(usize, u64)> = None;
    let mut count: u64 = 0;
    for_each_line_in(reader, label, |Numbered { line, value }| {
        if end.is_some() {
            return Err(bad(line, "data after the end line".into()));
        }
        if header.is_none() && !matches!(value, Line::Header(_)) {
            return Err(bad(
                line,
                "the first line must be the simdb-jsonl header".into(),
            ));
        }
        match &value {
            Line::Header(h) => {
                if header.is_some() {
                    return Err(bad(line, "a second header".into()));
                }
                if h.format != JSONL_FORMAT || h.version != JSONL_VERSION {
                    return Err(bad(
                        line,
                        format!("unsupported format {} version {}", h.format, h.version),
                    ));
                }
                header = Some(h.simulation.clone());
            }
            Line::Experiment(e) => {
                crate::ids::validate_text("experiment name", &e.name, 256)
                    .map_err(|err| bad(line, err.to_string()))?;
                check_json("experiment metadata", &e.metadata)
                    .map_err(|err| bad(line, err.to_string()))?;
                experiment = Some(e.id.clone());
            }
            Line::Simulation(s) => {
                if simulation_seen {
                    return Err(bad(line, "a second simulation".into()));
                }
                if Some(&s.simulation.id) != header.as_ref() {
                    return Err(bad(line, "simulation id differs from the header".into()));
                }
                if !s.simulation.parameters.is_object() {
                    return Err(bad(line, "parameters must be a JSON object".into()));
                }
                check_json("parameters", &s.simulation.parameters)
                    .map_err(|err| bad(line, err.to_string()))?;
                if s.simulation.experiment_id.is_some() && s.simulation.experiment_id != experiment
                {
                    return Err(bad(
                        line,
                        "the simulation's experiment line is missing".into(),
                    ));
                }
                simulation_seen = true;
            }
            Line::Agent(a) => {
                if !simulation_seen {
                    return Err(bad(line, "agent before the simulation line".into()));
                }
                let i = a
                    .agent_index
                    .checked()
                    .map_err(|err| bad(line, err.to_string()))?;
                if !agents.insert(i) {
                    return Err(bad(line, format!("agent {i} appears twice")));
                }
                check_json("agent metadata", &a.metadata)
                    .map_err(|err| bad(line, err.to_string()))?;
            }
            Line::Event(_) => {
                if !simulation_seen {
                    return Err(bad(line, "event before the simulation line".into()));
                }
            }
            Line::State(agent, step, reward, state) => {
                check_row(*agent, *step, &agents).map_err(|r| bad(line, r))?;
                finite("reward", *reward).map_err(|err| bad(line, err.to_string()))?;
                check_json("state", state).map_err(|err| bad(line, err.to_string()))?;
            }
            Line::Step(step, _, metrics) => {
                if *step < 0 || !metrics.is_object() {
                    return Err(bad(
                        line,
                        "a step needs a step >= 0 and a metrics object".into(),
                    ));
                }
                check_json("step metrics", metrics).map_err(|err| bad(line, err.to_string()))?;
            }
            Line::Metric(name, agent, step, value) => {
                crate::ids::validate_text("metric name", name, 256)
                    .map_err(|err| bad(line, err.to_string()))?;
                if let Some(a) = agent {
                    check_row(*a, *step, &agents).map_err(|r| bad(line, r))?;
                } else if *step < 0 {
                    return Err(bad(line, "negative step".into()));
                }
                finite("metric value", *value).map_err(|err| bad(line, err.to_string()))?;
            }
            Line::Memory(m) => {
                check_row(m.agent, m.step, &agents).map_err(|r| bad(line, r))?;
                let data =
                    unhex(&m.data).ok_or_else(|| bad(line, "memory data is not hex".into()))?;
                NewAgentMemory::new(m.dtype.clone(), m.shape.clone(), data)
                    .validate()
                    .map_err(|err| bad(line, err.to_string()))?;
            }
            Line::End(e) => {
                end = Some((line, e.lines));
                return Ok(());
            }
        }
        count += 1;
        Ok(())
    })?;
    let Some(sim) = header else {
        return Err(bad(0, "empty file: no header".into()));
    };
    if !simulation_seen {
        return Err(bad(0, "no simulation line".into()));
    }
    match end {
        None => Err(bad(
            0,
            format!("truncated: no end line after {count} lines"),
        )),
        Some((line, declared)) if declared != count => Err(bad(
            line,
            format!("end line declares {declared} lines, the file has {count}"),
        )),
        Some(_) => Ok((sim, count)),
    }
}

fn check_row(agent: i32, step: i64, agents: &BTreeSet<i32>) -> Result<(), String> {
    if step < 0 {
        return Err(format!("negative step {step}"));
    }
    if !agents.contains(&agent) {
        return Err(format!("agent {agent} is not declared before its rows"));
    }
    Ok(())
}

/// Second pass: writes a validated file (inside the caller's transaction).
fn import_lines<C: Store + Bulk>(
    c: &mut C,
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut done: u64 = 0;
    let mut sim_key: Option<i32> = None;
    let mut batch = Batch::default();
    let mut cache = MetricCache::default();
    let flush = |c: &mut C, batch: &mut Batch, cache: &mut MetricCache, key: i32| -> Result<()> {
        let interned = write_batch(c, key, batch, cache)?;
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
                if let Err(Error::NotFound { .. }) = c.find_experiment(&e.id) {
                    c.insert_experiment(&NewExperiment {
                        id: e.id,
                        name: e.name,
                        description: e.description,
                        metadata: e.metadata,
                        external_ref: e.external_ref,
                        created_at: e.created_at,
                    })?;
                }
            }
            Line::Simulation(SimulationLine {
                simulation: s,
                tags,
            }) => {
                let row = FullSimulation {
                    id: s.id.clone(),
                    experiment_id: s.experiment_id,
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
                batch.push_state(agent, step, reward, &state)?;
            }
            Line::Step(step, at, metrics) => {
                batch.push_step(step, at, &metrics)?;
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
                );
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

/// Keeps `AgentIndex` referenced for the line types.
#[allow(dead_code)]
type _Agent = AgentIndex;
