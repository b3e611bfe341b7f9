//! The dashboard under load (feature `serve`):
//! - the first page of a simulation (its HTML, then its reward chart) once
//!   the table holds `SIMDB_BENCH_ROWS` agent states (default 1M; target
//!   for 10M: first page <= 200 ms);
//! - the simulations list (`/api/simulations`) over 200 runs of 4 agents x
//!   500 steps, against the same answer computed the way the previous
//!   release did (each run's progress and tags on their own);
//! - a sweep on one chart (issue 23): 50 runs of 10,000 steps overlaid
//!   from the rollups, a line per run and grouped by a parameter (target
//!   <= 150 ms per chart);
//! - what 20 viewers cost a recorder: the canonical workload's ingest rate
//!   alone, then with 20 threads each doing what an open simulation page
//!   does (poll progress once a second; when the watermark moved, fetch the
//!   reward chart and the agents' totals). Target: <= 10% slower. Five
//!   runs of each, in turn; the medians are compared.
//!
//! `cargo bench --bench dashboard --features serve`; `SIMDB_BENCH_BACKENDS=sqlite`
//! skips PostgreSQL. Prints `RESULT backend=... first_page_ms=... chart_ms=... chart_shared_ms=...
//! overlay_ms=... overlay_grouped_ms=... list_ms=... list_per_run_ms=... recorder_alone=... recorder_watched=... cost=...`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{NewAgent, NewSimulation, Simulation, SimulationFilter, SimulationService};

const AGENTS: i32 = 100;
/// The sweep overlaid on one chart: runs, and steps of each.
const OVERLAY_RUNS: i64 = 50;
const OVERLAY_STEPS: i64 = 10_000;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

mod common;
use common::{bench_rows, median, selected_backends};

fn running(svc: &SimulationService) -> BenchResult<Simulation> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"agents": AGENTS})))?;
    let agents: Vec<NewAgent> = (0..AGENTS)
        .map(|i| NewAgent::new(i).kind(if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    svc.register_agents(&sim.id, &agents)?;
    Ok(svc.start_simulation(&sim.id)?)
}

/// Records `steps` steps of 100 agents; returns rows/s.
fn record(svc: &SimulationService, sim: &Simulation, steps: i64) -> BenchResult<f64> {
    let start = Instant::now();
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..steps {
        common::canonical_step(&mut rec, step, AGENTS)?;
        rec.end_step(step)?;
    }
    rec.close()?;
    Ok((steps * i64::from(AGENTS)) as f64 / start.elapsed().as_secs_f64())
}

/// Starts the dashboard on a free port; it runs until the process ends.
fn start(svc: SimulationService) -> BenchResult<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = simdb::serve::serve(svc, "127.0.0.1:0".parse().expect("address"), |addr| {
            let _ = tx.send(addr);
        });
    });
    Ok(rx.recv_timeout(Duration::from_secs(10))?)
}

fn get(url: &str) -> BenchResult<String> {
    Ok(ureq::get(url).call()?.into_string()?)
}

fn median_ms(runs: usize, f: impl FnMut() -> BenchResult<()>) -> BenchResult<f64> {
    Ok(median(runs, f)?.as_secs_f64() * 1e3)
}

