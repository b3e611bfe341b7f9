//! What a user feels: a cheap agent-based model running at its own full
//! speed, unrecorded and then with every row recorded (on SQLite and on
//! PostgreSQL): 150 boid-like agents, each steering by its neighbours
//! within a radius (all pairs, as a small model does: thousands of steps
//! per second), each step producing 600 rows — per agent a reward, a
//! ~70-byte JSON state and two agent metrics — plus one simulation metric.
//!
//! Prints, per backend, durability (the default `PowerLoss`, which the
//! target is for, then `ProcessCrash`) and recording API (per-row calls,
//! or slices of a whole step), the model's steps/s unrecorded and recorded
//! (timed until `close` returns: every row durable), their ratio (the
//! target: at least 0.5), and the caller-side cost per row (the recording
//! loop's time, without `close`, minus the unrecorded loop's, per row):
//! `RESULT backend=... durability=... api=... unrecorded_steps_per_s=... recorded_steps_per_s=... ratio=... caller_ns_per_row=...`.
//!
//! `cargo bench --bench engine`; `SIMDB_BENCH_STEPS` sets the steps (default
//! 20,000); `SIMDB_BENCH_BACKENDS=sqlite` skips PostgreSQL.

use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{Durability, NewAgent, NewSimulation, Recorder, SimulationService};

mod common;
use common::{selected_backends, service_with};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const AGENTS: usize = 150;

/// One agent's state, as the model keeps it and records it.
#[derive(Clone, Serialize)]
struct Agent {
    x: f64,
    y: f64,
    vx: f64,
    vy: f64,
    energy: f64,
}

/// The model: agents pulled towards their centre, jittered by an LCG.
struct Model {
    agents: Vec<Agent>,
    seed: u64,
}

impl Model {
    fn new() -> Self {
        let agents = (0..AGENTS)
            .map(|i| Agent {
                x: (i % 15) as f64,
                y: (i / 15) as f64,
                vx: 0.0,
                vy: 0.0,
                energy: 1.0,
            })
            .collect();
        Model { agents, seed: 42 }
    }

