//! Finding simulations by their parameters.

use serde_json::Value;

use super::Analytics;
use crate::error::Result;
use crate::models::Simulation;
use crate::store::prelude::*;
use crate::store::SimulationFilter;
use crate::with_connection;

/// Parameter conditions for [`Analytics::find_simulations`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParameterQuery {
    /// Restricts by experiment, status, tag (as for `list_simulations`).
    pub filter: SimulationFilter,
    /// `path == value` conditions; a path is dot-separated (`optimizer.lr`,
    /// `layers.0`).
    pub equals: Vec<(String, Value)>,
    /// `lo <= path <= hi` numeric conditions (either bound optional).
    pub ranges: Vec<(String, Option<f64>, Option<f64>)>,
}

impl ParameterQuery {
    /// Every simulation that `filter` admits.
    pub fn new(filter: SimulationFilter) -> Self {
        ParameterQuery {
            filter,
            ..Default::default()
        }
    }
    /// Adds `path == value`.
    pub fn equals(mut self, path: &str, value: Value) -> Self {
        self.equals.push((path.to_string(), value));
        self
    }
    /// Adds `lo <= path <= hi` (numbers only).
    pub fn range(mut self, path: &str, lo: Option<f64>, hi: Option<f64>) -> Self {
        self.ranges.push((path.to_string(), lo, hi));
        self
    }
}

/// The value at a dot-separated path.
fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Analytics {
    /// Simulations whose parameters match every condition, newest first.
    /// Conditions are evaluated on the parsed parameters, never spliced into
    /// SQL.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty path.
    pub fn find_simulations(&self, query: &ParameterQuery) -> Result<Vec<Simulation>> {
        for (path, _) in &query.equals {
            crate::ids::validate_text("parameter path", path, 256)?;
        }
        for (path, _, _) in &query.ranges {
            crate::ids::validate_text("parameter path", path, 256)?;
        }
        let sims = with_connection!(self.db.connection()?, |c| c.list_simulations(&query.filter))?;
        Ok(sims
            .into_iter()
            .filter(|s| {
                query.equals.iter().all(|(path, want)| {
                    at_path(&s.parameters, path).is_some_and(|v| json_equal(v, want))
                }) && query.ranges.iter().all(|(path, lo, hi)| {
                    at_path(&s.parameters, path)
                        .and_then(Value::as_f64)
                        .is_some_and(|v| lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi))
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_paths() {
        let v = json!({"a": {"b": 1, "c": [10, {"d": "x"}]}});
        assert_eq!(at_path(&v, "a.c.0"), Some(&json!(10)));
        assert_eq!(at_path(&v, "a.zz"), None);
        assert!(json_equal(&json!(1), &json!(1.0)));
    }
}
