use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::ExperimentId;
use crate::schema::experiments;
use crate::sql_types::{JsonParam, TimeParam};

/// A named group of simulations (a sweep, an ablation, a benchmark).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Identifiable)]
#[diesel(table_name = experiments)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct Experiment {
    /// Public id.
    pub id: ExperimentId,
    /// Unique, human-chosen name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Arbitrary JSON.
    pub metadata: Value,
    /// Reference into an outer experiment system (an MLflow run, a ticket).
    pub external_ref: Option<String>,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
}

/// A new experiment: [`NewExperiment::new`] takes the name, the rest defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Insertable)]
#[diesel(table_name = experiments, treat_none_as_default_value = false)]
pub struct NewExperiment {
    /// Public id; generated unless set with [`NewExperiment::id`].
    pub id: ExperimentId,
    /// Unique name.
    pub name: String,
    /// Free text, empty by default.
    pub description: String,
    /// Arbitrary JSON, `{}` by default.
    #[diesel(serialize_as = JsonParam)]
    pub metadata: Value,
    /// Optional reference into an outer experiment system.
    pub external_ref: Option<String>,
    /// Creation time, now by default.
    #[diesel(serialize_as = TimeParam)]
    pub created_at: DateTime<Utc>,
}

impl NewExperiment {
    /// An experiment called `name` with a generated id.
    pub fn new(name: impl Into<String>) -> Self {
        NewExperiment {
            id: ExperimentId::generate(),
            name: name.into(),
            description: String::new(),
            metadata: Value::Object(Default::default()),
            external_ref: None,
            created_at: Utc::now(),
        }
    }

    /// Uses a caller-chosen id instead of a generated one.
    pub fn id(mut self, id: ExperimentId) -> Self {
        self.id = id;
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the metadata JSON.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Links the experiment to an outer system.
    pub fn external_ref(mut self, external_ref: impl Into<String>) -> Self {
        self.external_ref = Some(external_ref.into());
        self
    }
}
