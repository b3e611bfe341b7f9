//! What a recorder's writer knows of its simulation's rollups, so that a
//! batch whose steps and blocks are all new need not read back stored ones
//! to merge with, and agent totals can be written as their new values: the
//! highest step and block stored, every agent's total, every agent's kind.
//! Read when the writer starts or after a failure made it forget
//! (someone may have changed the rollups since); learned from commits.

use std::collections::HashMap;

use super::rollups::{AgentTotal, RollupFrontier, RollupRows, BLOCK_STEPS};

/// Known rollup state of one simulation, while the writer holds its lease.
#[derive(Debug, Default)]
pub(crate) struct KnownRollups {
    /// No step rollup at this step or above is stored; `None`: not known.
    steps_from: Option<i64>,
    /// No block rollup at this block or above is stored.
    blocks_from: Option<i64>,
    /// Every agent's stored total (an agent missing has none).
    totals: Option<HashMap<i32, (i64, f64)>>,
    /// Every registered agent's kind, as the rollups group them.
    kinds: Option<HashMap<i32, String>>,
}

impl KnownRollups {
    /// Whether the frontier is known (else it must be read first).
    pub(crate) fn is_known(&self) -> bool {
        self.steps_from.is_some() && self.blocks_from.is_some() && self.totals.is_some()
    }

    /// After reading what is stored.
    pub(crate) fn read(&mut self, frontier: RollupFrontier) {
        self.steps_from = Some(frontier.step.map_or(i64::MIN, |s| s + 1));
        self.blocks_from = Some(frontier.block.map_or(i64::MIN, |b| b + 1));
        self.totals = Some(frontier.totals);
    }

    /// The agents' kinds, as last read (agents registered since are
    /// missing: a batch meeting one reads them again).
    pub(crate) fn kinds(&self) -> Option<&HashMap<i32, String>> {
        self.kinds.as_ref()
    }

    /// After reading every registered agent's kind.
    pub(crate) fn set_kinds(&mut self, kinds: HashMap<i32, String>) {
        self.kinds = Some(kinds);
    }

    /// True if no stored rollup shares a key with rows from step `min_step`
    /// on: it and its block are above what is stored, and every agent's
    /// total is known.
    pub(crate) fn all_new_from(&self, min_step: i64) -> bool {
        let (Some(steps_from), Some(blocks_from), Some(_)) =
            (self.steps_from, self.blocks_from, &self.totals)
        else {
            return false;
        };
        min_step >= steps_from && min_step.div_euclid(BLOCK_STEPS) >= blocks_from
    }

    /// The agent totals after adding `rows`' (only when totals are known).
    pub(crate) fn totals_after(&self, rows: &RollupRows) -> Option<Vec<AgentTotal>> {
        let stored = self.totals.as_ref()?;
        Some(
            rows.totals
                .iter()
                .map(|(&agent_index, &(n, total))| {
                    let (n0, t0) = stored.get(&agent_index).copied().unwrap_or((0, 0.0));
                    AgentTotal {
                        sim_key: rows.sim_key,
                        agent_index,
                        n: n0 + n,
                        total: t0 + total,
                    }
                })
                .collect(),
        )
    }

    /// After a commit: `highest` step and block it wrote rollups for, and
    /// the agent totals as it stored them.
    pub(crate) fn learn(&mut self, highest: (Option<i64>, Option<i64>), totals: &[AgentTotal]) {
        if let (Some(from), Some(step)) = (self.steps_from.as_mut(), highest.0) {
            *from = (*from).max(step + 1);
        }
        if let (Some(from), Some(block)) = (self.blocks_from.as_mut(), highest.1) {
            *from = (*from).max(block + 1);
        }
        if let Some(known) = self.totals.as_mut() {
            for t in totals {
                known.insert(t.agent_index, (t.n, t.total));
            }
        }
    }

    /// After a failure: nothing is known until read again (kinds never
    /// change once registered, so they stay).
    pub(crate) fn forget(&mut self) {
        self.steps_from = None;
        self.blocks_from = None;
        self.totals = None;
    }
}
