//! Read-back speed on the canonical data of the ingest bench (100 agents x
//! 10,000 steps = 1M agent states per simulation):
//! - one agent's 10,000-step reward series (target <= 20 ms), and with
//!   `SIMDB_BENCH_ROWS=10000000` the same query once the table holds 10M rows
//!   (9 more such simulations; target within 1.5x of the 1M figure);
//! - step aggregates of the 1M rows into 500 buckets (reported).
//!
//! `cargo bench --bench queries`; `SIMDB_BENCH_BACKENDS=sqlite` skips PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{Backend, NewAgent, NewSimulation, Simulation, SimulationService};

const AGENTS: i32 = 100;
const STEPS: i64 = 10_000;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn load(svc: &SimulationService) -> BenchResult<Simulation> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"agents": AGENTS})))?;
    let agents: Vec<NewAgent> = (0..AGENTS)
        .map(|i| NewAgent::new(i).kind("bench"))
        .collect();
    svc.register_agents(&sim.id, &agents)?;
    let sim = svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..STEPS {
        for agent in 0..AGENTS {
            let reward = ((step * 7 + agent as i64) % 1000) as f64 / 1000.0;
            rec.agent_state(
                step,
                agent,
                reward,
                &json!({"energy": 12.34, "inventory": {"ore": 3, "battery": 1}, "hp": 97}),
            )?;
        }
        rec.step(step, &json!({"alive": AGENTS}))?;
    }
    rec.close()?;
    Ok(sim)
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

fn series_ms(svc: &SimulationService, sim: &Simulation) -> BenchResult<f64> {
    let analytics = svc.analytics();
    let mut agent = 0;
    let t = median(31, || {
        agent = (agent + 37) % AGENTS;
        let series = analytics.agent_series(&sim.id, agent, "reward", ..)?;
        if series.len() != STEPS as usize {
            return Err(format!("series has {} points", series.len()).into());
        }
        Ok(())
    })?;
    Ok(t.as_secs_f64() * 1e3)
}

fn main() -> BenchResult<()> {
    let rows: i64 = std::env::var("SIMDB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let backends =
        std::env::var("SIMDB_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let name = if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        };
        if !backends.split(',').any(|b| b == name) {
            continue;
        }
        let db = TestDatabase::new(backend)?;
        let svc = SimulationService::new(db.database().clone());
        let sim = load(&svc)?;
        let series_1m = series_ms(&svc, &sim)?;
        let analytics = svc.analytics();
        let agg = median(5, || {
            let buckets = analytics.step_aggregates(&sim.id, "reward", 500)?;
            if buckets.len() != 500 {
                return Err(format!("{} buckets", buckets.len()).into());
            }
            Ok(())
        })?;
        println!(
            "{name}: agent series (10,000 steps) from 1M rows: {series_1m:.2} ms (ceiling 20 ms)"
        );
        println!(
            "{name}: step aggregates of 1M rows into 500 buckets: {:.1} ms",
            agg.as_secs_f64() * 1e3
        );
        let mut line = format!("RESULT backend={name} series_1m_ms={series_1m:.2} ceiling_ms=20 aggregates_1m_500_ms={:.1}", agg.as_secs_f64() * 1e3);
        if rows >= 10_000_000 {
            for _ in 1..rows / 1_000_000 {
                load(&svc)?;
            }
            let series_10m = series_ms(&svc, &sim)?;
            println!("{name}: agent series (10,000 steps) with {rows} rows in the table: {series_10m:.2} ms ({:.2}x the 1M figure, ceiling 1.5x)", series_10m / series_1m);
            line.push_str(&format!(
                " series_10m_ms={series_10m:.2} ratio_10m={:.2}",
                series_10m / series_1m
            ));
        }
        println!("{line}");
    }
    Ok(())
}
