//! Which recorded number a series or aggregate is computed over.

use serde::{Deserialize, Serialize};

/// What a series or aggregate is computed over: every number a simulation
/// records is usable wherever a field is accepted.
///
/// Written as text (the CLI's `--field`), `"reward"` is the reward,
/// `"state.<path>"` a numeric field of the JSON state (`state.energy`,
/// `state.inventory.ore`, `state.pos.0`), and any other name a metric: an
/// agent metric if the simulation recorded one by that name, else its
/// simulation-level metric.
///
/// **What "not recorded" means — one rule for every call.**
/// - A field the simulation never recorded is
///   [`Error::NotFound`](crate::Error::NotFound) with entity `"field"`,
///   whatever its kind: a metric no row of the run has, or a state path at
///   which no agent state of the run holds a number (absent everywhere, or
///   only ever a string or object there). The reward is part of every agent
///   state, so it is always recorded: a run without agent states yet has an
///   empty reward series, not an error.
/// - An agent that was never registered is `NotFound` with entity
///   `"agent"` in every per-agent call (`agent_series`, `state_series`,
///   `agent_states`, `memories`, `latest_memory`), whatever the field.
/// - A registered agent that has no value of a recorded field (another
///   agent has it) gets an empty series.
/// - A state field's span — where `step_aggregates` lays its buckets, and
///   the "last step" of `compare` — is the span of the steps that have a
///   number at that path, not of the agent states.
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
