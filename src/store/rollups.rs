//! Rollups written at ingest, in the transaction of the rows they sum:
//! per (simulation, field, agent kind, step) count, sum, min, max and sum of
//! squares in `step_rollups` (field 0 is the reward, any other an agent
//! metric's id; kind `''` is every agent, and names their kind in
//! `sole_kind` when they all had one, which then has no row of its own),
//! and per agent the reward rows and total in `agent_totals`. The sums are
//! merged in Rust (a step split across batches is read back, merged and
//! written again), so a sum that overflows becomes infinity instead of
//! failing the batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::prelude::*;

use super::prelude::{AgentKeyStore, Dialect, StateChunkStore};
use crate::error::Result;
use crate::schema::{agent_totals, agents, block_rollups, step_rollups};

/// `field_id` of the reward.
pub(crate) const REWARD_FIELD: i32 = 0;
/// `kind` of the rollup across every agent.
pub(crate) const ALL_KINDS: &str = "";
/// `kind` of agents registered without one.
pub(crate) const NO_KIND: &str = "(none)";
/// Steps per row of `block_rollups` (an agent-state chunk's span).
pub(crate) const BLOCK_STEPS: i64 = 64;

/// One row of `block_rollups`: a field across every agent over the steps
/// `block * BLOCK_STEPS ..` of one block.
#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = block_rollups, treat_none_as_default_value = false)]
pub(crate) struct BlockRollup {
    pub(crate) sim_key: i32,
    pub(crate) field_id: i32,
    pub(crate) block: i64,
    pub(crate) first_step: i64,
    pub(crate) last_step: i64,
    pub(crate) n: i64,
    pub(crate) total: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) total_sq: f64,
}

impl BlockRollup {
    fn of(r: &Rollup) -> BlockRollup {
        BlockRollup {
            sim_key: r.sim_key,
            field_id: r.field_id,
            block: r.step.div_euclid(BLOCK_STEPS),
            first_step: r.step,
            last_step: r.step,
            n: r.n,
            total: r.total,
            lo: r.lo,
            hi: r.hi,
            total_sq: r.total_sq,
        }
    }

    fn merge(&mut self, other: &BlockRollup) {
        self.first_step = self.first_step.min(other.first_step);
        self.last_step = self.last_step.max(other.last_step);
        self.n += other.n;
        self.total += other.total;
        self.lo = self.lo.min(other.lo);
        self.hi = self.hi.max(other.hi);
        self.total_sq += other.total_sq;
    }
}

/// Merges rows taken out of the database into a batch's new rows of the
/// same key (or keeps them as they were).
fn merge_stored<K: Ord, V>(
    new: &mut BTreeMap<K, V>,
    stored: Vec<V>,
    key: impl Fn(&V) -> K,
    merge: impl Fn(&mut V, &V),
) {
    for old in stored {
        match new.entry(key(&old)) {
            std::collections::btree_map::Entry::Occupied(mut e) => merge(e.get_mut(), &old),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(old);
            }
        }
    }
}

/// A batch's new values per (field, block), from its step rollups across
/// every agent (before they are merged with stored ones: each value is
/// added to its block once, by the batch that wrote it).
fn block_deltas(rollups: &BTreeMap<RollupKey, Rollup>) -> BTreeMap<(i32, i64), BlockRollup> {
    let mut out: BTreeMap<(i32, i64), BlockRollup> = BTreeMap::new();
    for r in rollups.values().filter(|r| r.kind == ALL_KINDS) {
        let block = BlockRollup::of(r);
        out.entry((block.field_id, block.block))
            .and_modify(|b| b.merge(&block))
            .or_insert(block);
    }
    out
}

/// The highest keys of [`RollupFrontier`], as one row.
#[derive(diesel::QueryableByName)]
struct Highest {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    state_chunk: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    metric_chunk: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    step: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    block: Option<i64>,
}

