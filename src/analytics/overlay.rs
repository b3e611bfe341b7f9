//! Several runs' aggregates of one field on shared step buckets, to draw
//! them on one chart; and the same grouped by a parameter (one line per
//! parameter value: the mean of its runs, with their spread).

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use serde::Serialize;
use serde_json::Value;

use super::aggregates::{bucket_width, clamp_span, AggregateStore, Buckets, StepAggregate};
use super::compare::flatten_json;
use super::source::{Source, SourceStore};
use super::{Analytics, Field};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::Simulation;
use crate::store::prelude::*;
use crate::store::step_bounds;
use crate::with_connection;

/// Runs compared at most at once (a chart of more lines is unreadable, and
/// every run costs one query).
pub const MAX_OVERLAY_RUNS: usize = 200;

/// One run's line of an [`Overlay`].
#[derive(Debug, Clone, Serialize)]
pub struct RunSeries {
    /// The run.
    pub simulation: Simulation,
    /// Its aggregates across agents in the overlay's buckets (empty when the
    /// run never recorded the field, or not in the window).
    pub points: Vec<StepAggregate>,
}

/// A field of several runs in shared step buckets: bucket `k` holds steps
/// `origin + k*width ..= origin + (k+1)*width - 1` in every run.
#[derive(Debug, Clone, Serialize)]
pub struct Overlay {
    /// The field, as named.
    pub field: String,
    /// The first step of the first bucket.
    pub origin: i64,
    /// Steps per bucket.
    pub width: i64,
    /// One line per run, in the order asked.
    pub runs: Vec<RunSeries>,
}

/// One bucket of a parameter group: the mean of its runs' bucket means and
/// their spread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupPoint {
    /// First step of the bucket with data in any run of the group.
    pub first_step: i64,
    /// Last such step.
    pub last_step: i64,
    /// Runs of the group with data in this bucket.
    pub runs: usize,
    /// The mean of their means.
    pub mean: f64,
    /// The lowest of their means.
    pub min: f64,
    /// The highest of their means.
    pub max: f64,
}

/// The runs of an overlay that share one value of a parameter.
#[derive(Debug, Clone, Serialize)]
pub struct ParameterGroup {
    /// The parameter's value (`null` for runs without it).
    pub value: Value,
    /// The runs in the group.
    pub simulations: Vec<SimulationId>,
    /// The group's line, bucket by bucket.
    pub points: Vec<GroupPoint>,
}

impl Overlay {
    /// The runs grouped by the parameter at `path` (dotted, as
    /// [`flatten_json`] names leaves), groups ordered by value (numbers
    /// numerically, then text, then runs without the parameter).
    pub fn group_by(&self, path: &str) -> Vec<ParameterGroup> {
        let mut groups: Vec<(Value, Vec<&RunSeries>)> = Vec::new();
        for run in &self.runs {
            let value = flatten_json(&run.simulation.parameters)
                .remove(path)
                .unwrap_or(Value::Null);
            match groups.iter_mut().find(|(v, _)| *v == value) {
                Some((_, runs)) => runs.push(run),
                None => groups.push((value, vec![run])),
            }
        }
        groups.sort_by(|a, b| value_order(&a.0, &b.0));
        groups
            .into_iter()
            .map(|(value, runs)| ParameterGroup {
                value,
                simulations: runs.iter().map(|r| r.simulation.id.clone()).collect(),
                points: self.merge(&runs),
            })
            .collect()
    }

    /// The bucket-by-bucket mean and spread of `runs`' means.
    fn merge(&self, runs: &[&RunSeries]) -> Vec<GroupPoint> {
        let width = self.width.max(1);
        let mut buckets: BTreeMap<i64, Vec<&StepAggregate>> = BTreeMap::new();
        for run in runs {
            for p in &run.points {
                buckets
                    .entry((p.first_step - self.origin).div_euclid(width))
                    .or_default()
                    .push(p);
            }
        }
        buckets
            .into_values()
            .filter_map(|points| {
                let first_step = points.iter().map(|p| p.first_step).min()?;
                let last_step = points.iter().map(|p| p.last_step).max()?;
                let means = points.iter().map(|p| p.mean);
                Some(GroupPoint {
                    first_step,
                    last_step,
                    runs: points.len(),
                    mean: means.clone().sum::<f64>() / points.len() as f64,
                    min: means.clone().fold(f64::INFINITY, f64::min),
                    max: means.fold(f64::NEG_INFINITY, f64::max),
                })
            })
            .collect()
    }
}

/// Numbers by value, then strings, then anything else by its text, then
/// null.
fn value_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Null => 3,
            _ => 2,
        }
    }
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(f64::NAN)
            .total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    })
}

