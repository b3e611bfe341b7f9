//! The first pass of an import: the whole file checked before anything is
//! written, every error naming its line.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::io_error;
use super::jsonl::{for_each_line_in, unhex, Line, Numbered, JSONL_FORMAT, JSONL_VERSION};
use crate::error::{Error, Result};
use crate::ids::{ExperimentId, SimulationId};
use crate::models::NewAgentMemory;
use crate::validate::{check_json, finite};

/// Checks the whole file; returns the simulation id and its line count
/// (the end line included, as the export counted).
pub(crate) fn validate(path: &Path) -> Result<(SimulationId, u64)> {
    let file = File::open(path).map_err(io_error(path))?;
    let (sim, count, flagged) = check_lines(BufReader::new(file), &path.display().to_string())?;
    if !flagged.is_empty() {
        exact_duplicates(path, &flagged)?;
    }
    Ok((sim, count + 1))
}

/// Checks a whole export read from `reader` (for fuzzing: without the
/// second look at unsorted streams).
pub(crate) fn validate_reader(reader: impl BufRead, label: &str) -> Result<(SimulationId, u64)> {
    check_lines(reader, label).map(|(sim, count, _)| (sim, count))
}

/// Checks every line; returns the simulation id, the count of lines before
/// the end line, and the streams that were not in step order.
fn check_lines(reader: impl BufRead, label: &str) -> Result<(SimulationId, u64, BTreeSet<RowKey>)> {
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
    let mut rows = Duplicates::default();
    for_each_line_in(reader, label, |Numbered { line, value }| {
        if let Some(key) = row_key(&value) {
            rows.check(key, line).map_err(|first| {
                bad(
                    line,
                    format!("duplicate of line {first}: the same row twice"),
                )
            })?;
        }
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
        return Err(bad(0, "empty file: no header line".into()));
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
        Some(_) => Ok((sim, count, rows.flagged)),
    }
}

pub(crate) fn check_row(agent: i32, step: i64, agents: &BTreeSet<i32>) -> Result<(), String> {
    if step < 0 {
        return Err(format!("negative step {step}"));
    }
    if !agents.contains(&agent) {
        return Err(format!("agent {agent} is not declared before its rows"));
    }
    Ok(())
}

/// The identity of a per-step row: its kind, agent or metric, and step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RowKey {
    State(i32),
    Step,
    Metric(String, Option<i32>),
    Memory(i32),
}

fn row_key(line: &Line) -> Option<(RowKey, i64)> {
    Some(match line {
        Line::State(agent, step, _, _) => (RowKey::State(*agent), *step),
        Line::Step(step, _, _) => (RowKey::Step, *step),
        Line::Metric(name, agent, step, _) => (RowKey::Metric(name.clone(), *agent), *step),
        Line::Memory(m) => (RowKey::Memory(m.agent), m.step),
        _ => return None,
    })
}

/// Finds a row that appears twice, naming the first line.
///
/// An export writes each stream (one agent's states, one metric, ...) in
/// step order, so its duplicates are neighbours: the last step and line of
/// each stream suffice. A stream that goes back in steps (a hand-made file)
/// is flagged, and [`validate`] reads the file a second time, remembering
/// every step of the flagged streams only.
#[derive(Debug, Default)]
struct Duplicates {
    last: std::collections::HashMap<RowKey, (i64, usize)>,
    flagged: BTreeSet<RowKey>,
}

impl Duplicates {
    fn check(&mut self, (key, step): (RowKey, i64), line: usize) -> Result<(), usize> {
        match self.last.get(&key).copied() {
            Some((last, first)) if last == step => return Err(first),
            Some((last, _)) if step < last => {
                self.flagged.insert(key.clone());
            }
            _ => {}
        }
        self.last.insert(key, (step, line));
        Ok(())
    }
}

/// The second look for files whose streams are not in step order.
fn exact_duplicates(path: &Path, flagged: &BTreeSet<RowKey>) -> Result<()> {
    let label = path.display().to_string();
    let file = File::open(path).map_err(io_error(path))?;
    let mut seen: std::collections::HashMap<(RowKey, i64), usize> =
        std::collections::HashMap::new();
    for_each_line_in(BufReader::new(file), &label, |Numbered { line, value }| {
        if let Some((key, step)) = row_key(&value).filter(|(k, _)| flagged.contains(k)) {
            if let Some(first) = seen.insert((key, step), line) {
                return Err(Error::Import {
                    path: label.clone(),
                    line,
                    reason: format!("duplicate of line {first}: the same row twice"),
                });
            }
        }
        Ok(())
    })
}
