//! A small real multi-agent simulation recorded into SQLite: agents with
//! different foraging strategies (the agent kind) on a grid with regrowing
//! food. Run with `cargo run --release --example gridworld [DB_PATH]`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use simdb::diesel::prelude::*;
use simdb::schema::agent_totals;
use simdb::{Database, NewAgent, NewExperiment, NewSimulation, SimulationService};

const SIZE: i64 = 24;
const AGENTS: i32 = 12;
const STEPS: i64 = 2_000;
const STRATEGIES: [&str; 3] = ["greedy", "random", "sitter"];

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n as u64) as i64
    }
}

#[derive(Serialize)]
struct AgentState {
    x: i64,
    y: i64,
    energy: f64,
    eaten: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "gridworld.db".into());
    let seed = 7u64;
    let db = Database::open(&path)?;
    let svc = SimulationService::new(db.clone());

    let exp = match svc.experiment_by_name("foraging") {
        Ok(exp) => exp,
        Err(_) => svc.create_experiment(
            NewExperiment::new("foraging").description("strategies foraging on a grid"),
        )?,
    };
    let params =
        json!({"grid": SIZE, "agents": AGENTS, "steps": STEPS, "seed": seed, "regrow": 0.002});
    let sim = svc.create_simulation(
        NewSimulation::new(params)
            .experiment(&exp.id)
            .tag("gridworld"),
    )?;
    let agents: Vec<NewAgent> = (0..AGENTS)
        .map(|i| {
            NewAgent::new(i)
                .kind(STRATEGIES[i as usize % 3])
                .policy("handwritten", 1)
        })
        .collect();
    svc.register_agents(&sim.id, &agents)?;
    svc.start_simulation(&sim.id)?;

    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut food = vec![false; (SIZE * SIZE) as usize];
    for cell in food.iter_mut() {
        *cell = rng.below(100) < 15;
    }
    let mut pos: Vec<(i64, i64)> = (0..AGENTS)
        .map(|_| (rng.below(SIZE), rng.below(SIZE)))
        .collect();
    let mut energy = vec![10.0f64; AGENTS as usize];
    let mut eaten = vec![0u32; AGENTS as usize];

    let start = std::time::Instant::now();
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..STEPS {
        for a in 0..AGENTS as usize {
            let (x, y) = pos[a];
            let (dx, dy) = match STRATEGIES[a % 3] {
                "greedy" => {
                    nearest_food(&food, x, y).unwrap_or((rng.below(3) - 1, rng.below(3) - 1))
                }
                "random" => (rng.below(3) - 1, rng.below(3) - 1),
                _ => {
                    if rng.below(10) == 0 {
                        (rng.below(3) - 1, rng.below(3) - 1)
                    } else {
                        (0, 0)
                    }
                }
            };
            let (nx, ny) = ((x + dx).rem_euclid(SIZE), (y + dy).rem_euclid(SIZE));
            pos[a] = (nx, ny);
            let cell = (ny * SIZE + nx) as usize;
            let mut reward = -0.01 * (dx.abs() + dy.abs()) as f64;
            if food[cell] {
                food[cell] = false;
                reward += 1.0;
                eaten[a] += 1;
                energy[a] += 2.0;
            }
            energy[a] = (energy[a] - 0.05).max(0.0);
            let state = AgentState {
                x: nx,
                y: ny,
                energy: energy[a],
                eaten: eaten[a],
            };
            rec.agent_state(step, a as i32, reward, &state)?;
            rec.agent_metric(step, a as i32, "energy", energy[a])?;
        }
        for cell in food.iter_mut() {
            if !*cell && rng.below(1000) < 2 {
                *cell = true;
            }
        }
        let food_left = food.iter().filter(|f| **f).count();
        rec.step(step, &json!({"food_left": food_left}))?;
        rec.metric(step, "food_left", food_left as f64)?;
        rec.end_step(step)?; // every row of this step is recorded
    }
    let rows = rec.rows_recorded();
    rec.close()?;
    let secs = start.elapsed().as_secs_f64();

    // Read back with plain Diesel over the public schema: reward per agent,
    // from the per-agent totals simdb keeps next to the state chunks.
    let totals: Vec<(i32, f64)> = simdb::with_connection!(db.connection()?, |c| {
        agent_totals::table
            .filter(agent_totals::sim_key.eq(sim.sim_key))
            .select((agent_totals::agent_index, agent_totals::total))
            .order(agent_totals::agent_index)
            .load(c)?
    });
    let mut by_kind: BTreeMap<&str, (f64, u32)> = BTreeMap::new();
    for (agent, total) in &totals {
        let entry = by_kind.entry(STRATEGIES[*agent as usize % 3]).or_default();
        entry.0 += total;
        entry.1 += 1;
    }
    let best = by_kind
        .iter()
        .max_by(|a, b| (a.1 .0 / a.1 .1 as f64).total_cmp(&(b.1 .0 / b.1 .1 as f64)))
        .map(|(k, _)| k.to_string())
        .unwrap_or_default();
    let sim = svc.complete_simulation(&sim.id, json!({"best_strategy": best, "rows": rows}))?;

    println!("simulation {} ({}) in {}", sim.id, sim.status, path);
    println!(
        "recorded {rows} rows in {secs:.2}s ({:.0} rows/s)",
        rows as f64 / secs
    );
    println!(
        "{:<8} {:>7} {:>12} {:>12}",
        "kind", "agents", "total reward", "mean/agent"
    );
    for (kind, (total, n)) in &by_kind {
        println!("{kind:<8} {n:>7} {total:>12.2} {:>12.2}", total / *n as f64);
    }
    let last = svc.states_at_step(&sim.id, STEPS - 1)?;
    println!("agent 0 at the last step: {}", last[0].state);
    println!("best strategy: {best}");
    Ok(())
}

/// Direction of one step toward the nearest food within a radius of 5.
fn nearest_food(food: &[bool], x: i64, y: i64) -> Option<(i64, i64)> {
    let mut best: Option<(i64, i64, i64)> = None;
    for dy in -5..=5i64 {
        for dx in -5..=5i64 {
            let (fx, fy) = ((x + dx).rem_euclid(SIZE), (y + dy).rem_euclid(SIZE));
            if food[(fy * SIZE + fx) as usize] {
                let d = dx.abs() + dy.abs();
                if best.is_none_or(|b| d < b.0) {
                    best = Some((d, dx.signum(), dy.signum()));
                }
            }
        }
    }
    best.map(|(_, dx, dy)| (dx, dy))
}
