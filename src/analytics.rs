//! Reading results back: summaries, series, step aggregates, comparisons,
//! leaderboards, parameter search and live progress. Aggregates run in SQL;
//! only their results are loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeBounds;

use chrono::{DateTime, Utc};
use diesel::dsl::{count_star, max, min, sum};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::database::Database;
use crate::error::Result;
use crate::ids::{AgentIndex, ExperimentId, SimulationId};
use crate::models::{Simulation, SimulationStatus, SimulationStep};
use crate::store::prelude::*;
use crate::store::{step_bounds, SimulationFilter};
use crate::schema::*;
use crate::service::SimulationService;
use crate::with_connection;

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
    /// Per agent, by index.
    pub per_agent: Vec<AgentSummary>,
    /// The latest recorded step with its metrics.
    pub latest_step: Option<SimulationStep>,
}

/// Count / sum / mean / min / max of a field across agents over a step bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAggregate {
    /// First step in the bucket that has data.
    pub first_step: i64,
    /// Last step in the bucket that has data.
    pub last_step: i64,
    /// Values aggregated.
    pub count: i64,
    /// Their sum.
    pub sum: f64,
    /// Their mean.
    pub mean: f64,
    /// Their minimum.
    pub min: f64,
    /// Their maximum.
    pub max: f64,
}

/// One simulation in a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// The simulation.
    pub simulation: SimulationId,
    /// Its status.
    pub status: SimulationStatus,
    /// Parameters flattened to JSON paths (`a.b.0`) -> leaf value.
    pub parameters: BTreeMap<String, Value>,
    /// Per field: the mean across agents (or the value) at the last step.
    pub final_values: BTreeMap<String, Option<f64>>,
    /// Per field: the mean over all rows.
    pub mean_values: BTreeMap<String, Option<f64>>,
}

/// A comparison table: one row per simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Every parameter path that occurs in any row, sorted.
    pub parameter_columns: Vec<String>,
    /// The fields compared.
    pub fields: Vec<String>,
    /// The rows, in the order of the simulations given (newest first for an
    /// experiment).
    pub rows: Vec<ComparisonRow>,
}

impl Comparison {
    /// The table as CSV with a header: `simulation,status,<params...>,
    /// final_<field>,mean_<field>...`.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut header = vec!["simulation".to_string(), "status".to_string()];
        header.extend(self.parameter_columns.iter().cloned());
        for f in &self.fields {
            header.push(format!("final_{f}"));
            header.push(format!("mean_{f}"));
        }
        push_csv_line(&mut out, &header);
        for row in &self.rows {
            let mut cells = vec![row.simulation.to_string(), row.status.to_string()];
            for col in &self.parameter_columns {
                cells.push(match row.parameters.get(col) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                });
            }
            for f in &self.fields {
                for map in [&row.final_values, &row.mean_values] {
                    cells.push(
                        map.get(f)
                            .copied()
                            .flatten()
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                    );
                }
            }
            push_csv_line(&mut out, &cells);
        }
        out
    }
}

fn push_csv_line(out: &mut String, cells: &[String]) {
    let escaped: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect();
    out.push_str(&escaped.join(","));
    out.push('\n');
}

/// How a leaderboard groups agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupBy {
    /// By agent kind (implementation / strategy).
    Kind,
    /// By policy name and version.
    Policy,
    /// Each agent of each simulation on its own.
    Agent,
}

/// One group of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// 1 for the best mean reward.
    pub rank: usize,
    /// The kind, `policy@version`, or `simulation#agent`; `(none)` when unset.
    pub group: String,
    /// Simulations the group appears in.
    pub simulations: i64,
    /// Agents in the group.
    pub agents: i64,
    /// Agent-state rows.
    pub rows: i64,
    /// Sum of rewards.
    pub total_reward: f64,
    /// Mean reward per row.
    pub mean_reward: f64,
}

