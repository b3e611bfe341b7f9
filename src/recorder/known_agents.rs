//! The registered agents a recorder knows of: a set of agent indices asked
//! once per recorded row. Engines number their agents densely from 0, so
//! indices below [`DENSE`] are kept as bits (one shift and mask per
//! row, where a hash lookup cost the recording thread 4% of its time in
//! the engine bench); any others in a hash set.

/// Indices below this are kept as bits (at most 128 KiB).
const DENSE: usize = 1 << 20;

/// A set of agent indices.
#[derive(Debug, Default, Clone)]
pub(crate) struct KnownAgents {
    bits: Vec<u64>,
    others: foldhash::HashSet<i32>,
}

impl KnownAgents {
    pub(crate) fn contains(&self, agent: i32) -> bool {
        match usize::try_from(agent) {
            Ok(i) if i < DENSE => self
                .bits
                .get(i / 64)
                .is_some_and(|word| word & (1 << (i % 64)) != 0),
            _ => self.others.contains(&agent),
        }
    }

    fn insert(&mut self, agent: i32) {
        match usize::try_from(agent) {
            Ok(i) if i < DENSE => {
                if self.bits.len() <= i / 64 {
                    self.bits.resize(i / 64 + 1, 0);
                }
                self.bits[i / 64] |= 1 << (i % 64);
            }
            _ => {
                self.others.insert(agent);
            }
        }
    }
}

impl FromIterator<i32> for KnownAgents {
    fn from_iter<I: IntoIterator<Item = i32>>(agents: I) -> Self {
        let mut known = KnownAgents::default();
        for agent in agents {
            known.insert(agent);
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exactly the indices put in, dense, sparse, huge and negative.
    #[test]
    fn holds_exactly_what_was_put_in() {
        let put = [0, 1, 63, 64, 65, 1000, (1 << 20) - 1, 1 << 20, i32::MAX, -1];
        let known: KnownAgents = put.into_iter().collect();
        for agent in put {
            assert!(known.contains(agent), "{agent}");
        }
        for agent in [
            2,
            62,
            66,
            999,
            1001,
            (1 << 20) + 1,
            i32::MAX - 1,
            -2,
            i32::MIN,
        ] {
            assert!(!known.contains(agent), "{agent}");
        }
        assert!(!KnownAgents::default().contains(0));
    }
}