/// What is stored of one simulation's per-agent data, read when a writer
/// starts (or after a failure made it forget).
#[derive(Debug)]
pub(crate) struct RollupFrontier {
    /// The highest state chunk number.
    pub(crate) state_chunk: Option<i64>,
    /// The highest agent metric chunk number.
    pub(crate) metric_chunk: Option<i64>,
    /// The highest step of any step rollup.
    pub(crate) step: Option<i64>,
    /// The highest block of any block rollup.
    pub(crate) block: Option<i64>,
    /// Every agent's reward rows and their sum.
    pub(crate) totals: HashMap<i32, (i64, f64)>,
}

/// One row of `step_rollups`.
#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = step_rollups, treat_none_as_default_value = false)]
pub(crate) struct Rollup {
    pub(crate) sim_key: i32,
    pub(crate) field_id: i32,
    pub(crate) kind: String,
    pub(crate) step: i64,
    pub(crate) n: i64,
    pub(crate) total: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) total_sq: f64,
    /// On a row across all agents: their kind, when they all had one (that
    /// kind has no row of its own at the step).
    pub(crate) sole_kind: Option<String>,
}

/// A step rollup's key: (field, kind, step).
type RollupKey = (i32, String, i64);

fn key_of(r: &Rollup) -> RollupKey {
    (r.field_id, r.kind.clone(), r.step)
}

/// Rows with every kind's row spelled out: a row across all agents that
/// names their sole kind gives that kind's row too (the same sums), so
/// that rows of two writes of a step merge key by key.
fn spelled_out(rows: impl IntoIterator<Item = Rollup>) -> impl Iterator<Item = Rollup> {
    rows.into_iter().flat_map(|mut r| {
        let sole = r.sole_kind.take().map(|kind| Rollup { kind, ..r.clone() });
        std::iter::once(r).chain(sole)
    })
}

/// The stored form of spelled-out rows: where a field's step has one
/// kind, that kind's row goes and the row across all agents names it.
fn folded(mut rows: BTreeMap<RollupKey, Rollup>) -> BTreeMap<RollupKey, Rollup> {
    // Per (field, step): how many kinds have a row, and the last one seen.
    let mut kinds: HashMap<(i32, i64), (usize, String)> = HashMap::new();
    for (field, kind, step) in rows.keys() {
        if kind != ALL_KINDS {
            let e = kinds.entry((*field, *step)).or_insert((0, String::new()));
            e.0 += 1;
            e.1.clone_from(kind);
        }
    }
    for ((field, step), (count, kind)) in kinds {
        if count != 1 {
            continue;
        }
        let all = (field, ALL_KINDS.to_string(), step);
        if rows.contains_key(&all) {
            rows.remove(&(field, kind.clone(), step));
            if let Some(all) = rows.get_mut(&all) {
                all.sole_kind = Some(kind);
            }
        }
    }
    rows
}

impl Rollup {
    fn merge(&mut self, other: &Rollup) {
        self.n += other.n;
        self.total += other.total;
        self.lo = self.lo.min(other.lo);
        self.hi = self.hi.max(other.hi);
        self.total_sq += other.total_sq;
    }
}

/// Count, sum, min, max and sum of squares of some values.
#[derive(Debug, Clone, Copy)]
struct Acc {
    n: i64,
    total: f64,
    lo: f64,
    hi: f64,
    total_sq: f64,
}

impl Acc {
    fn one(v: f64) -> Acc {
        Acc {
            n: 1,
            total: v,
            lo: v,
            hi: v,
            total_sq: v * v,
        }
    }

    fn add(&mut self, o: &Acc) {
        self.n += o.n;
        self.total += o.total;
        self.lo = self.lo.min(o.lo);
        self.hi = self.hi.max(o.hi);
        self.total_sq += o.total_sq;
    }
}

