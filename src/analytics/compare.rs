//! Simulations side by side: flattened parameters against final and mean
//! values of fields.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::aggregates::AggregateStore;
use super::source::SourceStore;
use super::{Analytics, Field};
use crate::error::{Error, Result};
use crate::ids::{ExperimentId, SimulationId};
use crate::models::{Simulation, SimulationStatus};
use crate::store::prelude::*;
use crate::store::SimulationFilter;
use crate::with_connection;

/// One simulation in a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// The simulation.
    pub simulation: SimulationId,
    /// Its status.
    pub status: SimulationStatus,
    /// Parameters flattened to JSON paths (`a.b.0`) -> leaf value.
    pub parameters: BTreeMap<String, Value>,
    /// Per field: the mean across agents (or the value) at the last step.
    pub final_values: BTreeMap<String, Option<f64>>,
    /// Per field: the mean over all rows.
    pub mean_values: BTreeMap<String, Option<f64>>,
}

/// A comparison table: one row per simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Every parameter path that occurs in any row, sorted.
    pub parameter_columns: Vec<String>,
    /// The fields compared.
    pub fields: Vec<String>,
    /// The rows, in the order of the simulations given (newest first for an
    /// experiment).
    pub rows: Vec<ComparisonRow>,
}

impl Comparison {
    /// The table as CSV with a header: `simulation,status,<params...>,
    /// final_<field>,mean_<field>...`.
    pub fn to_csv(&self) -> String {
        let mut out = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["simulation".to_string(), "status".to_string()];
        header.extend(self.parameter_columns.iter().cloned());
        for f in &self.fields {
            header.push(format!("final_{f}"));
            header.push(format!("mean_{f}"));
        }
        // Writing to memory cannot fail.
        let _ = out.write_record(&header);
        for row in &self.rows {
            let mut cells = vec![row.simulation.to_string(), row.status.to_string()];
            for col in &self.parameter_columns {
                cells.push(match row.parameters.get(col) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                });
            }
            for f in &self.fields {
                for map in [&row.final_values, &row.mean_values] {
                    cells.push(
                        map.get(f)
                            .copied()
                            .flatten()
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                    );
                }
            }
            let _ = out.write_record(&cells);
        }
        let bytes = out.into_inner().unwrap_or_default();
        // Every cell was a `String`, so the bytes are UTF-8.
        String::from_utf8(bytes).unwrap_or_default()
    }
}

/// Flattens a JSON value into `path -> leaf` (objects by key, arrays by
/// index; an empty object or array inside is a leaf, an empty document has
/// no leaves).
pub fn flatten_json(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    walk(&join(k), v, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    walk(&join(&i.to_string()), v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    // An empty document has no leaves (not one leaf named "").
    let empty = matches!(value, Value::Object(m) if m.is_empty())
        || matches!(value, Value::Array(a) if a.is_empty());
    if !empty {
        walk("", value, &mut out);
    }
    out
}

impl Analytics {
    /// One row per simulation of `experiment`: flattened parameters and, per
    /// field, the final value (mean across agents at the last step, or the
    /// simulation-level metric's last value) and the mean over all rows.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown experiment.
    pub fn compare(&self, experiment: &ExperimentId, fields: &[&str]) -> Result<Comparison> {
        let sims = with_connection!(self.db.connection()?, |c| {
            c.find_experiment(experiment)?;
            c.list_simulations(&SimulationFilter::new().experiment(experiment))
        })?;
        let ids: Vec<SimulationId> = sims.into_iter().map(|s| s.id).collect();
        self.compare_simulations(&ids, fields)
    }

    /// As [`Analytics::compare`], for a list of simulations. A field that a
    /// simulation did not record has `None` there.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation, or a field none of
    /// them recorded.
    pub fn compare_simulations(&self, ids: &[SimulationId], fields: &[&str]) -> Result<Comparison> {
        let mut rows = Vec::with_capacity(ids.len());
        let mut columns = BTreeSet::new();
        let mut known = BTreeSet::new();
        for id in ids {
            let sim = self.simulation(id)?;
            let parameters = flatten_json(&sim.parameters);
            columns.extend(parameters.keys().cloned());
            let mut final_values = BTreeMap::new();
            let mut mean_values = BTreeMap::new();
            for name in fields {
                let found = self.final_and_mean(&sim, &Field::parse(name))?;
                if found.is_some() {
                    known.insert(*name);
                }
                let (last, mean) = found.unwrap_or((None, None));
                final_values.insert(name.to_string(), last);
                mean_values.insert(name.to_string(), mean);
            }
            rows.push(ComparisonRow {
                simulation: sim.id,
                status: sim.status,
                parameters,
                final_values,
                mean_values,
            });
        }
        // A field some simulation lacks is an empty cell; one that none of
        // them recorded is a mistake.
        if let Some(name) = fields
            .iter()
            .find(|f| !ids.is_empty() && !known.contains(*f))
        {
            return Err(Error::not_found(
                "field",
                format!("{name} (recorded by none of these simulations)"),
            ));
        }
        Ok(Comparison {
            parameter_columns: columns.into_iter().collect(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            rows,
        })
    }

    /// The final value (mean at the last step) and the mean over all rows
    /// of `field`; `None` if the simulation never recorded it.
    fn final_and_mean(
        &self,
        sim: &Simulation,
        field: &Field,
    ) -> Result<Option<(Option<f64>, Option<f64>)>> {
        with_connection!(self.db.connection()?, |c| {
            let source = match c.resolve(sim.sim_key, field) {
                Ok(source) => source,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some((lo, hi)) = c.step_span(sim.sim_key, &source)? else {
                // A state path no row has a number at: not recorded here.
                return Ok(match source {
                    super::source::Source::State(_) => None,
                    _ => Some((None, None)),
                });
            };
            // Buckets start at their origin: from `hi`, one bucket of the last step.
            let last = c.aggregate(sim.sim_key, &source, hi, hi, 1)?;
            let all = c.aggregate(sim.sim_key, &source, lo, hi, hi - lo + 1)?;
            let final_mean = last.first().map(|a| a.mean);
            let count: i64 = all.iter().map(|a| a.count).sum();
            let total: f64 = all.iter().map(|a| a.sum).sum();
            Ok(Some((
                final_mean,
                (count > 0).then(|| total / count as f64),
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens() {
        let v = json!({"a": {"b": 1, "c": [10, {"d": "x"}]}, "e": [], "f": null});
        let flat = flatten_json(&v);
        assert_eq!(flat.get("a.b"), Some(&json!(1)));
        assert_eq!(flat.get("a.c.1.d"), Some(&json!("x")));
        assert_eq!(flat.get("e"), Some(&json!([])));
        assert!(flatten_json(&json!({})).is_empty());
        assert!(flatten_json(&json!([])).is_empty());
    }
}
