//! Writing a batch: agent states merged into their chunks
//! (`store/state_chunks.rs`), the other rows in primary-key order, as
//! multi-row prepared INSERTs on SQLite and binary `COPY` on PostgreSQL
//! inside the writer's transaction (import reuses it); or, on PostgreSQL
//! when the writer knows all the batch meets, the whole batch as one
//! statement (`store/batch_statement.rs`).

use std::collections::HashMap;

use diesel::prelude::*;
use serde_json::Value;

use super::batch::{Batch, Span};
use super::metric_names::MetricCache;
use crate::chunk;
use crate::chunk::floats::StateText;
use crate::error::{Error, Result};
use crate::ids::AgentIndex;
use crate::models::{AgentMemory, AgentMetric, AgentMetricChunk, AgentStateChunk, StepMetric};
use crate::schema::{simulation_steps, step_metrics};
use crate::sql_types::{RawJson, TimeParam};
use crate::store::batch_statement::{BatchLease, BatchStatement, BatchWrite};
use crate::store::known_chunks::KnownChunks;
use crate::store::known_rollups::KnownRollups;
use crate::store::metric_chunks::plan_metrics;
use crate::store::prelude::*;
use crate::store::rollups::{AgentTotal, RollupRows};
use crate::store::state_chunks::{plan_states, Planned};

/// What writing a batch learned: the metric ids it had to intern, the
/// state and metric chunks as it wrote them, the highest step and block it
/// wrote rollups for, and the agent totals as it stored them.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) interned: Vec<(usize, i32)>,
    pub(crate) states: Vec<AgentStateChunk>,
    pub(crate) metrics: Vec<AgentMetricChunk>,
    pub(crate) highest: (Option<i64>, Option<i64>),
    pub(crate) totals: Vec<AgentTotal>,
    /// Every agent's kind, where the write had to read them again.
    pub(crate) kinds: Option<HashMap<i32, String>>,
}

impl Written {
    /// Roughly what writing `rows` rows added to a SQLite WAL: the chunks
    /// as written and a few bytes per row for the rest.
    pub(crate) fn wal_bytes(&self, rows: usize) -> u64 {
        let chunks: usize = self
            .states
            .iter()
            .map(|c| c.states.len() + c.rewards.len())
            .chain(self.metrics.iter().map(|c| c.vals.len()))
            .sum();
        (chunks + rows * 16) as u64
    }

    /// Adds what a later write in the same transaction learned.
    pub(crate) fn absorb(&mut self, later: Written) {
        self.interned.extend(later.interned);
        self.states.extend(later.states);
        self.metrics.extend(later.metrics);
        self.highest = (
            self.highest.0.max(later.highest.0),
            self.highest.1.max(later.highest.1),
        );
        self.totals.extend(later.totals);
        if later.kinds.is_some() {
            self.kinds = later.kinds;
        }
    }
}

/// The batch's JSON text, checked as UTF-8 once; state rows borrow it
/// (a copy of a whole batch's text cost the writer a fresh allocation, and
/// the page faults of filling it, per batch).
fn batch_text(batch: &Batch) -> Result<&str> {
    std::str::from_utf8(&batch.json)
        .map_err(|_| Error::invalid("state", "recorder buffer holds invalid UTF-8"))
}

/// Batches as the rows of each table.
#[derive(Default)]
struct Rows<'a> {
    states: Vec<StateInput<'a>>,
    steps: Vec<StepRow>,
    step_metrics: Vec<StepMetric>,
    agent_metrics: Vec<AgentMetric>,
}

/// The row vectors of a writer's last batch, emptied, for its next one: a
/// batch's rows are a few hundred KiB, and fresh vectors of that size came
/// from pages the allocator had given back, faulted in again per batch.
#[derive(Debug, Default)]
pub(crate) struct RowBuffers {
    states: Vec<StateInput<'static>>,
    step_metrics: Vec<StepMetric>,
    agent_metrics: Vec<AgentMetric>,
}

impl RowBuffers {
    /// Empty rows on these buffers (taken; [`RowBuffers::keep`] gives
    /// them back).
    fn rows<'a>(&mut self) -> Rows<'a> {
        Rows {
            states: std::mem::take(&mut self.states),
            steps: Vec::new(),
            step_metrics: std::mem::take(&mut self.step_metrics),
            agent_metrics: std::mem::take(&mut self.agent_metrics),
        }
    }

