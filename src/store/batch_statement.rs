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
/// table's new rows (chunks already stored are updated in place).
#[cfg(feature = "postgres")]
const STATEMENT: &str = "\
-- simdb: one-statement batch (commits on its own)
WITH own AS (
  UPDATE simdb_simulations SET heartbeat_at = statement_timestamp(), batch_seq = $1,
    committed_step = CASE WHEN $2::int8 IS NOT NULL AND (committed_step IS NULL OR committed_step < $2::int8)
                     THEN $2::int8 ELSE committed_step END
  WHERE sim_key = $3 AND status = 'running' AND lease_token = $4
  RETURNING sim_key),
new_states AS (
  INSERT INTO simdb_agent_state_chunks (sim_key, agent_index, chunk, present, rewards, states)
  SELECT own.sim_key, u.a, u.c, u.p, u.r, u.s
  FROM own, unnest($5::int4[], $6::int8[], $7::int8[], $8::bytea[], $9::bytea[]) AS u(a, c, p, r, s)),
old_states AS (
  UPDATE simdb_agent_state_chunks t SET present = u.p, rewards = u.r, states = u.s
  FROM own, unnest($10::int4[], $11::int8[], $12::int8[], $13::bytea[], $14::bytea[]) AS u(a, c, p, r, s)
  WHERE t.sim_key = own.sim_key AND t.agent_index = u.a AND t.chunk = u.c),
new_metrics AS (
  INSERT INTO simdb_agent_metric_chunks (sim_key, metric_id, agent_index, chunk, present, vals)
  SELECT own.sim_key, u.m, u.a, u.c, u.p, u.v
  FROM own, unnest($15::int4[], $16::int4[], $17::int8[], $18::int8[], $19::bytea[]) AS u(m, a, c, p, v)),
old_metrics AS (
  UPDATE simdb_agent_metric_chunks t SET present = u.p, vals = u.v
  FROM own, unnest($20::int4[], $21::int4[], $22::int8[], $23::int8[], $24::bytea[]) AS u(m, a, c, p, v)
  WHERE t.sim_key = own.sim_key AND t.metric_id = u.m AND t.agent_index = u.a AND t.chunk = u.c),
steps AS (
  INSERT INTO simdb_simulation_steps (sim_key, step, recorded_at, metrics)
  SELECT own.sim_key, u.s, u.t, u.m
  FROM own, unnest($25::int8[], $26::timestamptz[], $27::jsonb[]) AS u(s, t, m)),
step_metrics AS (
  INSERT INTO simdb_step_metrics (sim_key, metric_id, step, value)
  SELECT own.sim_key, u.m, u.s, u.v
  FROM own, unnest($28::int4[], $29::int8[], $30::float8[]) AS u(m, s, v)),
rollups AS (
  INSERT INTO simdb_step_rollups (sim_key, field_id, kind, step, n, total, lo, hi, total_sq)
  SELECT own.sim_key, u.f, u.k, u.s, u.n, u.t, u.lo, u.hi, u.sq
  FROM own, unnest($31::int4[], $32::text[], $33::int8[], $34::int8[], $35::float8[], $36::float8[],
                   $37::float8[], $38::float8[]) AS u(f, k, s, n, t, lo, hi, sq)),
blocks AS (
  INSERT INTO simdb_block_rollups (sim_key, field_id, block, first_step, last_step, n, total, lo, hi, total_sq)
  SELECT own.sim_key, u.f, u.b, u.fs, u.ls, u.n, u.t, u.lo, u.hi, u.sq
  FROM own, unnest($39::int4[], $40::int8[], $41::int8[], $42::int8[], $43::int8[], $44::float8[],
                   $45::float8[], $46::float8[], $47::float8[]) AS u(f, b, fs, ls, n, t, lo, hi, sq)),
totals AS (
  INSERT INTO simdb_agent_totals (sim_key, agent_index, n, total)
  SELECT own.sim_key, u.a, u.n, u.t
  FROM own, unnest($48::int4[], $49::int8[], $50::float8[]) AS u(a, n, t)
  ON CONFLICT (sim_key, agent_index) DO UPDATE SET n = excluded.n, total = excluded.total)
SELECT count(*) AS owned FROM own";

#[cfg(feature = "postgres")]
#[derive(diesel::QueryableByName)]
struct Owned {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    owned: i64,
}

/// One array per column of some chunks, split into new and stored ones.
#[cfg(feature = "postgres")]
fn split<T>(planned: &Planned<T>, stored: bool) -> impl Iterator<Item = &T> {
    planned
        .chunks
        .iter()
        .zip(&planned.stored)
        .filter(move |(_, s)| **s == stored)
        .map(|(c, _)| c)
}

#[cfg(feature = "postgres")]
impl BatchStatement for diesel::pg::PgConnection {
    const AT_ONCE: bool = true;

