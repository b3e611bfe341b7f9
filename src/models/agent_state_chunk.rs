use diesel::prelude::*;

use super::AgentState;
use crate::chunk;
use crate::error::{Error, Result};
use crate::ids::AgentIndex;
use crate::schema::agent_state_chunks;

/// One row of `simdb_agent_state_chunks`: up to 64 aligned steps of one
/// agent's states and rewards. Chunk `chunk` covers steps
/// `64 * chunk ..= 64 * chunk + 63`; bit `i` of `present` is set where step
/// `64 * chunk + i` was recorded.
///
/// A host reading simdb's tables with its own Diesel queries loads these
/// and decodes them with [`AgentStateChunk::rows`] (or
/// [`AgentStateChunk::rewards`], which decompresses nothing):
///
/// ```no_run
/// use simdb::diesel::prelude::*;
/// use simdb::models::AgentStateChunk;
/// use simdb::schema::agent_state_chunks as c;
///
/// fn states_of(conn: &mut SqliteConnection, sim_key: i32, agent: i32) -> simdb::Result<usize> {
///     let chunks: Vec<AgentStateChunk> = c::table
///         .filter(c::sim_key.eq(sim_key).and(c::agent_index.eq(agent)))
///         .order(c::chunk)
///         .select(AgentStateChunk::as_select())
///         .load(conn)?;
///     let mut n = 0;
///     for chunk in &chunks {
///         n += chunk.rows()?.len();
///     }
///     Ok(n)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = agent_state_chunks, treat_none_as_default_value = false)]
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres"),
    diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))
)]
pub struct AgentStateChunk {
    /// The simulation's compact key.
    pub sim_key: i32,
    /// The agent.
    pub agent_index: i32,
    /// The chunk number (steps `64 * chunk ..= 64 * chunk + 63`).
    pub chunk: i64,
    /// Which of the chunk's steps were recorded (bit `i`: step `64 * chunk + i`).
    pub present: i64,
    /// The rewards, little-endian `f64`, in step order.
    pub rewards: Vec<u8>,
    /// The states, compressed (`src/chunk/states.rs` gives the layout).
    pub states: Vec<u8>,
}

impl AgentStateChunk {
    /// Encodes one agent's states as simdb stores them (for a host that
    /// writes chunks itself, or checks what simdb wrote): `rows` are
    /// `(step, reward, state)`, steps ascending, distinct and all in one
    /// chunk, rewards finite, each state a JSON text (stored as given:
    /// simdb's readers parse it).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for no rows, steps out of order, in
    /// two chunks or negative, a reward that is not finite or a state
    /// holding an escaped NUL.
    pub fn encode(
        sim_key: i32,
        agent_index: i32,
        rows: &[(i64, f64, &str)],
    ) -> Result<AgentStateChunk> {
        let number = chunk::chunk_of_steps("rows", rows.iter().map(|r| r.0))?;
        for &(_, reward, state) in rows {
            crate::validate::finite("reward", reward)?;
            crate::validate::check_json_text("state", state.as_bytes())?;
        }
        crate::store::state_chunks::encode(sim_key, agent_index, number, rows)
    }

    /// The steps this chunk holds, ascending.
    pub fn steps(&self) -> impl Iterator<Item = i64> {
        chunk::steps(self.chunk, self.mask())
    }

    /// How many steps this chunk holds.
    pub fn len(&self) -> usize {
        self.mask().count_ones() as usize
    }

    /// True if the chunk holds no step (never stored so).
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    pub(crate) fn mask(&self) -> u64 {
        self.present as u64
    }

    /// `(step, reward)` of every step, ascending; nothing is decompressed.
    pub fn rewards(&self) -> Result<Vec<(i64, f64)>> {
        let rewards = chunk::states::decode_rewards(&self.rewards, self.len())?;
        Ok(self.steps().zip(rewards).collect())
    }

    /// Every step's row, ascending, states parsed.
    pub fn rows(&self) -> Result<Vec<AgentState>> {
        self.rows_between(i64::MIN, i64::MAX)
    }

    /// The row of step `step`, if this chunk holds it: only that state is
    /// decompressed and parsed (states of one shape; zstd blobs are
    /// decompressed whole).
    pub(crate) fn row_at(&self, step: i64) -> Result<Option<AgentState>> {
        if chunk::chunk_of(step) != self.chunk || self.mask() & chunk::bit(step) == 0 {
            return Ok(None);
        }
        let n = self.len();
        // Its place among the chunk's steps.
        let i = (self.mask() & (chunk::bit(step) - 1)).count_ones() as usize;
        let rewards = chunk::states::decode_rewards(&self.rewards, n)?;
        let text = chunk::states::decode_state(&self.states, n, i)?;
        Ok(Some(AgentState {
            sim_key: self.sim_key,
            agent_index: AgentIndex(self.agent_index),
            step,
            reward: rewards.get(i).copied().unwrap_or(0.0),
            state: serde_json::from_str(&text)?,
        }))
    }

    /// The rows of steps `lo..=hi`, ascending.
    pub(crate) fn rows_between(&self, lo: i64, hi: i64) -> Result<Vec<AgentState>> {
        let mut out = Vec::new();
        self.for_each_text(lo, hi, |step, reward, text| {
            out.push(AgentState {
                sim_key: self.sim_key,
                agent_index: AgentIndex(self.agent_index),
                step,
                reward,
                state: serde_json::from_str(text)?,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f(step, reward, json_text)` for every step in `lo..=hi`,
    /// ascending.
    pub(crate) fn for_each_text(
        &self,
        lo: i64,
        hi: i64,
        mut f: impl FnMut(i64, f64, &str) -> Result<()>,
    ) -> Result<()> {
        let n = self.len();
        let rewards = chunk::states::decode_rewards(&self.rewards, n)?;
        let texts = chunk::states::decode_states(&self.states, n)?;
        if texts.len() != n {
            return Err(Error::CorruptChunk {
                detail: format!("{} states for {n} steps", texts.len()),
            });
        }
        for (i, step) in self.steps().enumerate() {
            if step < lo || step > hi {
                continue;
            }
            let text = texts.get(i).unwrap_or("null");
            f(step, rewards.get(i).copied().unwrap_or(0.0), text)?;
        }
        Ok(())
    }
}
