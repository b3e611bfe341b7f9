//! A recorder's batch as one statement on PostgreSQL: the ownership proof
//! (with the heartbeat, batch sequence number and watermark) and every
//! insert in one `WITH` statement that commits on its own, so a batch costs
//! one round trip to the server instead of one per statement and `COPY`
//! (what a writer far from its server pays for; issue 24). Each row source
//! is an array parameter per column, unnested; every insert reads the
//! ownership proof's row, so a batch whose run is no longer held writes
//! nothing. Used only when the writer knows what every row meets
//! (`recorder/bulk.rs::write_batch_at_once`); SQLite, in-process, gains
//! nothing from it and keeps its transaction.

use crate::error::Result;
use crate::ids::SimulationId;
use crate::models::{AgentMetricChunk, AgentStateChunk, StepMetric};
use crate::recorder::StepRow;
use crate::store::rollups::{AgentTotal, RollupRows};
use crate::store::state_chunks::Planned;

/// Whose batch it is: the run, the lease, the batch's sequence number and
/// the watermark it carries.
#[derive(Debug)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct BatchLease<'a> {
    pub(crate) sim_key: i32,
    pub(crate) sim: &'a SimulationId,
    pub(crate) token: i64,
    pub(crate) seq: i64,
    pub(crate) mark: Option<i64>,
}

/// Everything one batch stores, ready to write.
#[derive(Debug)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct BatchWrite<'a> {
    pub(crate) lease: &'a BatchLease<'a>,
    /// New state and metric chunks (none of them stored yet).
    pub(crate) states: &'a Planned<AgentStateChunk>,
    pub(crate) metrics: &'a Planned<AgentMetricChunk>,
    pub(crate) steps: &'a [StepRow],
    pub(crate) step_metrics: &'a [StepMetric],
    /// Step and block rollups, none of them stored yet.
    pub(crate) rollups: &'a RollupRows,
    /// Agent totals as they are to be stored.
    pub(crate) totals: &'a [AgentTotal],
}