    /// Keeps the vectors of `rows`, emptied.
    fn keep(&mut self, rows: Rows<'_>) {
        let Rows {
            mut states,
            step_metrics,
            agent_metrics,
            ..
        } = rows;
        states.clear();
        // No row is left to borrow the batch's text: the empty vector is
        // collected in place (its allocation kept) as one of `'static` rows
        // (the map, never called, says how a row would lose its text).
        self.states = states
            .into_iter()
            .map(|(agent, step, reward, _)| (agent, step, reward, StateText::plain("")))
            .collect();
        self.step_metrics = step_metrics;
        self.step_metrics.clear();
        self.agent_metrics = agent_metrics;
        self.agent_metrics.clear();
    }

    /// Keeps a vector of step-metric rows, emptied, where the rows did not
    /// have it ([`AtOnce`] takes it).
    fn keep_step_metrics(&mut self, mut step_metrics: Vec<StepMetric>) {
        if step_metrics.capacity() > self.step_metrics.capacity() {
            step_metrics.clear();
            self.step_metrics = step_metrics;
        }
    }
}

/// Turns `batch` into rows, with metric ids from `id_of`, adding them to
/// `rows`.
fn add_rows<'a>(
    rows: &mut Rows<'a>,
    sim_key: i32,
    batch: &'a Batch,
    text: &'a str,
    id_of: impl Fn(u32) -> Result<i32>,
) -> Result<()> {
    let raw = |span: Span| {
        text.get(span.0 as usize..span.1 as usize)
            .map(RawJson::copied)
            .ok_or_else(|| Error::invalid("state", "recorder span out of bounds"))
    };
    // Pushed straight onto the tables' rows: no vector of a batch's own
    // to grow and copy over.
    rows.states.reserve(batch.states.len());
    for r in &batch.states {
        let state = text
            .get(r.state.0 as usize..r.state.1 as usize)
            .ok_or_else(|| Error::invalid("state", "recorder span out of bounds"))?;
        let floats = batch
            .floats
            .get(r.floats.0 as usize..r.floats.1 as usize)
            .ok_or_else(|| Error::invalid("state", "recorder float span out of bounds"))?;
        rows.states.push((
            r.agent,
            r.step,
            r.reward,
            StateText {
                text: state,
                floats,
            },
        ));
    }
    rows.steps.reserve(batch.steps.len());
    for r in &batch.steps {
        rows.steps.push(StepRow {
            sim_key,
            step: r.step,
            recorded_at: TimeParam(r.at),
            metrics: raw(r.metrics)?,
        });
    }
    rows.agent_metrics.reserve(batch.metrics.len());
    for m in &batch.metrics {
        let metric_id = id_of(m.metric)?;
        match m.agent {
            Some(a) => rows.agent_metrics.push(AgentMetric {
                sim_key,
                agent_index: AgentIndex(a),
                metric_id,
                step: m.step,
                value: m.value,
            }),
            None => rows.step_metrics.push(StepMetric {
                sim_key,
                metric_id,
                step: m.step,
                value: m.value,
            }),
        }
    }
    Ok(())
}

impl Rows<'_> {
    /// The rollups of these rows, if every agent's kind is in `kinds`.
    fn rollups(&self, sim_key: i32, kinds: &HashMap<i32, String>) -> Option<RollupRows> {
        let mut rollups = RollupBuilder::new(sim_key, kinds);
        for r in &self.states {
            rollups.reward(r.0, r.1, r.2);
        }
        for m in &self.agent_metrics {
            rollups.metric(m.agent_index.0, m.metric_id, m.step, m.value);
        }
        rollups.knew_every_agent().then(|| rollups.finish())
    }
}

/// A write's database error as the typed error of a batch's row.
fn batch_error(sim_key: i32) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Database(err) => Error::from_write(
            err,
            "row in batch",
            "(simulation, agent, step) already recorded",
            Some(("simulation or agent", format!("sim_key {sim_key}"))),
        ),
        other => other,
    }
}

