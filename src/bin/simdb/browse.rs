//! Listing and showing: `simdb experiments`, `simdb sims`, `simdb show`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use simdb::{ParameterQuery, Result, SimulationFilter, SimulationStatus};

use crate::args;
use crate::output::{fmt_num, fmt_opt, print_json};
use crate::resolve::{experiment, open_read, sim_id};
use crate::table::Table;

#[derive(Debug, Args)]
pub struct ExperimentsArgs {}

/// Arguments of `simdb sims`.
#[derive(Debug, Args)]
pub struct SimsArgs {
    /// Experiment id or name.
    #[arg(long)]
    pub experiment: Option<String>,
    /// pending, running, completed, failed, cancelled or interrupted.
    #[arg(long)]
    pub status: Option<String>,
    /// Only simulations with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Parameter equality, PATH=JSON (e.g. optimizer.lr=0.001, env="grid").
    #[arg(long = "param", value_name = "PATH=VALUE")]
    pub params: Vec<String>,
    /// Parameter range, PATH=LO..HI (either side may be empty).
    #[arg(long = "param-range", value_name = "PATH=LO..HI")]
    pub ranges: Vec<String>,
    /// At most this many (after the conditions).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    pub limit: Option<i64>,
    /// Skip this many (pages with --limit).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    pub offset: Option<i64>,
    /// Order by a parameter path instead of newest first; `-path` descending.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub order_by: Option<String>,
}

/// Arguments of `simdb show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Simulation id.
    pub sim: String,
    /// How many of the latest steps to show.
    #[arg(long, default_value_t = 5)]
    pub steps: i64,
}

/// List experiments.
pub fn experiments(
    url: &Option<String>,
    json_out: bool,
    _args: ExperimentsArgs,
) -> Result<ExitCode> {
    let svc = open_read(url)?;
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
    Ok(ExitCode::SUCCESS)
}

/// List simulations, newest first.
pub fn sims(url: &Option<String>, json_out: bool, args: SimsArgs) -> Result<ExitCode> {
    let SimsArgs {
        experiment: exp,
        status,
        tag,
        params,
        ranges,
        limit,
        offset,
        order_by,
    } = args;
    let svc = open_read(url)?;
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
    if let Some(l) = limit {
        // Applied after the parameter conditions, in SQL.
        filter = filter.limit(l);
    }
    let mut query = ParameterQuery::new(filter);
    if let Some(path) = &order_by {
        let (path, descending) = match path.strip_prefix('-') {
            Some(p) => (p, true),
            None => (path.as_str(), false),
        };
        query = query.order_by(path, descending);
    }
    if let Some(o) = offset {
        query = query.offset(o);
    }
    for p in &params {
        query = args::equals_arg(query, p)?;
    }
    for r in &ranges {
        query = args::range_arg(query, r)?;
    }
    let sims = svc.analytics().find_simulations(&query)?;
    if json_out {
        print_json(&sims)?;
    } else {
        // Experiments by name (their ids are for machines).
        let names: std::collections::HashMap<String, String> = svc
            .list_experiments()?
            .into_iter()
            .map(|e| (e.id.to_string(), e.name))
            .collect();
        let mut t = Table::new(&["id", "status", "experiment", "created", "parameters"]);
        for s in sims {
            let experiment = s.experiment_id.as_ref().map(|e| {
                names
                    .get(e.as_str())
                    .cloned()
                    .unwrap_or_else(|| e.to_string())
            });
            t.row(vec![
                s.id.to_string(),
                s.status.to_string(),
                fmt_opt(experiment),
                s.created_at.format("%F %T").to_string(),
                s.parameters.to_string(),
            ]);
        }
        t.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// Summary, agents and latest steps of a simulation.
pub fn show(url: &Option<String>, json_out: bool, args: ShowArgs) -> Result<ExitCode> {
    let ShowArgs { sim, steps } = args;
    let svc = open_read(url)?;
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
    Ok(ExitCode::SUCCESS)
}
