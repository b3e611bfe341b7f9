//! Many writers at once (issue 24): 1, 4 and 16 `simdb synth` processes,
//! each recording its own run of 100 agents x 10,000 steps (a reward and a
//! small JSON state per agent-step, the Recorder's default batches) into
//! one database at the same moment. Prints the aggregate rows/s of each
//! count (all rows over the wall time from the first spawn to the last
//! exit) and checks that every row of every run is there.
//!
//! `cargo bench --bench writers --features cli`; PostgreSQL by default
//! (`SIMDB_BENCH_BACKENDS=sqlite,postgres` adds SQLite, whose single writer
//! serialises the processes); `SIMDB_BENCH_STEPS` sets the steps per run.
//! Prints `RESULT backend=... writers=N rows=... rows_per_sec=... per_writer=...`.

use std::process::{Command, Stdio};
use std::time::Instant;

use simdb::test_support::TestDatabase;
use simdb::{SimulationFilter, SimulationService};

mod common;
use common::selected_backends;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const AGENTS: i64 = 100;

fn main() -> BenchResult<()> {
    let steps: i64 = std::env::var("SIMDB_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for (backend, name) in selected_backends("postgres") {
        let mut single = None;
        for writers in [1usize, 4, 16] {
            let db = TestDatabase::new(backend)?;
            let svc = SimulationService::new(db.database().clone());
            let start = Instant::now();
            let children: Vec<_> = (0..writers)
                .map(|_| {
                    Command::new(env!("CARGO_BIN_EXE_simdb"))
                        .args([
                            "synth",
                            "--agents",
                            &AGENTS.to_string(),
                            "--steps",
                            &steps.to_string(),
                        ])
                        .args(["--batch-rows", "65536", "--experiment", "writers"])
                        .env("SIMDB_DATABASE_URL", db.url())
                        .stdout(Stdio::null())
                        .spawn()
                })
                .collect::<Result<_, _>>()?;
            for mut child in children {
                let status = child.wait()?;
                if !status.success() {
                    return Err(format!("a writer failed: {status}").into());
                }
            }
            let elapsed = start.elapsed().as_secs_f64();
            // Every row of every run.
            let sims = svc.list_simulations(&SimulationFilter::new().limit(1000))?;
            assert_eq!(sims.len(), writers);
            for sim in &sims {
                let rows: i64 = svc
                    .analytics()
                    .summary(&sim.id)?
                    .per_agent
                    .iter()
                    .map(|a| a.rows)
                    .sum();
                assert_eq!(rows, AGENTS * steps, "{}", sim.id);
            }
            let rows = writers as i64 * AGENTS * steps;
            let rate = rows as f64 / elapsed;
            let base = *single.get_or_insert(rate);
            println!(
                "{name}: {writers:>2} writers, {rows} rows in {elapsed:.2} s: {rate:.0} rows/s in all ({:.0} per writer; {:.2}x one writer), every row present",
                rate / writers as f64,
                rate / base
            );
            println!(
                "RESULT backend={name} writers={writers} rows={rows} rows_per_sec={rate:.0} per_writer={:.0} scaling={:.2}",
                rate / writers as f64,
                rate / base
            );
        }
    }
    Ok(())
}