    fn batch_statement(&mut self, w: &BatchWrite<'_>) -> Result<bool> {
        use crate::sql_types::Jsonb;
        use diesel::sql_types::{
            Array, BigInt, Bytea, Double, Integer, Nullable, Text, Timestamptz,
        };
        use diesel::RunQueryDsl;

        fn col<'a, T, V>(rows: impl Iterator<Item = &'a T>, f: impl Fn(&'a T) -> V) -> Vec<V>
        where
            T: 'a,
        {
            rows.map(f).collect()
        }
        let s = |stored| split(w.states, stored);
        let m = |stored| split(w.metrics, stored);
        let rollups: Vec<_> = w.rollups.steps.values().collect();
        let blocks: Vec<_> = w.rollups.blocks.values().collect();
        let l = w.lease;
        let query = diesel::sql_query(STATEMENT)
            .bind::<BigInt, _>(l.seq)
            .bind::<Nullable<BigInt>, _>(l.mark)
            .bind::<Integer, _>(l.sim_key)
            .bind::<BigInt, _>(l.token);
        let bound = query
            .bind::<Array<Integer>, _>(col(s(false), |c| c.agent_index))
            .bind::<Array<BigInt>, _>(col(s(false), |c| c.chunk))
            .bind::<Array<BigInt>, _>(col(s(false), |c| c.present))
            .bind::<Array<Bytea>, _>(col(s(false), |c| c.rewards.as_slice()))
            .bind::<Array<Bytea>, _>(col(s(false), |c| c.states.as_slice()))
            .bind::<Array<Integer>, _>(col(s(true), |c| c.agent_index))
            .bind::<Array<BigInt>, _>(col(s(true), |c| c.chunk))
            .bind::<Array<BigInt>, _>(col(s(true), |c| c.present))
            .bind::<Array<Bytea>, _>(col(s(true), |c| c.rewards.as_slice()))
            .bind::<Array<Bytea>, _>(col(s(true), |c| c.states.as_slice()))
            .bind::<Array<Integer>, _>(col(m(false), |c| c.metric_id))
            .bind::<Array<Integer>, _>(col(m(false), |c| c.agent_index))
            .bind::<Array<BigInt>, _>(col(m(false), |c| c.chunk))
            .bind::<Array<BigInt>, _>(col(m(false), |c| c.present))
            .bind::<Array<Bytea>, _>(col(m(false), |c| c.vals.as_slice()))
            .bind::<Array<Integer>, _>(col(m(true), |c| c.metric_id))
            .bind::<Array<Integer>, _>(col(m(true), |c| c.agent_index))
            .bind::<Array<BigInt>, _>(col(m(true), |c| c.chunk))
            .bind::<Array<BigInt>, _>(col(m(true), |c| c.present))
            .bind::<Array<Bytea>, _>(col(m(true), |c| c.vals.as_slice()))
            .bind::<Array<BigInt>, _>(col(w.steps.iter(), |r| r.step))
            .bind::<Array<Timestamptz>, _>(col(w.steps.iter(), |r| r.recorded_at.0))
            .bind::<Array<Jsonb>, _>(col(w.steps.iter(), |r| &r.metrics))
            .bind::<Array<Integer>, _>(col(w.step_metrics.iter(), |r| r.metric_id))
            .bind::<Array<BigInt>, _>(col(w.step_metrics.iter(), |r| r.step))
            .bind::<Array<Double>, _>(col(w.step_metrics.iter(), |r| r.value))
            .bind::<Array<Integer>, _>(col(rollups.iter(), |r| r.field_id))
            .bind::<Array<Text>, _>(col(rollups.iter(), |r| r.kind.as_str()))
            .bind::<Array<BigInt>, _>(col(rollups.iter(), |r| r.step))
            .bind::<Array<BigInt>, _>(col(rollups.iter(), |r| r.n))
            .bind::<Array<Double>, _>(col(rollups.iter(), |r| r.total))
            .bind::<Array<Double>, _>(col(rollups.iter(), |r| r.lo))
            .bind::<Array<Double>, _>(col(rollups.iter(), |r| r.hi))
            .bind::<Array<Double>, _>(col(rollups.iter(), |r| r.total_sq));
        let bound = bound
            .bind::<Array<Integer>, _>(col(blocks.iter(), |b| b.field_id))
            .bind::<Array<BigInt>, _>(col(blocks.iter(), |b| b.block))
            .bind::<Array<BigInt>, _>(col(blocks.iter(), |b| b.first_step))
            .bind::<Array<BigInt>, _>(col(blocks.iter(), |b| b.last_step))
            .bind::<Array<BigInt>, _>(col(blocks.iter(), |b| b.n))
            .bind::<Array<Double>, _>(col(blocks.iter(), |b| b.total))
            .bind::<Array<Double>, _>(col(blocks.iter(), |b| b.lo))
            .bind::<Array<Double>, _>(col(blocks.iter(), |b| b.hi))
            .bind::<Array<Double>, _>(col(blocks.iter(), |b| b.total_sq))
            .bind::<Array<Integer>, _>(col(w.totals.iter(), |t| t.agent_index))
            .bind::<Array<BigInt>, _>(col(w.totals.iter(), |t| t.n))
            .bind::<Array<Double>, _>(col(w.totals.iter(), |t| t.total));
        let owned: Owned = bound.get_result(self)?;
        Ok(owned.owned == 1)
    }
}