/// Parameter conditions for [`Analytics::find_simulations`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParameterQuery {
    /// Restricts by experiment, status, tag (as for `list_simulations`).
    pub filter: SimulationFilter,
    /// `path == value` conditions; a path is dot-separated (`optimizer.lr`,
    /// `layers.0`).
    pub equals: Vec<(String, Value)>,
    /// `lo <= path <= hi` numeric conditions (either bound optional).
    pub ranges: Vec<(String, Option<f64>, Option<f64>)>,
}

impl ParameterQuery {
    /// Every simulation that `filter` admits.
    pub fn new(filter: SimulationFilter) -> Self {
        ParameterQuery {
            filter,
            ..Default::default()
        }
    }
    /// Adds `path == value`.
    pub fn equals(mut self, path: &str, value: Value) -> Self {
        self.equals.push((path.to_string(), value));
        self
    }
    /// Adds `lo <= path <= hi` (numbers only).
    pub fn range(mut self, path: &str, lo: Option<f64>, hi: Option<f64>) -> Self {
        self.ranges.push((path.to_string(), lo, hi));
        self
    }

    /// Adds a condition written `PATH=VALUE`; VALUE is JSON, or else taken
    /// as a string (`env=grid` is `env == "grid"`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) without `=` or
    /// with an empty path.
    pub fn equals_arg(self, arg: &str) -> Result<Self> {
        let (path, value) = arg
            .split_once('=')
            .filter(|(p, _)| !p.is_empty())
            .ok_or_else(|| {
                crate::Error::invalid("parameter condition", format!("`{arg}` is not PATH=VALUE"))
            })?;
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        Ok(self.equals(path, value))
    }

    /// Adds a range written `PATH=LO..HI`, either bound optional.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) unless it has that
    /// form with numeric bounds.
    pub fn range_arg(self, arg: &str) -> Result<Self> {
        let parsed =
            arg.split_once('=')
                .filter(|(p, _)| !p.is_empty())
                .and_then(|(path, range)| {
                    let (lo, hi) = range.split_once("..")?;
                    let bound = |s: &str| {
                        if s.is_empty() {
                            Some(None)
                        } else {
                            s.parse::<f64>().ok().filter(|v| v.is_finite()).map(Some)
                        }
                    };
                    Some((path, bound(lo)?, bound(hi)?))
                });
        let (path, lo, hi) = parsed.ok_or_else(|| {
            crate::Error::invalid("parameter range", format!("`{arg}` is not PATH=LO..HI"))
        })?;
        Ok(self.range(path, lo, hi))
    }
}

/// Where a [`Progress`] poll left off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Highest step already returned (-1 before any).
    pub step: i64,
    /// Agent-state rows counted so far.
    pub rows: i64,
    /// When the poll happened.
    pub at: DateTime<Utc>,
}

/// What is new in a simulation since a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Pass to the next poll.
    pub cursor: Cursor,
    /// Current status.
    pub status: SimulationStatus,
    /// Steps recorded after the cursor, by step.
    pub new_steps: Vec<SimulationStep>,
    /// Highest step with agent states.
    pub latest_step: Option<i64>,
    /// Agent-state rows in the database.
    pub rows: i64,
    /// Agent-state rows per second since the previous poll.
    pub rows_per_sec: Option<f64>,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_secs: Option<f64>,
}

/// Read-side queries; get one from [`SimulationService::analytics`].
#[derive(Debug, Clone)]
pub struct Analytics {
    db: Database,
}

impl SimulationService {
    /// Summaries, series, aggregates, comparisons and leaderboards.
    pub fn analytics(&self) -> Analytics {
        Analytics {
            db: self.database().clone(),
        }
    }
}

