//! Simulations against each other: `simdb compare`, `simdb leaderboard`.

use std::process::ExitCode;

use clap::Args;
use clap::ValueEnum;
use simdb::{GroupBy, Result};

use crate::output::{fmt_num, print_json};
use crate::resolve::{experiment, open_read};
use crate::table::Table;

/// Arguments of `simdb compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Experiment id or name.
    pub experiment: String,
    /// Fields to compare (reward or metric names).
    #[arg(long = "field", default_value = "reward")]
    pub fields: Vec<String>,
    /// Print CSV.
    #[arg(long)]
    pub csv: bool,
}

/// Arguments of `simdb leaderboard`.
#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    /// Experiment id or name.
    pub experiment: String,
    /// Group by kind, policy or agent.
    #[arg(long, value_enum, default_value_t = By::Kind)]
    pub by: By,
}

/// One row per simulation of an experiment: parameters and metrics.
pub fn compare(url: &Option<String>, json_out: bool, args: CompareArgs) -> Result<ExitCode> {
    let CompareArgs {
        experiment: exp,
        fields,
        csv,
    } = args;
    let svc = open_read(url)?;
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
    Ok(ExitCode::SUCCESS)
}

/// Rank agent groups of an experiment by mean reward.
pub fn leaderboard(
    url: &Option<String>,
    json_out: bool,
    args: LeaderboardArgs,
) -> Result<ExitCode> {
    let LeaderboardArgs {
        experiment: exp,
        by,
    } = args;
    let svc = open_read(url)?;
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
    Ok(ExitCode::SUCCESS)
}

/// How `simdb leaderboard` groups agents.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum By {
    /// By agent kind.
    Kind,
    /// By policy name and version.
    Policy,
    /// Each agent on its own.
    Agent,
}
