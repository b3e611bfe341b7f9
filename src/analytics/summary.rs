//! A simulation at a glance.

use std::collections::BTreeMap;

use chrono::Utc;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::aggregates::AggregateStore;
use super::source::Source;
use super::Analytics;
use crate::error::Result;
use crate::ids::{AgentIndex, SimulationId};
use crate::models::{Agent, Simulation, SimulationStep};
use crate::schema::{agent_totals, simulation_steps, step_metrics};
use crate::store::for_each_backend;
use crate::store::prelude::*;
use crate::with_connection;

/// Totals of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    /// The agent.
    pub agent: AgentIndex,
    /// Its kind, if registered with one.
    pub kind: Option<String>,
    /// Agent-state rows.
    pub rows: i64,
    /// Sum of rewards.
    pub total_reward: f64,
    /// Mean reward per row (None without rows).
    pub mean_reward: Option<f64>,
}

/// The state of a simulation at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The simulation row.
    pub simulation: Simulation,
    /// From start to end (or to now while running), in seconds.
    pub duration_secs: Option<f64>,
    /// Recorded steps (rows of `simulation_steps`).
    pub steps: i64,
    /// The highest step with an agent state.
    pub last_step: Option<i64>,
    /// Registered agents.
    pub agents: i64,
    /// Agent-state rows.
    pub agent_state_rows: i64,
    /// Sum of all rewards.
    pub total_reward: f64,
    /// Mean reward per agent-state row.
    pub mean_reward: Option<f64>,
    /// Every registered agent, by index (one without rows has `rows: 0`
    /// and `mean_reward: None`).
    pub per_agent: Vec<AgentSummary>,
    /// The latest recorded step with its metrics.
    pub latest_step: Option<SimulationStep>,
    /// Every simulation-level numeric metric's latest value, by name, as
    /// `(step, value)`.
    #[serde(default)]
    pub latest_metrics: BTreeMap<String, (i64, f64)>,
}

/// Per-agent reward totals, step counts and latest metric values.
trait SummaryStore {
    fn reward_by_agent(&mut self, sim_key: i32) -> Result<Vec<(i32, i64, Option<f64>)>>;
    fn count_steps(&mut self, sim_key: i32) -> Result<i64>;
    /// The last `(step, value)` of a simulation-level metric.
    fn last_step_metric(&mut self, sim_key: i32, metric: i32) -> Result<Option<(i64, f64)>>;
}

for_each_backend! {
    impl SummaryStore {
        fn reward_by_agent(&mut self, sim_key: i32) -> Result<Vec<(i32, i64, Option<f64>)>> {
            // The totals kept at ingest, not a scan of the rows.
            Ok(agent_totals::table
                .filter(agent_totals::sim_key.eq(sim_key))
                .select((
                    agent_totals::agent_index,
                    agent_totals::n,
                    agent_totals::total.nullable(),
                ))
                .order(agent_totals::agent_index)
                .load(self)?)
        }

        fn last_step_metric(&mut self, sim_key: i32, metric: i32) -> Result<Option<(i64, f64)>> {
            Ok(step_metrics::table
                .filter(step_metrics::sim_key.eq(sim_key))
                .filter(step_metrics::metric_id.eq(metric))
                .select((step_metrics::step, step_metrics::value))
                .order(step_metrics::step.desc())
                .first(self)
                .optional()?)
        }

        fn count_steps(&mut self, sim_key: i32) -> Result<i64> {
            Ok(simulation_steps::table
                .filter(simulation_steps::sim_key.eq(sim_key))
                .count()
                .get_result(self)?)
        }
    }
}

/// Every registered agent with its rows and reward totals (zero without
/// rows), in registration order.
fn per_agent(agents: &[Agent], rewards: &[(i32, i64, Option<f64>)]) -> Vec<AgentSummary> {
    let totals: BTreeMap<i32, (i64, f64)> = rewards
        .iter()
        .map(|&(agent, rows, total)| (agent, (rows, total.unwrap_or(0.0))))
        .collect();
    agents
        .iter()
        .map(|a| {
            let (rows, total) = totals.get(&a.agent_index.0).copied().unwrap_or((0, 0.0));
            AgentSummary {
                agent: a.agent_index,
                kind: a.kind.clone(),
                rows,
                total_reward: total,
                mean_reward: (rows > 0).then(|| total / rows as f64),
            }
        })
        .collect()
}

impl Analytics {
    /// Every registered agent's rows and reward totals: the per-agent part
    /// of [`Analytics::summary`], in two key-range reads (for live views).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn agent_totals(&self, id: &SimulationId) -> Result<Vec<AgentSummary>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let agents = c.agents(sim.sim_key)?;
            let rewards = c.reward_by_agent(sim.sim_key)?;
            Ok(per_agent(&agents, &rewards))
        })
    }

    /// Status, duration, steps, agents, rows, total and mean reward overall
    /// and per registered agent, the latest step's metrics and every
    /// simulation-level metric's latest value.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn summary(&self, id: &SimulationId) -> Result<Summary> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let agents = c.agents(sim.sim_key)?;
            let rewards = c.reward_by_agent(sim.sim_key)?;
            let steps = c.count_steps(sim.sim_key)?;
            let latest = simulation_steps::table
                .filter(simulation_steps::sim_key.eq(sim.sim_key))
                .order(simulation_steps::step.desc())
                .select(SimulationStep::as_select())
                .first(c)
                .optional()?;
            let last_step = c.step_span(sim.sim_key, &Source::Reward)?.map(|(_, hi)| hi);
            let per_agent = per_agent(&agents, &rewards);
            let mut latest_metrics = BTreeMap::new();
            for (metric, name) in c.step_metric_names(sim.sim_key)? {
                if let Some(last) = c.last_step_metric(sim.sim_key, metric)? {
                    latest_metrics.insert(name, last);
                }
            }
            let rows: i64 = per_agent.iter().map(|a| a.rows).sum();
            let total: f64 = per_agent.iter().map(|a| a.total_reward).sum();
            let duration_secs = sim.started_at.map(|s| {
                let end = sim.ended_at.unwrap_or_else(Utc::now);
                (end - s).num_microseconds().unwrap_or(0) as f64 / 1e6
            });
            Ok(Summary {
                duration_secs,
                steps,
                last_step,
                agents: agents.len() as i64,
                agent_state_rows: rows,
                total_reward: total,
                mean_reward: (rows > 0).then(|| total / rows as f64),
                per_agent,
                latest_step: latest,
                latest_metrics,
                simulation: sim,
            })
        })
    }
}
