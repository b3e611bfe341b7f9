//! `simdb`: look at, move and plot simulations without writing Rust.

mod args;
mod plot;
mod table;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use simdb::{
    Database, Error, ExperimentId, GroupBy, NewAgent, NewExperiment, NewSimulation, OnConflict,
    ParameterQuery, RecorderOptions, Result, SimulationFilter, SimulationId, SimulationService,
    SimulationStatus,
};
use table::Table;

/// Inspect, watch, export, import, copy and plot simdb simulations.
#[derive(Debug, Parser)]
#[command(name = "simdb", version, about)]
struct Cli {
    /// Database: sqlite://PATH, a file path, or postgres://user:pw@host/db.
    #[arg(long, short = 'd', env = "SIMDB_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations (done by every command) and show their status.
    Migrate,
    /// List experiments.
    Experiments,
    /// List simulations, newest first.
    Sims {
        /// Experiment id or name.
        #[arg(long)]
        experiment: Option<String>,
        /// pending, running, completed, failed, cancelled or interrupted.
        #[arg(long)]
        status: Option<String>,
        /// Only simulations with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Parameter equality, PATH=JSON (e.g. optimizer.lr=0.001, env="grid").
        #[arg(long = "param", value_name = "PATH=VALUE")]
        params: Vec<String>,
        /// Parameter range, PATH=LO..HI (either side may be empty).
        #[arg(long = "param-range", value_name = "PATH=LO..HI")]
        ranges: Vec<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Summary, agents and latest steps of a simulation.
    Show {
        /// Simulation id.
        sim: String,
        /// How many of the latest steps to show.
        #[arg(long, default_value_t = 5)]
        steps: i64,
    },
    /// One row per simulation of an experiment: parameters and metrics.
    Compare {
        /// Experiment id or name.
        experiment: String,
        /// Fields to compare (reward or metric names).
        #[arg(long = "field", default_value = "reward")]
        fields: Vec<String>,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
    },
    /// Rank agent groups of an experiment by mean reward.
    Leaderboard {
        /// Experiment id or name.
        experiment: String,
        /// Group by kind, policy or agent.
        #[arg(long, value_enum, default_value_t = By::Kind)]
        by: By,
    },
    /// Follow a simulation's progress until it ends.
    Watch {
        /// Simulation id.
        sim: String,
        /// Seconds between polls.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Give up after this many seconds (exit code 3).
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Mark running simulations without a heartbeat for MAX_AGE seconds as interrupted.
    Recover {
        /// Seconds without a heartbeat.
        #[arg(long, default_value_t = 300)]
        max_age: u64,
    },
    /// Export a simulation (JSONL is lossless; CSV has one row per agent-step).
    Export {
        /// Simulation id.
        sim: String,
        /// jsonl or csv.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Output file (standard output by default).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Import a JSONL export, all or nothing.
    Import {
        /// The file.
        file: PathBuf,
        /// What to do if the simulation exists.
        #[arg(long, value_enum, default_value_t = Conflict::Error)]
        on_conflict: Conflict,
    },
    /// Copy simulations between databases (public ids kept).
    Copy {
        /// Source database URL.
        #[arg(long)]
        from: String,
        /// Target database URL.
        #[arg(long)]
        to: String,
        /// Simulation ids (all if none).
        sims: Vec<String>,
        /// What to do if a simulation exists in the target.
        #[arg(long, value_enum, default_value_t = Conflict::Error)]
        on_conflict: Conflict,
    },
    /// Plot a field over steps: mean across agents with a min-max band (SVG).
    Plot {
        /// Simulation id.
        sim: String,
        /// reward or a metric name.
        #[arg(long, default_value = "reward")]
        field: String,
        /// Output SVG file.
        #[arg(long, short)]
        out: PathBuf,
        /// At most this many points.
        #[arg(long, default_value_t = 500)]
        buckets: usize,
    },
    /// Record a synthetic simulation: for trying simdb, load tests and crash drills.
    Synth {
        /// Agents.
        #[arg(long, default_value_t = 10)]
        agents: i32,
        /// Steps.
        #[arg(long, default_value_t = 1000)]
        steps: i64,
        /// Experiment name (created if missing).
        #[arg(long, default_value = "synthetic")]
        experiment: String,
        /// Flush every N steps and print `flushed STEP` after each flush.
        #[arg(long)]
        flush_every: Option<i64>,
        /// Sleep this many milliseconds per step.
        #[arg(long, default_value_t = 0)]
        step_delay_ms: u64,
        /// Leave the simulation running (do not complete it).
        #[arg(long)]
        no_complete: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum By {
    Kind,
    Policy,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Conflict {
    Error,
    Skip,
    Replace,
}

impl From<Conflict> for OnConflict {
    fn from(c: Conflict) -> Self {
        match c {
            Conflict::Error => OnConflict::Error,
            Conflict::Skip => OnConflict::Skip,
            Conflict::Replace => OnConflict::Replace,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open(url: &Option<String>) -> Result<SimulationService> {
    let url = url.as_deref().ok_or_else(|| Error::InvalidUrl {
        url: String::new(),
        reason: "no database: pass --database-url or set SIMDB_DATABASE_URL".into(),
    })?;
    Ok(SimulationService::new(Database::open(url)?))
}

fn sim_id(text: &str) -> Result<SimulationId> {
    SimulationId::new(text)
}

/// An experiment by id, else by name.
fn experiment(svc: &SimulationService, text: &str) -> Result<ExperimentId> {
    if let Ok(id) = ExperimentId::new(text) {
        if let Ok(exp) = svc.experiment(&id) {
            return Ok(exp.id);
        }
    }
    Ok(svc.experiment_by_name(text)?.id)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn fmt_num(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e7 || v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

/// A line on stderr that rewrites itself, only when stderr is a terminal.
struct Progress {
    on: bool,
    label: &'static str,
}

impl Progress {
    fn new(label: &'static str) -> Self {
        Progress {
            on: std::io::stderr().is_terminal(),
            label,
        }
    }
    fn update(&self, n: u64) {
        if self.on {
            eprint!("\r{}: {n} lines", self.label);
            let _ = std::io::stderr().flush();
        }
    }
    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let json_out = cli.json;
    match cli.command {
        Command::Migrate => {
            let svc = open(&cli.database_url)?;
            let db = svc.database();
            let applied = db.applied_migrations()?;
            let embedded = db.embedded_migrations()?;
            if json_out {
                print_json(
                    &json!({"applied": applied, "embedded": embedded, "backend": format!("{:?}", db.backend())}),
                )?;
            } else {
                println!("database: {} ({:?})", db.url(), db.backend());
                for v in &embedded {
                    println!(
                        "{v}  {}",
                        if applied.contains(v) {
                            "applied"
                        } else {
                            "pending"
                        }
                    );
                }
            }
        }
        Command::Experiments => {
            let svc = open(&cli.database_url)?;
            let exps = svc.list_experiments()?;
            if json_out {
                print_json(&exps)?;
            } else {
                let mut t = Table::new(&["id", "name", "created", "description"]);
                for e in exps {
                    t.row(vec![
                        e.id.to_string(),
                        e.name,
                        e.created_at.format("%F %T").to_string(),
                        e.description,
                    ]);
                }
                t.print();
            }
        }
        Command::Sims {
            experiment: exp,
            status,
            tag,
            params,
            ranges,
            limit,
        } => {
            let svc = open(&cli.database_url)?;
            let mut filter = SimulationFilter::new();
            if let Some(e) = exp {
                filter = filter.experiment(&experiment(&svc, &e)?);
            }
            if let Some(s) = status {
                filter = filter.status(s.parse::<SimulationStatus>()?);
            }
            if let Some(t) = tag {
                filter = filter.tag(t);
            }
            let mut query = ParameterQuery::new(filter);
            for p in &params {
                query = args::equals_arg(query, p)?;
            }
            for r in &ranges {
                query = args::range_arg(query, r)?;
            }
            let mut sims = svc.analytics().find_simulations(&query)?;
            if let Some(l) = limit {
                sims.truncate(l.max(0) as usize);
            }
            if json_out {
                print_json(&sims)?;
            } else {
                let mut t = Table::new(&["id", "status", "experiment", "created", "parameters"]);
                for s in sims {
                    t.row(vec![
                        s.id.to_string(),
                        s.status.to_string(),
                        fmt_opt(s.experiment_id),
                        s.created_at.format("%F %T").to_string(),
                        s.parameters.to_string(),
                    ]);
                }
                t.print();
            }
        }
        Command::Show { sim, steps } => {
            let svc = open(&cli.database_url)?;
            let id = sim_id(&sim)?;
            let summary = svc.analytics().summary(&id)?;
            let agents = svc.agents(&id)?;
            let latest = match summary.latest_step.as_ref().map(|s| s.step) {
                Some(last) => svc.steps(&id, (last - steps.max(1) + 1)..=last)?,
                None => Vec::new(),
            };
            if json_out {
                print_json(&json!({"summary": summary, "agents": agents, "latest_steps": latest}))?;
            } else {
                let s = &summary.simulation;
                println!("simulation   {}", s.id);
                println!("status       {}", s.status);
                println!("experiment   {}", fmt_opt(s.experiment_id.as_ref()));
                println!("parameters   {}", s.parameters);
                println!(
                    "duration     {}",
                    summary
                        .duration_secs
                        .map_or("-".into(), |d| format!("{d:.1}s"))
                );
                println!(
                    "steps        {} (last step with states: {})",
                    summary.steps,
                    fmt_opt(summary.last_step)
                );
                println!("agents       {}", summary.agents);
                println!("rows         {}", summary.agent_state_rows);
                println!(
                    "reward       total {} mean {}",
                    fmt_num(summary.total_reward),
                    summary.mean_reward.map_or("-".into(), fmt_num)
                );
                if let Some(r) = &s.results_summary {
                    println!("results      {r}");
                }
                if let Some(e) = &s.error_message {
                    println!("error        {e}");
                }
                println!();
                let mut t = Table::new(&[
                    "agent",
                    "name",
                    "kind",
                    "policy",
                    "rows",
                    "total reward",
                    "mean reward",
                ]);
                for a in &agents {
                    let stats = summary.per_agent.iter().find(|p| p.agent == a.agent_index);
                    t.row(vec![
                        a.agent_index.to_string(),
                        fmt_opt(a.name.as_ref()),
                        fmt_opt(a.kind.as_ref()),
                        match (&a.policy_name, a.policy_version) {
                            (Some(p), Some(v)) => format!("{p}@{v}"),
                            (Some(p), None) => p.clone(),
                            _ => "-".into(),
                        },
                        stats.map_or("0".into(), |p| p.rows.to_string()),
                        stats.map_or("-".into(), |p| fmt_num(p.total_reward)),
                        stats
                            .and_then(|p| p.mean_reward)
                            .map_or("-".into(), fmt_num),
                    ]);
                }
                t.print();
                if !latest.is_empty() {
                    println!();
                    let mut t = Table::new(&["step", "recorded", "metrics"]);
                    for st in &latest {
                        t.row(vec![
                            st.step.to_string(),
                            st.recorded_at.format("%F %T%.3f").to_string(),
                            st.metrics.to_string(),
                        ]);
                    }
                    t.print();
                }
            }
        }
        Command::Compare {
            experiment: exp,
            fields,
            csv,
        } => {
            let svc = open(&cli.database_url)?;
            let id = experiment(&svc, &exp)?;
            let names: Vec<&str> = fields.iter().map(String::as_str).collect();
            let cmp = svc.analytics().compare(&id, &names)?;
            if json_out {
                print_json(&cmp)?;
            } else if csv {
                print!("{}", cmp.to_csv());
            } else {
                let mut header = vec!["simulation".to_string(), "status".to_string()];
                header.extend(cmp.parameter_columns.iter().cloned());
                for f in &cmp.fields {
                    header.push(format!("final {f}"));
                    header.push(format!("mean {f}"));
                }
                let refs: Vec<&str> = header.iter().map(String::as_str).collect();
                let mut t = Table::new(&refs);
                for r in &cmp.rows {
                    let mut cells = vec![r.simulation.to_string(), r.status.to_string()];
                    for c in &cmp.parameter_columns {
                        cells.push(r.parameters.get(c).map_or("-".into(), |v| v.to_string()));
                    }
                    for f in &cmp.fields {
                        cells.push(
                            r.final_values
                                .get(f)
                                .copied()
                                .flatten()
                                .map_or("-".into(), fmt_num),
                        );
                        cells.push(
                            r.mean_values
                                .get(f)
                                .copied()
                                .flatten()
                                .map_or("-".into(), fmt_num),
                        );
                    }
                    t.row(cells);
                }
                t.print();
            }
        }
        Command::Leaderboard {
            experiment: exp,
            by,
        } => {
            let svc = open(&cli.database_url)?;
            let id = experiment(&svc, &exp)?;
            let by = match by {
                By::Kind => GroupBy::Kind,
                By::Policy => GroupBy::Policy,
                By::Agent => GroupBy::Agent,
            };
            let rows = svc.analytics().leaderboard(&id, by)?;
            if json_out {
                print_json(&rows)?;
            } else {
                let mut t = Table::new(&[
                    "rank",
                    "group",
                    "sims",
                    "agents",
                    "rows",
                    "total reward",
                    "mean reward",
                ]);
                for r in rows {
                    t.row(vec![
                        r.rank.to_string(),
                        r.group,
                        r.simulations.to_string(),
                        r.agents.to_string(),
                        r.rows.to_string(),
                        fmt_num(r.total_reward),
                        fmt_num(r.mean_reward),
                    ]);
                }
                t.print();
            }
        }
        Command::Watch {
            sim,
            interval,
            timeout,
        } => {
            let svc = open(&cli.database_url)?;
            let id = sim_id(&sim)?;
            let analytics = svc.analytics();
            let tty = std::io::stdout().is_terminal();
            let started = std::time::Instant::now();
            let mut cursor = None;
            loop {
                let p = analytics.progress(&id, cursor)?;
                cursor = Some(p.cursor);
                if json_out {
                    println!(
                        "{}",
                        serde_json::to_string(&json!({
                            "status": p.status, "latest_step": p.latest_step, "rows": p.rows,
                            "rows_per_sec": p.rows_per_sec, "heartbeat_age_secs": p.heartbeat_age_secs,
                            "new_steps": p.new_steps.len(),
                        }))?
                    );
                } else {
                    let line = format!(
                        "{} {} step {} rows {} ({}/s) heartbeat {}",
                        id,
                        p.status,
                        fmt_opt(p.latest_step),
                        p.rows,
                        p.rows_per_sec.map_or("-".into(), |r| format!("{r:.0}")),
                        p.heartbeat_age_secs
                            .map_or("-".into(), |a| format!("{a:.1}s ago")),
                    );
                    if tty {
                        print!("\r\x1b[2K{line}");
                        let _ = std::io::stdout().flush();
                    } else {
                        println!("{line}");
                    }
                }
                if p.status.is_final() || p.status == SimulationStatus::Interrupted {
                    if tty && !json_out {
                        println!();
                    }
                    break;
                }
                if timeout.is_some_and(|t| started.elapsed().as_secs_f64() >= t) {
                    if tty && !json_out {
                        println!();
                    }
                    eprintln!("watch: timed out, {id} is still {}", p.status);
                    return Ok(ExitCode::from(3));
                }
                std::thread::sleep(Duration::from_secs_f64(interval.max(0.05)));
            }
        }
        Command::Recover { max_age } => {
            let svc = open(&cli.database_url)?;
            let ids = svc.recover_stale(Duration::from_secs(max_age))?;
            if json_out {
                print_json(&ids)?;
            } else if ids.is_empty() {
                println!("no stale running simulations");
            } else {
                for id in ids {
                    println!("interrupted {id}");
                }
            }
        }
        Command::Export { sim, format, out } => {
            let svc = open(&cli.database_url)?;
            let id = sim_id(&sim)?;
            let progress = Progress::new("export");
            let io = |path: &PathBuf| {
                let p = path.display().to_string();
                move |source| Error::Io { path: p, source }
            };
            let count = match (&out, format) {
                (Some(path), Format::Jsonl) => svc.export_jsonl_with_progress(
                    &id,
                    std::fs::File::create(path).map_err(io(path))?,
                    |n| progress.update(n),
                )?,
                (Some(path), Format::Csv) => {
                    svc.export_csv(&id, std::fs::File::create(path).map_err(io(path))?)?
                }
                (None, Format::Jsonl) => {
                    svc.export_jsonl_with_progress(&id, std::io::stdout().lock(), |n| {
                        progress.update(n)
                    })?
                }
                (None, Format::Csv) => svc.export_csv(&id, std::io::stdout().lock())?,
            };
            progress.done();
            if out.is_some() {
                eprintln!(
                    "exported {count} {}",
                    if format == Format::Csv {
                        "rows"
                    } else {
                        "lines"
                    }
                );
            }
        }
        Command::Import { file, on_conflict } => {
            let svc = open(&cli.database_url)?;
            let progress = Progress::new("import");
            let outcome =
                svc.import_jsonl_with_progress(&file, on_conflict.into(), |n| progress.update(n))?;
            progress.done();
            report_import(json_out, &outcome)?;
        }
        Command::Copy {
            from,
            to,
            sims,
            on_conflict,
        } => {
            let source = SimulationService::new(Database::open(&from)?);
            let target = SimulationService::new(Database::open(&to)?);
            let ids: Vec<SimulationId> = if sims.is_empty() {
                source
                    .list_simulations(&SimulationFilter::new())?
                    .into_iter()
                    .rev()
                    .map(|s| s.id)
                    .collect()
            } else {
                sims.iter().map(|s| sim_id(s)).collect::<Result<_>>()?
            };
            // Check every id first so that a typo copies nothing.
            for id in &ids {
                source.simulation(id)?;
            }
            for id in &ids {
                let tmp = std::env::temp_dir().join(format!(
                    "simdb-copy-{}-{}.jsonl",
                    std::process::id(),
                    id
                ));
                let progress = Progress::new("copy");
                let file = std::fs::File::create(&tmp).map_err(|e| Error::Io {
                    path: tmp.display().to_string(),
                    source: e,
                })?;
                let result = source
                    .export_jsonl_with_progress(id, file, |n| progress.update(n))
                    .and_then(|_| {
                        target.import_jsonl_with_progress(&tmp, on_conflict.into(), |n| {
                            progress.update(n)
                        })
                    });
                progress.done();
                let _ = std::fs::remove_file(&tmp);
                report_import(json_out, &result?)?;
            }
        }
        Command::Plot {
            sim,
            field,
            out,
            buckets,
        } => {
            let svc = open(&cli.database_url)?;
            let id = sim_id(&sim)?;
            let points = svc
                .analytics()
                .step_aggregates(&id, field.as_str(), buckets)?;
            if points.is_empty() {
                return Err(Error::InvalidInput {
                    field: "--field",
                    reason: format!("no `{field}` values recorded for {id}"),
                });
            }
            plot::band(&out, &format!("{field} — {id}"), &field, &points)?;
            eprintln!("wrote {} ({} points)", out.display(), points.len());
        }
        Command::Synth {
            agents,
            steps,
            experiment: exp_name,
            flush_every,
            step_delay_ms,
            no_complete,
        } => {
            let svc = open(&cli.database_url)?;
            synth(
                &svc,
                agents,
                steps,
                &exp_name,
                flush_every,
                step_delay_ms,
                !no_complete,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_import(json_out: bool, outcome: &simdb::ImportOutcome) -> Result<()> {
    if json_out {
        return print_json(outcome);
    }
    match outcome {
        simdb::ImportOutcome::Imported { simulation, lines } => {
            println!("imported {simulation} ({lines} lines)")
        }
        simdb::ImportOutcome::Skipped { simulation } => println!("skipped {simulation} (exists)"),
    }
    Ok(())
}

/// Deterministic pseudo-random walk per agent; prints the id, then
/// `flushed STEP` after every acknowledged flush.
fn synth(
    svc: &SimulationService,
    agents: i32,
    steps: i64,
    exp_name: &str,
    flush_every: Option<i64>,
    delay_ms: u64,
    complete: bool,
) -> Result<()> {
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
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(2_000))?;
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
        }
        rec.step(
            step,
            &json!({"mean_x": x.iter().sum::<f64>() / x.len().max(1) as f64}),
        )?;
        if let Some(every) = flush_every {
            if every > 0 && (step + 1) % every == 0 {
                rec.flush()?;
                println!("flushed {step}");
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
