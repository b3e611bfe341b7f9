use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::AgentIndex;
use crate::schema::{agent_metrics, metric_names, step_metrics};

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

/// A numeric metric of one agent at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = agent_metrics, treat_none_as_default_value = false)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
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