/// Sums a batch's rows into rollups: per (field, kind, step) while adding
/// (the kind by number, no string per row), the across-kinds rows derived
/// at the end. Its per-row maps are keyed by small integers and hashed
/// with foldhash (std's SipHash was a tenth of the writer's time); the
/// sums rows are adding to right now stay out of the map (a batch's rows
/// come step by step, each step's agents one after another), and agents
/// numbered from 0 find their kind by index.
#[derive(Debug)]
pub(crate) struct RollupBuilder {
    sim_key: i32,
    /// Kind names; index 0 is `NO_KIND`.
    kind_names: Vec<String>,
    kind_of: Kinds,
    sums: foldhash::HashMap<SumKey, Acc>,
    /// The last few keys rows added to, with their sums (taken out of
    /// `sums`, so that each key's values are added in row order all the
    /// same).
    hot: Vec<(SumKey, Acc)>,
    totals: foldhash::HashMap<i32, (i64, f64)>,
    /// A row's agent was not among the kinds given.
    unknown_agent: bool,
}

/// (field, kind, step).
type SumKey = (i32, usize, i64);

/// How many keys stay out of the map: a step's reward and a few metrics.
const HOT_KEYS: usize = 4;

/// Each registered agent's kind (by number).
#[derive(Debug)]
enum Kinds {
    /// Indexed by agent (`usize::MAX`: not registered), where the agents'
    /// numbers are dense enough.
    Dense(Vec<usize>),
    Sparse(foldhash::HashMap<i32, usize>),
}

impl Kinds {
    /// By index where every agent is in `0..4 * count + 64`, else by map.
    fn new(pairs: &[(i32, usize)]) -> Kinds {
        let dense_up_to = pairs.len().saturating_mul(4).saturating_add(64);
        let slots: Option<Vec<(usize, usize)>> = pairs
            .iter()
            .map(|&(agent, kind)| {
                usize::try_from(agent)
                    .ok()
                    .filter(|&a| a < dense_up_to)
                    .map(|a| (a, kind))
            })
            .collect();
        match slots {
            Some(slots) => {
                let len = slots.iter().map(|&(a, _)| a + 1).max().unwrap_or(0);
                let mut v = vec![usize::MAX; len];
                for (a, kind) in slots {
                    v[a] = kind;
                }
                Kinds::Dense(v)
            }
            None => Kinds::Sparse(pairs.iter().copied().collect()),
        }
    }

    fn get(&self, agent: i32) -> Option<usize> {
        match self {
            Kinds::Dense(v) => usize::try_from(agent)
                .ok()
                .and_then(|a| v.get(a))
                .copied()
                .filter(|&k| k != usize::MAX),
            Kinds::Sparse(m) => m.get(&agent).copied(),
        }
    }
}

impl RollupBuilder {
    /// `kinds`: each registered agent's kind.
    pub(crate) fn new(sim_key: i32, kinds: &HashMap<i32, String>) -> Self {
        use foldhash::HashMapExt;
        let mut kind_names = vec![NO_KIND.to_string()];
        let mut index: HashMap<&str, usize> = HashMap::new();
        index.insert(NO_KIND, 0);
        let pairs: Vec<(i32, usize)> = kinds
            .iter()
            .map(|(agent, kind)| {
                let i = *index.entry(kind.as_str()).or_insert_with(|| {
                    kind_names.push(kind.clone());
                    kind_names.len() - 1
                });
                (*agent, i)
            })
            .collect();
        RollupBuilder {
            sim_key,
            kind_names,
            kind_of: Kinds::new(&pairs),
            sums: foldhash::HashMap::new(),
            hot: Vec::with_capacity(HOT_KEYS),
            totals: foldhash::HashMap::new(),
            unknown_agent: false,
        }
    }

    fn add(&mut self, field: i32, agent: i32, step: i64, value: f64) {
        let kind = match self.kind_of.get(agent) {
            Some(k) => k,
            None => {
                self.unknown_agent = true;
                0
            }
        };
        let key = (field, kind, step);
        let one = Acc::one(value);
        if let Some((_, acc)) = self.hot.iter_mut().find(|(k, _)| *k == key) {
            acc.add(&one);
            return;
        }
        let acc = match self.sums.remove(&key) {
            Some(mut acc) => {
                acc.add(&one);
                acc
            }
            None => one,
        };
        if self.hot.len() == HOT_KEYS {
            let (k, a) = self.hot.remove(0);
            self.sums.insert(k, a);
        }
        self.hot.push((key, acc));
    }

