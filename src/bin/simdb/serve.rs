//! `simdb serve`: the live dashboard (feature `serve`).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use simdb::Result;

use crate::resolve::open_read;

/// Arguments of `simdb serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. The default is this machine only; pass e.g.
    /// 0.0.0.0:8750 to let others in (the dashboard is read-only and has no
    /// login).
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub bind: SocketAddr,
}

/// Serve the dashboard until interrupted; the database is opened read-only.
pub fn serve(url: &Option<String>, _json_out: bool, args: ServeArgs) -> Result<ExitCode> {
    let svc = open_read(url)?;
    simdb::serve::serve(svc, args.bind, |addr| {
        // The one line a script waits for (port 0 picks a free port).
        println!("simdb dashboard on http://{addr}/");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
