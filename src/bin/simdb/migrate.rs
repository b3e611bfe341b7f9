//! `simdb migrate`: apply and list migrations.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use simdb::Result;

use crate::output::print_json;
use crate::resolve::open;

#[derive(Debug, Args)]
pub struct MigrateArgs {}

/// Apply pending migrations (done by every command) and show their status.
pub fn migrate(url: &Option<String>, json_out: bool, _args: MigrateArgs) -> Result<ExitCode> {
    let svc = open(url)?;
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
    Ok(ExitCode::SUCCESS)
}