/// Inserts every row of `batch` for simulation `sim_key` (inside the
/// caller's transaction), using what `known` says of the stored chunks and
/// the agents' `kinds` (read when not given).
pub(crate) fn write_batch<C: Store + Bulk>(
    c: &mut C,
    sim_key: i32,
    batch: &Batch,
    cache: &MetricCache,
    known: Option<&KnownChunks>,
    kinds: Option<&HashMap<i32, String>>,
    buffers: &mut RowBuffers,
) -> Result<Written> {
    let text = batch_text(batch)?;
    let interned = intern_missing(c, std::slice::from_ref(batch), cache)?;
    let ids = cache.with_learned(&interned);
    // Every id was interned just above; no foreign key backs this up any
    // more, so a missing one is an error, never a made-up id.
    let mut rows = buffers.rows();
    add_rows(&mut rows, sim_key, batch, text, |m| {
        interned_id(&ids.ids, m)
    })?;
    // The rollups of these rows, written in the same transaction (the
    // kinds read again if an agent is new to those given).
    let mut kinds_read = None;
    let rollups = match kinds.and_then(|k| rows.rollups(sim_key, k)) {
        Some(rollups) => rollups,
        None => {
            let read = c.agent_kinds(sim_key)?;
            let rollups = rows
                .rollups(sim_key, &read)
                .ok_or_else(|| Error::invalid("agent", "a recorded agent is not registered"))?;
            kinds_read = Some(read);
            rollups
        }
    };
    let highest = rollups.highest();
    let written = (|| -> Result<Written> {
        let states =
            crate::store::write_states(c, sim_key, &rows.states, known.map(|k| &k.states))?;
        c.copy_steps(&rows.steps)?;
        c.copy_step_metrics(&rows.step_metrics)?;
        let metrics = crate::store::metric_chunks::write_metrics(
            c,
            sim_key,
            &rows.agent_metrics,
            known.map(|k| &k.metrics),
        )?;
        let totals = c.add_rollups(rollups)?;
        for m in &batch.memories {
            c.insert_memory(&AgentMemory {
                sim_key,
                agent_index: AgentIndex(m.agent),
                step: m.step,
                dtype: m.memory.dtype.clone(),
                shape: Value::from(m.memory.shape.clone()),
                data: m.memory.data.clone(),
                recorded_at: m.at,
            })?;
        }
        Ok(Written {
            interned: Vec::new(),
            states,
            metrics,
            highest,
            totals,
            kinds: None,
        })
    })();
    buffers.keep(rows);
    let mut written = written.map_err(batch_error(sim_key))?;
    written.interned = interned;
    written.kinds = kinds_read;
    Ok(written)
}

/// Interns the metric names `group` uses that `cache` has no id for, in
/// name order: two writers inserting the same new names wait for each
/// other in one order, never in a cycle (on PostgreSQL an insert waits on
/// the other's uncommitted equal key). Returns (local id, database id).
pub(crate) fn intern_missing<C: Store>(
    c: &mut C,
    group: &[Batch],
    cache: &MetricCache,
) -> Result<Vec<(usize, i32)>> {
    let mut missing: Vec<(&str, usize)> = group
        .iter()
        .flat_map(|b| &b.metrics)
        .map(|rec| rec.metric as usize)
        .filter(|&i| cache.ids.get(i).copied().flatten().is_none())
        .map(|i| (cache.names.get(i).map(String::as_str).unwrap_or(""), i))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
        .into_iter()
        .map(|(name, i)| Ok((i, c.metric_id(name)?)))
        .collect()
}

/// The database id of recorder-local metric `m`.
fn interned_id(ids: &[Option<i32>], m: u32) -> Result<i32> {
    ids.get(m as usize)
        .copied()
        .flatten()
        .ok_or_else(|| Error::invalid("metric", "recorder metric id not interned"))
}

/// Writes `group` (consecutive batches) as one statement that commits on
/// its own (one round trip to the server), when the backend has such a
/// statement and the writer knows what the rows meet in the database:
/// every metric name interned, every agent's kind, and that no stored
/// rollup shares a step or block with them. Chunks it does not know are
/// read first (held by the lease, they cannot change before the write).
/// `Ok(None)`: not so, nothing was sent (write them the usual way).
pub(crate) fn write_batch_at_once<C: Store + BatchStatement>(
    c: &mut C,
    lease: &BatchLease<'_>,
    group: &[Batch],
    cache: &MetricCache,
    known: &KnownChunks,
    rollups: &KnownRollups,
    buffers: &mut RowBuffers,
) -> Result<Option<Written>> {
    let Some(at_once) = prepare_at_once(
        c,
        lease.sim_key,
        group,
        cache,
        known,
        rollups,
        buffers,
        true,
    )?
    else {
        return Ok(None);
    };
    at_once.send(c, lease)?;
    Ok(Some(at_once.into_written(buffers)))
}

