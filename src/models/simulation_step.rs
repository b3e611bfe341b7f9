use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::simulation_steps;
use crate::sql_types::{JsonParam, TimeParam};

/// One step of a simulation with its free-form metrics JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = simulation_steps, treat_none_as_default_value = false)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct SimulationStep {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// Step number.
    pub step: i64,
    /// When it was recorded.
    #[diesel(serialize_as = TimeParam)]
    pub recorded_at: DateTime<Utc>,
    /// Metrics JSON object.
    #[diesel(serialize_as = JsonParam)]
    pub metrics: Value,
}