/// One open simulation page: progress every second; chart and the agents'
/// totals when the watermark moved.
fn viewer(base: String, id: String, stop: Arc<AtomicBool>) {
    // As live.js does: the first poll without a cursor, then each with the
    // cursor of the previous answer.
    let mut cursor = String::new();
    let mut last = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(progress) = get(&format!("{base}/api/simulations/{id}/progress{cursor}")) {
            let p = serde_json::from_str::<serde_json::Value>(&progress).unwrap_or_default();
            let c = &p["cursor"];
            if let (Some(step), Some(rows), Some(at)) =
                (c["step"].as_i64(), c["rows"].as_i64(), c["at"].as_str())
            {
                cursor = format!("?step={step}&rows={rows}&at={}", at.replace('+', "%2B"));
            }
            let step = c["step"].to_string();
            if step != last {
                last = step;
                let _ = get(&format!("{base}/charts/{id}/reward"));
                let _ = get(&format!("{base}/api/simulations/{id}/agents"));
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main() -> BenchResult<()> {
    let rows = bench_rows();
    for (backend, name) in selected_backends("sqlite,postgres") {
        let db = TestDatabase::new(backend)?;
        let svc = SimulationService::new(db.database().clone());
        let base = format!("http://{}", start(svc.clone())?);

        // The first page of a big simulation.
        let big = running(&svc)?;
        record(&svc, &big, rows / i64::from(AGENTS))?;
        let id = big.id.to_string();
        let first_page = median_ms(5, || {
            get(&format!("{base}/simulations/{id}"))?;
            Ok(())
        })?;
        // Drawn: each request a bucket count of its own, so none is served
        // from the drawings shared between viewers; then shared.
        let mut buckets = 195;
        let chart = median_ms(5, || {
            buckets += 1;
            get(&format!("{base}/charts/{id}/reward?buckets={buckets}"))?;
            Ok(())
        })?;
        let chart_shared = median_ms(5, || {
            get(&format!("{base}/charts/{id}/reward?buckets=200"))?;
            Ok(())
        })?;
        println!("{name}: first page of a {rows}-row simulation: {first_page:.1} ms (target 200 ms), its reward chart {chart:.1} ms drawn, {chart_shared:.1} ms shared");

        // A recorder alone, then watched by 20 viewers, five times in turn
        // (PostgreSQL's ingest rate moves a lot from run to run): medians.
        let steps = 2_000;
        let (mut alone, mut watched) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            alone.push(record(&svc, &running(&svc)?, steps)?);
            let watched_sim = running(&svc)?;
            let stop = Arc::new(AtomicBool::new(false));
            let viewers: Vec<_> = (0..20)
                .map(|_| {
                    let (base, id, stop) = (base.clone(), watched_sim.id.to_string(), stop.clone());
                    std::thread::spawn(move || viewer(base, id, stop))
                })
                .collect();
            watched.push(record(&svc, &watched_sim, steps)?);
            stop.store(true, Ordering::Relaxed);
            for v in viewers {
                let _ = v.join();
            }
        }
        let middle = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (alone, watched) = (middle(alone), middle(watched));
        let cost = 1.0 - watched / alone;
        println!("{name}: recorder alone {alone:.0} rows/s, with 20 viewers {watched:.0} rows/s: {:.1}% slower (target <= 10%)", cost * 100.0);

        // A sweep overlaid: 50 runs of 10,000 steps (4 agents each) on one
        // chart per request, a line per run, then grouped by a parameter
        // (5 values). Each request its own bucket count: nothing is reused.
        let mut sweep = Vec::new();
        for run in 0..OVERLAY_RUNS {
            let sim =
                svc.create_simulation(NewSimulation::new(json!({"lr": run % 5, "seed": run})))?;
            svc.register_agents(&sim.id, &(0..4).map(NewAgent::new).collect::<Vec<_>>())?;
            svc.start_simulation(&sim.id)?;
            let mut rec = svc.recorder(&sim.id)?;
            for step in 0..OVERLAY_STEPS {
                for agent in 0..4 {
                    let reward = ((step * 7 + i64::from(agent) + run) % 1000) as f64 / 1000.0;
                    rec.agent_state(step, agent, reward, &json!({"hp": 97}))?;
                }
                rec.end_step(step)?;
            }
            rec.close()?;
            sweep.push(format!("sim={}", sim.id));
        }
        let selection = sweep.join("&");
        let mut buckets = 195;
        let overlay = median_ms(5, || {
            buckets += 1;
            get(&format!(
                "{base}/compare/charts/reward?{selection}&buckets={buckets}"
            ))?;
            Ok(())
        })?;
        let grouped = median_ms(5, || {
            buckets += 1;
            get(&format!(
                "{base}/compare/charts/reward?{selection}&group=lr&buckets={buckets}"
            ))?;
            Ok(())
        })?;
        println!("{name}: {OVERLAY_RUNS} runs of {OVERLAY_STEPS} steps on one chart: {overlay:.1} ms a line per run, {grouped:.1} ms grouped by a parameter (target 150 ms)");

        // The list over 200 small runs (after the ingest runs: its load
        // would leave autovacuum work behind for them).
        for run in 0..200 {
            let sim = svc.create_simulation(
                NewSimulation::new(json!({"run": run}))
                    .tag("bench")
                    .tag("list"),
            )?;
            svc.register_agents(&sim.id, &(0..4).map(NewAgent::new).collect::<Vec<_>>())?;
            svc.start_simulation(&sim.id)?;
            let mut rec = svc.recorder(&sim.id)?;
            for step in 0..500 {
                for agent in 0..4 {
                    rec.agent_state(step, agent, 1.0, &json!({"hp": 97}))?;
                }
                rec.end_step(step)?;
            }
            rec.close()?;
        }
        let list = median_ms(5, || {
            get(&format!("{base}/api/simulations"))?;
            Ok(())
        })?;
        let analytics = svc.analytics();
        let list_per_run = median_ms(5, || {
            for sim in svc.list_simulations(&SimulationFilter::new().limit(200))? {
                analytics.progress(&sim.id, None)?;
                svc.simulation_tags(&sim.id)?;
            }
            Ok(())
        })?;
        println!("{name}: list of 200 simulations: {list:.1} ms over HTTP; each run's progress and tags on their own (the previous release's way, no HTTP): {list_per_run:.1} ms");

        println!("RESULT backend={name} rows={rows} first_page_ms={first_page:.1} chart_ms={chart:.1} chart_shared_ms={chart_shared:.1} overlay_ms={overlay:.1} overlay_grouped_ms={grouped:.1} list_ms={list:.1} list_per_run_ms={list_per_run:.1} recorder_alone={alone:.0} recorder_watched={watched:.0} cost={cost:.3}");
    }
    Ok(())
}
