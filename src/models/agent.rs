use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::AgentIndex;
use crate::schema::agents;
use crate::sql_types::{JsonParam, TimeParam};

/// An agent of a simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable)]
#[diesel(table_name = agents)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct Agent {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// Index within the simulation.
    pub agent_index: AgentIndex,
    /// Optional display name.
    pub name: Option<String>,
    /// Implementation (strategy, architecture): the leaderboard groups by it.
    pub kind: Option<String>,
    /// Policy name.
    pub policy_name: Option<String>,
    /// Policy version.
    pub policy_version: Option<i32>,
    /// Where the policy checkpoint lives.
    pub checkpoint_uri: Option<String>,
    /// Arbitrary JSON.
    pub metadata: Value,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// An agent to register: [`NewAgent::new`] takes its index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Insertable)]
#[diesel(table_name = agents, treat_none_as_default_value = false)]
pub struct NewAgent {
    /// Filled in by [`crate::SimulationService::register_agents`].
    #[serde(skip)]
    pub sim_key: i32,
    /// Index within the simulation (`>= 0`).
    pub agent_index: AgentIndex,
    /// Display name.
    pub name: Option<String>,
    /// Implementation.
    pub kind: Option<String>,
    /// Policy name.
    pub policy_name: Option<String>,
    /// Policy version.
    pub policy_version: Option<i32>,
    /// Checkpoint URI.
    pub checkpoint_uri: Option<String>,
    /// Arbitrary JSON, `{}` by default.
    #[diesel(serialize_as = JsonParam)]
    pub metadata: Value,
    /// Registration time, now by default.
    #[diesel(serialize_as = TimeParam)]
    pub created_at: DateTime<Utc>,
}

impl NewAgent {
    /// Agent number `index`.
    pub fn new(index: impl Into<AgentIndex>) -> Self {
        NewAgent {
            sim_key: 0,
            agent_index: index.into(),
            name: None,
            kind: None,
            policy_name: None,
            policy_version: None,
            checkpoint_uri: None,
            metadata: Value::Object(Default::default()),
            created_at: Utc::now(),
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the implementation kind.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Sets policy name and version.
    pub fn policy(mut self, name: impl Into<String>, version: i32) -> Self {
        self.policy_name = Some(name.into());
        self.policy_version = Some(version);
        self
    }

    /// Sets the checkpoint URI.
    pub fn checkpoint(mut self, uri: impl Into<String>) -> Self {
        self.checkpoint_uri = Some(uri.into());
        self
    }

    /// Sets the metadata JSON.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }
}
