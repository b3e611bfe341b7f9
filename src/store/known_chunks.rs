//! What a recorder's writer knows of the chunks of its simulation, so that
//! a batch need not look up chunks that cannot exist nor read back the
//! tail it wrote itself. Only what committed is learned; any failure
//! forgets everything (someone may have changed the chunks since), after
//! which every chunk is read back.

use std::collections::HashMap;
use std::hash::Hash;

use crate::models::{AgentMetricChunk, AgentStateChunk};

/// A stored chunk row: what it belongs to (agent, or metric and agent) and
/// its chunk number.
pub(crate) trait ChunkRow {
    type Key: Hash + Eq + Copy;
    fn key(&self) -> Self::Key;
    fn number(&self) -> i64;
}

/// What is known of one chunk table of one simulation.
#[derive(Debug)]
pub(crate) struct Known<K, T> {
    /// No chunk numbered this or higher is stored (`None`: not known).
    fresh_from: Option<i64>,
    /// Each key's highest chunk, as last written.
    last: HashMap<K, T>,
}

impl<K: Hash + Eq + Copy, T: ChunkRow<Key = K>> Known<K, T> {
    /// Knowing the table's highest stored chunk number (`None`: none).
    pub(crate) fn starting_at(highest: Option<i64>) -> Self {
        Known {
            fresh_from: Some(highest.map_or(0, |h| h + 1)),
            last: HashMap::new(),
        }
    }

    /// After a commit: these chunks are now stored as given.
    pub(crate) fn learn(&mut self, written: Vec<T>) {
        for chunk in written {
            if let Some(f) = self.fresh_from.as_mut() {
                *f = (*f).max(chunk.number() + 1);
            }
            match self.last.get(&chunk.key()) {
                Some(have) if have.number() > chunk.number() => {}
                _ => {
                    self.last.insert(chunk.key(), chunk);
                }
            }
        }
    }

    /// Whether `(key, chunk)` is known, stored or absent, without reading
    /// it ([`Known::lookup`] is `Some`).
    pub(crate) fn knows(&self, key: K, chunk: i64) -> bool {
        self.lookup(key, chunk).is_some()
    }

    /// Chunks up to `highest` are being written (a batch statement not yet
    /// answered): none of them is known absent any more. Their rows are
    /// learned once the write is answered ([`Known::learn`]); until then
    /// they are not known at all.
    pub(crate) fn reserve(&mut self, highest: Option<i64>) {
        if let (Some(f), Some(h)) = (self.fresh_from.as_mut(), highest) {
            *f = (*f).max(h + 1);
        }
    }

    /// Whether anything is known (else the highest stored chunk must be
    /// read first).
    pub(crate) fn is_known(&self) -> bool {
        self.fresh_from.is_some()
    }

    /// After a failure, or a commit whose chunks are not known.
    pub(crate) fn forget(&mut self) {
        self.fresh_from = None;
        self.last.clear();
    }

    /// Whether `(key, chunk)` is known: `Some(None)` known absent,
    /// `Some(Some(chunk))` known as stored, `None` not known.
    pub(crate) fn lookup(&self, key: K, chunk: i64) -> Option<Option<&T>> {
        match self.fresh_from {
            // Every chunk learned is below `fresh_from`: no hash needed.
            Some(f) if chunk >= f => Some(None),
            _ => self
                .last
                .get(&key)
                .filter(|have| have.number() == chunk)
                .map(Some),
        }
    }
}

/// Both chunk tables' knowledge, as one writer keeps it.
#[derive(Debug)]
pub(crate) struct KnownChunks {
    pub(crate) states: Known<i32, AgentStateChunk>,
    pub(crate) metrics: Known<(i32, i32), AgentMetricChunk>,
}

impl KnownChunks {
    /// Knowing each table's highest stored chunk number.
    pub(crate) fn starting_at(states: Option<i64>, metrics: Option<i64>) -> Self {
        KnownChunks {
            states: Known::starting_at(states),
            metrics: Known::starting_at(metrics),
        }
    }

    /// Knowing nothing yet.
    pub(crate) fn unknown() -> Self {
        let mut known = KnownChunks::starting_at(None, None);
        known.forget();
        known
    }

    /// Whether both tables' highest chunks are known.
    pub(crate) fn is_known(&self) -> bool {
        self.states.is_known() && self.metrics.is_known()
    }

    /// After a commit: what it wrote.
    pub(crate) fn learn(&mut self, states: Vec<AgentStateChunk>, metrics: Vec<AgentMetricChunk>) {
        self.states.learn(states);
        self.metrics.learn(metrics);
    }

    /// After a failure.
    pub(crate) fn forget(&mut self) {
        self.states.forget();
        self.metrics.forget();
    }
}
