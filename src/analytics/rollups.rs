//! Reading the rollups written at ingest (`store/rollups.rs`): the reward
//! and agent metrics aggregate from one row per step (and kind) instead of
//! one per agent-step. `state.<path>` fields and simulation-level metrics
//! are not rolled up and read their rows.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use super::aggregates::{AggRow, Buckets};
use super::source::Bucket;
use crate::error::Result;
use crate::store::for_each_backend;
use crate::store::prelude::*;

#[derive(QueryableByName)]
struct KindBucket {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(embed)]
    bucket: Bucket,
}

/// Rows of the same bucket (from blocks and from steps) merged into one,
/// by bucket.
fn merge_buckets(rows: Vec<AggRow>, lo: i64, width: i64) -> Vec<AggRow> {
    let mut merged: std::collections::BTreeMap<i64, AggRow> = std::collections::BTreeMap::new();
    for row in rows {
        let Some(first) = row.0 else { continue };
        let bucket = (first - lo).div_euclid(width.max(1));
        merged
            .entry(bucket)
            .and_modify(|m| {
                let add = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
                let pick = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
                    (Some(a), Some(b)) => Some(f(a, b)),
                    (a, b) => a.or(b),
                };
                *m = (
                    m.0.min(row.0),
                    m.1.max(row.1),
                    m.2 + row.2,
                    add(m.3, row.3),
                    pick(m.4, row.4, f64::min),
                    pick(m.5, row.5, f64::max),
                    add(m.6, row.6),
                );
            })
            .or_insert(row);
    }
    merged.into_values().collect()
}
/// Buckets of `(step - {p}3) / {p}4` over one field (`{p}2`) of one
/// simulation (`{p}1`), steps `{p}6..={p}5`: across agents, or per kind
/// (a kind's own rows, and the rows across agents that name it as their
/// sole kind: such a step has no row of that kind).
fn buckets_sql(p: char, by_kind: bool) -> String {
    let (select, kinds, group) = if by_kind {
        (
            "COALESCE(sole_kind, kind) AS kind, ",
            "(kind <> '' OR sole_kind IS NOT NULL)",
            "COALESCE(sole_kind, kind), ",
        )
    } else {
        ("", "kind = ''", "")
    };
    format!(
        "SELECT {select}MIN(step) AS first, MAX(step) AS last, CAST(SUM(n) AS BIGINT) AS n, \
         SUM(total) AS total, MIN(lo) AS lo, MAX(hi) AS hi, SUM(total_sq) AS total_sq \
         FROM simdb_step_rollups \
         WHERE sim_key = {p}1 AND field_id = {p}2 AND {kinds} AND step >= {p}6 AND step <= {p}5 \
         GROUP BY {group}(step - {p}3) / {p}4"
    )
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Nullable<BigInt>)]
    n: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    hi: Option<i64>,
}

/// Row counts of one listed simulation (`RollupReadStore::listed_counts`).
#[derive(QueryableByName)]
pub(super) struct ListedCounts {
    #[diesel(sql_type = Integer)]
    pub(super) sim_key: i32,
    /// Agent-state rows stored (the agent totals).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) stored: Option<i64>,
    /// Of those, rows of steps above the given step.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) above: Option<i64>,
    /// The highest step with agent-state rows.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) top: Option<i64>,
    /// The highest step with a step row.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) last_step: Option<i64>,
}

