use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::AgentIndex;
use crate::schema::agent_memories;
use crate::sql_types::{JsonParam, TimeParam};

/// A snapshot of an agent's recurrent memory (a tensor) at a step, for resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = agent_memories, treat_none_as_default_value = false)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct AgentMemory {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// The agent.
    pub agent_index: AgentIndex,
    /// Step the snapshot belongs to.
    pub step: i64,
    /// Element type, e.g. `f32`.
    pub dtype: String,
    /// Dimensions, a JSON array of non-negative integers.
    #[diesel(serialize_as = JsonParam)]
    pub shape: Value,
    /// Raw little-endian element bytes, row-major.
    pub data: Vec<u8>,
    /// When it was recorded.
    #[diesel(serialize_as = TimeParam)]
    pub recorded_at: DateTime<Utc>,
}

/// What a memory snapshot holds, without its bytes: for listing many
/// (the dashboard's agent page) without reading every tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable)]
pub struct MemorySummary {
    /// Step the snapshot belongs to.
    pub step: i64,
    /// Element type, e.g. `f32`.
    pub dtype: String,
    /// Dimensions, a JSON array of non-negative integers.
    pub shape: Value,
    /// Size of its raw bytes.
    pub bytes: i64,
}

/// A memory snapshot to record: element type, shape and raw bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAgentMemory {
    /// Element type (`f16 bf16 f32 f64 i8 i16 i32 i64 u8 u16 u32 u64 bool`, or any
    /// other name, whose size is then not checked).
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Raw element bytes.
    pub data: Vec<u8>,
}

impl NewAgentMemory {
    /// A snapshot of `data` viewed as a `dtype` tensor of `shape`.
    pub fn new(dtype: impl Into<String>, shape: Vec<u64>, data: Vec<u8>) -> Self {
        NewAgentMemory {
            dtype: dtype.into(),
            shape,
            data,
        }
    }

    /// A snapshot of `f32` values.
    pub fn from_f32(shape: Vec<u64>, values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new("f32", shape, data)
    }

    /// Checks that dtype is a sane name and that, for a known dtype, the
    /// byte length matches the shape.
    pub(crate) fn validate(&self) -> Result<()> {
        crate::ids::validate_text("memory dtype", &self.dtype, 32)?;
        let size = match self.dtype.as_str() {
            "i8" | "u8" | "bool" => Some(1u64),
            "f16" | "bf16" | "i16" | "u16" => Some(2),
            "f32" | "i32" | "u32" => Some(4),
            "f64" | "i64" | "u64" => Some(8),
            _ => None,
        };
        if let Some(size) = size {
            let expected = self
                .shape
                .iter()
                .try_fold(size, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| Error::invalid("memory shape", "element count overflows"))?;
            if expected != self.data.len() as u64 {
                return Err(Error::invalid(
                    "memory data",
                    format!(
                        "{} bytes do not fit dtype {} with shape {:?} ({} bytes expected)",
                        self.data.len(),
                        self.dtype,
                        self.shape,
                        expected
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads the data back as `f32` values, if the dtype is `f32`.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        decode_f32(&self.dtype, &self.data)
    }
}

impl AgentMemory {
    /// Reads the data back as `f32` values, if the dtype is `f32`.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        decode_f32(&self.dtype, &self.data)
    }
}

fn decode_f32(dtype: &str, data: &[u8]) -> Option<Vec<f32>> {
    if dtype != "f32" || data.len() % 4 != 0 {
        return None;
    }
    Some(
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}
