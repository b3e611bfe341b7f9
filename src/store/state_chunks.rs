//! Agent states in chunks (`simdb_agent_state_chunks`): the statements, and
//! the read-merge-write that adds rows to chunks already stored.
//!
//! A write merges new rows into the chunks they fall in: a chunk already on
//! disk (the tail a previous batch left unfinished, or one a resume cut) is
//! read, decoded, merged and written back whole, all in the caller's
//! transaction; nothing about open chunks is kept in memory between
//! batches, so a retried, settled or discarded batch needs no bookkeeping.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};

use super::known_chunks::{ChunkRow, Known};
use crate::chunk::floats::StateText;
use crate::chunk::{self, states};
use crate::error::{Error, Result};
use crate::models::AgentStateChunk;
use crate::schema::agent_state_chunks as c;

/// One agent-state row to write: agent, step, reward, JSON text (with the
/// floats the recorder captured, `chunk/floats.rs`).
pub(crate) type StateInput<'a> = (i32, i64, f64, StateText<'a>);

pub(crate) trait StateChunkStore {
    /// One agent's chunks `lo..=hi`, ascending.
    fn state_chunks(
        &mut self,
        sim_key: i32,
        agent: i32,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<AgentStateChunk>>;
    /// One agent's chunks from `from` on, ascending, at most `limit`.
    fn state_chunks_from(
        &mut self,
        sim_key: i32,
        agent: i32,
        from: i64,
        limit: i64,
    ) -> Result<Vec<AgentStateChunk>>;
    /// One agent's chunks up to `upto`, descending, at most `limit`.
    fn state_chunks_back(
        &mut self,
        sim_key: i32,
        agent: i32,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<AgentStateChunk>>;
    /// Chunk `chunk` of each of `agents` that has one.
    fn state_chunks_of(
        &mut self,
        sim_key: i32,
        agents: &[i32],
        chunk: i64,
    ) -> Result<Vec<AgentStateChunk>>;
    /// Every registered agent's chunk `chunk`, by agent: one primary-key
    /// probe per agent, driven from `simdb_agents`.
    fn state_chunks_at(&mut self, sim_key: i32, chunk: i64) -> Result<Vec<AgentStateChunk>>;
    /// Deletes chunk `chunk` of each of `agents`.
    fn delete_state_chunks(&mut self, sim_key: i32, agents: &[i32], chunk: i64) -> Result<usize>;
    /// Deletes one agent's chunks after `chunk`.
    fn delete_state_chunks_after(&mut self, sim_key: i32, agent: i32, chunk: i64) -> Result<usize>;
    /// Inserts whole chunks (none of their keys stored).
    fn insert_state_chunks(&mut self, rows: &[AgentStateChunk]) -> Result<()>;
}

/// Rows per multi-row INSERT on SQLite (6 columns; a fixed array gives
/// Diesel a statement it prepares once).
#[cfg(feature = "sqlite")]
const SQLITE_ROWS: usize = 64;

/// Every registered agent's chunk at one chunk number: one primary-key
/// probe per agent, driven from `simdb_agents` so that the plan cannot fall
/// back to scanning the simulation's key range (CROSS JOIN fixes SQLite's
/// loop order; on PostgreSQL, LIMIT 1 keeps the lateral subquery from being
/// flattened into a join the planner could turn into that scan).
#[cfg(feature = "sqlite")]
const SQLITE_AT: &str = "SELECT s.sim_key, s.agent_index, s.chunk, s.present, s.rewards, s.states \
     FROM simdb_agents a CROSS JOIN simdb_agent_state_chunks s ON s.sim_key = a.sim_key \
     AND s.agent_index = a.agent_index AND s.chunk = ?2 WHERE a.sim_key = ?1 ORDER BY a.agent_index";
#[cfg(feature = "postgres")]
const POSTGRES_AT: &str =
    "SELECT s.sim_key, s.agent_index, s.chunk, s.present, s.rewards, s.states \
     FROM simdb_agents a CROSS JOIN LATERAL (SELECT * FROM simdb_agent_state_chunks x \
     WHERE x.sim_key = a.sim_key AND x.agent_index = a.agent_index AND x.chunk = $2 LIMIT 1) s \
     WHERE a.sim_key = $1 ORDER BY a.agent_index";

macro_rules! common_statements {
    () => {
        fn state_chunks(
            &mut self,
            sim_key: i32,
            agent: i32,
            lo: i64,
            hi: i64,
        ) -> Result<Vec<AgentStateChunk>> {
            Ok(c::table
                .filter(c::sim_key.eq(sim_key))
                .filter(c::agent_index.eq(agent))
                .filter(c::chunk.between(lo, hi))
                .order(c::chunk)
                .select(AgentStateChunk::as_select())
                .load(self)?)
        }

        fn state_chunks_from(
            &mut self,
            sim_key: i32,
            agent: i32,
            from: i64,
            limit: i64,
        ) -> Result<Vec<AgentStateChunk>> {
            Ok(c::table
                .filter(c::sim_key.eq(sim_key))
                .filter(c::agent_index.eq(agent))
                .filter(c::chunk.ge(from))
                .order(c::chunk)
                .limit(limit)
                .select(AgentStateChunk::as_select())
                .load(self)?)
        }

        fn state_chunks_back(
            &mut self,
            sim_key: i32,
            agent: i32,
            upto: i64,
            limit: i64,
        ) -> Result<Vec<AgentStateChunk>> {
            Ok(c::table
                .filter(c::sim_key.eq(sim_key))
                .filter(c::agent_index.eq(agent))
                .filter(c::chunk.le(upto))
                .order(c::chunk.desc())
                .limit(limit)
                .select(AgentStateChunk::as_select())
                .load(self)?)
        }

        fn state_chunks_of(
            &mut self,
            sim_key: i32,
            agents: &[i32],
            chunk: i64,
        ) -> Result<Vec<AgentStateChunk>> {
            let mut out = Vec::new();
            for part in agents.chunks(super::prelude::AGENT_CHUNK) {
                out.extend(
                    c::table
                        .filter(c::sim_key.eq(sim_key))
                        .filter(c::agent_index.eq_any(part))
                        .filter(c::chunk.eq(chunk))
                        .select(AgentStateChunk::as_select())
                        .load(self)?,
                );
            }
            Ok(out)
        }

        fn delete_state_chunks(
            &mut self,
            sim_key: i32,
            agents: &[i32],
            chunk: i64,
        ) -> Result<usize> {
            let mut n = 0;
            for part in agents.chunks(super::prelude::AGENT_CHUNK) {
                n += diesel::delete(
                    c::table
                        .filter(c::sim_key.eq(sim_key))
                        .filter(c::agent_index.eq_any(part))
                        .filter(c::chunk.eq(chunk)),
                )
                .execute(self)?;
            }
            Ok(n)
        }

        fn delete_state_chunks_after(
            &mut self,
            sim_key: i32,
            agent: i32,
            chunk: i64,
        ) -> Result<usize> {
            Ok(diesel::delete(
                c::table
                    .filter(c::sim_key.eq(sim_key))
                    .filter(c::agent_index.eq(agent))
                    .filter(c::chunk.gt(chunk)),
            )
            .execute(self)?)
        }
    };
}

#[cfg(feature = "sqlite")]
impl StateChunkStore for diesel::sqlite::SqliteConnection {
    common_statements!();

    fn state_chunks_at(&mut self, sim_key: i32, chunk: i64) -> Result<Vec<AgentStateChunk>> {
        Ok(diesel::sql_query(SQLITE_AT)
            .bind::<Integer, _>(sim_key)
            .bind::<BigInt, _>(chunk)
            .load(self)?)
    }

    fn insert_state_chunks(&mut self, rows: &[AgentStateChunk]) -> Result<()> {
        super::sqlite_insert_rows!(self, c::table, rows, AgentStateChunk, SQLITE_ROWS)
    }
}

#[cfg(feature = "postgres")]
impl StateChunkStore for diesel::pg::PgConnection {
    common_statements!();

    fn state_chunks_at(&mut self, sim_key: i32, chunk: i64) -> Result<Vec<AgentStateChunk>> {
        Ok(diesel::sql_query(POSTGRES_AT)
            .bind::<Integer, _>(sim_key)
            .bind::<BigInt, _>(chunk)
            .load(self)?)
    }

    fn insert_state_chunks(&mut self, rows: &[AgentStateChunk]) -> Result<()> {
        if !rows.is_empty() {
            diesel::copy_from(c::table)
                .from_insertable(rows)
                .execute(self)?;
        }
        Ok(())
    }
}

impl ChunkRow for AgentStateChunk {
    type Key = i32;
    fn key(&self) -> i32 {
        self.agent_index
    }
    fn number(&self) -> i64 {
        self.chunk
    }
}

/// Encodes one chunk of rows (ascending, distinct steps, all in `chunk`).
pub(crate) fn encode(
    sim_key: i32,
    agent: i32,
    chunk: i64,
    rows: &[(i64, f64, &str)],
) -> Result<AgentStateChunk> {
    let rows: Vec<(i64, f64, StateText<'_>)> = rows
        .iter()
        .map(|&(step, reward, text)| (step, reward, StateText::plain(text)))
        .collect();
    encode_rows(sim_key, agent, chunk, &rows)
}

/// [`encode`] of rows whose texts may hold captured floats.
fn encode_rows(
    sim_key: i32,
    agent: i32,
    chunk: i64,
    rows: &[(i64, f64, StateText<'_>)],
) -> Result<AgentStateChunk> {
    let mut present = 0u64;
    let mut rewards = Vec::with_capacity(rows.len());
    let mut texts = Vec::with_capacity(rows.len());
    for &(step, reward, text) in rows {
        present |= chunk::bit(step);
        rewards.push(reward);
        texts.push(text);
    }
    Ok(AgentStateChunk {
        sim_key,
        agent_index: agent,
        chunk,
        present: present as i64,
        rewards: states::encode_rewards(&rewards),
        states: states::encode_states(&texts)?,
    })
}

fn duplicate(agent: i32, step: i64) -> Error {
    Error::Duplicate {
        entity: "agent state",
        id: format!("agent {agent} step {step}"),
    }
}

/// A stored chunk, decoded: its steps, rewards and state texts.
type Decoded = (Vec<i64>, Vec<f64>, states::Texts);

/// Chunks a batch writes, each whole as it will be stored, and which of
/// them are written over a stored row.
#[derive(Debug)]
pub(crate) struct Planned<T> {
    pub(crate) chunks: Vec<T>,
    /// Per chunk of `chunks`: a row is stored under its key.
    pub(crate) stored: Vec<bool>,
}

impl<T: ChunkRow> Planned<T> {
    /// The stored ones' keys by chunk number.
    fn stored_by_number(&self) -> HashMap<i64, Vec<T::Key>> {
        let mut had: HashMap<i64, Vec<T::Key>> = HashMap::new();
        for (chunk, _) in self.chunks.iter().zip(&self.stored).filter(|(_, s)| **s) {
            had.entry(chunk.number()).or_default().push(chunk.key());
        }
        had
    }
}

/// Writes `rows` of simulation `sim_key` into their chunks, merged with
/// what those chunks already hold (known from `known` or read); a step
/// stored twice is [`Error::Duplicate`] and writes nothing; returns the
/// chunks as written.
pub(crate) fn write_states<C: StateChunkStore>(
    c: &mut C,
    sim_key: i32,
    rows: &[StateInput<'_>],
    known: Option<&Known<i32, AgentStateChunk>>,
) -> Result<Vec<AgentStateChunk>> {
    let planned = plan_states(c, sim_key, rows, known)?;
    for (number, agents) in &planned.stored_by_number() {
        c.delete_state_chunks(sim_key, agents, *number)?;
    }
    c.insert_state_chunks(&planned.chunks)?;
    Ok(planned.chunks)
}

/// The chunks `rows` make, merged with what those chunks already hold
/// (known from `known` or read); a step stored twice is
/// [`Error::Duplicate`].
pub(crate) fn plan_states<C: StateChunkStore>(
    c: &mut C,
    sim_key: i32,
    rows: &[StateInput<'_>],
    known: Option<&Known<i32, AgentStateChunk>>,
) -> Result<Planned<AgentStateChunk>> {
    chunk::order::in_series_order(
        rows,
        |r| r.0,
        |r| r.1,
        |order| plan_ordered(c, sim_key, rows, order, known),
    )
}

/// [`plan_states`] of `rows` read in `order`.
fn plan_ordered<C: StateChunkStore>(
    c: &mut C,
    sim_key: i32,
    rows: &[StateInput<'_>],
    order: &[usize],
    known: Option<&Known<i32, AgentStateChunk>>,
) -> Result<Planned<AgentStateChunk>> {
    let groups = chunk::order::chunk_runs(order, |i| (rows[i].0, rows[i].1));
    // What is stored of those chunks: known, or one lookup per distinct
    // chunk number of the rest.
    let mut stored: HashMap<(i32, i64), std::borrow::Cow<'_, AgentStateChunk>> = HashMap::new();
    let mut unknown: HashMap<i64, Vec<i32>> = HashMap::new();
    for g in &groups {
        match known.and_then(|k| k.lookup(g.0, g.1)) {
            Some(Some(chunk)) => {
                stored.insert((g.0, g.1), std::borrow::Cow::Borrowed(chunk));
            }
            Some(None) => {}
            None => unknown.entry(g.1).or_default().push(g.0),
        }
    }
    for (&number, agents) in &unknown {
        for chunk in c.state_chunks_of(sim_key, agents, number)? {
            stored.insert(
                (chunk.agent_index, chunk.chunk),
                std::borrow::Cow::Owned(chunk),
            );
        }
    }
    // Each stored chunk is decoded only while its group is merged, so
    // that a batch touching many agents holds one decoded chunk at a time.
    let mut out = Planned {
        chunks: Vec::with_capacity(groups.len()),
        stored: Vec::with_capacity(groups.len()),
    };
    for (agent, number, range) in &groups {
        let new = order[range.clone()].iter().map(|&i| &rows[i]);
        let old = stored.get(&(*agent, *number));
        let decoded: Option<Decoded> = match old {
            None => None,
            Some(chunk) => {
                let n = chunk.len();
                Some((
                    chunk.steps().collect(),
                    states::decode_rewards(&chunk.rewards, n)?,
                    states::decode_states(&chunk.states, n)?,
                ))
            }
        };
        let mut merged: Vec<(i64, f64, StateText<'_>)> = Vec::with_capacity(chunk::STEPS as usize);
        if let Some((steps, rewards, texts)) = &decoded {
            merged.extend(
                steps
                    .iter()
                    .zip(rewards)
                    .zip(texts.iter())
                    .map(|((&s, &r), t)| (s, r, StateText::plain(t))),
            );
        }
        let had = merged.len();
        merged.extend(new.map(|r| (r.1, r.2, r.3)));
        if had > 0 {
            merged.sort_by_key(|r| r.0);
        }
        if let Some(w) = merged.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(duplicate(*agent, w[0].0));
        }
        out.chunks
            .push(encode_rows(sim_key, *agent, *number, &merged)?);
        out.stored.push(old.is_some());
    }
    Ok(out)
}

/// Removes one agent's states after `step`; returns how many.
pub(crate) fn cut_states_after<C: StateChunkStore>(
    c: &mut C,
    sim_key: i32,
    agent: i32,
    step: i64,
) -> Result<usize> {
    let boundary = chunk::chunk_of(step.max(-1));
    let mut removed = 0;
    // Chunks wholly after the cut go; their rows are counted first.
    let mut from = boundary + 1;
    loop {
        let page = c.state_chunks_from(sim_key, agent, from, 1024)?;
        let Some(last) = page.last() else { break };
        from = last.chunk + 1;
        removed += page.iter().map(AgentStateChunk::len).sum::<usize>();
    }
    c.delete_state_chunks_after(sim_key, agent, boundary)?;
    // The chunk the cut falls in keeps its steps up to `step`.
    if let Some(chunk) = c.state_chunks(sim_key, agent, boundary, boundary)?.pop() {
        let keep = chunk::mask_between(boundary, 0, step);
        let mask = chunk.mask();
        if mask & !keep != 0 {
            removed += (mask & !keep).count_ones() as usize;
            let mut kept = Vec::new();
            chunk.for_each_text(i64::MIN, step, |s, r, t| {
                kept.push((s, r, t.to_string()));
                Ok(())
            })?;
            c.delete_state_chunks(sim_key, &[agent], boundary)?;
            if !kept.is_empty() {
                let rows: Vec<(i64, f64, &str)> =
                    kept.iter().map(|(s, r, t)| (*s, *r, t.as_str())).collect();
                c.insert_state_chunks(&[encode(sim_key, agent, boundary, &rows)?])?;
            }
        }
    }
    Ok(removed)
}
