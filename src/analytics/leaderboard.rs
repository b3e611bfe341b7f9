//! Which groups of agents win, ranked by mean reward.

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::Analytics;
use crate::error::Result;
use crate::ids::{ExperimentId, SimulationId};
use crate::schema::{agent_totals, agents, simulations};
use crate::store::for_each_backend;
use crate::store::prelude::*;
use crate::with_connection;

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
    /// 1 for the best mean reward; equal means share a rank.
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

/// An agent's kind, policy name and policy version.
type AgentLabel = (Option<String>, Option<String>, Option<i32>);

/// Per group: simulations, (simulation, agent) pairs, rows, reward sum.
type GroupAcc = (BTreeSet<i32>, BTreeSet<(i32, i32)>, i64, f64);

/// Per-group totals over the simulations of an experiment.
trait LeaderboardStore {
    fn leaderboard_rows(
        &mut self,
        experiment: &ExperimentId,
        by: GroupBy,
    ) -> Result<Vec<LeaderboardRow>>;
}

for_each_backend! {
    impl LeaderboardStore {
        fn leaderboard_rows(&mut self, experiment: &ExperimentId, by: GroupBy) -> Result<Vec<LeaderboardRow>> {
            // The experiment's simulations as a subquery: no list of keys is
            // ever bound, whatever the number of simulations.
            let keys = || {
                simulations::table
                    .filter(simulations::experiment_id.eq(experiment.clone()))
                    .select(simulations::sim_key)
            };
            // Per (simulation, agent): the rows and reward total kept at
            // ingest (`agent_totals`), labelled and folded by group here.
            let per_agent: BTreeMap<(i32, i32), (i64, Option<f64>)> = agent_totals::table
                .filter(agent_totals::sim_key.eq_any(keys()))
                .select((
                    agent_totals::sim_key,
                    agent_totals::agent_index,
                    agent_totals::n,
                    agent_totals::total,
                ))
                .load::<(i32, i32, i64, f64)>(self)?
                .into_iter()
                .map(|(s, a, rows, total)| ((s, a), (rows, Some(total))))
                .collect();
            let registered: Vec<(i32, i32, AgentLabel)> = agents::table
                .filter(agents::sim_key.eq_any(keys()))
                .select((
                    agents::sim_key,
                    agents::agent_index,
                    agents::kind,
                    agents::policy_name,
                    agents::policy_version,
                ))
                .load::<(i32, i32, Option<String>, Option<String>, Option<i32>)>(self)?
                .into_iter()
                .map(|(s, a, k, p, v)| (s, a, (k, p, v)))
                .collect();
            let sim_ids: BTreeMap<i32, SimulationId> = simulations::table
                .filter(simulations::experiment_id.eq(experiment.clone()))
                .select((simulations::sim_key, simulations::id))
                .load::<(i32, SimulationId)>(self)?
                .into_iter()
                .collect();
            // Every registered agent counts, with or without rows.
            let mut groups: BTreeMap<String, GroupAcc> = BTreeMap::new();
            for (sim_key, agent, (kind, policy, version)) in registered {
                let key = match by {
                    GroupBy::Kind => kind.unwrap_or_else(|| "(none)".into()),
                    GroupBy::Policy => match (policy, version) {
                        (Some(p), Some(v)) => format!("{p}@{v}"),
                        (Some(p), None) => p,
                        _ => "(none)".into(),
                    },
                    GroupBy::Agent => format!(
                        "{}#{agent}",
                        sim_ids.get(&sim_key).map(|s| s.to_string()).unwrap_or_default()
                    ),
                };
                let (rows, total) = per_agent.get(&(sim_key, agent)).copied().unwrap_or((0, None));
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
    }
}

impl Analytics {
    /// Total and mean reward per group of agents over every simulation of
    /// `experiment`, ranked by mean reward (best first).
    ///
    /// Groups are agent kinds, `policy@version` (or the policy name alone),
    /// or, for [`GroupBy::Agent`], `<simulation id>#<agent index>`; agents
    /// without a kind or policy form the group `(none)`. Every registered
    /// agent counts in `agents`, with or without rows; a group with no rows
    /// at all has no mean and is left out. Ties share a rank (standard
    /// competition ranking: 1, 2, 2, 4), listed by group name.
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
            c.leaderboard_rows(experiment, by)
        })?
        .into_iter()
        .filter(|r| r.rows > 0)
        .collect::<Vec<_>>();
        rows.sort_by(|a, b| {
            b.mean_reward
                .total_cmp(&a.mean_reward)
                .then_with(|| a.group.cmp(&b.group))
        });
        for i in 0..rows.len() {
            rows[i].rank = if i > 0 && rows[i].mean_reward == rows[i - 1].mean_reward {
                rows[i - 1].rank
            } else {
                i + 1
            };
        }
        Ok(rows)
    }
}
