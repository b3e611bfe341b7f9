//! What the benches share: reading the process's memory figures.

/// A memory figure of this process from `/proc/self/status` (`VmRSS:`,
/// `VmHWM:` for the peak), in MiB.
pub fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