/// The one-statement batch, where a backend has it.
pub(crate) trait BatchStatement {
    /// Whether [`BatchStatement::batch_statement`] writes anything.
    const AT_ONCE: bool;
    /// Writes the batch in one statement outside any transaction; false
    /// (nothing written) if the run is not held by the lease.
    fn batch_statement(&mut self, write: &BatchWrite<'_>) -> Result<bool>;
}

#[cfg(feature = "sqlite")]
impl BatchStatement for diesel::sqlite::SqliteConnection {
    const AT_ONCE: bool = false;
    fn batch_statement(&mut self, _: &BatchWrite<'_>) -> Result<bool> {
        Err(crate::error::Error::invalid(
            "batch",
            "SQLite writes batches in a transaction",
        ))
    }
}

/// The statement: `$1..$4` the lease, then one array per column of each
/// table's new rows. Only inserts: a batch whose chunks are partly stored
/// is written the usual way (a stored chunk means its 64-step block is
/// rolled up, and a batch with rows in such a block is never written at
/// once). With updates of stored chunks in it, whose joins the server
/// estimates at 100 rows an array parameter, its generic plan cost more
/// than one made for a batch's empty arrays, so the server planned the
/// statement again for every batch (11% of its time over the engine
/// bench). New rows unnest their arrays in the select list, side by
/// side, which streams them; `unnest(a, b, …)` in `FROM` first copied every
/// row into a tuple store (7% of the server's time over the engine bench).
#[cfg(feature = "postgres")]
const STATEMENT: &str = "\
-- simdb: one-statement batch (commits on its own)
WITH own AS (
  UPDATE simdb_simulations SET heartbeat_at = statement_timestamp(), batch_seq = $1,
    committed_step = GREATEST(committed_step, $2::int8)
  WHERE sim_key = $3 AND status = 'running' AND lease_token = $4
  RETURNING sim_key),
new_states AS (
  INSERT INTO simdb_agent_state_chunks (sim_key, agent_index, chunk, present, rewards, states)
  SELECT own.sim_key, unnest($5::int4[]), unnest($6::int8[]), unnest($7::int8[]), unnest($8::bytea[]),
    unnest($9::bytea[])
  FROM own),
new_metrics AS (
  INSERT INTO simdb_agent_metric_chunks (sim_key, metric_id, agent_index, chunk, present, vals)
  SELECT own.sim_key, unnest($10::int4[]), unnest($11::int4[]), unnest($12::int8[]), unnest($13::int8[]),
    unnest($14::bytea[])
  FROM own),
steps AS (
  INSERT INTO simdb_simulation_steps (sim_key, step, recorded_at, metrics)
  SELECT own.sim_key, unnest($15::int8[]), unnest($16::timestamptz[]), unnest($17::jsonb[])
  FROM own),
step_metrics AS (
  INSERT INTO simdb_step_metrics (sim_key, metric_id, step, value)
  SELECT own.sim_key, unnest($18::int4[]), unnest($19::int8[]), unnest($20::float8[])
  FROM own),
rollups AS (
  INSERT INTO simdb_step_rollups (sim_key, field_id, kind, step, n, total, lo, hi, total_sq, sole_kind)
  SELECT own.sim_key, unnest($21::int4[]), unnest($22::text[]), unnest($23::int8[]), unnest($24::int8[]),
    unnest($25::float8[]), unnest($26::float8[]), unnest($27::float8[]), unnest($28::float8[]),
    unnest($29::text[])
  FROM own),
blocks AS (
  INSERT INTO simdb_block_rollups (sim_key, field_id, block, first_step, last_step, n, total, lo, hi, total_sq)
  SELECT own.sim_key, unnest($30::int4[]), unnest($31::int8[]), unnest($32::int8[]), unnest($33::int8[]),
    unnest($34::int8[]), unnest($35::float8[]), unnest($36::float8[]), unnest($37::float8[]),
    unnest($38::float8[])
  FROM own),
totals AS (
  INSERT INTO simdb_agent_totals (sim_key, agent_index, n, total)
  SELECT own.sim_key, unnest($39::int4[]), unnest($40::int8[]), unnest($41::float8[])
  FROM own
  ON CONFLICT (sim_key, agent_index) DO UPDATE SET n = excluded.n, total = excluded.total)
SELECT count(*) AS owned FROM own";

#[cfg(feature = "postgres")]
#[derive(diesel::QueryableByName)]
struct Owned {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    owned: i64,
}

/// One column of `rows` as an array parameter.
#[cfg(feature = "postgres")]
fn col<'a, T: 'a, V>(rows: &'a [T], f: impl Fn(&'a T) -> V) -> Vec<V> {
    rows.iter().map(f).collect()
}

/// The statement's parameters, one array per column, owned so that the
/// query can lend them to the connection.
#[cfg(feature = "postgres")]
struct BatchQuery<'a> {
    seq: i64,
    mark: Option<i64>,
    sim_key: i32,
    token: i64,
    new_states: ChunkColumns<'a>,
    new_metrics: MetricColumns<'a>,
    step: Vec<i64>,
    recorded_at: Vec<chrono::DateTime<chrono::Utc>>,
    step_json: Vec<&'a crate::sql_types::RawJson>,
    step_metric_id: Vec<i32>,
    step_metric_step: Vec<i64>,
    step_metric_value: Vec<f64>,
    rollup_field: Vec<i32>,
    rollup_kind: Vec<&'a str>,
    rollup_step: Vec<i64>,
    rollup_n: Vec<i64>,
    rollup_sums: [Vec<f64>; 4],
    rollup_sole: Vec<Option<&'a str>>,
    block_field: Vec<i32>,
    block: Vec<i64>,
    block_first: Vec<i64>,
    block_last: Vec<i64>,
    block_n: Vec<i64>,
    block_sums: [Vec<f64>; 4],
    total_agent: Vec<i32>,
    total_n: Vec<i64>,
    total: Vec<f64>,
}

