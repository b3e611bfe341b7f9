//! `simdb backup`: a consistent copy of a SQLite database, even while
//! recorders write into it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use simdb::Result;

use crate::output::print_json;
use crate::resolve::open_read;

/// Arguments of `simdb backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The copy to write (must not exist).
    #[arg(long)]
    pub to: PathBuf,
}

/// Copy a SQLite database consistently (VACUUM INTO), then check the copy.
pub fn backup(url: &Option<String>, json_out: bool, args: BackupArgs) -> Result<ExitCode> {
    let svc = open_read(url)?;
    let bytes = svc.database().backup_to(&args.to)?;
    if json_out {
        print_json(
            &json!({"path": args.to.display().to_string(), "bytes": bytes, "integrity": "ok"}),
        )?;
    } else {
        println!(
            "backed up to {} ({bytes} bytes), integrity ok",
            args.to.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
