//! The dashboard's HTML pages. maud escapes every string it interpolates,
//! so names, parameters, tags, kinds and messages are text, never markup.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

use super::api::{self, ListQuery};
use super::chart::View;
use super::{blocking, AppState, Failure};
use crate::analytics::{Comparison, ComparisonRow, LeaderboardRow};
use crate::ids::{ExperimentId, SimulationId};
use crate::models::Experiment;

pub(crate) type Page = std::result::Result<Html<String>, Failure>;

/// What a page may load: its own script, images and API, and nothing
/// else (no inline script, no other origin); chart images the live script
/// fetched arrive as `blob:` URLs. Every response carries it
/// (`super::security_headers`).
pub(crate) const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
img-src 'self' blob:; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; \
frame-ancestors 'none'";

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;\
padding:.25em .6em;text-align:left;vertical-align:top}th a{color:inherit}\
.status-running{color:#1565c0}.status-completed{color:#2e7d32}.status-failed{color:#c62828}\
figure{display:inline-block;margin:0 1em 1em 0}code{font-size:12px}form *{margin-right:.5em}\
.hover{font-family:monospace;color:#444}.swatch{display:inline-block;width:12px;height:12px;\
border-radius:2px;margin-right:.4em;vertical-align:middle}img.chart{cursor:crosshair}";

/// The view form of a page of charts: a step range, smoothing, log scale,
/// the band; `hidden` carries the page's own parameters.
pub(crate) fn view_form(action: &str, hidden: &[(&str, String)], view: &View) -> Markup {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        form method="get" action=(action) id="view" {
            @for (name, v) in hidden {
                input type="hidden" name=(name) value=(v);
            }
            label { "steps from " input name="from" size="7" value=(value(&view.from)); }
            label { "to " input name="to" size="7" value=(value(&view.to)); }
            label { "smoothing " input name="smooth" size="4" placeholder="0–0.99" value=(value(&view.smooth)); }
            label { input type="checkbox" name="log" value="1" checked[view.log.as_deref() == Some("1")]; " log scale" }
            label { "band " select name="band" {
                option value="" { "auto" }
                option value="1" selected[view.band.as_deref() == Some("1")] { "on" }
                option value="0" selected[view.band.as_deref() == Some("0")] { "off" }
            } }
            button type="submit" { "apply" }
            " "
            a href=(action_without_view(action, hidden)) { "reset" }
            " · drag across a chart to zoom"
        }
    }
}

fn action_without_view(action: &str, hidden: &[(&str, String)]) -> String {
    if hidden.is_empty() {
        return action.to_string();
    }
    format!("{action}?{}", query_text(hidden))
}

/// `k=v&k=v`, each value percent-encoded.
pub(crate) fn query_text(parts: &[(&str, String)]) -> String {
    parts
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A chart of the page: the image (its data in `data-src`, for the live
/// script's values under the mouse and zoom), its point count on a live
/// page (`version`: the watermark it was drawn at), and links that download
/// its data.
pub(crate) fn chart_figure(field: &str, src: &str, version: Option<i64>) -> Markup {
    let sep = if src.contains('?') { "&" } else { "?" };
    html! {
        figure data-field=(field) data-src=(src) {
            img class="chart" width="900" height="300" alt={ "chart of " (field) }
                src={ (src) (sep) "v=" (version.unwrap_or(-1)) };
            figcaption {
                (field) " · "
                @if version.is_some() { span class="points" { } " · " }
                a class="csv" href={ (src) (sep) "format=csv" } download { "CSV" } " · "
                a class="json" href={ (src) (sep) "format=json" } download { "JSON" } " "
                span class="hover" { }
            }
        }
    }
}

/// What the live script reads from `<body>`'s `data-*` attributes.
#[derive(Default)]
pub(crate) struct Live {
    pub(crate) page: &'static str,
    pub(crate) query: Option<String>,
    pub(crate) sim: Option<String>,
    pub(crate) committed_step: Option<i64>,
}

/// The page frame.
pub(crate) fn frame(title: &str, live: Live, content: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (title) " — simdb" }
                    style { (STYLE) }
                }
                body data-page=(live.page) data-query=[live.query] data-sim=[live.sim]
                    data-committed-step=[live.committed_step] {
                    p { a href="/" { "simdb" } }
                    (content)
                    script src="/live.js" {}
                }
            }
        }
        .into_string(),
    )
}

