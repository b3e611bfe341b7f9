//! Row encoding: the rows recorded since the last hand-off to the writer,
//! their JSON serialized once into one shared text buffer.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::chunk::floats::float_text;
use crate::error::{Error, Result};
use crate::models::NewAgentMemory;
use crate::validate::write_json;

/// A span of a batch's JSON text buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span(pub(crate) u32, pub(crate) u32);

#[derive(Debug)]
pub(crate) struct StateRec {
    pub(crate) agent: i32,
    pub(crate) step: i64,
    pub(crate) reward: f64,
    pub(crate) state: Span,
    /// Its captured floats: a span of [`Batch::floats`].
    pub(crate) floats: Span,
}

#[derive(Debug)]
pub(crate) struct StepRec {
    pub(crate) step: i64,
    pub(crate) at: DateTime<Utc>,
    pub(crate) metrics: Span,
}

#[derive(Debug)]
pub(crate) struct MetricRec {
    pub(crate) agent: Option<i32>,
    pub(crate) metric: u32,
    pub(crate) step: i64,
    pub(crate) value: f64,
}

#[derive(Debug)]
pub(crate) struct MemoryRec {
    pub(crate) agent: i32,
    pub(crate) step: i64,
    pub(crate) memory: NewAgentMemory,
    pub(crate) at: DateTime<Utc>,
}

/// Rows recorded since the last hand-off to the writer.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// JSON text of every state and step of the batch, back to back; a
    /// state's floats are captured (`chunk/floats.rs`): a mark in the text.
    pub(crate) json: Vec<u8>,
    /// The states' captured floats, back to back.
    pub(crate) floats: Vec<f64>,
    pub(crate) states: Vec<StateRec>,
    pub(crate) steps: Vec<StepRec>,
    pub(crate) metrics: Vec<MetricRec>,
    pub(crate) memories: Vec<MemoryRec>,
    /// Metric names first used in this batch: (recorder-local id, name).
    pub(crate) new_metric_names: Vec<(u32, String)>,
    /// Bytes of the memory snapshots.
    pub(crate) memory_bytes: usize,
    /// The step ended by `Recorder::end_step` while this batch was filled:
    /// once this batch commits, every row of every step up to it has.
    pub(crate) ended: Option<i64>,
    /// The lowest step of any row.
    pub(crate) min_step: Option<i64>,
    /// The highest step of any row.
    pub(crate) max_step: Option<i64>,
    /// The writer's sequence number, once it first tried to write the batch.
    pub(crate) seq: Option<i64>,
}

/// A batch's length, see [`Batch::mark`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    json: usize,
    floats: usize,
    states: usize,
    metrics: usize,
    min_step: Option<i64>,
    max_step: Option<i64>,
}

/// Bookkeeping bytes counted per row on top of its JSON text.
const ROW_OVERHEAD: usize = 48;

impl Batch {
    /// Appends an agent state (validated by the caller).
    pub(crate) fn push_state<S: Serialize + ?Sized>(
        &mut self,
        agent: i32,
        step: i64,
        reward: f64,
        state: &S,
        limit: usize,
    ) -> Result<()> {
        let (state, floats) = self.push_json("state", state, limit, true)?;
        self.saw_step(step);
        self.states.push(StateRec {
            agent,
            step,
            reward,
            state,
            floats,
        });
        Ok(())
    }

    /// Appends a step; its metrics must serialize to a JSON object.
    pub(crate) fn push_step<S: Serialize + ?Sized>(
        &mut self,
        step: i64,
        at: DateTime<Utc>,
        metrics: &S,
        limit: usize,
    ) -> Result<()> {
        let (span, _) = self.push_json("step metrics", metrics, limit, false)?;
        if self.json.get(span.0 as usize) != Some(&b'{') {
            self.json.truncate(span.0 as usize);
            return Err(Error::invalid(
                "step metrics",
                "must serialize to a JSON object",
            ));
        }
        self.saw_step(step);
        self.steps.push(StepRec {
            step,
            at,
            metrics: span,
        });
        Ok(())
    }

    /// Appends a metric value of a batch-local metric id.
    pub(crate) fn push_metric(&mut self, agent: Option<i32>, metric: u32, step: i64, value: f64) {
        self.saw_step(step);
        self.metrics.push(MetricRec {
            agent,
            metric,
            step,
            value,
        });
    }

