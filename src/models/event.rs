use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::models::SimulationStatus;
use crate::schema::events;
use crate::sql_types::{JsonParam, TimeParam};

/// An entry of a simulation's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable)]
#[diesel(table_name = events)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct Event {
    /// Increasing id.
    pub event_id: i64,
    /// The simulation's compact key.
    pub sim_key: i32,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// `created`, `status`, `agents_registered`, ...
    pub kind: String,
    /// Status before a transition.
    pub from_status: Option<SimulationStatus>,
    /// Status after a transition.
    pub to_status: Option<SimulationStatus>,
    /// Free text (an error message, a reason).
    pub message: Option<String>,
    /// Extra JSON.
    pub data: Option<Value>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub(crate) struct NewEvent {
    pub sim_key: i32,
    pub occurred_at: TimeParam,
    pub kind: String,
    pub from_status: Option<SimulationStatus>,
    pub to_status: Option<SimulationStatus>,
    pub message: Option<String>,
    pub data: Option<JsonParam>,
}
