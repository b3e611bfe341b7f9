//! The agent page: one agent up close — every field of it over steps, its
//! state at a chosen step as formatted JSON, its memory snapshots, its kind
//! and policy.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::chart::{self, Figure, View, ViewOptions};
use super::pages::{chart_figure, encode, frame, link, view_form, Live, Page};
use super::{blocking, AppState, Failure};
use crate::analytics::{flatten_json, StepAggregate};
use crate::error::{Error, Result};
use crate::ids::{AgentIndex, SimulationId};

/// At most this many numeric state fields get a chart of their own.
const STATE_CHARTS: usize = 12;

/// `?step=N`: the step whose state is shown (default: the watermark).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StepQuery {
    pub(crate) step: Option<String>,
}

/// The chosen step, or `default` when none is given.
pub(crate) fn chosen_step(q: &StepQuery, default: i64) -> Result<i64> {
    match q.step.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| Error::invalid("step", format!("`{text}` is not a step number"))),
    }
}

/// The numeric leaves of a state (`pos.0`, `energy`, …), by path.
pub(crate) fn numeric_leaves(state: &Value) -> Vec<(String, f64)> {
    flatten_json(state)
        .into_iter()
        .filter_map(|(path, v)| v.as_f64().map(|n| (path, n)))
        .collect()
}

/// An agent's points in at most `buckets` buckets of equal steps: each a
/// count, mean, minimum and maximum.
fn bucketed(points: &[(i64, f64)], buckets: usize) -> Vec<StepAggregate> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Vec::new();
    };
    let span = last.0 - first.0 + 1;
    let width = (span + buckets as i64 - 1) / (buckets.max(1) as i64);
    let width = width.max(1);
    let mut out: Vec<StepAggregate> = Vec::new();
    for &(step, v) in points {
        let bucket = (step - first.0) / width;
        match out.last_mut() {
            Some(a) if (a.first_step - first.0) / width == bucket => {
                a.last_step = step;
                a.count += 1;
                a.sum += v;
                a.mean = a.sum / a.count as f64;
                a.min = a.min.min(v);
                a.max = a.max.max(v);
            }
            _ => out.push(StepAggregate {
                first_step: step,
                last_step: step,
                count: 1,
                sum: v,
                mean: v,
                min: v,
                max: v,
                std_dev: None,
            }),
        }
    }
    out
}

/// One agent's field over steps: its value (a bucket's mean when a bucket
/// holds several steps) and, by default when it does, the bucket's
/// min–max.
fn agent_figure(agent: i32, field: &str, points: &[(i64, f64)], view: &ViewOptions) -> Figure {
    let buckets = bucketed(points, view.buckets);
    let several = buckets.iter().any(|b| b.count > 1);
    let mut figure = Figure {
        title: format!("{field}, agent {agent}"),
        x_label: "step".into(),
        ..Figure::default()
    };
    if view.band.unwrap_or(several) {
        figure.bands.push(chart::min_max_band(
            "min–max of the bucket's steps".into(),
            chart::PALETTE[0],
            &buckets,
        ));
    }
    let label = if several {
        format!("agent {agent}, bucket mean")
    } else {
        format!("agent {agent}")
    };
    figure
        .lines
        .push(chart::mean_line(label, chart::PALETTE[0], 2, &buckets));
    figure
}

/// `GET /charts/{id}/agents/{agent}/{field}?…` ([`View`]).
pub(crate) async fn chart(
    State(app): State<AppState>,
    Path((id, agent, field)): Path<(String, i32, String)>,
    Query(view): Query<View>,
) -> std::result::Result<Response, Failure> {
    let options = view.options()?;
    let name = format!("{field}-agent-{agent}");
    let drawn = blocking(move || {
        let id = SimulationId::new(&id)?;
        let points = app.svc.analytics().agent_series(
            &id,
            AgentIndex(agent),
            field.as_str(),
            options.steps(),
        )?;
        chart::render(agent_figure(agent, &field, &points, &options), &options)
    })
    .await?;
    Ok(chart::respond(&drawn, options.format, &name)?)
}

