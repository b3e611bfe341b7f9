//! The chunk geometry of per-agent data: 64 aligned steps of one agent per
//! row, a 64-bit presence mask saying which of them were recorded.
//!
//! Chunk `c` holds steps `64c ..= 64c + 63`; bit `i` of its mask is step
//! `64c + i`. Alignment makes every chunk's key computable from a step (a
//! step range is a chunk range; all agents at one step are one chunk each),
//! and an agent that joins late or skips steps simply leaves bits clear.

pub(crate) mod floats;
pub(crate) mod order;
pub(crate) mod shapes;
pub(crate) mod states;
pub(crate) mod values;
pub(crate) mod varint;

/// [`Error::CorruptChunk`](crate::Error::CorruptChunk) saying what is wrong.
pub(crate) fn corrupt(detail: impl Into<String>) -> crate::error::Error {
    crate::error::Error::CorruptChunk {
        detail: detail.into(),
    }
}

/// The chunk of `steps` given to a public `encode`: at least one, all
/// ascending, distinct, not negative and in one chunk; else
/// [`Error::InvalidInput`](crate::Error::InvalidInput) on `what`.
pub(crate) fn chunk_of_steps(
    what: &'static str,
    steps: impl Iterator<Item = i64> + Clone,
) -> crate::error::Result<i64> {
    use crate::error::Error;
    let first = steps
        .clone()
        .next()
        .ok_or_else(|| Error::invalid(what, "a chunk holds at least one step"))?;
    crate::validate::check_step(first)?;
    let number = chunk_of(first);
    let mut prev: Option<i64> = None;
    for step in steps {
        if let Some(p) = prev.filter(|&p| p >= step) {
            return Err(Error::invalid(
                what,
                format!("step {step} follows step {p}: steps must ascend"),
            ));
        }
        if chunk_of(step) != number {
            return Err(Error::invalid(
                what,
                format!(
                    "step {step} is not in chunk {number} (steps {}..={})",
                    first_step(number),
                    first_step(number) + STEPS - 1
                ),
            ));
        }
        prev = Some(step);
    }
    Ok(number)
}

/// Steps per chunk (the width of the presence mask).
pub(crate) const STEPS: i64 = 64;

/// The chunk holding `step` (`step >= 0`).
pub(crate) fn chunk_of(step: i64) -> i64 {
    step.div_euclid(STEPS)
}

/// The first step of chunk `chunk`.
pub(crate) fn first_step(chunk: i64) -> i64 {
    chunk.saturating_mul(STEPS)
}

/// Step `step`'s bit in its chunk's mask.
pub(crate) fn bit(step: i64) -> u64 {
    1u64 << step.rem_euclid(STEPS)
}

/// The steps a mask of chunk `chunk` marks present, ascending.
pub(crate) fn steps(chunk: i64, present: u64) -> impl Iterator<Item = i64> {
    let base = first_step(chunk);
    (0..STEPS)
        .filter(move |i| present & (1u64 << i) != 0)
        .map(move |i| base + i)
}

/// The bits of a chunk's mask at steps `lo..=hi`.
pub(crate) fn mask_between(chunk: i64, lo: i64, hi: i64) -> u64 {
    let base = first_step(chunk);
    let from = (lo - base).clamp(0, STEPS);
    let to = (hi - base + 1).clamp(0, STEPS);
    if to <= from {
        return 0;
    }
    let upper = if to == STEPS {
        u64::MAX
    } else {
        (1u64 << to) - 1
    };
    upper & !((1u64 << from) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_map_to_chunks_and_bits() {
        assert_eq!((chunk_of(0), chunk_of(63), chunk_of(64)), (0, 0, 1));
        assert_eq!(bit(65), 2);
        assert_eq!(steps(1, 0b101).collect::<Vec<_>>(), [64, 66]);
        assert_eq!(mask_between(1, 0, 1000), u64::MAX);
        assert_eq!(mask_between(1, 65, 66), 0b110);
        assert_eq!(mask_between(1, 127, 127), 1 << 63);
        assert_eq!(mask_between(1, 128, 200), 0);
        assert_eq!(mask_between(1, 10, 63), 0);
    }
}