impl Analytics {
    /// `field` (see [`Field`]) of each run in `ids`, aggregated across its
    /// agents in step buckets shared by every run: the buckets are laid over
    /// the steps any run has the field in `steps`, at most `buckets` of them
    /// (as [`Analytics::step_aggregates`] lays them over one run, except
    /// that buckets of 32 steps or more become whole 64-step blocks: origin
    /// and width multiples of 64, so that the reward and agent metrics are
    /// read from a row per block). A run that never recorded the field gets no
    /// points.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown simulation;
    /// [`Error::InvalidInput`] for no runs, more than [`MAX_OVERLAY_RUNS`],
    /// a run named twice, or a malformed state path.
    pub fn overlay(
        &self,
        ids: &[SimulationId],
        field: impl Into<Field>,
        steps: impl RangeBounds<i64>,
        buckets: usize,
    ) -> Result<Overlay> {
        let field = field.into();
        if ids.is_empty() || ids.len() > MAX_OVERLAY_RUNS {
            return Err(Error::invalid(
                "simulations",
                format!("compare 1 to {MAX_OVERLAY_RUNS} runs, not {}", ids.len()),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = ids.iter().find(|id| !seen.insert(*id)) {
            return Err(Error::invalid(
                "simulations",
                format!("{twice} is named twice"),
            ));
        }
        let window = step_bounds(&steps);
        with_connection!(self.db.connection()?, |c| {
            // Each run's source and span; a field a run never recorded is
            // no line, any other error is the answer.
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                let sim = c.find_simulation(id)?;
                let source = match c.resolve(sim.sim_key, &field) {
                    Ok(source) => Some(source),
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                let span = match &source {
                    Some(source) => c
                        .step_span(sim.sim_key, source)?
                        .and_then(|span| clamp_span(span, window)),
                    None => None,
                };
                found.push((sim, source, span));
            }
            let lo = found.iter().filter_map(|f| f.2).map(|s| s.0).min();
            let hi = found.iter().filter_map(|f| f.2).map(|s| s.1).max();
            let (origin, width) = match lo.zip(hi) {
                Some((lo, hi)) => aligned(lo, hi, buckets),
                None => (window.0.max(0), 1),
            };
            Ok((found, origin, width))
        })
        .and_then(|(found, origin, width)| {
            let runs = self.aggregate_runs(found, origin, width)?;
            Ok(Overlay {
                field: field.name(),
                origin,
                width,
                runs,
            })
        })
    }

    /// Each found run's aggregates from the shared `origin` (so bucket k is
    /// the same steps in every run; rows before a run's first step are
    /// none), on up to [`READERS`] connections at once: reading the
    /// rollups of many runs is the chart's cost.
    fn aggregate_runs(&self, found: Vec<Found>, origin: i64, width: i64) -> Result<Vec<RunSeries>> {
        let readers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, READERS);
        let per_reader = found.len().div_ceil(readers).max(1);
        let mut parts: Vec<Vec<Found>> = Vec::new();
        let mut rest = found.into_iter().peekable();
        while rest.peek().is_some() {
            parts.push(rest.by_ref().take(per_reader).collect());
        }
        let answers: Vec<Result<Vec<RunSeries>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| scope.spawn(move || self.aggregate_part(part, origin, width)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::invalid("overlay", "a reader thread panicked"))
                    })
                })
                .collect()
        });
        let mut runs = Vec::new();
        for answer in answers {
            runs.extend(answer?);
        }
        Ok(runs)
    }

    fn aggregate_part(&self, part: Vec<Found>, origin: i64, width: i64) -> Result<Vec<RunSeries>> {
        with_connection!(self.db.connection()?, |c| {
            let mut runs = Vec::with_capacity(part.len());
            for (sim, source, span) in part {
                let points = match (source, span) {
                    (Some(source), Some((run_lo, run_hi))) => c.aggregate_from(
                        sim.sim_key,
                        &source,
                        Buckets {
                            origin,
                            from: run_lo,
                            hi: run_hi,
                            width,
                        },
                    )?,
                    _ => Vec::new(),
                };
                runs.push(RunSeries {
                    simulation: sim,
                    points,
                });
            }
            Ok(runs)
        })
    }
}

/// The origin and width of at most `buckets` buckets over `lo..=hi`: as
/// [`Analytics::step_aggregates`] lays them, except that buckets of 32
/// steps or more become whole 64-step blocks (the origin a multiple of 64,
/// the width too; at most half the buckets asked for), read from the
/// block rollups.
fn aligned(lo: i64, hi: i64, buckets: usize) -> (i64, i64) {
    let width = bucket_width(lo, hi, buckets);
    if width < BLOCK_STEPS / 2 {
        return (lo, width);
    }
    let origin = lo - lo.rem_euclid(BLOCK_STEPS);
    let width = bucket_width(origin, hi, buckets);
    (
        origin,
        (width + BLOCK_STEPS - 1) / BLOCK_STEPS * BLOCK_STEPS,
    )
}

/// A run of an overlay: the simulation, the source of the field in it (if
/// it recorded the field) and its steps in the window.
type Found = (Simulation, Option<Source>, Option<(i64, i64)>);

/// Connections an overlay reads on at most at once.
const READERS: usize = 4;
