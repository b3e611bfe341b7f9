//! The JSON Lines export format, and reading it line by line.
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

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::io_error;
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::{Agent, Event, Experiment, Simulation};

/// The format name in an export's header line.
pub const JSONL_FORMAT: &str = "simdb-jsonl";
/// The format version this library writes and reads.
pub const JSONL_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) simulation: SimulationId,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SimulationLine {
    pub(crate) simulation: Simulation,
    pub(crate) tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MemoryLine {
    pub(crate) agent: i32,
    pub(crate) step: i64,
    pub(crate) dtype: String,
    pub(crate) shape: Vec<u64>,
    pub(crate) data: String,
    pub(crate) recorded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct End {
    pub(crate) lines: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Line {
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

/// Lower-case hex of bytes (memory snapshots).
pub(crate) fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(data.len() * 2);
    for b in data {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Bytes of lower- or upper-case hex; None if it is not hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Everything [`write_line`] needs to count lines.
pub(crate) struct LineWriter<'p, W: Write> {
    pub(crate) out: W,
    pub(crate) lines: u64,
    pub(crate) progress: Box<dyn FnMut(u64) + 'p>,
}

impl<W: Write> LineWriter<'_, W> {
    pub(crate) fn write(&mut self, line: &Line) -> Result<()> {
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
pub(crate) struct Numbered {
    pub(crate) line: usize,
    pub(crate) value: Line,
}

/// Reads `path` line by line, calling `f` with each parsed line.
pub(crate) fn for_each_line(path: &Path, f: impl FnMut(Numbered) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(io_error(path))?;
    for_each_line_in(BufReader::new(file), &path.display().to_string(), f)
}

pub(crate) fn for_each_line_in(
    reader: impl BufRead,
    label: &str,
    mut f: impl FnMut(Numbered) -> Result<()>,
) -> Result<()> {
    let bad = |line: usize, reason: String| Error::Import {
        path: label.to_string(),
        line,
        reason,
    };
    // Blank lines are allowed at the end of a file only (an editor's
    // trailing newline), never between lines.
    let mut blank: Option<usize> = None;
    for (i, text) in reader.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(|e| bad(line, format!("unreadable: {e}")))?;
        if text.trim().is_empty() {
            blank = blank.or(Some(line));
            continue;
        }
        if let Some(at) = blank {
            return Err(bad(at, "empty line".into()));
        }
        let value: Line = serde_json::from_str(&text).map_err(|e| bad(line, not_a_line(&e)))?;
        f(Numbered { line, value })?;
    }
    Ok(())
}

/// serde_json's message for one line, with the column in that line and
/// without its own "at line 1 column N" (the file's line is named already).
fn not_a_line(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let own = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&own).unwrap_or(&text);
    format!("column {}: not a simdb line: {message}", e.column())
}