/// A read replica's lag, as the list page says it.
fn replica_line(r: &crate::ReplicaStatus) -> String {
    match (&r.error, r.lag_bytes, r.lag_seconds) {
        (Some(e), _, _) => format!("{} does not answer ({e})", r.url),
        (None, Some(0), _) => format!("{} is up to date", r.url),
        (None, bytes, secs) => format!(
            "{} is {} bytes, {} s behind",
            r.url,
            bytes.map_or("?".into(), |b| b.to_string()),
            secs.map_or("?".into(), |s| format!("{s:.1}"))
        ),
    }
}

pub(crate) fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A measured number for a table: six significant digits at most,
/// trailing zeros dropped (`1068.0000000000384` reads `1068`).
pub(crate) fn significant(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let decimals = (5.0 - v.abs().log10().floor()).clamp(0.0, 12.0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

pub(crate) fn number(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.4}"))
}

pub(crate) async fn index(State(app): State<AppState>, Query(q): Query<ListQuery>) -> Page {
    let query_string = {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &q.status),
            ("tag", &q.tag),
            ("param", &q.param),
            ("experiment", &q.experiment),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    let form = q.clone();
    let (experiments, sims, replicas) = blocking(move || {
        Ok((
            app.svc.list_experiments()?,
            api::list(&app.svc, &q)?,
            app.svc.database().replica_status(),
        ))
    })
    .await?;
    let content = html! {
        h1 { "Simulations" }
        @if !replicas.is_empty() {
            p class="replicas" {
                "Read from replicas: "
                @for (i, r) in replicas.iter().enumerate() {
                    @if i > 0 { "; " }
                    (replica_line(r))
                }
            }
        }
        form method="get" action="/" {
            label { "status " select name="status" {
                option value="" { "any" }
                @for s in ["pending", "running", "completed", "failed", "cancelled", "interrupted"] {
                    option value=(s) selected[form.status.as_deref() == Some(s)] { (s) }
                }
            } }
            label { "tag " input name="tag" value=(form.tag.clone().unwrap_or_default()); }
            label { "parameter " input name="param" placeholder="opt.lr=0.01" value=(form.param.clone().unwrap_or_default()); }
            button type="submit" { "filter" }
        }
        form id="compare-form" method="get" action="/compare" {
            button type="submit" { "compare selected" }
            " runs on one chart per field, or "
            a href={ "/compare" (query_string) } { "compare every run listed" }
        }
        table {
            thead { tr { th { "" } th { "simulation" } th { "status" } th { "steps" } th { "rows" } th { "rows/s" } th { "heartbeat age" } th { "tags" } th { "parameters" } } }
            tbody id="simulations" {
                @for item in &sims {
                    tr data-id=(item.simulation.id.as_str()) {
                        td { input type="checkbox" name="sim" form="compare-form" value=(item.simulation.id.as_str()); }
                        td { a href=(link("simulations", item.simulation.id.as_str())) { (item.simulation.name.clone().unwrap_or_else(|| item.simulation.id.to_string())) } }
                        td class={ "status-" (item.simulation.status) } { (item.simulation.status) }
                        td { (item.progress.latest_step.map_or(0, |s| s + 1)) }
                        td { (item.progress.rows) }
                        td { (item.progress.rows_per_sec.map_or_else(String::new, |r| format!("{r:.0}"))) }
                        td { (liveness(&item.progress)) }
                        td { (item.tags.join(", ")) }
                        td { code { (compact(&item.simulation.parameters)) } }
                    }
                }
            }
        }
        h2 { "Experiments" }
        table {
            thead { tr { th { "experiment" } th { "description" } th { "created" } } }
            tbody {
                @for e in &experiments { (experiment_row(e)) }
            }
        }
    };
    Ok(frame(
        "Simulations",
        Live {
            page: "list",
            query: Some(query_string),
            ..Live::default()
        },
        content,
    ))
}

fn experiment_row(e: &Experiment) -> Markup {
    html! {
        tr {
            td { a href=(link("experiments", e.id.as_str())) { (e.name) } }
            td { (e.description) }
            td { (e.created_at.format("%Y-%m-%d %H:%M")) }
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The heartbeat's age while a run may record, when it ended once it did
/// (the live script writes the same, `live.js`).
fn liveness(p: &crate::analytics::Progress) -> String {
    match (p.ended_at, p.heartbeat_age_secs) {
        (Some(at), _) => format!("ended {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
        (None, Some(age)) => format!("{age:.1} s"),
        (None, None) => String::new(),
    }
}

/// The path of a page of `kind` (`simulations`, `experiments`) for a
/// user-given id, the id percent-encoded as one path segment: an id such
/// as `a/b?c#d` links to its own page, never to another path or query.
pub(crate) fn link(kind: &str, id: &str) -> String {
    format!("/{kind}/{}", encode(id))
}

pub(crate) async fn simulation(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(view): Query<View>,
) -> Page {
    view.options()?;
    let (detail, events, experiment) = blocking(move || {
        let id = SimulationId::new(&id)?;
        let detail = api::detail(&app.svc, &id)?;
        let experiment = match &detail.summary.simulation.experiment_id {
            Some(exp) => Some(app.svc.experiment(exp)?),
            None => None,
        };
        Ok((detail, app.svc.events(&id)?, experiment))
    })
    .await?;
    let sim = &detail.summary.simulation;
    let id = sim.id.as_str().to_string();
    let mut fields = vec!["reward".to_string()];
    fields.extend(detail.fields.agent_metrics.iter().cloned());
    fields.extend(detail.fields.simulation_metrics.iter().cloned());
    let p = &detail.progress;
    let content = html! {
        h1 { (sim.name.clone().unwrap_or_else(|| id.clone())) }
        p {
            "id " code { (id) } " · status " b id="status" { (p.status) }
            " · steps " span id="steps" { (p.latest_step.map_or(0, |s| s + 1)) }
            " · rows " span id="rows" { (p.rows) }
            " · rows/s " span id="rate" { (p.rows_per_sec.map_or_else(String::new, |r| format!("{r:.0}"))) }
            " · heartbeat age " span id="heartbeat" { (liveness(p)) }
        }
        @if let Some(exp) = &experiment {
            p { "experiment " a href=(link("experiments", exp.id.as_str())) { (exp.name) } }
        }
        p { "tags: " (detail.tags.join(", ")) }
        p { "parameters: " code { (compact(&sim.parameters)) } }
        p { a id="inspect" href={ (link("simulations", &id)) "/steps" } { "inspect a step: every agent" } }
        h2 { "Charts" }
        (view_form(&link("simulations", &id), &[], &view))
        div id="charts" {
            @for f in &fields {
                (chart_figure(f, &format!("/charts/{}/{}?{}", encode(&id), encode(f), view.query()), Some(p.cursor.step)))
            }
        }
        h2 { "Agents" }
        table {
            thead { tr { th { "agent" } th { "kind" } th { "rows" } th { "total reward" } th { "mean reward" } } }
            tbody id="agents" {
                @for a in &detail.summary.per_agent {
                    tr { td { a href={ (link("simulations", &id)) "/agents/" (a.agent.0) } { (a.agent.0) } } td { (a.kind.clone().unwrap_or_default()) } td { (a.rows) } td { (format!("{:.4}", a.total_reward)) } td { (number(a.mean_reward)) } }
                }
            }
        }
        h2 { "Results" }
        @if let Some(summary) = &sim.results_summary {
            pre { (serde_json::to_string_pretty(summary).unwrap_or_default()) }
        } @else {
            p { "no results summary yet" }
        }
        @if let Some(message) = &sim.error_message {
            p { "error: " (message) }
        }
        h2 { "Events" }
        table {
            thead { tr { th { "when" } th { "kind" } th { "status" } th { "message" } } }
            tbody {
                @for e in &events {
                    tr {
                        td { (e.occurred_at.format("%Y-%m-%d %H:%M:%S")) }
                        td { (e.kind) }
                        td { (e.from_status.map(|s| s.to_string()).unwrap_or_default()) " → " (e.to_status.map(|s| s.to_string()).unwrap_or_default()) }
                        td { (e.message.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    };
    Ok(frame(
        &sim.name.clone().unwrap_or_else(|| id.clone()),
        Live {
            page: "simulation",
            sim: Some(id.clone()),
            committed_step: Some(p.cursor.step),
            ..Live::default()
        },
        content,
    ))
}

/// `?sort=<column>&desc=1&by=kind|policy|agent`: the comparison's order
/// (`simulation`, `param:<path>`, `final:<field>`, `mean:<field>`) and the
/// leaderboard's grouping.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CompareQuery {
    sort: Option<String>,
    desc: Option<String>,
    by: Option<String>,
}

/// The value of a comparison column, for sorting (numbers before text,
/// missing last).
fn column_value(row: &ComparisonRow, column: &str) -> (u8, f64, String) {
    let found = if let Some(path) = column.strip_prefix("param:") {
        row.parameters.get(path).cloned()
    } else if let Some(field) = column.strip_prefix("final:") {
        row.final_values
            .get(field)
            .copied()
            .flatten()
            .map(Value::from)
    } else if let Some(field) = column.strip_prefix("mean:") {
        row.mean_values
            .get(field)
            .copied()
            .flatten()
            .map(Value::from)
    } else {
        Some(Value::from(row.simulation.as_str()))
    };
    match found {
        Some(Value::Number(n)) => (0, n.as_f64().unwrap_or(f64::NAN), String::new()),
        Some(Value::String(s)) => (1, 0.0, s),
        Some(other) => (1, 0.0, other.to_string()),
        None => (2, 0.0, String::new()),
    }
}

fn sorted(mut cmp: Comparison, column: &str, desc: bool) -> Comparison {
    cmp.rows.sort_by(|a, b| {
        let (ka, kb) = (column_value(a, column), column_value(b, column));
        let by_value = ka.1.total_cmp(&kb.1).then_with(|| ka.2.cmp(&kb.2));
        let by_value = if desc { by_value.reverse() } else { by_value };
        ka.0.cmp(&kb.0).then(by_value)
    });
    cmp
}

pub(crate) async fn experiment(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Page {
    let by = q.by.clone();
    let (exp, cmp, board) = blocking(move || {
        let id = ExperimentId::new(&id)?;
        let by = api::group_by(by.as_deref())?;
        Ok((
            app.svc.experiment(&id)?,
            api::comparison(&app.svc, &id)?,
            app.svc.analytics().leaderboard(&id, by)?,
        ))
    })
    .await?;
    let column = q.sort.clone().unwrap_or_else(|| "simulation".into());
    let desc = q.desc.as_deref() == Some("1");
    let cmp = sorted(cmp, &column, desc);
    let mut columns: Vec<(String, String)> = vec![("simulation".into(), "simulation".into())];
    columns.extend(
        cmp.parameter_columns
            .iter()
            .map(|p| (format!("param:{p}"), p.clone())),
    );
    for f in &cmp.fields {
        columns.push((format!("final:{f}"), format!("final {f}")));
        columns.push((format!("mean:{f}"), format!("mean {f}")));
    }
    let base = link("experiments", exp.id.as_str());
    let content = html! {
        h1 { (exp.name) }
        p { (exp.description) }
        h2 { "Parameters against results" }
        form id="compare-form" method="get" action="/compare" {
            button type="submit" { "compare selected" } " or "
            a href={ "/compare?experiment=" (encode(exp.id.as_str())) } { "compare every run" }
        }
        table id="compare" {
            thead { tr {
                th { "" }
                @for (key, label) in &columns {
                    th { a href={ (base) "?sort=" (encode(key)) "&desc=" (if key == &column && !desc { "1" } else { "0" }) } { (label) } }
                }
            } }
            tbody {
                @for row in &cmp.rows {
                    tr {
                        td { input type="checkbox" name="sim" form="compare-form" value=(row.simulation.as_str()); }
                        @for (key, _) in &columns {
                            @if key == "simulation" {
                                td { a href=(link("simulations", row.simulation.as_str())) { (row.simulation.as_str()) } }
                            } @else {
                                td data-column=(key) { (cell_text(row, key)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Leaderboard" }
        p {
            "by " a href={ (base) "?by=kind" } { "kind" } " · "
            a href={ (base) "?by=policy" } { "policy" } " · "
            a href={ (base) "?by=agent" } { "agent" }
        }
        (leaderboard_table(&board))
    };
    Ok(frame(
        &exp.name,
        Live {
            page: "experiment",
            ..Live::default()
        },
        content,
    ))
}

fn cell_text(row: &ComparisonRow, key: &str) -> String {
    match column_value(row, key) {
        (0, n, _) => format!("{n:.4}"),
        (1, _, s) => s,
        _ => String::new(),
    }
}

fn leaderboard_table(rows: &[LeaderboardRow]) -> Markup {
    html! {
        table id="leaderboard" {
            thead { tr { th { "rank" } th { "group" } th { "simulations" } th { "agents" } th { "rows" } th { "mean reward" } } }
            tbody {
                @for r in rows {
                    tr { td { (r.rank) } td { (r.group) } td { (r.simulations) } td { (r.agents) } td { (r.rows) } td { (format!("{:.4}", r.mean_reward)) } }
                }
            }
        }
    }
}

/// The live-update script (simdb's own, served with the pages).
pub(crate) async fn live_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("live.js"),
    )
}