    fn noise(&mut self) -> f64 {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    /// One step; returns each agent's reward and the agents' spread.
    fn step(&mut self, rewards: &mut [f64]) -> f64 {
        let n = self.agents.len() as f64;
        let cx = self.agents.iter().map(|a| a.x).sum::<f64>() / n;
        let cy = self.agents.iter().map(|a| a.y).sum::<f64>() / n;
        // Each agent's neighbours within radius 3: their mean velocity
        // (alignment), all pairs.
        let mut align = vec![(0.0, 0.0, 0u32); self.agents.len()];
        for (i, a) in self.agents.iter().enumerate() {
            for b in &self.agents {
                let (dx, dy) = (b.x - a.x, b.y - a.y);
                if dx * dx + dy * dy < 9.0 {
                    align[i].0 += b.vx;
                    align[i].1 += b.vy;
                    align[i].2 += 1;
                }
            }
        }
        let mut spread = 0.0;
        for i in 0..self.agents.len() {
            let (jx, jy) = (self.noise(), self.noise());
            let (ax, ay, k) = align[i];
            let k = f64::from(k.max(1));
            let a = &mut self.agents[i];
            a.vx = 0.8 * a.vx + 0.1 * ax / k + 0.01 * (cx - a.x) + 0.1 * jx;
            a.vy = 0.8 * a.vy + 0.1 * ay / k + 0.01 * (cy - a.y) + 0.1 * jy;
            a.x += a.vx;
            a.y += a.vy;
            let d = ((a.x - cx).powi(2) + (a.y - cy).powi(2)).sqrt();
            a.energy = (a.energy - 0.001 * (a.vx.abs() + a.vy.abs()) + 0.002).clamp(0.0, 1.0);
            rewards[i] = -d;
            spread += d;
        }
        spread / n
    }
}

fn speed(a: &Agent) -> f64 {
    (a.vx * a.vx + a.vy * a.vy).sqrt()
}

/// The model alone: seconds for `steps` steps.
fn unrecorded(steps: i64) -> f64 {
    let mut model = Model::new();
    let mut rewards = vec![0.0; AGENTS];
    let mut spread = 0.0;
    let start = Instant::now();
    for _ in 0..steps {
        spread += model.step(&mut rewards);
    }
    let secs = start.elapsed().as_secs_f64();
    // Keep the work observable.
    if !spread.is_finite() {
        eprintln!("diverged");
    }
    secs
}

/// How the loop records a step.
#[derive(Clone, Copy)]
enum Api {
    Rows,
    Slices,
}

fn record_step(
    rec: &mut Recorder,
    api: Api,
    step: i64,
    model: &Model,
    rewards: &[f64],
    spread: f64,
    scratch: &mut (Vec<f64>, Vec<f64>),
) -> simdb::Result<()> {
    match api {
        Api::Rows => {
            for (i, a) in model.agents.iter().enumerate() {
                rec.agent_state(step, i, rewards[i], a)?;
                rec.agent_metric(step, i, "speed", speed(a))?;
                rec.agent_metric(step, i, "energy", a.energy)?;
            }
        }
        Api::Slices => {
            rec.agent_states(step, rewards, &model.agents)?;
            scratch.0.clear();
            scratch.0.extend(model.agents.iter().map(speed));
            scratch.1.clear();
            scratch.1.extend(model.agents.iter().map(|a| a.energy));
            rec.agent_metric_slice(step, "speed", &scratch.0)?;
            rec.agent_metric_slice(step, "energy", &scratch.1)?;
        }
    }
    rec.metric(step, "spread", spread)?;
    rec.end_step(step)
}

/// The model recorded: (seconds of the loop, seconds until `close`
/// returned).
fn recorded(svc: &SimulationService, steps: i64, api: Api) -> BenchResult<(f64, f64)> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"agents": AGENTS})))?;
    let agents: Vec<NewAgent> = (0..AGENTS as i32).map(NewAgent::new).collect();
    svc.register_agents(&sim.id, &agents)?;
    svc.start_simulation(&sim.id)?;
    let mut model = Model::new();
    let mut rewards = vec![0.0; AGENTS];
    let mut scratch = (Vec::with_capacity(AGENTS), Vec::with_capacity(AGENTS));
    let start = Instant::now();
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..steps {
        let spread = model.step(&mut rewards);
        record_step(&mut rec, api, step, &model, &rewards, spread, &mut scratch)?;
    }
    let looped = start.elapsed().as_secs_f64();
    rec.close()?;
    let total = start.elapsed().as_secs_f64();
    let states = svc.states_at_step(&sim.id, steps - 1)?.len();
    if states != AGENTS {
        return Err(format!("{states} states at the last step").into());
    }
    Ok((looped, total))
}

fn main() -> BenchResult<()> {
    let steps: i64 = std::env::var("SIMDB_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rows_per_step = (AGENTS * 4 + 1) as f64;
    // The model alone, best of 3 (it is the ceiling).
    let bare = (0..3).map(|_| unrecorded(steps)).fold(f64::MAX, f64::min);
    let bare_rate = steps as f64 / bare;
    println!("engine: {AGENTS} agents, {rows_per_step} rows per step, {steps} steps; unrecorded {bare_rate:.0} steps/s");
    for (backend, name) in selected_backends("sqlite,postgres") {
        for (durability, mode) in [
            (Durability::PowerLoss, "power-loss"),
            (Durability::ProcessCrash, "process-crash"),
        ] {
            for (api, api_name) in [(Api::Rows, "rows"), (Api::Slices, "slices")] {
                let db = TestDatabase::new(backend)?;
                let svc = service_with(&db, durability)?;
                let (looped, total) = recorded(&svc, steps, api)?;
                let rate = steps as f64 / total;
                let caller_ns = (looped - bare) / (steps as f64 * rows_per_step) * 1e9;
                println!("{name} {mode} ({api_name}): recorded {rate:.0} steps/s ({:.0}% of unrecorded), caller pays {caller_ns:.0} ns per row; loop {looped:.2}s, until close {total:.2}s", rate / bare_rate * 100.0);
                println!(
                    "RESULT backend={name} durability={mode} api={api_name} unrecorded_steps_per_s={bare_rate:.0} recorded_steps_per_s={rate:.0} ratio={:.2} caller_ns_per_row={caller_ns:.0} target_ratio=0.5",
                    rate / bare_rate
                );
            }
        }
    }
    Ok(())
}
