//! Agent metrics in chunks (`simdb_agent_metric_chunks`): the statements,
//! and the read-merge-write that adds values to chunks already stored (as
//! `state_chunks.rs` does for states; nothing of open chunks is kept in
//! memory between batches but what `Known` remembers of commits).

use std::borrow::Cow;
use std::collections::HashMap;

use diesel::prelude::*;

use super::known_chunks::{ChunkRow, Known};
use super::state_chunks::Planned;
use crate::chunk::{self, values};
use crate::error::{Error, Result};
use crate::models::{AgentMetric, AgentMetricChunk};
use crate::schema::agent_metric_chunks as c;

pub(crate) trait MetricChunkStore {
    /// One agent's chunks of one metric, `lo..=hi`, ascending.
    fn metric_chunks(
        &mut self,
        sim_key: i32,
        metric: i32,
        agent: i32,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<AgentMetricChunk>>;
    /// One agent's chunks of one metric from `from` on, ascending, at most
    /// `limit`.
    fn metric_chunks_after(
        &mut self,
        sim_key: i32,
        metric: i32,
        agent: i32,
        from: i64,
        limit: i64,
    ) -> Result<Vec<AgentMetricChunk>>;
    /// Chunk `chunk` of metric `metric` of each of `agents` that has one.
    fn metric_chunks_of(
        &mut self,
        sim_key: i32,
        metric: i32,
        agents: &[i32],
        chunk: i64,
    ) -> Result<Vec<AgentMetricChunk>>;
    /// Every chunk from `chunk` on, of every metric and agent.
    fn metric_chunks_from(&mut self, sim_key: i32, chunk: i64) -> Result<Vec<AgentMetricChunk>>;
    /// Deletes chunk `chunk` of metric `metric` of each of `agents`.
    fn delete_metric_chunks(
        &mut self,
        sim_key: i32,
        metric: i32,
        agents: &[i32],
        chunk: i64,
    ) -> Result<usize>;
    /// Deletes every chunk from `chunk` on.
    fn delete_metric_chunks_from(&mut self, sim_key: i32, chunk: i64) -> Result<usize>;
    /// Inserts whole chunks (none of their keys stored).
    fn insert_metric_chunks(&mut self, rows: &[AgentMetricChunk]) -> Result<()>;
    /// True if metric `metric` has a chunk in the simulation.
    fn has_metric_chunk(&mut self, sim_key: i32, metric: i32) -> Result<bool>;
}

/// Rows per multi-row INSERT on SQLite (6 columns).
#[cfg(feature = "sqlite")]
const SQLITE_ROWS: usize = 64;

macro_rules! common_statements {
    () => {
        fn metric_chunks(
            &mut self,
            sim_key: i32,
            metric: i32,
            agent: i32,
            lo: i64,
            hi: i64,
        ) -> Result<Vec<AgentMetricChunk>> {
            Ok(c::table
                .filter(c::sim_key.eq(sim_key))
                .filter(c::metric_id.eq(metric))
                .filter(c::agent_index.eq(agent))
                .filter(c::chunk.between(lo, hi))
                .order(c::chunk)
                .select(AgentMetricChunk::as_select())
                .load(self)?)
        }

        fn metric_chunks_after(
            &mut self,
            sim_key: i32,
            metric: i32,
            agent: i32,
            from: i64,
            limit: i64,
        ) -> Result<Vec<AgentMetricChunk>> {
            Ok(c::table
                .filter(c::sim_key.eq(sim_key))
                .filter(c::metric_id.eq(metric))
                .filter(c::agent_index.eq(agent))
                .filter(c::chunk.ge(from))
                .order(c::chunk)
                .limit(limit)
                .select(AgentMetricChunk::as_select())
                .load(self)?)
        }

        fn metric_chunks_of(
            &mut self,
            sim_key: i32,
            metric: i32,
            agents: &[i32],
            chunk: i64,
        ) -> Result<Vec<AgentMetricChunk>> {
            let mut out = Vec::new();
            for part in agents.chunks(super::prelude::AGENT_CHUNK) {
                out.extend(
                    c::table
                        .filter(c::sim_key.eq(sim_key))
                        .filter(c::metric_id.eq(metric))
                        .filter(c::agent_index.eq_any(part))
                        .filter(c::chunk.eq(chunk))
                        .select(AgentMetricChunk::as_select())
                        .load(self)?,
                );
            }
            Ok(out)
        }

        fn metric_chunks_from(
            &mut self,
            sim_key: i32,
            chunk: i64,
        ) -> Result<Vec<AgentMetricChunk>> {
            Ok(c::table
                .filter(c::sim_key.eq(sim_key))
                .filter(c::chunk.ge(chunk))
                .select(AgentMetricChunk::as_select())
                .load(self)?)
        }

        fn delete_metric_chunks(
            &mut self,
            sim_key: i32,
            metric: i32,
            agents: &[i32],
            chunk: i64,
        ) -> Result<usize> {
            let mut n = 0;
            for part in agents.chunks(super::prelude::AGENT_CHUNK) {
                n += diesel::delete(
                    c::table
                        .filter(c::sim_key.eq(sim_key))
                        .filter(c::metric_id.eq(metric))
                        .filter(c::agent_index.eq_any(part))
                        .filter(c::chunk.eq(chunk)),
                )
                .execute(self)?;
            }
            Ok(n)
        }

        fn delete_metric_chunks_from(&mut self, sim_key: i32, chunk: i64) -> Result<usize> {
            Ok(diesel::delete(
                c::table
                    .filter(c::sim_key.eq(sim_key))
                    .filter(c::chunk.ge(chunk)),
            )
            .execute(self)?)
        }

        fn has_metric_chunk(&mut self, sim_key: i32, metric: i32) -> Result<bool> {
            Ok(c::table
                .filter(c::sim_key.eq(sim_key))
                .filter(c::metric_id.eq(metric))
                .select(c::chunk)
                .first::<i64>(self)
                .optional()?
                .is_some())
        }
    };
}

#[cfg(feature = "sqlite")]
impl MetricChunkStore for diesel::sqlite::SqliteConnection {
    common_statements!();

