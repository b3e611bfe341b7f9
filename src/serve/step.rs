//! The step inspector: every agent at one step — a table sortable by the
//! reward and each numeric field of the state, and a scatter of two of
//! those fields, one dot per agent coloured by kind.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::html;
use plotters::prelude::*;
use serde::Deserialize;

use super::agent::{chosen_step, numeric_leaves, StepQuery};
use super::chart::PALETTE;
use super::pages::{encode, frame, link, significant, Live, Page};
use super::{blocking, AppState, Failure};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::service::SimulationService;

/// At most this many state fields become columns.
const COLUMNS: usize = 24;

/// `?step=N&x=PATH&y=PATH&sort=COLUMN&desc=1`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct InspectQuery {
    x: Option<String>,
    y: Option<String>,
    sort: Option<String>,
    desc: Option<String>,
}

/// One agent at the step.
struct AgentRow {
    agent: i32,
    kind: String,
    reward: f64,
    fields: BTreeMap<String, f64>,
}

/// Every agent's row at `step`, and the numeric state fields any has (the
/// first [`COLUMNS`] of them, by path).
fn agents_at(
    svc: &SimulationService,
    id: &SimulationId,
    step: i64,
) -> Result<(Vec<AgentRow>, Vec<String>)> {
    let kinds: BTreeMap<i32, String> = svc
        .agents(id)?
        .into_iter()
        .map(|a| (a.agent_index.0, a.kind.unwrap_or_else(|| "(none)".into())))
        .collect();
    let rows: Vec<AgentRow> = svc
        .states_at_step(id, step)?
        .into_iter()
        .map(|s| AgentRow {
            agent: s.agent_index.0,
            kind: kinds.get(&s.agent_index.0).cloned().unwrap_or_default(),
            reward: s.reward,
            fields: numeric_leaves(&s.state).into_iter().collect(),
        })
        .collect();
    let paths: BTreeSet<&String> = rows.iter().flat_map(|r| r.fields.keys()).collect();
    let columns = paths.into_iter().take(COLUMNS).cloned().collect();
    Ok((rows, columns))
}

/// The sort key of a row by `column` (`agent`, `kind`, `reward` or a state
/// path); rows without the field go last.
fn sort_rows(rows: &mut [AgentRow], column: &str, desc: bool) {
    let key = |r: &AgentRow| -> (u8, f64, String) {
        match column {
            "agent" => (0, f64::from(r.agent), String::new()),
            "kind" => (0, 0.0, r.kind.clone()),
            "reward" => (0, r.reward, String::new()),
            path => match r.fields.get(path) {
                Some(v) => (0, *v, String::new()),
                None => (1, 0.0, String::new()),
            },
        }
    };
    rows.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        let by_value = ka.1.total_cmp(&kb.1).then_with(|| ka.2.cmp(&kb.2));
        let by_value = if desc { by_value.reverse() } else { by_value };
        ka.0.cmp(&kb.0).then(by_value).then(a.agent.cmp(&b.agent))
    });
}

