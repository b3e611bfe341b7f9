use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::prelude::*;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::ids::{ExperimentId, SimulationId};
use crate::schema::simulations;
use crate::sql_types::{JsonParam, TimeParam};

/// One run of a simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable)]
#[diesel(table_name = simulations)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct Simulation {
    /// Compact integer key used by the per-step tables. Internal to one
    /// database: it changes when a run is copied elsewhere.
    pub sim_key: i32,
    /// Public id.
    pub id: SimulationId,
    /// The experiment it belongs to, if any.
    pub experiment_id: Option<ExperimentId>,
    /// Optional human name.
    pub name: Option<String>,
    /// Lifecycle status.
    pub status: SimulationStatus,
    /// Parameters (always a JSON object).
    pub parameters: Value,
    /// Summary given on completion.
    pub results_summary: Option<Value>,
    /// Where bulk side data lives (a URI), if anywhere.
    pub data_uri: Option<String>,
    /// Why it failed, when it did.
    pub error_message: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub ended_at: Option<DateTime<Utc>>,
    /// Last sign of life from the recording process (the database's clock).
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// The commit watermark: every row of every step up to it is committed
    /// (`None`: no step yet). See [`crate::Recorder::end_step`].
    #[serde(default)]
    pub committed_step: Option<i64>,
}

/// A new simulation: [`NewSimulation::new`] takes the parameters (a JSON
/// object), the rest defaults. It starts `pending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Insertable)]
#[diesel(table_name = simulations, treat_none_as_default_value = false)]
pub struct NewSimulation {
    /// Public id; generated unless set with [`NewSimulation::id`].
    pub id: SimulationId,
    /// The experiment it belongs to.
    pub experiment_id: Option<ExperimentId>,
    /// Optional human name.
    pub name: Option<String>,
    /// Parameters; must be a JSON object.
    #[diesel(serialize_as = JsonParam)]
    pub parameters: Value,
    /// Where bulk side data lives.
    pub data_uri: Option<String>,
    /// Creation time, now by default.
    #[diesel(serialize_as = TimeParam)]
    pub created_at: DateTime<Utc>,
    /// Tags, stored in `simulation_tags`.
    #[diesel(skip_insertion)]
    pub tags: Vec<String>,
}

impl NewSimulation {
    /// A pending simulation with these parameters and a generated id.
    /// For parameters held in a struct, see [`NewSimulation::with_parameters`].
    pub fn new(parameters: Value) -> Self {
        NewSimulation {
            id: SimulationId::generate(),
            experiment_id: None,
            name: None,
            parameters,
            data_uri: None,
            created_at: Utc::now(),
            tags: Vec::new(),
        }
    }

    /// A pending simulation whose parameters are anything serde serializes
    /// to a JSON object (a struct of the engine's, a map). Numbers keep the
    /// digits they print with: an `f32` of `0.12` is stored as `0.12`, not
    /// widened to `0.11999999731779099`, so `--param alignment=0.12` finds it.
    ///
    /// # Errors
    /// [`Error::Json`](crate::Error::Json) if the value cannot be serialized.
    pub fn with_parameters<P: serde::Serialize + ?Sized>(parameters: &P) -> crate::Result<Self> {
        // Through text: serde_json prints an f32 with its own shortest
        // digits, where `to_value` would widen it to f64 first.
        let text = serde_json::to_string(parameters)?;
        Ok(Self::new(serde_json::from_str(&text)?))
    }

    /// Uses a caller-chosen id.
    pub fn id(mut self, id: SimulationId) -> Self {
        self.id = id;
        self
    }

    /// Puts the simulation in an experiment.
    pub fn experiment(mut self, experiment: &ExperimentId) -> Self {
        self.experiment_id = Some(experiment.clone());
        self
    }

    /// Gives it a human name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Records where bulk side data lives.
    pub fn data_uri(mut self, uri: impl Into<String>) -> Self {
        self.data_uri = Some(uri.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
}

/// Lifecycle of a simulation.
///
/// ```text
/// pending ──> running ──> completed | failed | cancelled
///    │           └──────> interrupted ──> running (resume) | failed | cancelled
///    └──> failed | cancelled
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AsExpression, FromSqlRow,
)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "lowercase")]
pub enum SimulationStatus {
    /// Created, not started.
    Pending,
    /// Recording.
    Running,
    /// Finished normally.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped on purpose.
    Cancelled,
    /// Stopped heartbeating while running (the process died); can resume.
    Interrupted,
}

impl SimulationStatus {
    /// Every status.
    pub const ALL: [SimulationStatus; 6] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Interrupted,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// Whether a simulation in `self` may move to `to`.
    pub fn can_become(self, to: SimulationStatus) -> bool {
        use SimulationStatus::*;
        matches!(
            (self, to),
            (Pending, Running | Failed | Cancelled)
                | (Running, Completed | Failed | Cancelled | Interrupted)
                | (Interrupted, Running | Failed | Cancelled)
        )
    }

    /// Completed, failed or cancelled: nothing follows.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for SimulationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SimulationStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid("status", format!("unknown status `{s}`")))
    }
}

impl<DB> ToSql<Text, DB> for SimulationStatus
where
    DB: Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <str as ToSql<Text, DB>>::to_sql(self.as_str(), out)
    }
}

impl<DB> FromSql<Text, DB> for SimulationStatus
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        Ok(text.parse()?)
    }
}