    /// An agent's reward at a step.
    pub(crate) fn reward(&mut self, agent: i32, step: i64, reward: f64) {
        self.add(REWARD_FIELD, agent, step, reward);
        let t = self.totals.entry(agent).or_insert((0, 0.0));
        t.0 += 1;
        t.1 += reward;
    }

    /// An agent metric's value at a step.
    pub(crate) fn metric(&mut self, agent: i32, metric: i32, step: i64, value: f64) {
        self.add(metric, agent, step, value);
    }

    /// False if some row's agent had no kind given (registered after the
    /// kinds were read): its rows were counted as `(none)`.
    pub(crate) fn knew_every_agent(&self) -> bool {
        !self.unknown_agent
    }

    /// The batch's rows, before they meet what is stored.
    pub(crate) fn finish(mut self) -> RollupRows {
        self.sums.extend(self.hot.drain(..));
        let steps = self.rows();
        let blocks = block_deltas(&steps);
        let mut kinds = std::mem::take(&mut self.kind_names);
        kinds.push(ALL_KINDS.to_string());
        RollupRows {
            sim_key: self.sim_key,
            steps,
            blocks,
            totals: self.totals.into_iter().collect(),
            kinds,
        }
    }

    /// The rollup rows, across kinds and per kind (in their stored form:
    /// a step's only kind named by the row across kinds), keyed by
    /// (field, kind, step).
    fn rows(&self) -> BTreeMap<RollupKey, Rollup> {
        use foldhash::HashMapExt;
        // Per (field, step): the sums across kinds, how many kinds had
        // rows, and one of them (the only one where there is one).
        let mut all: foldhash::HashMap<(i32, i64), (Acc, usize, usize)> = foldhash::HashMap::new();
        for (&(field, kind, step), acc) in &self.sums {
            all.entry((field, step))
                .and_modify(|(a, kinds, k)| {
                    a.add(acc);
                    *kinds += 1;
                    *k = kind;
                })
                .or_insert((*acc, 1, kind));
        }
        let name = |kind: usize| self.kind_names.get(kind).map_or(NO_KIND, String::as_str);
        let row = |field: i32, kind: &str, step: i64, a: &Acc, sole_kind: Option<String>| Rollup {
            sim_key: self.sim_key,
            field_id: field,
            kind: kind.to_string(),
            step,
            n: a.n,
            total: a.total,
            lo: a.lo,
            hi: a.hi,
            total_sq: a.total_sq,
            sole_kind,
        };
        // Gathered, then built into the map at once (sorted, then laid
        // out in bulk): inserting them one by one cost the writer 7%.
        let mut out: Vec<(RollupKey, Rollup)> = Vec::with_capacity(self.sums.len() + all.len());
        for (&(field, kind, step), acc) in &self.sums {
            if all
                .get(&(field, step))
                .is_some_and(|&(_, kinds, _)| kinds > 1)
            {
                let name = name(kind);
                out.push((
                    (field, name.to_string(), step),
                    row(field, name, step, acc, None),
                ));
            }
        }
        for ((field, step), (acc, kinds, kind)) in all {
            let sole = (kinds == 1).then(|| name(kind).to_string());
            out.push((
                (field, ALL_KINDS.to_string(), step),
                row(field, ALL_KINDS, step, &acc, sole),
            ));
        }
        out.into_iter().collect()
    }
}

/// A batch's rollups, summed over its own rows only.
#[derive(Debug)]
pub(crate) struct RollupRows {
    pub(crate) sim_key: i32,
    /// Per (field, kind, step), in their stored form (a step's only kind
    /// named by its row across kinds).
    pub(crate) steps: BTreeMap<RollupKey, Rollup>,
    /// Per (field, block): what the batch adds to each block.
    pub(crate) blocks: BTreeMap<(i32, i64), BlockRollup>,
    /// Per agent: reward rows and their sum.
    pub(crate) totals: BTreeMap<i32, (i64, f64)>,
    /// Every kind a rollup of the run can have: `''`, `(none)` and each
    /// registered agent's.
    pub(crate) kinds: Vec<String>,
}

