//! Live runs: `simdb watch`, `simdb recover`.

use std::process::ExitCode;

use clap::Args;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::json;
use simdb::{Result, SimulationStatus};

use crate::output::{fmt_opt, print_json};
use crate::resolve::{open, open_read, sim_id};

/// Arguments of `simdb watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Simulation id.
    pub sim: String,
    /// Seconds between polls.
    #[arg(long, default_value_t = 1.0, value_parser = crate::args::interval)]
    pub interval: f64,
    /// Give up after this many seconds (exit code 3).
    #[arg(long, value_parser = crate::args::seconds)]
    pub timeout: Option<f64>,
}

/// Arguments of `simdb recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Seconds without a heartbeat.
    #[arg(long, default_value_t = 300)]
    pub max_age: u64,
}

/// Follow a simulation's progress until it ends.
pub fn watch(url: &Option<String>, json_out: bool, args: WatchArgs) -> Result<ExitCode> {
    let WatchArgs {
        sim,
        interval,
        timeout,
    } = args;
    let svc = open_read(url)?;
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
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
    Ok(ExitCode::SUCCESS)
}

/// Mark running simulations without a heartbeat for MAX_AGE seconds as interrupted.
pub fn recover(url: &Option<String>, json_out: bool, args: RecoverArgs) -> Result<ExitCode> {
    let RecoverArgs { max_age } = args;
    let svc = open(url)?;
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
    Ok(ExitCode::SUCCESS)
}
