//! What every command prints with: JSON, numbers, and a progress line.

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

/// A progress spinner on stderr with a line count (indicatif draws it
/// only when stderr is a terminal).
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A spinner labelled `label`.
    pub fn new(label: &'static str) -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {pos} lines ({per_sec})")
        {
            bar.set_style(style);
        }
        bar.set_prefix(label);
        Progress { bar }
    }
    /// Shows `n` lines done.
    pub fn update(&self, n: u64) {
        self.bar.set_position(n);
    }
    /// Ends the spinner.
    pub fn done(&self) {
        self.bar.finish_and_clear();
    }
}