/// Reads the whole `(count, sum)` of rewards per agent, and per-metric ids.
trait AnalyticsStore {
    fn reward_by_agent(&mut self, sim_key: i32) -> Result<Vec<(i32, i64, Option<f64>)>>;
    fn metric_lookup(&mut self, name: &str) -> Result<Option<i32>>;
    fn series(
        &mut self,
        sim_key: i32,
        agent: i32,
        field: &Field,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>>;
    fn step_span(&mut self, sim_key: i32, field: &Field) -> Result<Option<(i64, i64)>>;
    /// Aggregates of the rows from step `lo` on, in buckets of `width` steps.
    fn aggregate(
        &mut self,
        sim_key: i32,
        field: &Field,
        lo: i64,
        width: i64,
    ) -> Result<Vec<StepAggregate>>;
    fn step_metric_stats(
        &mut self,
        sim_key: i32,
        metric: i32,
    ) -> Result<(Option<f64>, Option<f64>)>;
    fn leaderboard_rows(&mut self, sim_keys: &[i32], by: GroupBy) -> Result<Vec<LeaderboardRow>>;
    fn count_steps(&mut self, sim_key: i32) -> Result<i64>;
    fn rows_after(&mut self, sim_key: i32, step: i64) -> Result<(i64, Option<i64>)>;
}

/// Per group: simulations, (simulation, agent) pairs, rows, reward sum.
type GroupAcc = (BTreeSet<i32>, BTreeSet<(i32, i32)>, i64, f64);

type AggRow = (
    Option<i64>,
    Option<i64>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

fn to_aggregates(rows: Vec<AggRow>) -> Vec<StepAggregate> {
    let mut out: Vec<StepAggregate> = rows
        .into_iter()
        .filter_map(|(first, last, count, s, lo, hi)| {
            let (first_step, last_step, sum, min, max) = (first?, last?, s?, lo?, hi?);
            (count > 0).then(|| StepAggregate {
                first_step,
                last_step,
                count,
                sum,
                mean: sum / count as f64,
                min,
                max,
            })
        })
        .collect();
    out.sort_by_key(|a| a.first_step);
    out
}

macro_rules! impl_analytics {
    ($conn:ty) => {
        impl AnalyticsStore for $conn {
            fn reward_by_agent(&mut self, sim_key: i32) -> Result<Vec<(i32, i64, Option<f64>)>> {
                Ok(agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .group_by(agent_states::agent_index)
                    .select((
                        agent_states::agent_index,
                        count_star(),
                        sum(agent_states::reward),
                    ))
                    .order(agent_states::agent_index)
                    .load(self)?)
            }

            fn metric_lookup(&mut self, name: &str) -> Result<Option<i32>> {
                Ok(metric_names::table
                    .filter(metric_names::name.eq(name))
                    .select(metric_names::metric_id)
                    .first(self)
                    .optional()?)
            }

            fn series(
                &mut self,
                sim_key: i32,
                agent: i32,
                field: &Field,
                lo: i64,
                hi: i64,
            ) -> Result<Vec<(i64, f64)>> {
                Ok(match field {
                    Field::Reward => agent_states::table
                        .filter(agent_states::sim_key.eq(sim_key))
                        .filter(agent_states::agent_index.eq(agent))
                        .filter(agent_states::step.between(lo, hi))
                        .select((agent_states::step, agent_states::reward))
                        .order(agent_states::step)
                        .load(self)?,
                    Field::Metric(name) => match self.metric_lookup(name)? {
                        None => Vec::new(),
                        Some(metric) => agent_metrics::table
                            .filter(agent_metrics::sim_key.eq(sim_key))
                            .filter(agent_metrics::agent_index.eq(agent))
                            .filter(agent_metrics::metric_id.eq(metric))
                            .filter(agent_metrics::step.between(lo, hi))
                            .select((agent_metrics::step, agent_metrics::value))
                            .order(agent_metrics::step)
                            .load(self)?,
                    },
                })
            }

            fn step_span(&mut self, sim_key: i32, field: &Field) -> Result<Option<(i64, i64)>> {
                let span: (Option<i64>, Option<i64>) = match field {
                    Field::Reward => agent_states::table
                        .filter(agent_states::sim_key.eq(sim_key))
                        .select((min(agent_states::step), max(agent_states::step)))
                        .first(self)?,
                    Field::Metric(name) => match self.metric_lookup(name)? {
                        None => (None, None),
                        Some(metric) => agent_metrics::table
                            .filter(agent_metrics::sim_key.eq(sim_key))
                            .filter(agent_metrics::metric_id.eq(metric))
                            .select((min(agent_metrics::step), max(agent_metrics::step)))
                            .first(self)?,
                    },
                };
                Ok(span.0.zip(span.1))
            }

            fn aggregate(
                &mut self,
                sim_key: i32,
                field: &Field,
                lo: i64,
                width: i64,
            ) -> Result<Vec<StepAggregate>> {
                let rows: Vec<AggRow> = match field {
                    Field::Reward => agent_states::table
                        .filter(agent_states::sim_key.eq(sim_key))
                        .filter(agent_states::step.ge(lo))
                        .group_by((agent_states::step - lo) / width)
                        .select((
                            min(agent_states::step),
                            max(agent_states::step),
                            count_star(),
                            sum(agent_states::reward),
                            min(agent_states::reward),
                            max(agent_states::reward),
                        ))
                        .load(self)?,
                    Field::Metric(name) => match self.metric_lookup(name)? {
                        None => Vec::new(),
                        Some(metric) => agent_metrics::table
                            .filter(agent_metrics::sim_key.eq(sim_key))
                            .filter(agent_metrics::metric_id.eq(metric))
                            .filter(agent_metrics::step.ge(lo))
                            .group_by((agent_metrics::step - lo) / width)
                            .select((
                                min(agent_metrics::step),
                                max(agent_metrics::step),
                                count_star(),
                                sum(agent_metrics::value),
                                min(agent_metrics::value),
                                max(agent_metrics::value),
                            ))
                            .load(self)?,
                    },
                };
                Ok(to_aggregates(rows))
            }

            fn step_metric_stats(
                &mut self,
                sim_key: i32,
                metric: i32,
            ) -> Result<(Option<f64>, Option<f64>)> {
                let last: Option<f64> = step_metrics::table
                    .filter(step_metrics::sim_key.eq(sim_key))
                    .filter(step_metrics::metric_id.eq(metric))
                    .order(step_metrics::step.desc())
                    .select(step_metrics::value)
                    .first(self)
                    .optional()?;
                let (n, total): (i64, Option<f64>) = step_metrics::table
                    .filter(step_metrics::sim_key.eq(sim_key))
                    .filter(step_metrics::metric_id.eq(metric))
                    .select((count_star(), sum(step_metrics::value)))
                    .first(self)?;
                Ok((last, total.filter(|_| n > 0).map(|t| t / n as f64)))
            }

            fn leaderboard_rows(
                &mut self,
                sim_keys: &[i32],
                by: GroupBy,
            ) -> Result<Vec<LeaderboardRow>> {
                // (simulations, agents, rows, reward sum) per group.
                let mut groups: BTreeMap<String, GroupAcc> = BTreeMap::new();
                // Grouped in SQL down to (simulation, agent); the few
                // resulting rows are labelled and folded by group here.
                let per_agent: Vec<(i32, i32, i64, Option<f64>)> = agent_states::table
                    .filter(agent_states::sim_key.eq_any(sim_keys))
                    .group_by((agent_states::sim_key, agent_states::agent_index))
                    .select((
                        agent_states::sim_key,
                        agent_states::agent_index,
                        count_star(),
                        sum(agent_states::reward),
                    ))
                    .load(self)?;
                let labels: BTreeMap<(i32, i32), (Option<String>, Option<String>, Option<i32>)> =
                    agents::table
                        .filter(agents::sim_key.eq_any(sim_keys))
                        .select((
                            agents::sim_key,
                            agents::agent_index,
                            agents::kind,
                            agents::policy_name,
                            agents::policy_version,
                        ))
                        .load::<(i32, i32, Option<String>, Option<String>, Option<i32>)>(self)?
                        .into_iter()
                        .map(|(s, a, k, p, v)| ((s, a), (k, p, v)))
                        .collect();
                let sim_ids: BTreeMap<i32, SimulationId> = simulations::table
                    .filter(simulations::sim_key.eq_any(sim_keys))
                    .select((simulations::sim_key, simulations::id))
                    .load::<(i32, SimulationId)>(self)?
                    .into_iter()
                    .collect();
                for (sim_key, agent, rows, total) in per_agent {
                    let (kind, policy, version) = labels
                        .get(&(sim_key, agent))
                        .cloned()
                        .unwrap_or((None, None, None));
                    let key = match by {
                        GroupBy::Kind => kind.unwrap_or_else(|| "(none)".into()),
                        GroupBy::Policy => match (policy, version) {
                            (Some(p), Some(v)) => format!("{p}@{v}"),
                            (Some(p), None) => p,
                            _ => "(none)".into(),
                        },
                        GroupBy::Agent => format!(
                            "{}#{agent}",
                            sim_ids
                                .get(&sim_key)
                                .map(|s| s.to_string())
                                .unwrap_or_default()
                        ),
                    };
                    let entry = groups.entry(key).or_default();
                    entry.0.insert(sim_key);
                    entry.1.insert((sim_key, agent));
                    entry.2 += rows;
                    entry.3 += total.unwrap_or(0.0);
                }
                Ok(groups
                    .into_iter()
                    .map(|(group, (sims, agents, rows, total))| LeaderboardRow {
                        rank: 0,
                        group,
                        simulations: sims.len() as i64,
                        agents: agents.len() as i64,
                        rows,
                        total_reward: total,
                        mean_reward: if rows > 0 { total / rows as f64 } else { 0.0 },
                    })
                    .collect())
            }

            fn count_steps(&mut self, sim_key: i32) -> Result<i64> {
                Ok(simulation_steps::table
                    .filter(simulation_steps::sim_key.eq(sim_key))
                    .count()
                    .get_result(self)?)
            }

            fn rows_after(&mut self, sim_key: i32, step: i64) -> Result<(i64, Option<i64>)> {
                Ok(agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::step.gt(step))
                    .select((count_star(), max(agent_states::step)))
                    .first(self)?)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_analytics!(diesel::sqlite::SqliteConnection);
#[cfg(feature = "postgres")]
impl_analytics!(diesel::pg::PgConnection);

/// Flattens a JSON value into `path -> leaf` (objects by key, arrays by index).
pub fn flatten_json(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    walk(&join(k), v, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    walk(&join(&i.to_string()), v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// The value at a dot-separated path.
fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

impl Analytics {
    fn simulation(&self, id: &SimulationId) -> Result<Simulation> {
        with_connection!(self.db.connection()?, |c| c.find_simulation(id))
    }

    /// Status, duration, steps, agents, rows, total and mean reward overall
    /// and per agent, and the latest step's metrics.
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
            let last_step = c.step_span(sim.sim_key, &Field::Reward)?.map(|(_, hi)| hi);
            let kinds: BTreeMap<i32, Option<String>> = agents
                .iter()
                .map(|a| (a.agent_index.0, a.kind.clone()))
                .collect();
            let per_agent: Vec<AgentSummary> = rewards
                .iter()
                .map(|&(agent, rows, total)| AgentSummary {
                    agent: AgentIndex(agent),
                    kind: kinds.get(&agent).cloned().flatten(),
                    rows,
                    total_reward: total.unwrap_or(0.0),
                    mean_reward: (rows > 0).then(|| total.unwrap_or(0.0) / rows as f64),
                })
                .collect();
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
                simulation: sim,
            })
        })
    }

    /// One agent's `field` (reward or a metric) over a step range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn agent_series(
        &self,
        id: &SimulationId,
        agent: impl Into<AgentIndex>,
        field: impl Into<Field>,
        steps: impl RangeBounds<i64>,
    ) -> Result<Vec<(i64, f64)>> {
        let (agent, field) = (agent.into(), field.into());
        let (lo, hi) = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.series(sim.sim_key, agent.0, &field, lo, hi)
        })
    }