    /// Appends a memory snapshot.
    pub(crate) fn push_memory(
        &mut self,
        agent: i32,
        step: i64,
        memory: NewAgentMemory,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<()> {
        let bytes = memory.data.len() + ROW_OVERHEAD;
        if bytes > limit {
            return Err(Error::RowTooLarge { bytes, limit });
        }
        self.saw_step(step);
        self.memory_bytes += memory.data.len();
        self.memories.push(MemoryRec {
            agent,
            step,
            memory,
            at,
        });
        Ok(())
    }

    fn saw_step(&mut self, step: i64) {
        self.min_step = Some(self.min_step.map_or(step, |s| s.min(step)));
        self.max_step = Some(self.max_step.map_or(step, |s| s.max(step)));
    }

    /// Whether a batch holding `soft` rows or more (at least one) should go
    /// to the writer before rows of `step` join it: yes once `step` opens a
    /// 64-step chunk above every row the batch holds, so that batches end
    /// on chunk boundaries and their chunks are written whole, never
    /// rewritten.
    pub(crate) fn ends_before(&self, step: i64, soft: usize) -> bool {
        self.rows() >= soft.max(1)
            && self
                .max_step
                .is_some_and(|m| crate::chunk::chunk_of(step) > crate::chunk::chunk_of(m))
    }

    /// Moves every state and metric of `other` (a lane's batch) to the end
    /// of this one, its JSON spans shifted onto this batch's text.
    pub(crate) fn append(&mut self, other: &mut Batch) {
        let shift = self.json.len() as u32;
        self.json.extend_from_slice(&other.json);
        other.json.clear();
        let float_shift = self.floats.len() as u32;
        self.floats.extend_from_slice(&other.floats);
        other.floats.clear();
        for mut rec in other.states.drain(..) {
            rec.state = Span(
                rec.state.0.saturating_add(shift),
                rec.state.1.saturating_add(shift),
            );
            rec.floats = Span(
                rec.floats.0.saturating_add(float_shift),
                rec.floats.1.saturating_add(float_shift),
            );
            self.states.push(rec);
        }
        self.metrics.append(&mut other.metrics);
        if let Some(step) = other.min_step.take() {
            self.saw_step(step);
        }
        if let Some(step) = other.max_step.take() {
            self.saw_step(step);
        }
    }

    /// Takes in `later`, a whole batch handed off after this one, so that
    /// both are held and retried as one.
    pub(crate) fn absorb(&mut self, mut later: Batch) {
        let shift = self.json.len() as u32;
        for mut rec in later.steps.drain(..) {
            rec.metrics = Span(
                rec.metrics.0.saturating_add(shift),
                rec.metrics.1.saturating_add(shift),
            );
            self.steps.push(rec);
        }
        self.append(&mut later);
        self.memories.append(&mut later.memories);
        self.memory_bytes += later.memory_bytes;
        self.new_metric_names.append(&mut later.new_metric_names);
        self.ended = later.ended.or(self.ended);
    }

    /// Where the batch ends now, to take back what one call appended.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            json: self.json.len(),
            floats: self.floats.len(),
            states: self.states.len(),
            metrics: self.metrics.len(),
            min_step: self.min_step,
            max_step: self.max_step,
        }
    }

    /// Drops everything appended since `mark` (states and metrics only).
    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.json.truncate(mark.json);
        self.floats.truncate(mark.floats);
        self.states.truncate(mark.states);
        self.metrics.truncate(mark.metrics);
        self.min_step = mark.min_step;
        self.max_step = mark.max_step;
    }

    /// This batch emptied, its vectors' room kept for the rows of a batch
    /// to come (a batch's text and rows are a few hundred KiB to a few MiB;
    /// fresh ones came from pages the allocator had given back and had to
    /// fault in again, on the recording thread).
    pub(crate) fn emptied(self) -> Batch {
        let Batch {
            mut json,
            mut floats,
            mut states,
            mut steps,
            mut metrics,
            memories: _,
            new_metric_names: _,
            memory_bytes: _,
            ended: _,
            min_step: _,
            max_step: _,
            seq: _,
        } = self;
        json.clear();
        floats.clear();
        states.clear();
        steps.clear();
        metrics.clear();
        Batch {
            json,
            floats,
            states,
            steps,
            metrics,
            ..Batch::default()
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.states.len() + self.steps.len() + self.metrics.len() + self.memories.len()
    }

    /// What the batch holds in memory, roughly: its text, its memory
    /// snapshots and a fixed overhead per row.
    pub(crate) fn bytes(&self) -> usize {
        self.json.len() + self.floats.len() * 8 + self.memory_bytes + self.rows() * ROW_OVERHEAD
    }

    /// True if there is nothing for the writer: no row, no new metric name,
    /// no end of step.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows() == 0 && self.new_metric_names.is_empty() && self.ended.is_none()
    }

    /// Serializes `value` onto the text buffer, its floats captured if
    /// `capture` (a state's); its size is checked as spelled out (exactly,
    /// once an upper bound of it passes `limit`). Returns the spans of its
    /// text and floats.
    fn push_json<S: Serialize + ?Sized>(
        &mut self,
        field: &'static str,
        value: &S,
        limit: usize,
        capture: bool,
    ) -> Result<(Span, Span)> {
        let (start, first_float) = (self.json.len(), self.floats.len());
        let undo = |b: &mut Batch| {
            b.json.truncate(start);
            b.floats.truncate(first_float);
        };
        let floats = capture.then_some(&mut self.floats);
        if let Err(e) = write_json(field, value, &mut self.json, floats) {
            undo(self);
            return Err(e);
        }
        let floats = &self.floats[first_float..];
        // A float spells out in at most 24 characters, in place of its mark.
        let mut bytes = self.json.len() - start + floats.len() * 23 + ROW_OVERHEAD;
        if bytes > limit {
            let mut spelled = Vec::new();
            let spelled_ok = floats.iter().all(|&v| float_text(v, &mut spelled).is_ok());
            if !spelled_ok {
                undo(self);
                return Err(Error::invalid("state", "a float could not be spelled out"));
            }
            bytes = self.json.len() - start - floats.len() + spelled.len() + ROW_OVERHEAD;
        }
        if bytes > limit {
            undo(self);
            return Err(Error::RowTooLarge { bytes, limit });
        }
        let spans = (
            u32::try_from(start),
            u32::try_from(self.json.len()),
            u32::try_from(first_float),
            u32::try_from(self.floats.len()),
        );
        match spans {
            (Ok(s), Ok(e), Ok(fs), Ok(fe)) => Ok((Span(s, e), Span(fs, fe))),
            _ => {
                undo(self);
                Err(Error::invalid("state", "batch text buffer exceeds 4 GiB"))
            }
        }
    }
}
