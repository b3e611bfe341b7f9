//! A batch's chunks encoded on two threads: the writer's and a helper for
//! the second half of them, where the machine has a second core and the
//! batch enough chunks to pay for a thread. Encoding is most of a writer's
//! own work (a 64-step batch of 150 agents' states: ~3 ms on one core);
//! halving it shortens the time a recorder's caller can wait on a full
//! queue.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Fewer chunks than this are encoded on the writer's thread alone (a
/// thread costs tens of microseconds; a chunk of 64 states about twenty).
const MIN_CHUNKS: usize = 32;

/// Whether the machine has a second core to encode on.
fn has_second_core() -> bool {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())) > 1
}

/// `f` of every item, in order; the first error in that order if any.
pub(crate) fn encode_all<G: Sync, T: Send>(
    items: &[G],
    f: impl Fn(&G) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if items.len() < MIN_CHUNKS || !has_second_core() {
        return items.iter().map(&f).collect();
    }
    let (head, tail) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new()
            .name("simdb-encode".into())
            .spawn_scoped(s, || tail.iter().map(&f).collect::<Result<Vec<T>>>());
        let first = head.iter().map(&f).collect::<Result<Vec<T>>>();
        let second = match helper {
            Ok(helper) => helper
                .join()
                .map_err(|_| Error::invalid("chunk", "the encoding thread panicked"))?,
            // No thread to be had: the writer's own.
            Err(_) => tail.iter().map(&f).collect(),
        };
        let mut out = first?;
        out.extend(second?);
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_errors_come_in_order() -> Result<()> {
        let items: Vec<u32> = (0..100).collect();
        assert_eq!(
            encode_all(&items, |&i| Ok(i * 2))?,
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        // Errors in both halves: the first one's, as one thread would.
        let err = encode_all(&items, |&i| {
            if i == 30 || i == 80 {
                Err(Error::invalid("item", i.to_string()))
            } else {
                Ok(i)
            }
        });
        assert!(
            matches!(err, Err(Error::InvalidInput { ref reason, .. }) if reason == "30"),
            "{err:?}"
        );
        assert_eq!(encode_all(&items[..3], |&i| Ok(i))?, [0, 1, 2]);
        Ok(())
    }
}
