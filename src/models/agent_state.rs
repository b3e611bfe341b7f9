use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::AgentIndex;

/// One agent's state and reward at one step, as read back from its chunk
/// (see [`AgentStateChunk`](super::AgentStateChunk)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// The agent.
    pub agent_index: AgentIndex,
    /// Step number (`>= 0`).
    pub step: i64,
    /// Reward at this step (finite).
    pub reward: f64,
    /// State JSON.
    pub state: Value,
}
