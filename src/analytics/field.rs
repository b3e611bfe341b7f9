//! Which recorded number a series or aggregate is computed over.

use serde::{Deserialize, Serialize};

/// What a series or aggregate is computed over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Field {
    /// The reward column of agent states.
    Reward,
    /// A numeric metric recorded with `metric` / `agent_metric`.
    Metric(String),
}

impl Field {
    /// `"reward"` is [`Field::Reward`]; any other name is a metric.
    pub fn parse(name: &str) -> Field {
        if name == "reward" {
            Field::Reward
        } else {
            Field::Metric(name.to_string())
        }
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        match self {
            Field::Reward => "reward",
            Field::Metric(name) => name,
        }
    }
}

impl From<&str> for Field {
    fn from(name: &str) -> Self {
        Field::parse(name)
    }
}
