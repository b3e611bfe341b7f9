//! Row encoding: the rows recorded since the last hand-off to the writer,
//! their JSON serialized once into one shared text buffer.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::models::NewAgentMemory;
use crate::validate::check_json_text;

/// A span of a batch's JSON text buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span(pub(crate) u32, pub(crate) u32);

#[derive(Debug)]
pub(crate) struct StateRec {
    pub(crate) agent: i32,
    pub(crate) step: i64,
    pub(crate) reward: f64,
    pub(crate) state: Span,
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
    /// JSON text of every state and step of the batch, back to back.
    pub(crate) json: Vec<u8>,
    pub(crate) states: Vec<StateRec>,
    pub(crate) steps: Vec<StepRec>,
    pub(crate) metrics: Vec<MetricRec>,
    pub(crate) memories: Vec<MemoryRec>,
    /// Metric names first used in this batch: (recorder-local id, name).
    pub(crate) new_metric_names: Vec<(u32, String)>,
}

impl Batch {
    /// Appends an agent state (validated by the caller).
    pub(crate) fn push_state<S: Serialize + ?Sized>(
        &mut self,
        agent: i32,
        step: i64,
        reward: f64,
        state: &S,
    ) -> Result<()> {
        let state = self.push_json("state", state)?;
        self.states.push(StateRec {
            agent,
            step,
            reward,
            state,
        });
        Ok(())
    }

    /// Appends a step; its metrics must serialize to a JSON object.
    pub(crate) fn push_step<S: Serialize + ?Sized>(
        &mut self,
        step: i64,
        at: DateTime<Utc>,
        metrics: &S,
    ) -> Result<()> {
        let span = self.push_json("step metrics", metrics)?;
        if self.json.get(span.0 as usize) != Some(&b'{') {
            self.json.truncate(span.0 as usize);
            return Err(Error::invalid(
                "step metrics",
                "must serialize to a JSON object",
            ));
        }
        self.steps.push(StepRec {
            step,
            at,
            metrics: span,
        });
        Ok(())
    }

    /// Appends a metric value of a batch-local metric id.
    pub(crate) fn push_metric(&mut self, agent: Option<i32>, metric: u32, step: i64, value: f64) {
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
    ) {
        self.memories.push(MemoryRec {
            agent,
            step,
            memory,
            at,
        });
    }

    pub(crate) fn rows(&self) -> usize {
        self.states.len() + self.steps.len() + self.metrics.len() + self.memories.len()
    }

    /// Serializes `value` onto the text buffer.
    pub(crate) fn push_json<S: Serialize + ?Sized>(
        &mut self,
        field: &'static str,
        value: &S,
    ) -> Result<Span> {
        let start = self.json.len();
        if let Err(e) = serde_json::to_writer(&mut self.json, value) {
            self.json.truncate(start);
            return Err(e.into());
        }
        if let Err(e) = check_json_text(field, &self.json[start..]) {
            self.json.truncate(start);
            return Err(e);
        }
        match (u32::try_from(start), u32::try_from(self.json.len())) {
            (Ok(s), Ok(e)) => Ok(Span(s, e)),
            _ => {
                self.json.truncate(start);
                Err(Error::invalid("state", "batch text buffer exceeds 4 GiB"))
            }
        }
    }
}