/// A group of batches encoded for the one-statement write: every row it
/// inserts, owned, so that it can be sent from another thread while the
/// writer encodes the next group (`writer.rs`).
#[derive(Debug)]
pub(crate) struct AtOnce {
    states: Planned<AgentStateChunk>,
    metrics: Planned<AgentMetricChunk>,
    steps: Vec<StepRow>,
    step_metrics: Vec<StepMetric>,
    rollups: RollupRows,
    totals: Vec<AgentTotal>,
}

/// Encodes `group` for [`AtOnce::send`], or `Ok(None)` where it must be
/// written the usual way (see [`write_batch_at_once`]). With `may_read`
/// false, a chunk the writer does not know (stored or absent) is such a
/// case too, and nothing is read through `c`: the writer encodes while its
/// last statement is still on the server, whose chunks a read would not
/// see yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare_at_once<C: Store + BatchStatement>(
    c: &mut C,
    sim_key: i32,
    group: &[Batch],
    cache: &MetricCache,
    known: &KnownChunks,
    rollups: &KnownRollups,
    buffers: &mut RowBuffers,
    may_read: bool,
) -> Result<Option<AtOnce>> {
    if !C::AT_ONCE || group.iter().any(|b| !b.memories.is_empty()) {
        return Ok(None);
    }
    let metrics = || group.iter().flat_map(|b| &b.metrics);
    if metrics().any(|m| interned_id(&cache.ids, m.metric).is_err()) {
        return Ok(None);
    }
    let Some(kinds) = rollups.kinds() else {
        return Ok(None);
    };
    let Some(min_step) = group.iter().filter_map(|b| b.min_step).min() else {
        return Ok(None);
    };
    if !rollups.all_new_from(min_step) {
        return Ok(None);
    }
    let texts = group.iter().map(batch_text).collect::<Result<Vec<_>>>()?;
    let mut rows = buffers.rows();
    for (batch, text) in group.iter().zip(texts) {
        add_rows(&mut rows, sim_key, batch, text, |m| {
            interned_id(&cache.ids, m)
        })?;
    }
    let unknown = || {
        rows.states
            .iter()
            .any(|r| !known.states.knows(r.0, chunk::chunk_of(r.1)))
            || rows.agent_metrics.iter().any(|m| {
                !known
                    .metrics
                    .knows((m.metric_id, m.agent_index.0), chunk::chunk_of(m.step))
            })
    };
    // An agent registered since the kinds were read: the usual way.
    let rollup_rows = match rows.rollups(sim_key, kinds) {
        Some(r) if may_read || !unknown() => r,
        _ => {
            buffers.keep(rows);
            return Ok(None);
        }
    };
    let Some(totals) = rollups.totals_after(&rollup_rows) else {
        buffers.keep(rows);
        return Ok(None);
    };
    let states = plan_states(c, sim_key, &rows.states, Some(&known.states))?;
    let metrics = plan_metrics(c, sim_key, &rows.agent_metrics, Some(&known.metrics))?;
    // The statement only inserts: a chunk already stored (its block rolled
    // up, so not reached while `all_new_from` holds) is merged the usual way.
    if states.stored.iter().chain(&metrics.stored).any(|&s| s) {
        buffers.keep(rows);
        return Ok(None);
    }
    let steps = std::mem::take(&mut rows.steps);
    let step_metrics = std::mem::take(&mut rows.step_metrics);
    buffers.keep(rows);
    Ok(Some(AtOnce {
        states,
        metrics,
        steps,
        step_metrics,
        rollups: rollup_rows,
        totals,
    }))
}

