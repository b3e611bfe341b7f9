//! Big deletes beside live recorders (issue 24): a database holding
//! `SIMDB_BENCH_TOTAL_ROWS` agent states (default 40M: runs of 100 agents),
//! one of its runs holding `SIMDB_BENCH_DELETE_ROWS` (default 10M), deleted
//! while another recorder commits a step of 100 agents and flushes, over
//! and over — one in this process, one in another (`simdb synth`). Prints how long the delete took and the longest flush the
//! recorder saw during it, next to the longest it saw for as many flushes
//! before (target: no stall over 100 ms), and the state table's size before
//! and after.
//!
//! `cargo bench --bench big_delete --features cli`; PostgreSQL by default
//! (`SIMDB_BENCH_BACKENDS=sqlite,postgres` adds SQLite). Prints
//! `RESULT backend=... total_rows=... deleted_rows=... delete_s=...
//! longest_flush_ms=... longest_flush_before_ms=...`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{NewAgent, NewSimulation, RecorderOptions, SimulationService};

mod common;
use common::{selected_backends, table_bytes};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const AGENTS: i32 = 100;

fn env_rows(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A run of `rows` agent states (100 agents), recorded through the
/// slice API; its id.
fn run(svc: &SimulationService, rows: i64) -> BenchResult<simdb::SimulationId> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"rows": rows})))?;
    svc.register_agents(&sim.id, &(0..AGENTS).map(NewAgent::new).collect::<Vec<_>>())?;
    svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder(&sim.id)?;
    let rewards: Vec<f64> = (0..AGENTS).map(|a| f64::from(a) / 100.0).collect();
    for step in 0..rows / i64::from(AGENTS) {
        let states: Vec<serde_json::Value> = (0..AGENTS)
            .map(|a| json!({"energy": step % 97, "pos": [a, step % 13]}))
            .collect();
        rec.agent_states(step, &rewards, &states)?;
        rec.end_step(step)?;
    }
    rec.close()?;
    Ok(sim.id)
}

/// Flush durations of a recorder committing one step of 100 agents per
/// flush until `stop`.
fn flushes(svc: SimulationService, stop: Arc<AtomicBool>) -> BenchResult<Vec<(Instant, Duration)>> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"watcher": true})))?;
    svc.register_agents(&sim.id, &(0..AGENTS).map(NewAgent::new).collect::<Vec<_>>())?;
    svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default())?;
    let rewards: Vec<f64> = vec![0.5; AGENTS as usize];
    let states: Vec<serde_json::Value> = (0..AGENTS).map(|a| json!({"a": a})).collect();
    let mut out = Vec::new();
    let mut step = 0;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        rec.agent_states(step, &rewards, &states)?;
        rec.end_step(step)?;
        rec.flush()?;
        out.push((start, start.elapsed()));
        step += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    rec.close()?;
    Ok(out)
}

fn main() -> BenchResult<()> {
    let total = env_rows("SIMDB_BENCH_TOTAL_ROWS", 40_000_000);
    let deleted = env_rows("SIMDB_BENCH_DELETE_ROWS", 10_000_000);
    for (backend, name) in selected_backends("postgres") {
        let db = TestDatabase::new(backend)?;
        let svc = SimulationService::new(db.database().clone());
        let loading = Instant::now();
        let victim = run(&svc, deleted)?;
        let mut rest = total - deleted;
        while rest > 0 {
            run(&svc, rest.min(deleted))?;
            rest -= deleted;
        }
        println!(
            "{name}: {total} agent states recorded in {:.0} s",
            loading.elapsed().as_secs_f64()
        );
        let size = || -> BenchResult<f64> {
            Ok(table_bytes(&db, "simdb_agent_state_chunks")? as f64 / 1e6)
        };
        let before_mb = size()?;

        // A recorder in another process: `simdb synth` flushing every step
        // (5 ms apart); the gaps between its `flushed` lines.
        let mut other = std::process::Command::new(env!("CARGO_BIN_EXE_simdb"))
            .args([
                "synth",
                "--agents",
                "100",
                "--steps",
                "100000000",
                "--flush-every",
                "1",
            ])
            .args([
                "--step-delay-ms",
                "5",
                "--no-complete",
                "--experiment",
                "watcher",
            ])
            .env("SIMDB_DATABASE_URL", db.url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let lines = other.stdout.take().ok_or("no stdout")?;
        let flushed = std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(lines)
                .lines()
                .map_while(std::result::Result::ok)
                .filter(|l| l.starts_with("flushed"))
                .map(|_| Instant::now())
                .collect::<Vec<Instant>>()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (svc, stop) = (svc.clone(), stop.clone());
            std::thread::spawn(move || flushes(svc, stop).map_err(|e| e.to_string()))
        };
        std::thread::sleep(Duration::from_secs(3));
        let start = Instant::now();
        svc.delete_simulation(&victim)?;
        let delete_time = start.elapsed();
        let end = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let seen = watcher.join().map_err(|_| "the watcher panicked")??;
        other.kill()?;
        other.wait()?;
        let marks = flushed.join().map_err(|_| "the reader panicked")?;
        let gaps: Vec<(Instant, Duration)> =
            marks.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
        let gap_during = gaps
            .iter()
            .filter(|(at, d)| *at + *d >= start && *at <= end)
            .map(|g| g.1)
            .max()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        let gap_before = gaps
            .iter()
            .filter(|(at, d)| *at + *d < start)
            .map(|g| g.1)
            .max()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        println!("{name}: a recorder in another process (a step and a flush every 5 ms): longest gap between two flushes {gap_during:.1} ms during the delete, {gap_before:.1} ms before");
        let during: Vec<Duration> = seen
            .iter()
            .filter(|(at, d)| *at + *d >= start && *at <= end)
            .map(|x| x.1)
            .collect();
        let before: Vec<Duration> = seen
            .iter()
            .filter(|(at, _)| *at < start)
            .map(|x| x.1)
            .collect();
        let longest = during
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        let longest_before = before
            .iter()
            .rev()
            .take(during.len().max(1))
            .max()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        let after_mb = size()?;
        println!(
            "{name}: deleting a {deleted}-state run of a {total}-state database took {:.1} s; a recorder flushing a step at a time saw its longest flush at {longest:.1} ms during it ({} flushes; {longest_before:.1} ms longest of as many before; target 100 ms); state chunks {before_mb:.0} MB before, {after_mb:.0} MB after ({})",
            delete_time.as_secs_f64(),
            during.len(),
            match backend {
                simdb::Backend::Sqlite => "SQLite reuses the freed pages for later writes; VACUUM returns them to the OS",
                simdb::Backend::Postgres => "after a plain VACUUM, as autovacuum does: the dead rows' space is reused by later writes, not returned to the OS",
            }
        );
        println!(
            "RESULT backend={name} total_rows={total} deleted_rows={deleted} delete_s={:.2} longest_flush_ms={longest:.1} longest_flush_before_ms={longest_before:.1} flushes_during={} other_process_gap_ms={gap_during:.1} other_process_gap_before_ms={gap_before:.1}",
            delete_time.as_secs_f64(),
            during.len()
        );
    }
    Ok(())
}