impl RollupRows {
    /// The highest step and block the rows touch.
    pub(crate) fn highest(&self) -> (Option<i64>, Option<i64>) {
        (
            self.steps.keys().map(|k| k.2).max(),
            self.blocks.keys().map(|k| k.1).max(),
        )
    }
}

/// One row of `agent_totals`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = agent_totals, treat_none_as_default_value = false)]
pub(crate) struct AgentTotal {
    pub(crate) sim_key: i32,
    pub(crate) agent_index: i32,
    pub(crate) n: i64,
    pub(crate) total: f64,
}

/// Rows per INSERT on SQLite (at most 10 columns: 640 bind parameters, far
/// below its limit).
#[cfg(feature = "sqlite")]
const SQLITE_ROWS: usize = 64;

/// Writing rollup rows: multi-row INSERTs on SQLite, binary COPY on
/// PostgreSQL (no statement to parse per batch size).
pub(crate) trait RollupInsert {
    fn insert_rollups(&mut self, rows: &[Rollup]) -> Result<()>;
    fn insert_blocks(&mut self, rows: &[BlockRollup]) -> Result<()>;
    fn insert_totals(&mut self, rows: &[AgentTotal]) -> Result<()>;
}

#[cfg(feature = "sqlite")]
impl RollupInsert for diesel::sqlite::SqliteConnection {
    fn insert_rollups(&mut self, rows: &[Rollup]) -> Result<()> {
        super::sqlite_insert_rows!(self, step_rollups::table, rows, Rollup, SQLITE_ROWS)
    }
    fn insert_blocks(&mut self, rows: &[BlockRollup]) -> Result<()> {
        super::sqlite_insert_rows!(self, block_rollups::table, rows, BlockRollup, SQLITE_ROWS)
    }
    fn insert_totals(&mut self, rows: &[AgentTotal]) -> Result<()> {
        super::sqlite_insert_rows!(self, agent_totals::table, rows, AgentTotal, SQLITE_ROWS)
    }
}

#[cfg(feature = "postgres")]
impl RollupInsert for diesel::pg::PgConnection {
    fn insert_rollups(&mut self, rows: &[Rollup]) -> Result<()> {
        if !rows.is_empty() {
            diesel::copy_from(step_rollups::table)
                .from_insertable(rows)
                .execute(self)?;
        }
        Ok(())
    }
    fn insert_blocks(&mut self, rows: &[BlockRollup]) -> Result<()> {
        if !rows.is_empty() {
            diesel::copy_from(block_rollups::table)
                .from_insertable(rows)
                .execute(self)?;
        }
        Ok(())
    }
    fn insert_totals(&mut self, rows: &[AgentTotal]) -> Result<()> {
        if !rows.is_empty() {
            diesel::copy_from(agent_totals::table)
                .from_insertable(rows)
                .execute(self)?;
        }
        Ok(())
    }
}

pub(crate) trait RollupStore: RollupInsert {
    /// Each registered agent's kind (`(none)` without one).
    fn agent_kinds(&mut self, sim_key: i32) -> Result<HashMap<i32, String>>;
    /// Merges a batch's rollups and agent totals into the stored ones;
    /// returns the agent totals as now stored.
    fn add_rollups(&mut self, batch: RollupRows) -> Result<Vec<AgentTotal>>;
    /// What is stored of one simulation's per-agent data: its highest
    /// state and metric chunks, rollup step and block, and every agent's
    /// total (two statements).
    fn stored_frontier(&mut self, sim_key: i32) -> Result<RollupFrontier>;
    /// After rows above `step` were cut: drops their rollups and recounts
    /// the agent totals from the rows that remain.
    fn cut_rollups(&mut self, sim_key: i32, step: i64) -> Result<()>;
}

