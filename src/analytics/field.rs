//! Which recorded number a series or aggregate is computed over.

use serde::{Deserialize, Serialize};

/// What a series or aggregate is computed over: every number a simulation
/// records is usable wherever a field is accepted.
///
/// Written as text (the CLI's `--field`), `"reward"` is the reward,
/// `"state.<path>"` a numeric field of the JSON state (`state.energy`,
/// `state.inventory.ore`, `state.pos.0`), and any other name a metric: an
/// agent metric if the simulation recorded one by that name, else its
/// simulation-level metric. A field the simulation never recorded is
/// [`Error::NotFound`](crate::Error::NotFound) with entity `"field"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Field {
    /// The reward column of agent states.
    Reward,
    /// A numeric metric recorded with `metric` / `agent_metric`.
    Metric(String),
    /// A numeric field of the agents' JSON state, by dot-separated path
    /// (object keys, or array indexes); other values are skipped.
    State(String),
}

impl Field {
    /// Parses `reward`, `state.<path>` or a metric name.
    pub fn parse(name: &str) -> Field {
        if name == "reward" {
            Field::Reward
        } else if let Some(path) = name.strip_prefix("state.") {
            Field::State(path.to_string())
        } else {
            Field::Metric(name.to_string())
        }
    }

    /// The field as text, as [`Field::parse`] reads it.
    pub fn name(&self) -> String {
        match self {
            Field::Reward => "reward".into(),
            Field::Metric(name) => name.clone(),
            Field::State(path) => format!("state.{path}"),
        }
    }
}

impl From<&str> for Field {
    fn from(name: &str) -> Self {
        Field::parse(name)
    }
}
