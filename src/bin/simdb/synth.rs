//! `simdb synth`: record a synthetic run.

use std::process::ExitCode;

use clap::Args;
use std::io::Write;
use std::time::Duration;

use serde_json::json;
use simdb::{
    Error, NewAgent, NewExperiment, NewSimulation, RecorderOptions, Result, SimulationService,
};

use crate::resolve::open;

/// Arguments of `simdb synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Agents.
    #[arg(long, default_value_t = 10)]
    pub agents: i32,
    /// Steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: i64,
    /// Experiment name (created if missing).
    #[arg(long, default_value = "synthetic")]
    pub experiment: String,
    /// Flush every N steps and print `flushed STEP` after each flush.
    #[arg(long)]
    pub flush_every: Option<i64>,
    /// Sleep this many milliseconds per step.
    #[arg(long, default_value_t = 0)]
    pub step_delay_ms: u64,
    /// Leave the simulation running (do not complete it).
    #[arg(long)]
    pub no_complete: bool,
    /// Rows per Recorder batch (small by default: crash drills see many
    /// commits; a load test wants the Recorder's own default, 65,536).
    #[arg(long, default_value_t = 2_000)]
    pub batch_rows: usize,
    /// Agent metrics per agent-step, named `synth-m-0`, `synth-m-1`, …
    /// (value: 100 × its number + the step + the agent / 10).
    #[arg(long, default_value_t = 0)]
    pub metrics: usize,
    /// Record the metrics from this one on (`(j + offset) % metrics`): many
    /// processes meet the same new names in different orders.
    #[arg(long, default_value_t = 0)]
    pub metric_offset: usize,
    /// After printing the id, wait for a line on standard input before
    /// recording: start many processes at one moment.
    #[arg(long)]
    pub wait_for_go: bool,
}

/// Record a synthetic simulation: for trying simdb, load tests and crash drills.
pub fn synth_command(url: &Option<String>, _json_out: bool, args: SynthArgs) -> Result<ExitCode> {
    let SynthArgs {
        agents,
        steps,
        experiment: exp_name,
        flush_every,
        step_delay_ms,
        no_complete,
        batch_rows,
        metrics,
        metric_offset,
        wait_for_go,
    } = args;
    let svc = open(url)?;
    synth(
        &svc,
        Synth {
            agents,
            steps,
            exp_name: &exp_name,
            flush_every,
            delay_ms: step_delay_ms,
            complete: !no_complete,
            batch_rows,
            metrics,
            metric_offset,
            wait_for_go,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Deterministic pseudo-random walk per agent; prints the id, then
/// `flushed STEP` after every acknowledged flush, STEP being the commit
/// watermark it returned.
/// What `synth` records.
struct Synth<'a> {
    agents: i32,
    steps: i64,
    exp_name: &'a str,
    flush_every: Option<i64>,
    delay_ms: u64,
    complete: bool,
    batch_rows: usize,
    metrics: usize,
    metric_offset: usize,
    wait_for_go: bool,
}

fn synth(svc: &SimulationService, run: Synth<'_>) -> Result<()> {
    let Synth {
        agents,
        steps,
        exp_name,
        flush_every,
        delay_ms,
        complete,
        batch_rows,
        metrics,
        metric_offset,
        wait_for_go,
    } = run;
    let exp = match svc.experiment_by_name(exp_name) {
        Ok(e) => e,
        Err(Error::NotFound { .. }) => match svc.create_experiment(NewExperiment::new(exp_name)) {
            Ok(e) => e,
            // Another process created it meanwhile.
            Err(Error::Duplicate { .. }) => svc.experiment_by_name(exp_name)?,
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let sim = svc.create_simulation(
        NewSimulation::new(json!({"agents": agents, "steps": steps}))
            .experiment(&exp.id)
            .tag("synthetic"),
    )?;
    let roster: Vec<NewAgent> = (0..agents)
        .map(|i| NewAgent::new(i).kind(["walker", "runner"][i as usize % 2]))
        .collect();
    svc.register_agents(&sim.id, &roster)?;
    svc.start_simulation(&sim.id)?;
    println!("{}", sim.id);
    let _ = std::io::stdout().flush();
    if wait_for_go {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Error::Io {
                path: "standard input".into(),
                source: e,
            })?;
    }
    let names: Vec<String> = (0..metrics).map(|k| format!("synth-m-{k}")).collect();
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(batch_rows))?;
    let mut x = vec![0.0f64; agents.max(0) as usize];
    for step in 0..steps {
        for (agent, pos) in x.iter_mut().enumerate() {
            let noise = (((step as u64).wrapping_mul(2654435761)
                ^ (agent as u64).wrapping_mul(40503))
                % 1000) as f64
                / 1000.0
                - 0.5;
            *pos += noise;
            rec.agent_state(step, agent as i32, -pos.abs() / 10.0, &json!({"x": *pos}))?;
            for j in 0..metrics {
                let k = (j + metric_offset) % metrics;
                let value = k as f64 * 100.0 + step as f64 + agent as f64 / 10.0;
                rec.agent_metric(step, agent as i32, names[k].as_str(), value)?;
            }
        }
        rec.step(
            step,
            &json!({"mean_x": x.iter().sum::<f64>() / x.len().max(1) as f64}),
        )?;
        rec.end_step(step)?;
        if let Some(every) = flush_every {
            if every > 0 && (step + 1) % every == 0 {
                let committed = rec.flush()?;
                println!("flushed {}", committed.unwrap_or(-1));
                let _ = std::io::stdout().flush();
            }
        }
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
    }
    rec.close()?;
    if complete {
        svc.complete_simulation(&sim.id, json!({"steps": steps}))?;
    }
    println!("done {}", sim.id);
    Ok(())
}
