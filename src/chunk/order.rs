//! Ordering a batch's rows by series (an agent, or a metric of an agent)
//! and step, in linear time: the order their chunks are built in.
//!
//! Rows come in recording order, so each series' steps are nearly always
//! ascending already; bucketing them by series (one hash lookup per row)
//! and sorting only a series whose steps are not ascending replaced a
//! comparison sort of the whole batch that cost the writer as much as
//! encoding its metric chunks.

use std::cell::Cell;
use std::hash::Hash;

thread_local! {
    /// The order's room, reused by a thread's next ordering.
    static ORDER: Cell<Vec<usize>> = const { Cell::new(Vec::new()) };
}

/// The most places a thread keeps between orderings (8 MiB): a batch far
/// larger than the usual is not held on to.
const MAX_KEPT_PLACES: usize = 1 << 20;

/// Calls `then` with the indices of `rows` in (`series`, `step`) order,
/// ascending; rows of one series and step keep their recorded order. The
/// rows stay where they are: their chunks are built by reading them in
/// this order (moving the rows into it, a swap per row, cost the writer
/// 7% of its time in the engine bench).
pub(crate) fn in_series_order<T, K: Copy + Ord + Hash, R>(
    rows: &[T],
    series: impl Fn(&T) -> K,
    step: impl Fn(&T) -> i64,
    then: impl FnOnce(&[usize]) -> R,
) -> R {
    // A thread's room, kept between batches: a fresh vector of a batch's
    // size came from pages the allocator had given back, and faulting
    // them in again cost the writer more than the ordering.
    let mut order = ORDER.try_with(Cell::take).unwrap_or_default();
    order.clear();
    fill_order(rows, series, step, &mut order);
    let result = then(&order);
    if order.capacity() <= MAX_KEPT_PLACES {
        order.clear();
        let _ = ORDER.try_with(|slot| slot.set(order));
    }
    result
}

/// The runs of one series' rows in one chunk, in an order from
/// [`in_series_order`]: (series, chunk number, positions in `order`), with
/// `series_step(i)` the series and step of row `i`.
pub(crate) fn chunk_runs<K: Copy + PartialEq>(
    order: &[usize],
    series_step: impl Fn(usize) -> (K, i64),
) -> Vec<(K, i64, std::ops::Range<usize>)> {
    let mut runs: Vec<(K, i64, std::ops::Range<usize>)> = Vec::new();
    for (at, &i) in order.iter().enumerate() {
        let (series, step) = series_step(i);
        let number = super::chunk_of(step);
        match runs.last_mut() {
            Some(run) if run.0 == series && run.1 == number => run.2.end = at + 1,
            _ => runs.push((series, number, at..at + 1)),
        }
    }
    runs
}

/// Puts the indices of `rows` onto `order` in (`series`, `step`) order.
fn fill_order<T, K: Copy + Ord + Hash>(
    rows: &[T],
    series: impl Fn(&T) -> K,
    step: impl Fn(&T) -> i64,
    order: &mut Vec<usize>,
) {
    // Each distinct series gets a dense id, in order of first appearance.
    // A step's rows come in the order of the step before, so each series
    // is first looked for where it came last time, after the series
    // before it (`after[id]`): a hash lookup only when that guess fails.
    let mut ids: foldhash::HashMap<K, usize> = foldhash::HashMap::default();
    let mut keys: Vec<K> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut after: Vec<usize> = Vec::new();
    let mut prev = usize::MAX;
    // Each row's series id, in the room the order takes next.
    order.extend(rows.iter().map(|r| {
        let key = series(r);
        let guess = after.get(prev).copied().unwrap_or(usize::MAX);
        let id = if keys.get(guess) == Some(&key) {
            guess
        } else {
            let id = *ids.entry(key).or_insert_with(|| {
                keys.push(key);
                counts.push(0);
                after.push(usize::MAX);
                keys.len() - 1
            });
            if let Some(a) = after.get_mut(prev) {
                *a = id;
            }
            id
        };
        counts[id] += 1;
        prev = id;
        id
    }));
    // The series in key order, and where each one's rows start.
    let mut by_key: Vec<usize> = (0..keys.len()).collect();
    by_key.sort_unstable_by_key(|&id| keys[id]);
    let mut start = vec![0usize; keys.len()];
    let mut at = 0;
    for &id in &by_key {
        start[id] = at;
        at += counts[id];
    }
    // Each row's index at its place: the ids are read off the front half
    // as the places fill the back half, then moved to the front.
    let n = rows.len();
    order.resize(2 * n, 0);
    let mut next = start.clone();
    for i in 0..n {
        let id = order[i];
        order[n + next[id]] = i;
        next[id] += 1;
    }
    order.copy_within(n.., 0);
    order.truncate(n);
    for &id in &by_key {
        let run = &mut order[start[id]..start[id] + counts[id]];
        if run
            .windows(2)
            .any(|w| step(&rows[w[0]]) > step(&rows[w[1]]))
        {
            run.sort_by_key(|&i| step(&rows[i]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same order as a stable sort by (series, step), on rows whose
    /// steps come in order, out of order, and repeated.
    #[test]
    fn orders_as_a_stable_sort_by_series_and_step() {
        let mut seed = 11u64;
        for len in [0usize, 1, 2, 7, 300, 5000] {
            let rows: Vec<(i32, i64, usize)> = (0..len)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let agent = ((seed >> 33) % 13) as i32;
                    // Mostly ascending steps, some out of order, some repeated.
                    let step = if (seed >> 20) % 5 == 0 {
                        ((seed >> 40) % 64) as i64
                    } else {
                        (i / 13) as i64
                    };
                    (agent, step, i)
                })
                .collect();
            orders_as_a_stable_sort(rows, &format!("{len} rows"));
        }
        // Steps of the same series in the same order (the common case),
        // with a series now and then skipped, joining late or moved.
        for len in [2usize, 40, 3000] {
            let rows: Vec<(i32, i64, usize)> = (0..len)
                .filter(|i| i % 17 != 5)
                .map(|i| {
                    let (step, slot) = ((i / 9) as i64, (i % 9) as i32);
                    let agent = match (step % 5, slot) {
                        (3, 2) => 8,
                        (3, 8) => 2,
                        _ if step > 10 && slot == 0 => 20,
                        _ => slot,
                    };
                    (agent, step, i)
                })
                .collect();
            orders_as_a_stable_sort(rows, &format!("{len} cyclic rows"));
        }
    }

    /// `in_series_order` on (agent, step, recorded position) rows orders
    /// them as a stable sort by agent and step does.
    fn orders_as_a_stable_sort(rows: Vec<(i32, i64, usize)>, what: &str) {
        let mut expected = rows.clone();
        expected.sort_by_key(|r| (r.0, r.1));
        let got: Vec<(i32, i64, usize)> = in_series_order(
            &rows,
            |r| r.0,
            |r| r.1,
            |order| order.iter().map(|&i| rows[i]).collect(),
        );
        assert_eq!(got, expected, "{what}");
    }
}
