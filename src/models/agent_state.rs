use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::AgentIndex;
use crate::schema::agent_states;
use crate::sql_types::JsonParam;

/// One agent's state and reward at one step: the hot table.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Serialize,
    Deserialize,
    Queryable,
    QueryableByName,
    Selectable,
    Insertable,
)]
#[diesel(table_name = agent_states, treat_none_as_default_value = false)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
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
    #[diesel(serialize_as = JsonParam)]
    pub state: Value,
}