    /// One agent's state JSON over a step range, by step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn state_series(
        &self,
        id: &SimulationId,
        agent: impl Into<AgentIndex>,
        steps: impl RangeBounds<i64>,
    ) -> Result<Vec<(i64, Value)>> {
        let agent = agent.into();
        let (lo, hi) = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            Ok(c.agent_states(sim.sim_key, agent.0, lo, hi)?
                .into_iter()
                .map(|s| (s.step, s.state))
                .collect())
        })
    }

    /// Count / sum / mean / min / max of `field` across agents, per step
    /// (`buckets == 0`) or in at most `buckets` equal-width step buckets.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn step_aggregates(
        &self,
        id: &SimulationId,
        field: impl Into<Field>,
        buckets: usize,
    ) -> Result<Vec<StepAggregate>> {
        let field = field.into();
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let Some((lo, hi)) = c.step_span(sim.sim_key, &field)? else {
                return Ok(Vec::new());
            };
            let span = hi.saturating_sub(lo).saturating_add(1);
            let width = if buckets == 0 {
                1
            } else {
                let b = buckets as i64;
                span / b + i64::from(span % b != 0)
            };
            c.aggregate(sim.sim_key, &field, lo, width.max(1))
        })
    }

    /// One row per simulation of `experiment`: flattened parameters and, per
    /// field, the final value (mean across agents at the last step, or the
    /// simulation-level metric's last value) and the mean over all rows.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown experiment.
    pub fn compare(&self, experiment: &ExperimentId, fields: &[&str]) -> Result<Comparison> {
        let sims = with_connection!(self.db.connection()?, |c| {
            c.find_experiment(experiment)?;
            c.list_simulations(&SimulationFilter::new().experiment(experiment))
        })?;
        let ids: Vec<SimulationId> = sims.into_iter().map(|s| s.id).collect();
        self.compare_simulations(&ids, fields)
    }

    /// As [`Analytics::compare`], for a list of simulations.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn compare_simulations(&self, ids: &[SimulationId], fields: &[&str]) -> Result<Comparison> {
        let mut rows = Vec::with_capacity(ids.len());
        let mut columns = BTreeSet::new();
        for id in ids {
            let sim = self.simulation(id)?;
            let parameters = flatten_json(&sim.parameters);
            columns.extend(parameters.keys().cloned());
            let mut final_values = BTreeMap::new();
            let mut mean_values = BTreeMap::new();
            for name in fields {
                let (last, mean) = self.final_and_mean(&sim, &Field::parse(name))?;
                final_values.insert(name.to_string(), last);
                mean_values.insert(name.to_string(), mean);
            }
            rows.push(ComparisonRow {
                simulation: sim.id,
                status: sim.status,
                parameters,
                final_values,
                mean_values,
            });
        }
        Ok(Comparison {
            parameter_columns: columns.into_iter().collect(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            rows,
        })
    }

    fn final_and_mean(
        &self,
        sim: &Simulation,
        field: &Field,
    ) -> Result<(Option<f64>, Option<f64>)> {
        with_connection!(self.db.connection()?, |c| {
            if let Field::Metric(name) = field {
                if let Some(metric) = c.metric_lookup(name)? {
                    let (last, mean) = c.step_metric_stats(sim.sim_key, metric)?;
                    if last.is_some() {
                        return Ok((last, mean));
                    }
                }
            }
            let Some((lo, hi)) = c.step_span(sim.sim_key, field)? else {
                return Ok((None, None));
            };
            // Buckets start at their origin: from `hi`, one bucket of the last step.
            let last = c.aggregate(sim.sim_key, field, hi, 1)?;
            let all = c.aggregate(sim.sim_key, field, lo, hi - lo + 1)?;
            let final_mean = last.first().map(|a| a.mean);
            let count: i64 = all.iter().map(|a| a.count).sum();
            let total: f64 = all.iter().map(|a| a.sum).sum();
            Ok((final_mean, (count > 0).then(|| total / count as f64)))
        })
    }

    /// Total and mean reward per group of agents over every simulation of
    /// `experiment`, ranked by mean reward (best first).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown experiment.
    pub fn leaderboard(
        &self,
        experiment: &ExperimentId,
        by: GroupBy,
    ) -> Result<Vec<LeaderboardRow>> {
        let mut rows = with_connection!(self.db.connection()?, |c| {
            c.find_experiment(experiment)?;
            let keys: Vec<i32> = c
                .list_simulations(&SimulationFilter::new().experiment(experiment))?
                .iter()
                .map(|s| s.sim_key)
                .collect();
            c.leaderboard_rows(&keys, by)
        })?
        .into_iter()
        .filter(|r| r.rows > 0)
        .collect::<Vec<_>>();
        rows.sort_by(|a, b| {
            b.mean_reward
                .total_cmp(&a.mean_reward)
                .then_with(|| a.group.cmp(&b.group))
        });
        for (i, row) in rows.iter_mut().enumerate() {
            row.rank = i + 1;
        }
        Ok(rows)
    }

    /// Simulations whose parameters match every condition, newest first.
    /// Conditions are evaluated on the parsed parameters, never spliced into
    /// SQL.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty path.
    pub fn find_simulations(&self, query: &ParameterQuery) -> Result<Vec<Simulation>> {
        for (path, _) in &query.equals {
            crate::ids::validate_text("parameter path", path, 256)?;
        }
        for (path, _, _) in &query.ranges {
            crate::ids::validate_text("parameter path", path, 256)?;
        }
        let sims = with_connection!(self.db.connection()?, |c| c.list_simulations(&query.filter))?;
        Ok(sims
            .into_iter()
            .filter(|s| {
                query.equals.iter().all(|(path, want)| {
                    at_path(&s.parameters, path).is_some_and(|v| json_equal(v, want))
                }) && query.ranges.iter().all(|(path, lo, hi)| {
                    at_path(&s.parameters, path)
                        .and_then(Value::as_f64)
                        .is_some_and(|v| lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi))
                })
            })
            .collect())
    }

    /// What is new since `cursor` (everything, for `None`): new steps and
    /// their metrics, latest step, rows written, recent rows/s, heartbeat
    /// age. Works from another process while a recorder writes.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn progress(&self, id: &SimulationId, cursor: Option<Cursor>) -> Result<Progress> {
        let now = Utc::now();
        let from = cursor.map_or(-1, |c| c.step);
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            let new_steps = c.steps(sim.sim_key, from.saturating_add(1), i64::MAX)?;
            let (new_rows, latest) = c.rows_after(sim.sim_key, from)?;
            let rows = cursor.map_or(0, |c| c.rows) + new_rows;
            let latest_step = latest.or(cursor.and_then(|c| (c.step >= 0).then_some(c.step)));
            let rows_per_sec = cursor.and_then(|c| {
                let secs = (now - c.at).num_microseconds()? as f64 / 1e6;
                (secs > 0.0).then(|| new_rows as f64 / secs)
            });
            Ok(Progress {
                cursor: Cursor {
                    step: latest_step
                        .unwrap_or(from)
                        .max(new_steps.last().map_or(from, |s| s.step)),
                    rows,
                    at: now,
                },
                status: sim.status,
                new_steps,
                latest_step,
                rows,
                rows_per_sec,
                heartbeat_age_secs: sim
                    .heartbeat_at
                    .and_then(|h| (now - h).num_microseconds())
                    .map(|us| us as f64 / 1e6),
            })
        })
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_and_finds_paths() {
        let v = json!({"a": {"b": 1, "c": [10, {"d": "x"}]}, "e": [], "f": null});
        let flat = flatten_json(&v);
        assert_eq!(flat.get("a.b"), Some(&json!(1)));
        assert_eq!(flat.get("a.c.1.d"), Some(&json!("x")));
        assert_eq!(flat.get("e"), Some(&json!([])));
        assert_eq!(at_path(&v, "a.c.0"), Some(&json!(10)));
        assert_eq!(at_path(&v, "a.zz"), None);
        assert!(json_equal(&json!(1), &json!(1.0)));
    }

    #[test]
    fn csv_escapes() {
        let mut s = String::new();
        push_csv_line(&mut s, &["a,b".into(), "q\"".into(), "plain".into()]);
        assert_eq!(s, "\"a,b\",\"q\"\"\",plain\n");
    }
}