impl AtOnce {
    /// Sends the statement; an error if the run is no longer this lease's
    /// (nothing of it is then stored).
    pub(crate) fn send<C: Store + BatchStatement>(
        &self,
        c: &mut C,
        lease: &BatchLease<'_>,
    ) -> Result<()> {
        let owned = c
            .batch_statement(&BatchWrite {
                lease,
                states: &self.states,
                metrics: &self.metrics,
                steps: &self.steps,
                step_metrics: &self.step_metrics,
                rollups: &self.rollups,
                totals: &self.totals,
            })
            .map_err(batch_error(lease.sim_key))?;
        if !owned {
            return Err(c.ownership_error(lease.sim_key, lease.sim));
        }
        Ok(())
    }

    /// The highest step and block it writes rollups for, and the agent
    /// totals as it stores them: what the writer knows once it is sent
    /// (`KnownRollups::learn`).
    pub(crate) fn rollups_after(&self) -> ((Option<i64>, Option<i64>), &[AgentTotal]) {
        (self.rollups.highest(), &self.totals)
    }

    /// The highest state and metric chunk numbers it writes.
    pub(crate) fn highest_chunks(&self) -> (Option<i64>, Option<i64>) {
        (
            self.states.chunks.iter().map(|c| c.chunk).max(),
            self.metrics.chunks.iter().map(|c| c.chunk).max(),
        )
    }

    /// What the writer learns once it committed; its step-metric rows'
    /// room goes back to `buffers`.
    pub(crate) fn into_written(self, buffers: &mut RowBuffers) -> Written {
        buffers.keep_step_metrics(self.step_metrics);
        Written {
            interned: Vec::new(),
            highest: self.rollups.highest(),
            states: self.states.chunks,
            metrics: self.metrics.chunks,
            totals: self.totals,
            kinds: None,
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = simulation_steps, treat_none_as_default_value = false)]
pub(crate) struct StepRow {
    pub(crate) sim_key: i32,
    pub(crate) step: i64,
    pub(crate) recorded_at: TimeParam,
    pub(crate) metrics: RawJson,
}

/// Bulk inserts of the recorder's row kinds other than states (which go
/// into chunks, `store/state_chunks.rs`), per backend.
pub(crate) trait Bulk {
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()>;
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()>;
}

/// Rows per multi-row INSERT on SQLite: a fixed-size array gives Diesel a
/// static query id, so the statement is prepared once per connection and
/// reused (a slice of rows would be re-prepared on every call). 5 columns x
/// 128 rows stays far below SQLite's 32766 bind parameters.
#[cfg(feature = "sqlite")]
const SQLITE_CHUNK: usize = 128;

/// Multi-row INSERTs of `SQLITE_CHUNK` rows, then one for the remainder.
#[cfg(feature = "sqlite")]
macro_rules! sqlite_insert {
    ($conn:expr, $table:expr, $rows:expr, $row:ty) => {
        crate::store::sqlite_insert_rows!($conn, $table, $rows, $row, SQLITE_CHUNK)
    };
}

#[cfg(feature = "sqlite")]
impl Bulk for diesel::sqlite::SqliteConnection {
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()> {
        sqlite_insert!(self, simulation_steps::table, rows, StepRow)
    }
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()> {
        sqlite_insert!(self, step_metrics::table, rows, StepMetric)
    }
}

/// Binary `COPY ... FROM STDIN`: PostgreSQL's fastest ingest path.
#[cfg(feature = "postgres")]
macro_rules! pg_copy {
    ($conn:expr, $table:expr, $rows:expr) => {{
        if !$rows.is_empty() {
            diesel::copy_from($table)
                .from_insertable($rows)
                .execute($conn)?;
        }
        Ok(())
    }};
}

#[cfg(feature = "postgres")]
impl Bulk for diesel::pg::PgConnection {
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()> {
        pg_copy!(self, simulation_steps::table, rows)
    }
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()> {
        pg_copy!(self, step_metrics::table, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch's row vectors come back empty with their room: the next
    /// batch fills them without allocating (and faulting pages in) again.
    #[test]
    fn row_buffers_keep_their_room() {
        let text = String::from("{\"x\":1}");
        let mut buffers = RowBuffers::default();
        let mut rows = buffers.rows();
        for step in 0..1000 {
            rows.states
                .push((0, step, 0.5, StateText::plain(text.as_str())));
        }
        let room = rows.states.capacity();
        buffers.keep(rows);
        drop(text);
        let rows = buffers.rows();
        assert!(rows.states.is_empty());
        assert_eq!(rows.states.capacity(), room);
    }
}
