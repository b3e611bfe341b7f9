//! What the benches share: which rows and backends to run, timing, and the
//! process's memory figures. (Each bench uses part of it.)
#![allow(dead_code)]

use std::time::{Duration, Instant};

use simdb::Backend;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `SIMDB_BENCH_ROWS`: agent states per run (default 1,000,000).
pub fn bench_rows() -> i64 {
    std::env::var("SIMDB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The backends `SIMDB_BENCH_BACKENDS` names (comma-separated; `default`
/// when unset), each with its name.
pub fn selected_backends(default: &str) -> Vec<(Backend, &'static str)> {
    let wanted = std::env::var("SIMDB_BENCH_BACKENDS").unwrap_or_else(|_| default.into());
    [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")]
        .into_iter()
        .filter(|(_, name)| wanted.split(',').any(|b| b == *name))
        .collect()
}

/// Median of `runs` timings of `f`.
pub fn median(runs: usize, mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS:`,
/// `VmHWM:` for the peak), in MiB.
pub fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
