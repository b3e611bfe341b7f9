use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::chunk;
use crate::error::Result;
use crate::ids::AgentIndex;
use crate::schema::{agent_metric_chunks, metric_names, step_metrics};

/// An interned metric name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Queryable, Selectable)]
#[diesel(table_name = metric_names)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct MetricName {
    /// Compact id used by the metric tables.
    pub metric_id: i32,
    /// The name.
    pub name: String,
}

/// A numeric metric of the whole simulation at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = step_metrics, treat_none_as_default_value = false)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct StepMetric {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// The metric's id in `metric_names`.
    pub metric_id: i32,
    /// Step number.
    pub step: i64,
    /// Value (finite).
    pub value: f64,
}

/// A numeric metric of one agent at one step, as read back from its chunk
/// (see [`AgentMetricChunk`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMetric {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// The agent.
    pub agent_index: AgentIndex,
    /// The metric's id in `metric_names`.
    pub metric_id: i32,
    /// Step number.
    pub step: i64,
    /// Value (finite).
    pub value: f64,
}

/// One row of `simdb_agent_metric_chunks`: up to 64 aligned steps of one
/// agent's values of one metric. Chunk `chunk` covers steps
/// `64 * chunk ..= 64 * chunk + 63`; bit `i` of `present` is set where step
/// `64 * chunk + i` was recorded. [`AgentMetricChunk::points`] decodes it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = agent_metric_chunks, treat_none_as_default_value = false)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct AgentMetricChunk {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// The metric's id in `metric_names`.
    pub metric_id: i32,
    /// The agent.
    pub agent_index: i32,
    /// The chunk number (steps `64 * chunk ..= 64 * chunk + 63`).
    pub chunk: i64,
    /// Which of the chunk's steps were recorded (bit `i`: step `64 * chunk + i`).
    pub present: i64,
    /// The values, encoded (`src/chunk/values.rs` gives the layout).
    pub vals: Vec<u8>,
}

impl AgentMetricChunk {
    /// Encodes one agent's values of one metric as simdb stores them (for a
    /// host that writes chunks itself, or checks what simdb wrote):
    /// `points` are `(step, value)`, steps ascending, distinct and all in
    /// one chunk, values finite.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for no points, steps out of order, in
    /// two chunks or negative, or a value that is not finite.
    pub fn encode(
        sim_key: i32,
        metric_id: i32,
        agent_index: i32,
        points: &[(i64, f64)],
    ) -> Result<AgentMetricChunk> {
        let number = chunk::chunk_of_steps("points", points.iter().map(|p| p.0))?;
        for p in points {
            crate::validate::finite("value", p.1)?;
        }
        Ok(crate::store::metric_chunks::encode(
            sim_key,
            metric_id,
            agent_index,
            number,
            points,
        ))
    }

    /// The steps this chunk holds, ascending.
    pub fn steps(&self) -> impl Iterator<Item = i64> {
        chunk::steps(self.chunk, self.present as u64)
    }

    /// How many steps this chunk holds.
    pub fn len(&self) -> usize {
        (self.present as u64).count_ones() as usize
    }

    /// True if the chunk holds no step (never stored so).
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// `(step, value)` of every step, ascending.
    pub fn points(&self) -> Result<Vec<(i64, f64)>> {
        let values = chunk::values::decode(&self.vals, self.len())?;
        Ok(self.steps().zip(values).collect())
    }

    /// Every step's row, ascending.
    pub fn rows(&self) -> Result<Vec<AgentMetric>> {
        Ok(self
            .points()?
            .into_iter()
            .map(|(step, value)| AgentMetric {
                sim_key: self.sim_key,
                agent_index: AgentIndex(self.agent_index),
                metric_id: self.metric_id,
                step,
                value,
            })
            .collect())
    }
}
