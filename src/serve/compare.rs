//! The comparison view: several runs on one chart per field, one line per
//! run (colour fixed by the run's id, so a run keeps its colour whatever
//! else is selected), or grouped by a parameter (one line per value: the
//! mean of its runs, with their spread).
//!
//! Runs are chosen by repeating `sim=ID` (the list's and experiment's
//! checkboxes), or, with no `sim`, by the list's filter (`experiment=`,
//! `tag=`, `param=`, `status=`).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use maud::html;
use plotters::style::RGBColor;
use serde_json::Value;

use super::api::{self, ListQuery};
use super::chart::{self, Band, Figure, Line, View, ViewOptions};
use super::pages::{chart_figure, compact, encode, frame, link, query_text, view_form, Live, Page};
use super::{blocking, AppState, Failure};
use crate::analytics::{flatten_json, Overlay};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::Simulation;
use crate::service::SimulationService;

/// What the comparison's query says.
#[derive(Debug, Clone, Default)]
struct Selection {
    sims: Vec<String>,
    filter: ListQuery,
    group: Option<String>,
    view: View,
}

impl Selection {
    fn parse(raw: Option<&str>) -> Result<Selection> {
        let mut s = Selection::default();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let v = v.into_owned();
            let set = |slot: &mut Option<String>| *slot = Some(v.clone());
            match k.as_ref() {
                "sim" if !s.sims.contains(&v) => s.sims.push(v),
                "sim" => {}
                "group" => set(&mut s.group),
                "experiment" => set(&mut s.filter.experiment),
                "tag" => set(&mut s.filter.tag),
                "param" => set(&mut s.filter.param),
                "status" => set(&mut s.filter.status),
                "from" => set(&mut s.view.from),
                "to" => set(&mut s.view.to),
                "smooth" => set(&mut s.view.smooth),
                "log" => set(&mut s.view.log),
                "band" => set(&mut s.view.band),
                "format" => set(&mut s.view.format),
                "buckets" => {
                    s.view.buckets =
                        Some(v.parse().map_err(|_| {
                            Error::invalid("buckets", format!("`{v}` is not a count"))
                        })?)
                }
                _ => {}
            }
        }
        s.group = s.group.filter(|g| !g.trim().is_empty());
        Ok(s)
    }

    /// The selected runs, in the order given (or the filter's order).
    fn runs(&self, svc: &SimulationService) -> Result<Vec<Simulation>> {
        if self.sims.is_empty() {
            return api::select(svc, &self.filter);
        }
        self.sims
            .iter()
            .map(|id| svc.simulation(&SimulationId::new(id)?))
            .collect()
    }

    /// The selection without the view: `sim=…&group=…` (or the filter).
    fn selection_query(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> =
            self.sims.iter().map(|s| ("sim", s.clone())).collect();
        if self.sims.is_empty() {
            for (k, v) in [
                ("experiment", &self.filter.experiment),
                ("tag", &self.filter.tag),
                ("param", &self.filter.param),
                ("status", &self.filter.status),
            ] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    out.push((k, v.to_string()));
                }
            }
        }
        if let Some(g) = &self.group {
            out.push(("group", g.clone()));
        }
        out
    }
}