/// One statement for many simulations, each `(sim_key, upto)`: key probes
/// per simulation (its agents' totals, the rollups above `upto`, two
/// `MAX(step)` probes), never a scan of its steps. The same SQL on both
/// backends; the values are integers, written into the text.
fn listed_counts_sql(upto: &[(i32, i64)]) -> String {
    let values = upto
        .iter()
        .map(|(key, upto)| format!("({key}, {upto})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH u(sim_key, upto) AS (VALUES {values}) \
         SELECT u.sim_key AS sim_key, \
           (SELECT CAST(SUM(t.n) AS BIGINT) FROM simdb_agent_totals t WHERE t.sim_key = u.sim_key) AS stored, \
           (SELECT CAST(SUM(r.n) AS BIGINT) FROM simdb_step_rollups r WHERE r.sim_key = u.sim_key \
              AND r.field_id = {REWARD_FIELD} AND r.kind = '' AND r.step > u.upto) AS above, \
           (SELECT MAX(r.step) FROM simdb_step_rollups r WHERE r.sim_key = u.sim_key \
              AND r.field_id = {REWARD_FIELD} AND r.kind = '') AS top, \
           (SELECT MAX(s.step) FROM simdb_simulation_steps s WHERE s.sim_key = u.sim_key) AS last_step \
         FROM u"
    )
}

pub(super) trait RollupReadStore {
    /// Row counts of many simulations at once (the dashboard's list).
    fn listed_counts(&mut self, upto: &[(i32, i64)]) -> Result<Vec<ListedCounts>>;
    /// Agent-state rows with `after < step <= upto`, and the highest such
    /// step: the reward rollups' counts (one row per step, not per agent).
    fn rolled_rows(&mut self, sim_key: i32, after: i64, upto: i64) -> Result<(i64, Option<i64>)>;
    /// First and last step of a rolled-up field.
    fn rolled_span(&mut self, sim_key: i32, field: i32) -> Result<Option<(i64, i64)>>;
    /// A rolled-up field's buckets.
    fn rolled(&mut self, sim_key: i32, field: i32, buckets: Buckets) -> Result<Vec<AggRow>>;
    /// The same per agent kind.
    fn rolled_by_kind(
        &mut self,
        sim_key: i32,
        field: i32,
        lo: i64,
        hi: i64,
        width: i64,
    ) -> Result<Vec<(Option<String>, AggRow)>>;
}

for_each_backend! {
    impl RollupReadStore {
        fn listed_counts(&mut self, upto: &[(i32, i64)]) -> Result<Vec<ListedCounts>> {
            if upto.is_empty() {
                return Ok(Vec::new());
            }
            Ok(diesel::sql_query(listed_counts_sql(upto)).load(self)?)
        }

        fn rolled_rows(&mut self, sim_key: i32, after: i64, upto: i64) -> Result<(i64, Option<i64>)> {
            let p = Self::P;
            let counted: Counted = diesel::sql_query(format!(
                "SELECT CAST(SUM(n) AS BIGINT) AS n, MAX(step) AS hi FROM simdb_step_rollups \
                 WHERE sim_key = {p}1 AND field_id = {p}2 AND kind = '' AND step > {p}3 AND step <= {p}4"
            ))
            .bind::<Integer, _>(sim_key)
            .bind::<Integer, _>(REWARD_FIELD)
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(upto)
            .get_result(self)?;
            Ok((counted.n.unwrap_or(0), counted.hi))
        }

        fn rolled_span(&mut self, sim_key: i32, field: i32) -> Result<Option<(i64, i64)>> {
            let p = Self::P;
            let span: StepSpan = diesel::sql_query(format!(
                // Each end from the index (ORDER BY … LIMIT 1): SQLite
                // scans every row for MIN and MAX in one SELECT, and
                // PostgreSQL does too while the table has no statistics.
                "SELECT (SELECT step FROM simdb_step_rollups \
                 WHERE sim_key = {p}1 AND field_id = {p}2 AND kind = '' ORDER BY step LIMIT 1) AS lo, \
                 (SELECT step FROM simdb_step_rollups \
                 WHERE sim_key = {p}1 AND field_id = {p}2 AND kind = '' ORDER BY step DESC LIMIT 1) AS hi"
            ))
            .bind::<Integer, _>(sim_key)
            .bind::<Integer, _>(field)
            .get_result(self)?;
            Ok(span.lo.zip(span.hi))
        }

        fn rolled(&mut self, sim_key: i32, field: i32, b: Buckets) -> Result<Vec<AggRow>> {
            // Buckets of whole 64-step blocks read the blocks inside the
            // range (a row per 64 steps); the steps before the first and
            // after the last whole block read their own rows.
            let p = Self::P;
            let steps = |c: &mut Self, from: i64, to: i64| -> Result<Vec<AggRow>> {
                let rows: Vec<Bucket> = diesel::sql_query(buckets_sql(p, false))
                    .bind::<Integer, _>(sim_key)
                    .bind::<Integer, _>(field)
                    .bind::<BigInt, _>(b.origin)
                    .bind::<BigInt, _>(b.width)
                    .bind::<BigInt, _>(to)
                    .bind::<BigInt, _>(from)
                    .load(c)?;
                Ok(rows.into_iter().map(Bucket::row).collect())
            };
            let aligned = b.origin.rem_euclid(BLOCK_STEPS) == 0 && b.width % BLOCK_STEPS == 0;
            // The first block boundary at or after `from`.
            let start = (b.from.max(0) + BLOCK_STEPS - 1) / BLOCK_STEPS * BLOCK_STEPS;
            let whole = if aligned && b.hi >= start { (b.hi + 1 - start) / BLOCK_STEPS } else { 0 };
            if whole == 0 {
                return Ok(merge_buckets(steps(self, b.from, b.hi)?, b.origin, b.width));
            }
            let mut out = if b.from < start { steps(self, b.from, start - 1)? } else { Vec::new() };
            let blocks: Vec<Bucket> = diesel::sql_query(format!(
                "SELECT MIN(first_step) AS first, MAX(last_step) AS last, CAST(SUM(n) AS BIGINT) AS n, \
                 SUM(total) AS total, MIN(lo) AS lo, MAX(hi) AS hi, SUM(total_sq) AS total_sq \
                 FROM simdb_block_rollups \
                 WHERE sim_key = {p}1 AND field_id = {p}2 AND block >= {p}3 AND block < {p}4 \
                 GROUP BY (block - {p}5) / {p}6"
            ))
            .bind::<Integer, _>(sim_key)
            .bind::<Integer, _>(field)
            .bind::<BigInt, _>(start / BLOCK_STEPS)
            .bind::<BigInt, _>(start / BLOCK_STEPS + whole)
            .bind::<BigInt, _>(b.origin / BLOCK_STEPS)
            .bind::<BigInt, _>(b.width / BLOCK_STEPS)
            .load(self)?;
            out.extend(blocks.into_iter().map(Bucket::row));
            let tail = start + whole * BLOCK_STEPS;
            if tail <= b.hi {
                out.extend(steps(self, tail, b.hi)?);
            }
            Ok(merge_buckets(out, b.origin, b.width))
        }

        fn rolled_by_kind(
            &mut self,
            sim_key: i32,
            field: i32,
            lo: i64,
            hi: i64,
            width: i64,
        ) -> Result<Vec<(Option<String>, AggRow)>> {
            let buckets: Vec<KindBucket> = diesel::sql_query(buckets_sql(Self::P, true))
                .bind::<Integer, _>(sim_key)
                .bind::<Integer, _>(field)
                .bind::<BigInt, _>(lo)
                .bind::<BigInt, _>(width)
                .bind::<BigInt, _>(hi)
                .bind::<BigInt, _>(lo)
                .load(self)?;
            Ok(buckets
                .into_iter()
                .map(|b| (Some(b.kind), b.bucket.row()))
                .collect())
        }
    }
}
