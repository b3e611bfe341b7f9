//! What every command prints with: JSON, numbers, and a progress line.

use std::io::{IsTerminal, Write};

use simdb::Result;

/// Prints one pretty JSON document.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A value, or `-` when absent.
pub fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// A number to 4 decimals, in scientific notation when very large or small.
pub fn fmt_num(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e7 || v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

/// A line on stderr that rewrites itself, only when stderr is a terminal.
pub struct Progress {
    on: bool,
    label: &'static str,
}

impl Progress {
    /// A progress line labelled `label`.
    pub fn new(label: &'static str) -> Self {
        Progress {
            on: std::io::stderr().is_terminal(),
            label,
        }
    }
    /// Shows `n` lines done.
    pub fn update(&self, n: u64) {
        if self.on {
            eprint!("\r{}: {n} lines", self.label);
            let _ = std::io::stderr().flush();
        }
    }
    /// Ends the line.
    pub fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}
