//! `simdb`: look at, move and plot simulations without writing Rust.
//!
//! This file holds the argument tree and the dispatch; each command group
//! lives in its own file.

mod args;
mod backup;
mod browse;
mod compare;
mod migrate;
mod output;
mod plot;
mod resolve;
#[cfg(feature = "serve")]
mod serve;
mod synth;
mod table;
mod transfer;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use simdb::Result;

/// Look at, follow, compare, plot and move the simulation runs your engine
/// recorded with simdb — in a SQLite file or a PostgreSQL database.
#[derive(Debug, Parser)]
#[command(name = "simdb", version)]
struct Cli {
    /// Database: sqlite://PATH, a file path, or postgres://user:pw@host/db.
    #[arg(
        long,
        short = 'd',
        env = "SIMDB_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// PostgreSQL: a hot standby of the database that the reading commands
    /// (sims, show, compare, leaderboard, watch, plot, export, serve) read
    /// from; repeat for several. When none answers they read the primary.
    #[arg(
        long,
        global = true,
        env = "SIMDB_READ_REPLICA",
        hide_env_values = true
    )]
    read_replica: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations and show their status. The commands that
    /// write (import, copy into its target, recover, synth) migrate too; the
    /// reading ones open read-only and never do: run this after upgrading.
    Migrate(migrate::MigrateArgs),
    /// List experiments.
    Experiments(browse::ExperimentsArgs),
    /// List simulations, newest first.
    Sims(browse::SimsArgs),
    /// Summary, agents and latest steps of a simulation.
    Show(browse::ShowArgs),
    /// One row per simulation of an experiment: parameters and metrics.
    Compare(compare::CompareArgs),
    /// Rank agent groups of an experiment by mean reward.
    Leaderboard(compare::LeaderboardArgs),
    /// Follow a simulation's progress until it ends.
    Watch(watch::WatchArgs),
    /// Mark running simulations without a heartbeat for MAX_AGE seconds as interrupted.
    Recover(watch::RecoverArgs),
    /// Export a simulation (JSONL is lossless; CSV has one row per agent-step).
    Export(transfer::ExportArgs),
    /// Import a JSONL export, all or nothing.
    Import(transfer::ImportArgs),
    /// Copy a SQLite database consistently while recorders write (PostgreSQL: use pg_dump).
    Backup(backup::BackupArgs),
    /// Copy simulations between databases (public ids kept).
    Copy(transfer::CopyArgs),
    /// Plot a field over steps: mean across agents with a min-max band (SVG).
    Plot(plot::PlotArgs),
    /// Record a synthetic simulation: for trying simdb, load tests and crash drills.
    Synth(synth::SynthArgs),
    /// Serve a live, read-only web dashboard of the database (feature `serve`).
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let (url, json) = (&cli.database_url, cli.json);
    resolve::read_replicas(cli.read_replica);
    match cli.command {
        Command::Migrate(args) => migrate::migrate(url, json, args),
        Command::Experiments(args) => browse::experiments(url, json, args),
        Command::Sims(args) => browse::sims(url, json, args),
        Command::Show(args) => browse::show(url, json, args),
        Command::Compare(args) => compare::compare(url, json, args),
        Command::Leaderboard(args) => compare::leaderboard(url, json, args),
        Command::Watch(args) => watch::watch(url, json, args),
        Command::Recover(args) => watch::recover(url, json, args),
        Command::Export(args) => transfer::export(url, json, args),
        Command::Import(args) => transfer::import(url, json, args),
        Command::Backup(args) => backup::backup(url, json, args),
        Command::Copy(args) => transfer::copy(url, json, args),
        Command::Plot(args) => plot::plot(url, json, args),
        Command::Synth(args) => synth::synth_command(url, json, args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::serve(url, json, args),
    }
}

/// Dies quietly on a closed pipe (`simdb sims | head`), as standard tools
/// do, instead of panicking in `println!`: Rust ignores SIGPIPE by default.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default before any
    // thread is spawned has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