/// A run's colour: a hue drawn from its id (FNV-1a), the same on every
/// chart and page.
pub(crate) fn run_color(id: &str) -> RGBColor {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let hue = (hash % 360) as f64;
    // HSL with saturation 0.65 and lightness 0.42, to RGB.
    let (s, l) = (0.65, 0.42);
    let c = (1.0 - (2.0 * l - 1.0f64).abs()) * s;
    let x = c * (1.0 - ((hue / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (hue / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(byte(r), byte(g), byte(b))
}

/// The parameters (flattened paths) whose values differ between `runs`,
/// and each run's values of them.
fn differing(runs: &[Simulation]) -> (Vec<String>, Vec<BTreeMap<String, Value>>) {
    let flat: Vec<BTreeMap<String, Value>> =
        runs.iter().map(|r| flatten_json(&r.parameters)).collect();
    let paths: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    let differ: Vec<String> = paths
        .into_iter()
        .filter(|p| {
            let first = flat.first().and_then(|f| f.get(*p));
            flat.iter().any(|f| f.get(*p) != first)
        })
        .cloned()
        .collect();
    (differ, flat)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

/// How each run is named in a legend: by its name when every selected run
/// has a distinct one, else by the parameters that differ between the
/// runs, else by its id.
fn run_labels(runs: &[Simulation]) -> Vec<String> {
    let names: BTreeSet<&str> = runs.iter().filter_map(|r| r.name.as_deref()).collect();
    if names.len() == runs.len() {
        return runs
            .iter()
            .map(|r| r.name.clone().unwrap_or_default())
            .collect();
    }
    let (differ, flat) = differing(runs);
    runs.iter()
        .zip(&flat)
        .map(|(run, params)| {
            let parts: Vec<String> = differ
                .iter()
                .filter_map(|p| params.get(p).map(|v| format!("{p}={}", value_text(v))))
                .collect();
            if parts.is_empty() {
                run.name.clone().unwrap_or_else(|| run.id.to_string())
            } else {
                parts.join(", ")
            }
        })
        .collect()
}

/// The figure of one field over the selected runs: a line per run (its
/// mean across agents; its min–max band when `band=1`), or, grouped, a line
/// per parameter value (the mean of its runs' means; their spread as the
/// band unless `band=0`).
pub(crate) fn overlay_figure(overlay: &Overlay, group: Option<&str>, view: &ViewOptions) -> Figure {
    let mut figure = Figure {
        title: overlay.field.clone(),
        x_label: "step".into(),
        ..Figure::default()
    };
    match group {
        None => {
            let runs: Vec<Simulation> = overlay.runs.iter().map(|r| r.simulation.clone()).collect();
            for (run, label) in overlay.runs.iter().zip(run_labels(&runs)) {
                let color = run_color(run.simulation.id.as_str());
                if view.band == Some(true) {
                    figure.bands.push(chart::min_max_band(
                        format!("{label} min–max"),
                        color,
                        &run.points,
                    ));
                }
                figure
                    .lines
                    .push(chart::mean_line(label, color, 2, &run.points));
            }
        }
        Some(path) => {
            for (i, g) in overlay.group_by(path).into_iter().enumerate() {
                let color = chart::PALETTE[i % chart::PALETTE.len()];
                let label = format!(
                    "{path}={} ({} run{})",
                    if g.value.is_null() {
                        "none".into()
                    } else {
                        value_text(&g.value)
                    },
                    g.simulations.len(),
                    if g.simulations.len() == 1 { "" } else { "s" }
                );
                let middle =
                    |p: &crate::analytics::GroupPoint| (p.first_step + p.last_step) as f64 / 2.0;
                // One run has no spread to show.
                if view.band.unwrap_or(g.simulations.len() > 1) {
                    figure.bands.push(Band {
                        label: format!("{label} spread"),
                        color,
                        points: g.points.iter().map(|p| (middle(p), p.min, p.max)).collect(),
                    });
                }
                figure.lines.push(Line {
                    label,
                    color,
                    width: 2,
                    points: g.points.iter().map(|p| (middle(p), p.mean)).collect(),
                });
            }
        }
    }
    figure
}

/// The fields to chart: the reward and every metric any selected run
/// recorded.
fn fields_of(svc: &SimulationService, runs: &[Simulation]) -> Result<Vec<String>> {
    let analytics = svc.analytics();
    let mut fields = BTreeSet::new();
    for run in runs {
        let recorded = analytics.recorded_fields(&run.id)?;
        fields.extend(recorded.agent_metrics);
        fields.extend(recorded.simulation_metrics);
    }
    let mut out = vec!["reward".to_string()];
    out.extend(fields);
    Ok(out)
}

/// `GET /compare?sim=…&sim=…&group=PATH&…`: the comparison view.
pub(crate) async fn page(State(app): State<AppState>, RawQuery(raw): RawQuery) -> Page {
    let selection = Selection::parse(raw.as_deref())?;
    selection.view.options()?;
    let chosen = selection.clone();
    let (runs, fields) = blocking(move || {
        let runs = chosen.runs(&app.svc)?;
        let fields = fields_of(&app.svc, &runs)?;
        Ok((runs, fields))
    })
    .await?;
    let (differ, flat) = differing(&runs);
    let labels = run_labels(&runs);
    let parameters: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    // The charts name their runs explicitly: a filter's answer may change
    // while the page is open.
    let mut chart_selection: Vec<(&str, String)> =
        runs.iter().map(|r| ("sim", r.id.to_string())).collect();
    if let Some(g) = &selection.group {
        chart_selection.push(("group", g.clone()));
    }
    let chart_query = {
        let view = selection.view.query();
        let base = query_text(&chart_selection);
        if view.is_empty() {
            base
        } else {
            format!("{base}&{view}")
        }
    };
    let hidden = selection.selection_query();
    let hidden_without_group: Vec<(&str, String)> = hidden
        .iter()
        .filter(|(k, _)| *k != "group")
        .cloned()
        .collect();
    let content = html! {
        h1 { "Comparing " (runs.len()) " run" (if runs.len() == 1 { "" } else { "s" }) }
        @if runs.is_empty() {
            p { "No runs selected: tick runs on the list or an experiment page." }
        }
        form method="get" action="/compare" id="group" {
            @for (k, v) in &hidden_without_group {
                input type="hidden" name=(k) value=(v);
            }
            label { "group by parameter " select name="group" {
                option value="" { "none: a line per run" }
                @for p in &parameters {
                    option value=(p) selected[selection.group.as_deref() == Some(p.as_str())] {
                        (p) @if differ.contains(p) { " (differs)" }
                    }
                }
            } }
            button type="submit" { "group" }
        }
        table id="runs" {
            thead { tr { th { "run" } th { "status" } @for p in &differ { th { (p) } } } }
            tbody {
                @for ((run, label), params) in runs.iter().zip(&labels).zip(&flat) {
                    tr data-id=(run.id.as_str()) {
                        td {
                            span class="swatch" style={ "background:" (chart::css(run_color(run.id.as_str()))) } {}
                            a href=(link("simulations", run.id.as_str())) { (label) }
                        }
                        td class={ "status-" (run.status) } { (run.status) }
                        @for p in &differ {
                            td { (params.get(p).map(value_text).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        (view_form("/compare", &hidden, &selection.view))
        @if !runs.is_empty() {
            div id="charts" {
                @for f in &fields {
                    (chart_figure(f, &format!("/compare/charts/{}?{}", encode(f), chart_query), None))
                }
            }
        }
    };
    Ok(frame(
        "Compare runs",
        Live {
            page: "compare",
            ..Live::default()
        },
        content,
    ))
}

/// `GET /compare/charts/{field}?sim=…&group=…&…` ([`View`]): one field of
/// the selected runs.
pub(crate) async fn chart(
    State(app): State<AppState>,
    Path(field): Path<String>,
    RawQuery(raw): RawQuery,
) -> std::result::Result<Response, Failure> {
    let selection = Selection::parse(raw.as_deref())?;
    let options = selection.view.options()?;
    let format = options.format;
    let name = field.clone();
    let drawn = blocking(move || {
        let ids = selection
            .sims
            .iter()
            .map(SimulationId::new)
            .collect::<Result<Vec<_>>>()?;
        let overlay =
            app.svc
                .analytics()
                .overlay(&ids, field.as_str(), options.steps(), options.buckets)?;
        chart::render(
            overlay_figure(&overlay, selection.group.as_deref(), &options),
            &options,
        )
    })
    .await?;
    Ok(chart::respond(&drawn, format, &name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_keeps_its_colour() {
        assert_eq!(run_color("sim-a"), run_color("sim-a"));
        assert_ne!(run_color("sim-a"), run_color("sim-b"));
    }

    #[test]
    fn repeated_sims_and_the_view_are_read_from_the_query() -> Result<()> {
        let s = Selection::parse(Some("sim=a%2Fb&sim=c&sim=a%2Fb&group=lr&from=3&log=1"))?;
        assert_eq!(s.sims, vec!["a/b".to_string(), "c".to_string()]);
        assert_eq!(s.group.as_deref(), Some("lr"));
        assert_eq!(s.view.from.as_deref(), Some("3"));
        assert!(s.view.options()?.log);
        Ok(())
    }
}
