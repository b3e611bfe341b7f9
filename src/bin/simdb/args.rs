//! Parsing of `--param PATH=VALUE` and `--param-range PATH=LO..HI`.
//!
//! Kept free of clap so that the fuzz target and the fuzz regression test
//! can include this file as it is.

use serde_json::Value;
use simdb::{Error, ParameterQuery, Result};

/// Adds a condition written `PATH=VALUE`; VALUE is JSON, or else taken as a
/// string (`env=grid` is `env == "grid"`).
///
/// # Errors
/// [`Error::InvalidInput`](crate::Error::InvalidInput) without `=` or with an empty path.
pub fn equals_arg(query: ParameterQuery, arg: &str) -> Result<ParameterQuery> {
    let (path, value) = arg
        .split_once('=')
        .filter(|(p, _)| !p.is_empty())
        .ok_or_else(|| Error::InvalidInput {
            field: "parameter condition",
            reason: format!("`{arg}` is not PATH=VALUE"),
        })?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok(query.equals(path, value))
}

/// Adds a range written `PATH=LO..HI`, either bound optional.
///
/// # Errors
/// [`Error::InvalidInput`](crate::Error::InvalidInput) unless it has that form with finite numeric bounds.
pub fn range_arg(query: ParameterQuery, arg: &str) -> Result<ParameterQuery> {
    let parsed = arg
        .split_once('=')
        .filter(|(p, _)| !p.is_empty())
        .and_then(|(path, range)| {
            let (lo, hi) = range.split_once("..")?;
            let bound = |s: &str| {
                if s.is_empty() {
                    Some(None)
                } else {
                    s.parse::<f64>().ok().filter(|v| v.is_finite()).map(Some)
                }
            };
            Some((path, bound(lo)?, bound(hi)?))
        });
    let (path, lo, hi) = parsed.ok_or_else(|| Error::InvalidInput {
        field: "parameter range",
        reason: format!("`{arg}` is not PATH=LO..HI"),
    })?;
    Ok(query.range(path, lo, hi))
}

/// A number of seconds: finite and not negative (`inf`, `nan` and `-1` are
/// refused, not silently replaced).
pub fn seconds(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1e9).contains(&v) => Ok(v),
        Ok(_) => Err(format!(
            "`{text}` is not a finite number of seconds between 0 and 1e9"
        )),
        Err(_) => Err(format!("`{text}` is not a number of seconds")),
    }
}

/// A poll interval: as [`seconds`], and at least 0.01 s.
pub fn interval(text: &str) -> std::result::Result<f64, String> {
    let v = seconds(text)?;
    if v < 0.01 {
        return Err(format!(
            "`{text}` is shorter than the smallest interval, 0.01 s"
        ));
    }
    Ok(v)
}