#[cfg(feature = "postgres")]
struct ChunkColumns<'a> {
    agent: Vec<i32>,
    chunk: Vec<i64>,
    present: Vec<i64>,
    rewards: Vec<&'a [u8]>,
    states: Vec<&'a [u8]>,
}

#[cfg(feature = "postgres")]
impl<'a> ChunkColumns<'a> {
    fn of(planned: &'a Planned<AgentStateChunk>) -> Self {
        let rows = &planned.chunks;
        ChunkColumns {
            agent: col(rows, |c| c.agent_index),
            chunk: col(rows, |c| c.chunk),
            present: col(rows, |c| c.present),
            rewards: col(rows, |c| c.rewards.as_slice()),
            states: col(rows, |c| c.states.as_slice()),
        }
    }
}

#[cfg(feature = "postgres")]
struct MetricColumns<'a> {
    metric: Vec<i32>,
    agent: Vec<i32>,
    chunk: Vec<i64>,
    present: Vec<i64>,
    vals: Vec<&'a [u8]>,
}

#[cfg(feature = "postgres")]
impl<'a> MetricColumns<'a> {
    fn of(planned: &'a Planned<AgentMetricChunk>) -> Self {
        let rows = &planned.chunks;
        MetricColumns {
            metric: col(rows, |c| c.metric_id),
            agent: col(rows, |c| c.agent_index),
            chunk: col(rows, |c| c.chunk),
            present: col(rows, |c| c.present),
            vals: col(rows, |c| c.vals.as_slice()),
        }
    }
}

#[cfg(feature = "postgres")]
impl<'a> BatchQuery<'a> {
    fn of(w: &'a BatchWrite<'a>) -> Self {
        let rollups: Vec<_> = w.rollups.steps.values().collect();
        let blocks: Vec<_> = w.rollups.blocks.values().collect();
        BatchQuery {
            seq: w.lease.seq,
            mark: w.lease.mark,
            sim_key: w.lease.sim_key,
            token: w.lease.token,
            new_states: ChunkColumns::of(w.states),
            new_metrics: MetricColumns::of(w.metrics),
            step: col(w.steps, |r| r.step),
            recorded_at: col(w.steps, |r| r.recorded_at.0),
            step_json: col(w.steps, |r| &r.metrics),
            step_metric_id: col(w.step_metrics, |r| r.metric_id),
            step_metric_step: col(w.step_metrics, |r| r.step),
            step_metric_value: col(w.step_metrics, |r| r.value),
            rollup_field: col(&rollups, |r| r.field_id),
            rollup_kind: col(&rollups, |r| r.kind.as_str()),
            rollup_step: col(&rollups, |r| r.step),
            rollup_n: col(&rollups, |r| r.n),
            rollup_sums: [
                col(&rollups, |r| r.total),
                col(&rollups, |r| r.lo),
                col(&rollups, |r| r.hi),
                col(&rollups, |r| r.total_sq),
            ],
            rollup_sole: col(&rollups, |r| r.sole_kind.as_deref()),
            block_field: col(&blocks, |b| b.field_id),
            block: col(&blocks, |b| b.block),
            block_first: col(&blocks, |b| b.first_step),
            block_last: col(&blocks, |b| b.last_step),
            block_n: col(&blocks, |b| b.n),
            block_sums: [
                col(&blocks, |b| b.total),
                col(&blocks, |b| b.lo),
                col(&blocks, |b| b.hi),
                col(&blocks, |b| b.total_sq),
            ],
            total_agent: col(w.totals, |t| t.agent_index),
            total_n: col(w.totals, |t| t.n),
            total: col(w.totals, |t| t.total),
        }
    }
}

/// The statement is the same text every time: one prepared statement per
/// connection (Diesel's cache, keyed by this type), planned generically by
/// the server, which then reads the arrays from the parameters instead of
/// copying them into a new plan for every batch, as a one-off statement's
/// plan does.
#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryId for BatchQuery<'_> {
    type QueryId = BatchQuery<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::Query for BatchQuery<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