/// `GET /simulations/{id}/steps?step=N&…`: default step the watermark.
pub(crate) async fn page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(at): Query<StepQuery>,
    Query(q): Query<InspectQuery>,
) -> Page {
    let (sim, latest, step, mut rows, columns) = blocking(move || {
        let id = SimulationId::new(&id)?;
        let sim = app.svc.simulation(&id)?;
        let latest = app
            .svc
            .analytics()
            .progress_of(std::slice::from_ref(&sim))?
            .pop()
            .and_then(|p| p.latest_step);
        let step = chosen_step(&at, sim.committed_step.unwrap_or(0).max(0))?;
        let (rows, columns) = agents_at(&app.svc, &id, step)?;
        Ok((sim, latest, step, rows, columns))
    })
    .await?;
    let id = sim.id.as_str().to_string();
    let column = q.sort.clone().unwrap_or_else(|| "agent".into());
    let desc = q.desc.as_deref() == Some("1");
    sort_rows(&mut rows, &column, desc);
    let x = q.x.clone().or_else(|| columns.first().cloned());
    let y =
        q.y.clone()
            .or_else(|| columns.get(1).cloned())
            .or_else(|| x.clone());
    let base = format!("{}/steps", link("simulations", &id));
    let keep = |extra: &str| {
        let mut parts = vec![format!("step={step}")];
        if let Some(x) = &x {
            parts.push(format!("x={}", encode(x)));
        }
        if let Some(y) = &y {
            parts.push(format!("y={}", encode(y)));
        }
        parts.push(extra.to_string());
        format!("{base}?{}", parts.join("&"))
    };
    let sortable: Vec<String> = ["agent", "kind", "reward"]
        .into_iter()
        .map(String::from)
        .chain(columns.iter().cloned())
        .collect();
    let top = latest.unwrap_or(0).max(step);
    let content = html! {
        h1 { "Step " (step) " of " a href=(link("simulations", &id)) { (sim.name.clone().unwrap_or_else(|| id.clone())) } }
        p { "watermark (every step up to it is complete): " b id="watermark" { (sim.committed_step.map_or_else(|| "none".into(), |s| s.to_string())) } }
        form method="get" action=(base) id="step-form" {
            label { "step " input id="step-box" name="step" type="number" min="0" value=(step); }
            input type="range" min="0" max=(top) value=(step) data-step-slider="step-box" aria-label="step";
            @if let Some(x) = &x { input type="hidden" name="x" value=(x); }
            @if let Some(y) = &y { input type="hidden" name="y" value=(y); }
            button type="submit" { "show" }
            @if step > 0 { " " a href={ (base) "?step=" (step - 1) } { "← previous" } }
            " " a href={ (base) "?step=" (step + 1) } { "next →" }
        }
        @if rows.is_empty() {
            p id="empty" { "No agent has a state at step " (step) "." }
        } @else {
            @if let (Some(xf), Some(yf)) = (&x, &y) {
                form method="get" action=(base) {
                    input type="hidden" name="step" value=(step);
                    label { "x " select name="x" { @for c in &columns { option value=(c) selected[c == xf] { (c) } } } }
                    label { "y " select name="y" { @for c in &columns { option value=(c) selected[c == yf] { (c) } } } }
                    button type="submit" { "plot" }
                }
                figure id="scatter" {
                    img width="700" height="460" alt={ (yf) " against " (xf) }
                        src={ "/charts/" (encode(&id)) "/steps/" (step) "/scatter?x=" (encode(xf)) "&y=" (encode(yf)) };
                }
            }
            table id="agents-at-step" {
                thead { tr {
                    @for c in &sortable {
                        th { a href=(keep(&format!("sort={}&desc={}", encode(c), if *c == column && !desc { "1" } else { "0" }))) { (c) } }
                    }
                } }
                tbody {
                    @for r in &rows {
                        tr data-agent=(r.agent) {
                            td { a href={ (link("simulations", &id)) "/agents/" (r.agent) "?step=" (step) } { (r.agent) } }
                            td { (r.kind) }
                            td data-column="reward" { (format!("{:.4}", r.reward)) }
                            @for c in &columns {
                                td data-column=(c) { (r.fields.get(c).map_or_else(String::new, |v| significant(*v))) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(
        &format!("step {step}"),
        Live {
            page: "step",
            sim: Some(id.clone()),
            ..Live::default()
        },
        content,
    ))
}

/// `?x=PATH&y=PATH`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScatterQuery {
    x: String,
    y: String,
}

fn drawing(e: impl std::fmt::Display) -> Error {
    Error::invalid("chart", e.to_string())
}

/// The scatter's SVG: one dot per agent that has both fields, coloured by
/// kind, the kinds named beside the plot.
fn scatter_svg(rows: &[AgentRow], x: &str, y: &str, step: i64) -> Result<String> {
    let kinds: BTreeSet<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let color_of = |kind: &str| {
        let i = kinds.iter().position(|k| *k == kind).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let points: Vec<(f64, f64, RGBColor)> = rows
        .iter()
        .filter_map(|r| Some((*r.fields.get(x)?, *r.fields.get(y)?, color_of(&r.kind))))
        .collect();
    let range = |vs: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = vs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        let pad = ((hi - lo).abs() * 0.05).max(0.5);
        (lo - pad, hi + pad)
    };
    let (x0, x1) = range(&mut points.iter().map(|p| p.0));
    let (y0, y1) = range(&mut points.iter().map(|p| p.1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (700, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (plot, legend) = root.split_horizontally(560);
        let mut chart = ChartBuilder::on(&plot)
            .caption(format!("step {step}: {y} against {x}"), ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc(x)
            .y_desc(y)
            .draw()
            .map_err(drawing)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|(px, py, c)| Circle::new((*px, *py), 4, c.mix(0.8).filled())),
            )
            .map_err(drawing)?;
        let font = ("sans-serif", 12).into_font().color(&BLACK);
        for (i, kind) in kinds.iter().enumerate() {
            let y = 34 + 16 * i as i32;
            legend
                .draw(&Circle::new((12, y), 4, color_of(kind).filled()))
                .map_err(drawing)?;
            legend
                .draw(&Text::new(kind.to_string(), (22, y - 6), font.clone()))
                .map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// `GET /charts/{id}/steps/{step}/scatter?x=&y=`.
pub(crate) async fn scatter(
    State(app): State<AppState>,
    Path((id, step)): Path<(String, i64)>,
    Query(q): Query<ScatterQuery>,
) -> std::result::Result<Response, Failure> {
    let svg = blocking(move || {
        let (rows, _) = agents_at(&app.svc, &SimulationId::new(&id)?, step)?;
        scatter_svg(&rows, &q.x, &q.y, step)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sort_by_any_column_missing_last() {
        let row = |agent, reward, e: Option<f64>| AgentRow {
            agent,
            kind: "k".into(),
            reward,
            fields: e.map(|e| ("energy".to_string(), e)).into_iter().collect(),
        };
        let mut rows = vec![
            row(0, 0.5, Some(3.0)),
            row(1, 0.1, None),
            row(2, 0.9, Some(1.0)),
        ];
        sort_rows(&mut rows, "energy", false);
        assert_eq!(
            rows.iter().map(|r| r.agent).collect::<Vec<_>>(),
            vec![2, 0, 1]
        );
        sort_rows(&mut rows, "reward", true);
        assert_eq!(
            rows.iter().map(|r| r.agent).collect::<Vec<_>>(),
            vec![2, 0, 1]
        );
        sort_rows(&mut rows, "agent", false);
        assert_eq!(
            rows.iter().map(|r| r.agent).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }
}