super::for_each_backend! {
    impl RollupStore {
        fn agent_kinds(&mut self, sim_key: i32) -> Result<HashMap<i32, String>> {
            Ok(agents::table
                .filter(agents::sim_key.eq(sim_key))
                .select((agents::agent_index, agents::kind))
                .load::<(i32, Option<String>)>(self)?
                .into_iter()
                .map(|(a, k)| (a, k.unwrap_or_else(|| NO_KIND.to_string())))
                .collect())
        }

        fn stored_frontier(&mut self, sim_key: i32) -> Result<RollupFrontier> {
            let p = Self::P;
            let highest: Highest = diesel::sql_query(format!(
                "SELECT \
                 (SELECT MAX(chunk) FROM simdb_agent_state_chunks WHERE sim_key = {p}1) AS state_chunk, \
                 (SELECT MAX(chunk) FROM simdb_agent_metric_chunks WHERE sim_key = {p}1) AS metric_chunk, \
                 (SELECT MAX(step) FROM simdb_step_rollups WHERE sim_key = {p}1) AS step, \
                 (SELECT MAX(block) FROM simdb_block_rollups WHERE sim_key = {p}1) AS block"
            ))
            .bind::<diesel::sql_types::Integer, _>(sim_key)
            .get_result(self)?;
            let totals = agent_totals::table
                .filter(agent_totals::sim_key.eq(sim_key))
                .select((agent_totals::agent_index, agent_totals::n, agent_totals::total))
                .load::<(i32, i64, f64)>(self)?
                .into_iter()
                .map(|(a, n, t)| (a, (n, t)))
                .collect();
            Ok(RollupFrontier {
                state_chunk: highest.state_chunk,
                metric_chunk: highest.metric_chunk,
                step: highest.step,
                block: highest.block,
                totals,
            })
        }

        fn add_rollups(&mut self, batch: RollupRows) -> Result<Vec<AgentTotal>> {
            if batch.steps.is_empty() {
                return Ok(Vec::new());
            }
            let sim_key = batch.sim_key;
            let mut blocks = batch.blocks;
            let (lo, hi) = batch.steps.keys().fold((i64::MAX, i64::MIN), |(lo, hi), k| (lo.min(k.2), hi.max(k.2)));
            let fields: Vec<i32> = batch.steps.keys().map(|k| k.0).collect::<BTreeSet<_>>().into_iter().collect();
            // The stored rows of the batch's fields over its step range (a
            // step split across batches), every kind's (each kind named: a
            // key range per kind), taken out in one statement, merged here
            // with every kind spelled out, and written back with the new
            // ones, folded again (a step's only kind may now have company).
            let stored: Vec<Rollup> = diesel::delete(
                step_rollups::table
                    .filter(step_rollups::sim_key.eq(sim_key))
                    .filter(step_rollups::field_id.eq_any(fields))
                    .filter(step_rollups::kind.eq_any(&batch.kinds))
                    .filter(step_rollups::step.between(lo, hi)),
            )
            .returning(Rollup::as_returning())
            .get_results(self)?;
            let rows: Vec<Rollup> = if stored.is_empty() {
                // The batch's steps are new (the common case): its rows
                // as they are.
                batch.steps.into_values().collect()
            } else {
                let mut rollups: BTreeMap<RollupKey, Rollup> =
                    spelled_out(batch.steps.into_values()).map(|r| (key_of(&r), r)).collect();
                merge_stored(&mut rollups, spelled_out(stored).collect(), key_of, Rollup::merge);
                folded(rollups).into_values().collect()
            };
            self.insert_rollups(&rows)?;
            // The blocks likewise: the batch's values added to what the
            // blocks it touches hold.
            if !blocks.is_empty() {
                let (lo, hi) = blocks.keys().fold((i64::MAX, i64::MIN), |(a, b), k| (a.min(k.1), b.max(k.1)));
                let fields: Vec<i32> = blocks.keys().map(|k| k.0).collect::<BTreeSet<_>>().into_iter().collect();
                let stored: Vec<BlockRollup> = diesel::delete(
                    block_rollups::table
                        .filter(block_rollups::sim_key.eq(sim_key))
                        .filter(block_rollups::field_id.eq_any(fields))
                        .filter(block_rollups::block.between(lo, hi)),
                )
                .returning(BlockRollup::as_returning())
                .get_results(self)?;
                merge_stored(&mut blocks, stored, |b| (b.field_id, b.block), BlockRollup::merge);
                let rows: Vec<BlockRollup> = blocks.into_values().collect();
                self.insert_blocks(&rows)?;
            }
            // Agent totals likewise.
            let agents: Vec<i32> = batch.totals.keys().copied().collect();
            let stored: HashMap<i32, (i64, f64)> = diesel::delete(
                agent_totals::table
                    .filter(agent_totals::sim_key.eq(sim_key))
                    .filter(agent_totals::agent_index.eq_any(&agents)),
            )
            .returning((agent_totals::agent_index, agent_totals::n, agent_totals::total))
            .get_results::<(i32, i64, f64)>(self)?
            .into_iter()
            .map(|(a, n, t)| (a, (n, t)))
            .collect();
            let totals: Vec<AgentTotal> = batch
                .totals
                .into_iter()
                .map(|(agent_index, (n, total))| {
                    let (n0, t0) = stored.get(&agent_index).copied().unwrap_or((0, 0.0));
                    AgentTotal {
                        sim_key,
                        agent_index,
                        n: n0 + n,
                        total: t0 + total,
                    }
                })
                .collect();
            self.insert_totals(&totals)?;
            Ok(totals)
        }

        fn cut_rollups(&mut self, sim_key: i32, step: i64) -> Result<()> {
            diesel::delete(
                step_rollups::table
                    .filter(step_rollups::sim_key.eq(sim_key))
                    .filter(step_rollups::step.gt(step)),
            )
            .execute(self)?;
            // The blocks from the one holding `step` on; that one is summed
            // again from the step rollups that remain.
            let block = step.div_euclid(BLOCK_STEPS);
            diesel::delete(
                block_rollups::table
                    .filter(block_rollups::sim_key.eq(sim_key))
                    .filter(block_rollups::block.ge(block)),
            )
            .execute(self)?;
            if step >= 0 {
                let p = Self::P;
                diesel::sql_query(format!(
                    "INSERT INTO simdb_block_rollups \
                     (sim_key, field_id, block, first_step, last_step, n, total, lo, hi, total_sq) \
                     SELECT sim_key, field_id, {p}2, MIN(step), MAX(step), CAST(SUM(n) AS BIGINT), \
                     SUM(total), MIN(lo), MAX(hi), SUM(total_sq) FROM simdb_step_rollups \
                     WHERE sim_key = {p}1 AND kind = '' AND step >= {p}3 AND step <= {p}4 \
                     GROUP BY sim_key, field_id"
                ))
                .bind::<diesel::sql_types::Integer, _>(sim_key)
                .bind::<diesel::sql_types::BigInt, _>(block)
                .bind::<diesel::sql_types::BigInt, _>(block * BLOCK_STEPS)
                .bind::<diesel::sql_types::BigInt, _>(step)
                .execute(self)?;
            }
            diesel::delete(agent_totals::table.filter(agent_totals::sim_key.eq(sim_key)))
                .execute(self)?;
            // Per agent: what is left of its states, summed in step order.
            let mut rows = Vec::new();
            for agent_index in self.agent_indexes(sim_key)? {
                let (mut n, mut total) = (0i64, 0.0);
                let mut from = 0;
                loop {
                    let page = self.state_chunks_from(sim_key, agent_index, from, 1024)?;
                    let Some(last) = page.last() else { break };
                    from = last.chunk + 1;
                    for chunk in &page {
                        for (_, reward) in chunk.rewards()? {
                            n += 1;
                            total += reward;
                        }
                    }
                }
                if n > 0 {
                    rows.push(AgentTotal {
                        sim_key,
                        agent_index,
                        n,
                        total,
                    });
                }
            }
            self.insert_totals(&rows)?;
            Ok(())
        }
    }
}