/// `GET /simulations/{id}/agents/{agent}?step=N&…`.
pub(crate) async fn page(
    State(app): State<AppState>,
    Path((id, agent)): Path<(String, i32)>,
    Query(at): Query<StepQuery>,
    Query(view): Query<View>,
) -> Page {
    view.options()?;
    let (sim, registered, fields, step, state, memories) = blocking(move || {
        let id = SimulationId::new(&id)?;
        let svc = &app.svc;
        let sim = svc.simulation(&id)?;
        let registered = svc
            .agents(&id)?
            .into_iter()
            .find(|a| a.agent_index.0 == agent)
            .ok_or_else(|| Error::not_found("agent", format!("{agent} of {id}")))?;
        let fields = svc.analytics().recorded_fields(&id)?;
        let default = sim.committed_step.unwrap_or(0).max(0);
        let step = chosen_step(&at, default)?;
        let state = svc.agent_states(&id, AgentIndex(agent), step..=step)?.pop();
        let memories = svc.memory_summaries(&id, AgentIndex(agent))?;
        Ok((sim, registered, fields, step, state, memories))
    })
    .await?;
    let id = sim.id.as_str().to_string();
    let mut charted = vec!["reward".to_string()];
    charted.extend(fields.agent_metrics.iter().cloned());
    if let Some(s) = &state {
        charted.extend(
            numeric_leaves(&s.state)
                .into_iter()
                .take(STATE_CHARTS)
                .map(|(path, _)| format!("state.{path}")),
        );
    }
    let page_path = format!("{}/agents/{agent}", link("simulations", &id));
    let content = html! {
        h1 { "Agent " (agent) @if let Some(name) = &registered.name { " · " (name) } }
        p {
            "of " a href=(link("simulations", &id)) { (sim.name.clone().unwrap_or_else(|| id.clone())) }
            " · kind " b id="kind" { (registered.kind.clone().unwrap_or_else(|| "(none)".into())) }
            " · policy " b id="policy" {
                (registered.policy_name.clone().unwrap_or_else(|| "(none)".into()))
                @if let Some(v) = registered.policy_version { " v" (v) }
            }
            @if let Some(uri) = &registered.checkpoint_uri { " · checkpoint " code { (uri) } }
        }
        h2 { "State at step " (step) }
        form method="get" action=(page_path) {
            label { "step " input id="step-box" name="step" type="number" min="0" value=(step); }
            button type="submit" { "show" }
        }
        @match &state {
            Some(s) => {
                p { "reward " b id="reward" { (format!("{:.6}", s.reward)) } }
                pre id="state" { (serde_json::to_string_pretty(&s.state).unwrap_or_default()) }
            }
            None => { p id="state" { "No state recorded at step " (step) "." } }
        }
        h2 { "Memory snapshots" }
        @if memories.is_empty() {
            p { "none" }
        } @else {
            table id="memories" {
                thead { tr { th { "step" } th { "dtype" } th { "shape" } th { "bytes" } } }
                tbody {
                    @for m in &memories {
                        tr { td { (m.step) } td { (m.dtype) } td { code { (super::pages::compact(&m.shape)) } } td { (m.bytes) } }
                    }
                }
            }
        }
        h2 { "Over steps" }
        (view_form(&page_path, &[("step", step.to_string())], &view))
        div id="charts" {
            @for f in &charted {
                (chart_figure(f, &format!("/charts/{}/agents/{agent}/{}?{}", encode(&id), encode(f), view.query()), None))
            }
        }
    };
    Ok(frame(
        &format!("agent {agent}"),
        Live {
            page: "agent",
            sim: Some(id.clone()),
            ..Live::default()
        },
        content,
    ))
}

#[cfg(test)]
mod tests {
    use super::bucketed;

    #[test]
    fn an_agents_points_fall_in_equal_buckets() {
        let points: Vec<(i64, f64)> = (0..10).map(|s| (s, s as f64)).collect();
        let b = bucketed(&points, 3);
        // 10 steps in at most 3 buckets: 4 steps each.
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].first_step, b[0].last_step, b[0].count), (0, 3, 4));
        assert_eq!((b[0].min, b[0].max, b[0].mean), (0.0, 3.0, 1.5));
        assert_eq!((b[2].first_step, b[2].last_step, b[2].count), (8, 9, 2));
        assert_eq!(bucketed(&points, 200).len(), 10);
        assert!(bucketed(&[], 5).is_empty());
    }
}
