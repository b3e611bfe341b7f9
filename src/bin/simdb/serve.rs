//! `simdb serve`: the live dashboard (feature `serve`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use simdb::serve::AccessToken;
use simdb::{Error, Result};

use crate::resolve::open_read;

/// Arguments of `simdb serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. The default is this machine only, without a
    /// token. Any other address (e.g. 0.0.0.0:8750) requires an access
    /// token: the one in --token-file, or one generated now and printed
    /// once, in the address to open.
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub bind: SocketAddr,
    /// A file holding the access token (at least 16 characters: ASCII
    /// letters, digits, '-', '_', '.'); required of every request, on any
    /// address.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// Serve the dashboard until interrupted; the database is opened read-only.
pub fn serve(url: &Option<String>, _json_out: bool, args: ServeArgs) -> Result<ExitCode> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            Some(AccessToken::new(&text)?)
        }
        None if args.bind.ip().is_loopback() => None,
        None => Some(AccessToken::generate()?),
    };
    // Printed only where the user did not choose it: a token from a file
    // is already theirs.
    let shown = if args.token_file.is_none() {
        token.as_ref().map(|t| t.as_str().to_string())
    } else {
        None
    };
    let svc = open_read(url)?;
    simdb::serve::serve_with(svc, args.bind, token, |addr| {
        // The one line a script waits for (port 0 picks a free port).
        match &shown {
            Some(token) => println!("simdb dashboard on http://{addr}/?token={token}"),
            None => println!("simdb dashboard on http://{addr}/"),
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