    fn insert_metric_chunks(&mut self, rows: &[AgentMetricChunk]) -> Result<()> {
        super::sqlite_insert_rows!(self, c::table, rows, AgentMetricChunk, SQLITE_ROWS)
    }
}

#[cfg(feature = "postgres")]
impl MetricChunkStore for diesel::pg::PgConnection {
    common_statements!();

    fn insert_metric_chunks(&mut self, rows: &[AgentMetricChunk]) -> Result<()> {
        if !rows.is_empty() {
            diesel::copy_from(c::table)
                .from_insertable(rows)
                .execute(self)?;
        }
        Ok(())
    }
}

impl ChunkRow for AgentMetricChunk {
    type Key = (i32, i32);
    fn key(&self) -> (i32, i32) {
        (self.metric_id, self.agent_index)
    }
    fn number(&self) -> i64 {
        self.chunk
    }
}

/// Encodes one chunk of `(step, value)` (ascending, distinct, in `chunk`).
pub(crate) fn encode(
    sim_key: i32,
    metric: i32,
    agent: i32,
    chunk: i64,
    rows: &[(i64, f64)],
) -> AgentMetricChunk {
    let present = rows.iter().fold(0u64, |m, r| m | chunk::bit(r.0));
    let vals: Vec<f64> = rows.iter().map(|r| r.1).collect();
    AgentMetricChunk {
        sim_key,
        metric_id: metric,
        agent_index: agent,
        chunk,
        present: present as i64,
        vals: values::encode(&vals),
    }
}

/// Writes agent metric `rows` of simulation `sim_key` into their chunks,
/// merged with what those chunks already hold; a step stored twice is
/// [`Error::Duplicate`] and writes nothing; returns the chunks as
/// written.
pub(crate) fn write_metrics<C: MetricChunkStore>(
    c: &mut C,
    sim_key: i32,
    rows: &[AgentMetric],
    known: Option<&Known<(i32, i32), AgentMetricChunk>>,
) -> Result<Vec<AgentMetricChunk>> {
    let planned = plan_metrics(c, sim_key, rows, known)?;
    let mut had: HashMap<(i32, i64), Vec<i32>> = HashMap::new();
    for (chunk, _) in planned
        .chunks
        .iter()
        .zip(&planned.stored)
        .filter(|(_, s)| **s)
    {
        had.entry((chunk.metric_id, chunk.chunk))
            .or_default()
            .push(chunk.agent_index);
    }
    for ((metric, number), agents) in &had {
        c.delete_metric_chunks(sim_key, *metric, agents, *number)?;
    }
    c.insert_metric_chunks(&planned.chunks)?;
    Ok(planned.chunks)
}

/// The chunks agent metric `rows` make, merged with what those chunks
/// already hold (known from `known` or read); a step stored twice is
/// [`Error::Duplicate`].
pub(crate) fn plan_metrics<C: MetricChunkStore>(
    c: &mut C,
    sim_key: i32,
    rows: &[AgentMetric],
    known: Option<&Known<(i32, i32), AgentMetricChunk>>,
) -> Result<Planned<AgentMetricChunk>> {
    chunk::order::in_series_order(
        rows,
        |r| (r.metric_id, r.agent_index.0),
        |r| r.step,
        |order| plan_ordered(c, sim_key, rows, order, known),
    )
}

/// [`plan_metrics`] of `rows` read in `order`.
fn plan_ordered<C: MetricChunkStore>(
    c: &mut C,
    sim_key: i32,
    rows: &[AgentMetric],
    order: &[usize],
    known: Option<&Known<(i32, i32), AgentMetricChunk>>,
) -> Result<Planned<AgentMetricChunk>> {
    // Runs of one (metric, agent)'s rows in one chunk.
    let groups = chunk::order::chunk_runs(order, |i| {
        let r = &rows[i];
        ((r.metric_id, r.agent_index.0), r.step)
    });
    let mut stored: HashMap<((i32, i32), i64), Cow<'_, AgentMetricChunk>> = HashMap::new();
    let mut unknown: HashMap<(i32, i64), Vec<i32>> = HashMap::new();
    for g in &groups {
        match known.and_then(|k| k.lookup(g.0, g.1)) {
            Some(Some(chunk)) => {
                stored.insert((g.0, g.1), Cow::Borrowed(chunk));
            }
            Some(None) => {}
            None => unknown.entry((g.0 .0, g.1)).or_default().push(g.0 .1),
        }
    }
    for (&(metric, number), agents) in &unknown {
        for chunk in c.metric_chunks_of(sim_key, metric, agents, number)? {
            stored.insert((chunk.key(), chunk.chunk), Cow::Owned(chunk));
        }
    }
    let mut out = Planned {
        chunks: Vec::with_capacity(groups.len()),
        stored: Vec::with_capacity(groups.len()),
    };
    let mut merged: Vec<(i64, f64)> = Vec::with_capacity(chunk::STEPS as usize);
    for ((metric, agent), number, range) in &groups {
        merged.clear();
        let old = stored.get(&((*metric, *agent), *number));
        if let Some(old) = old {
            merged.extend(old.points()?);
        }
        let had = merged.len();
        merged.extend(
            order[range.clone()]
                .iter()
                .map(|&i| (rows[i].step, rows[i].value)),
        );
        if had > 0 {
            merged.sort_by_key(|r| r.0);
        }
        if let Some(w) = merged.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::Duplicate {
                entity: "agent metric",
                id: format!("metric {metric} agent {agent} step {}", w[0].0),
            });
        }
        out.chunks
            .push(encode(sim_key, *metric, *agent, *number, &merged));
        out.stored.push(old.is_some());
    }
    Ok(out)
}

/// Removes every agent metric value after `step`; returns how many.
pub(crate) fn cut_metrics_after<C: MetricChunkStore>(
    c: &mut C,
    sim_key: i32,
    step: i64,
) -> Result<usize> {
    let boundary = chunk::chunk_of(step.max(-1));
    let tail = c.metric_chunks_from(sim_key, boundary.max(0))?;
    let mut removed = 0;
    let mut kept = Vec::new();
    let keep = chunk::mask_between(boundary, 0, step);
    for chunk in &tail {
        let mask = chunk.present as u64;
        if chunk.chunk > boundary {
            removed += chunk.len();
        } else {
            removed += (mask & !keep).count_ones() as usize;
            let rows: Vec<(i64, f64)> = chunk
                .points()?
                .into_iter()
                .filter(|r| r.0 <= step)
                .collect();
            if !rows.is_empty() {
                kept.push(encode(
                    sim_key,
                    chunk.metric_id,
                    chunk.agent_index,
                    chunk.chunk,
                    &rows,
                ));
            }
        }
    }
    c.delete_metric_chunks_from(sim_key, boundary.max(0))?;
    c.insert_metric_chunks(&kept)?;
    Ok(removed)
}