#[cfg(feature = "postgres")]
impl<Conn> diesel::RunQueryDsl<Conn> for BatchQuery<'_> {}

#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for BatchQuery<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use crate::sql_types::Jsonb;
        use diesel::sql_types::{
            Array, BigInt, Bytea, Double, Integer, Nullable, Text, Timestamptz,
        };
        // `$n` in STATEMENT is the n-th bind pushed here: the text is
        // pushed in pieces split at each placeholder.
        let mut pieces = STATEMENT.split('$');
        let mut text = pieces.next().unwrap_or_default();
        macro_rules! bind {
            ($ty:ty, $value:expr) => {{
                out.push_sql(text);
                out.push_bind_param::<$ty, _>($value)?;
                // The next piece, after its placeholder's number.
                text = pieces
                    .next()
                    .map_or("", |p| p.trim_start_matches(|c: char| c.is_ascii_digit()));
            }};
        }
        bind!(BigInt, &self.seq);
        bind!(Nullable<BigInt>, &self.mark);
        bind!(Integer, &self.sim_key);
        bind!(BigInt, &self.token);
        let c = &self.new_states;
        bind!(Array<Integer>, &c.agent);
        bind!(Array<BigInt>, &c.chunk);
        bind!(Array<BigInt>, &c.present);
        bind!(Array<Bytea>, &c.rewards);
        bind!(Array<Bytea>, &c.states);
        let m = &self.new_metrics;
        bind!(Array<Integer>, &m.metric);
        bind!(Array<Integer>, &m.agent);
        bind!(Array<BigInt>, &m.chunk);
        bind!(Array<BigInt>, &m.present);
        bind!(Array<Bytea>, &m.vals);
        bind!(Array<BigInt>, &self.step);
        bind!(Array<Timestamptz>, &self.recorded_at);
        bind!(Array<Jsonb>, &self.step_json);
        bind!(Array<Integer>, &self.step_metric_id);
        bind!(Array<BigInt>, &self.step_metric_step);
        bind!(Array<Double>, &self.step_metric_value);
        bind!(Array<Integer>, &self.rollup_field);
        bind!(Array<Text>, &self.rollup_kind);
        bind!(Array<BigInt>, &self.rollup_step);
        bind!(Array<BigInt>, &self.rollup_n);
        for sums in &self.rollup_sums {
            bind!(Array<Double>, sums);
        }
        bind!(Array<Nullable<Text>>, &self.rollup_sole);
        bind!(Array<Integer>, &self.block_field);
        bind!(Array<BigInt>, &self.block);
        bind!(Array<BigInt>, &self.block_first);
        bind!(Array<BigInt>, &self.block_last);
        bind!(Array<BigInt>, &self.block_n);
        for sums in &self.block_sums {
            bind!(Array<Double>, sums);
        }
        bind!(Array<Integer>, &self.total_agent);
        bind!(Array<BigInt>, &self.total_n);
        bind!(Array<Double>, &self.total);
        out.push_sql(text);
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl BatchStatement for diesel::pg::PgConnection {
    const AT_ONCE: bool = true;

    fn batch_statement(&mut self, w: &BatchWrite<'_>) -> Result<bool> {
        use diesel::RunQueryDsl;
        let owned: Owned = BatchQuery::of(w).get_result(self)?;
        Ok(owned.owned == 1)
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    /// `walk_ast` pushes the binds in order at each `$` of the text: the
    /// placeholders must be `$1`, `$2`, … each once, in that order.
    #[test]
    fn placeholders_are_numbered_in_order_once_each() {
        let numbers: Vec<usize> = super::STATEMENT
            .split('$')
            .skip(1)
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap_or(0)
            })
            .collect();
        assert_eq!(numbers, (1..=41).collect::<Vec<_>>());
    }
}
