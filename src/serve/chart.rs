//! Charts as SVG, drawn on the server by plotters, and the same data as JSON
//! and CSV: lines (a mean) and bands (a min–max spread) over steps, with
//! the legend beside the plot, never over it. The view options every chart
//! takes ([`View`]: step range, smoothing, log scale, band) and the
//! simulation page's chart of one field live here; the comparison, agent
//! and step pages build their figures in their own files.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::api::{field_series, FieldSeries};
use super::{blocking, AppState, Failure};
use crate::analytics::StepAggregate;
use crate::error::{Error, Result};
use crate::ids::SimulationId;

/// Kind colours (and the first lines of an agent's page).
pub(crate) const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// The whole image, and the part of it the plot takes (the rest holds the
/// legend).
const SIZE: (u32, u32) = (900, 300);
const PLOT_WIDTH: u32 = 700;

fn drawing(e: impl std::fmt::Display) -> Error {
    Error::InvalidInput {
        field: "chart",
        reason: e.to_string(),
    }
}

/// How a chart is viewed: `?from=&to=` (a step range), `smooth=0.9` (an
/// exponential moving average of the lines: each point is `smooth` × the
/// previous smoothed point + (1 − `smooth`) × its value; off by default),
/// `log=1` (log scale; values ≤ 0 are left out), `band=0|1` (the min–max
/// band; by default shown unless the chart has a line per kind),
/// `buckets=200`, and `format=svg|json|csv`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct View {
    pub(crate) buckets: Option<usize>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) smooth: Option<String>,
    pub(crate) log: Option<String>,
    pub(crate) band: Option<String>,
    pub(crate) format: Option<String>,
}

/// A [`View`], checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ViewOptions {
    pub(crate) buckets: usize,
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) smooth: f64,
    pub(crate) log: bool,
    pub(crate) band: Option<bool>,
    pub(crate) format: Format,
}

/// What a chart route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Svg,
    Json,
    Csv,
}

fn flag(field: &'static str, v: Option<&str>) -> Result<Option<bool>> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some("1" | "on" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "off" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(Error::invalid(field, format!("`{other}` is not 0 or 1"))),
    }
}

fn step(field: &'static str, v: Option<&str>) -> Result<Option<i64>> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Error::invalid(field, format!("`{text}` is not a step number"))),
    }
}

impl View {
    /// The view's options as a query string (`from=…&to=…`, without `?`;
    /// empty for the default view), the format left out.
    pub(crate) fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("smooth", &self.smooth),
            ("log", &self.log),
            ("band", &self.band),
        ] {
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                parts.push(format!("{k}={}", super::pages::encode(v)));
            }
        }
        if let Some(b) = self.buckets {
            parts.push(format!("buckets={b}"));
        }
        parts.join("&")
    }

    /// The options, checked: 400 for a bad number, an empty or reversed
    /// range, a smoothing outside `0..1`, or an unknown format.
    pub(crate) fn options(&self) -> Result<ViewOptions> {
        let from = step("from", self.from.as_deref())?.unwrap_or(i64::MIN);
        let to = step("to", self.to.as_deref())?.unwrap_or(i64::MAX);
        if from > to {
            return Err(Error::invalid("to", format!("{to} is before {from}")));
        }
        let smooth = match self
            .smooth
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => 0.0,
            Some(text) => match text.parse::<f64>() {
                Ok(s) if (0.0..1.0).contains(&s) => s,
                _ => {
                    return Err(Error::invalid(
                        "smooth",
                        format!("`{text}` is not a number from 0 up to (not including) 1"),
                    ))
                }
            },
        };
        let format = match self.format.as_deref().unwrap_or("svg") {
            "svg" => Format::Svg,
            "json" => Format::Json,
            "csv" => Format::Csv,
            other => {
                return Err(Error::invalid(
                    "format",
                    format!("`{other}` is not svg, json or csv"),
                ))
            }
        };
        Ok(ViewOptions {
            buckets: self.buckets.unwrap_or(200).clamp(1, 2000),
            from,
            to,
            smooth,
            log: flag("log", self.log.as_deref())?.unwrap_or(false),
            band: flag("band", self.band.as_deref())?,
            format,
        })
    }
}

impl ViewOptions {
    /// The options that change a drawing, as text (a cache key).
    pub(crate) fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{:?}",
            self.buckets, self.from, self.to, self.smooth, self.log, self.band
        )
    }

    /// The step range, for the analytics.
    pub(crate) fn steps(&self) -> std::ops::RangeInclusive<i64> {
        self.from..=self.to
    }
}

/// A line of a chart.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Line {
    pub(crate) label: String,
    #[serde(serialize_with = "hex")]
    pub(crate) color: RGBColor,
    #[serde(skip)]
    pub(crate) width: u32,
    /// `(step, value)`.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A band of a chart: a spread around a line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Band {
    pub(crate) label: String,
    #[serde(serialize_with = "hex")]
    pub(crate) color: RGBColor,
    /// `(step, low, high)`.
    pub(crate) points: Vec<(f64, f64, f64)>,
}

fn hex<S: serde::Serializer>(c: &RGBColor, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&css(*c))
}

/// `#rrggbb`.
pub(crate) fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// What one chart shows.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Figure {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) bands: Vec<Band>,
    pub(crate) lines: Vec<Line>,
}

/// Where the plot sits in the image, in pixels, and the steps and values
/// at its edges (values as drawn: log10 of them on a log scale): what the
/// page's script needs to tell the step under the mouse.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Frame {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) left: i32,
    pub(crate) right: i32,
    pub(crate) top: i32,
    pub(crate) bottom: i32,
    pub(crate) x0: f64,
    pub(crate) x1: f64,
    pub(crate) log: bool,
}

/// A drawn chart and the data behind it (smoothed as drawn).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Drawn {
    #[serde(skip)]
    pub(crate) svg: String,
    /// The points of the first line (the page counts them).
    pub(crate) points: usize,
    pub(crate) frame: Frame,
    pub(crate) figure: Figure,
}

/// Smooths `points` in order: an exponential moving average with weight
/// `w` on the past (0: unchanged).
pub(crate) fn smooth(points: &mut [(f64, f64)], w: f64) {
    if w <= 0.0 {
        return;
    }
    let mut last: Option<f64> = None;
    for p in points.iter_mut() {
        let s = match last {
            Some(prev) => w * prev + (1.0 - w) * p.1,
            None => p.1,
        };
        p.1 = s;
        last = Some(s);
    }
}

fn middle(a: &StepAggregate) -> f64 {
    (a.first_step + a.last_step) as f64 / 2.0
}

/// A line of bucket means.
pub(crate) fn mean_line(
    label: String,
    color: RGBColor,
    width: u32,
    points: &[StepAggregate],
) -> Line {
    Line {
        label,
        color,
        width,
        points: points.iter().map(|a| (middle(a), a.mean)).collect(),
    }
}

/// A band of bucket minima and maxima.
pub(crate) fn min_max_band(label: String, color: RGBColor, points: &[StepAggregate]) -> Band {
    Band {
        label,
        color,
        points: points.iter().map(|a| (middle(a), a.min, a.max)).collect(),
    }
}

/// Decimals of the y axis' labels for a span of values: enough to tell
/// ticks a tenth of the span apart, at most 6.
fn label_decimals(span: f64) -> usize {
    if !(span.is_finite() && span > 0.0) {
        return 2;
    }
    (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
}

/// A y axis label: `decimals` places, and never a negative zero (a tick
/// at `-0.0000001` reads `0.00`, not `-0.00`).
fn axis_label(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => text,
    }
}

/// A log-scale tick: the value `10^v`, three significant digits.
fn log_label(v: f64) -> String {
    let value = 10f64.powf(v);
    if (1e-3..1e5).contains(&value) {
        let decimals = (2.0 - value.log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{value:.decimals$}")
    } else {
        format!("{value:.2e}")
    }
}

/// Legend text: at most 30 characters.
fn short(label: &str) -> String {
    if label.chars().count() <= 30 {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(29).collect();
        s.push('…');
        s
    }
}

/// A figure on a log scale: its positive values as their log10 (values
/// <= 0 left out).
fn log_scaled(figure: &Figure) -> Figure {
    let mut out = figure.clone();
    for line in &mut out.lines {
        line.points.retain(|p| p.1 > 0.0);
        for p in &mut line.points {
            p.1 = p.1.log10();
        }
    }
    for band in &mut out.bands {
        band.points.retain(|p| p.1 > 0.0);
        for p in &mut band.points {
            (p.1, p.2) = (p.1.log10(), p.2.log10());
        }
    }
    out
}

/// Draws `figure` as `view` says: the SVG text (plotters escapes every
/// label), where the plot sits, and the data as drawn.
pub(crate) fn render(mut figure: Figure, view: &ViewOptions) -> Result<Drawn> {
    // The data as drawn: its lines smoothed once; on a log scale drawn
    // as their log10.
    for line in &mut figure.lines {
        smooth(&mut line.points, view.smooth);
    }
    let logged;
    let shown = if view.log {
        logged = log_scaled(&figure);
        &logged
    } else {
        &figure
    };
    let xs = shown
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .chain(
            shown
                .bands
                .iter()
                .flat_map(|b| b.points.iter().map(|p| p.0)),
        );
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (x0, x1) = if x0.is_finite() { (x0, x1) } else { (0.0, 1.0) };
    let ys = shown
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(
            shown
                .bands
                .iter()
                .flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2])),
        )
        .filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    // A constant series gets a visible range around its value.
    let pad = if hi - lo > 1e-12 {
        (hi - lo) * 0.05
    } else {
        (hi.abs() * 0.1).max(1.0)
    };
    let x1 = x1.max(x0 + 1.0);
    let mut svg = String::new();
    let frame = {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (plot, legend) = root.split_horizontally(PLOT_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&shown.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
            .map_err(drawing)?;
        let decimals = label_decimals(hi - lo + 2.0 * pad);
        let log = view.log;
        let y_label = move |v: &f64| {
            if log {
                log_label(*v)
            } else {
                axis_label(*v, decimals)
            }
        };
        chart
            .configure_mesh()
            .x_desc(&shown.x_label)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&y_label)
            .draw()
            .map_err(drawing)?;
        for band in &shown.bands {
            let mut outline: Vec<(f64, f64)> = band.points.iter().map(|p| (p.0, p.2)).collect();
            outline.extend(band.points.iter().rev().map(|p| (p.0, p.1)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    band.color.mix(0.15).filled(),
                )))
                .map_err(drawing)?;
        }
        for line in &shown.lines {
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    line.color.stroke_width(line.width),
                ))
                .map_err(drawing)?;
        }
        draw_legend(&legend, shown)?;
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        root.present().map_err(drawing)?;
        Frame {
            width: SIZE.0,
            height: SIZE.1,
            left: xs.start,
            right: xs.end,
            top: ys.start,
            bottom: ys.end,
            x0,
            x1,
            log,
        }
    };
    Ok(Drawn {
        svg,
        points: figure.lines.first().map_or(0, |l| l.points.len()),
        frame,
        figure,
    })
}

/// The legend, beside the plot: one entry per band and line.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    figure: &Figure,
) -> Result<()> {
    let font = ("sans-serif", 12).into_font().color(&BLACK);
    let mut entries: Vec<(String, RGBColor, bool)> = figure
        .bands
        .iter()
        .map(|b| (b.label.clone(), b.color, true))
        .collect();
    entries.extend(
        figure
            .lines
            .iter()
            .map(|l| (l.label.clone(), l.color, false)),
    );
    const ROWS: usize = 16;
    let hidden = entries.len().saturating_sub(ROWS);
    for (i, (label, color, band)) in entries.iter().take(ROWS).enumerate() {
        let y = 34 + 16 * i as i32;
        let swatch = if *band {
            Rectangle::new([(6, y - 5), (20, y + 5)], color.mix(0.15).filled())
        } else {
            Rectangle::new([(6, y - 1), (20, y + 1)], color.filled())
        };
        area.draw(&swatch).map_err(drawing)?;
        area.draw(&Text::new(short(label), (26, y - 6), font.clone()))
            .map_err(drawing)?;
    }
    if hidden > 0 {
        let y = 34 + 16 * ROWS as i32;
        area.draw(&Text::new(format!("+{hidden} more"), (26, y - 6), font))
            .map_err(drawing)?;
    }
    Ok(())
}

/// A drawn chart as the view's format asks: the SVG (with a policy that
/// forbids any script or fetch should it be opened on its own, and its
/// point count in `x-simdb-points`), the data as JSON, or as CSV
/// (`series,step,value,low,high`).
pub(crate) fn respond(drawn: &Drawn, format: Format, name: &str) -> Result<Response> {
    let points = drawn.points.to_string();
    let file = |ext: &str| {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("attachment; filename=\"{safe}.{ext}\"")
    };
    Ok(match format {
        Format::Svg => (
            [
                (header::CONTENT_TYPE, "image/svg+xml".to_string()),
                (header::HeaderName::from_static("x-simdb-points"), points),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'".to_string(),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            drawn.svg.clone(),
        )
            .into_response(),
        Format::Json => (
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::CONTENT_DISPOSITION, file("json")),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            serde_json::to_string(drawn).map_err(|e| Error::invalid("chart", e.to_string()))?,
        )
            .into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, file("csv")),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            to_csv(&drawn.figure)?,
        )
            .into_response(),
    })
}

/// `series,step,value,low,high`: a line's rows have a value, a band's a
/// low and a high.
fn to_csv(figure: &Figure) -> Result<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::invalid("chart", e.to_string());
    out.write_record(["series", "step", "value", "low", "high"])
        .map_err(io)?;
    for line in &figure.lines {
        for (x, y) in &line.points {
            out.write_record([line.label.as_str(), &x.to_string(), &y.to_string(), "", ""])
                .map_err(io)?;
        }
    }
    for band in &figure.bands {
        for (x, lo, hi) in &band.points {
            out.write_record([
                band.label.as_str(),
                &x.to_string(),
                "",
                &lo.to_string(),
                &hi.to_string(),
            ])
            .map_err(io)?;
        }
    }
    let bytes = out
        .into_inner()
        .map_err(|e| Error::invalid("chart", e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| Error::invalid("chart", e.to_string()))
}

/// A simulation's field: its mean across all agents, the min–max band,
/// and a line per agent kind. The band is shown by default unless there
/// are kind lines (a band spanning every agent would flatten them).
pub(crate) fn field_figure(series: &FieldSeries, view: &ViewOptions) -> Figure {
    let kinds: &BTreeMap<String, Vec<StepAggregate>> = &series.by_kind;
    let kind_lines = kinds.len() > 1;
    // Per-agent fields spread across agents; a simulation-level metric
    // has one value per step, spread across a bucket's steps.
    let (band, mean) = if series.per_agent {
        ("min–max of agents", "mean, all agents")
    } else {
        ("min–max of the bucket's steps", "mean")
    };
    let mut figure = Figure {
        title: series.field.clone(),
        x_label: "step".into(),
        ..Figure::default()
    };
    if view.band.unwrap_or(!kind_lines) {
        figure
            .bands
            .push(min_max_band(band.into(), BLUE, &series.all));
    }
    figure
        .lines
        .push(mean_line(mean.into(), BLUE, 2, &series.all));
    if kind_lines {
        for (i, (kind, rows)) in kinds.iter().enumerate() {
            figure.lines.push(mean_line(
                format!("mean, {kind}"),
                PALETTE[i % PALETTE.len()],
                1,
                rows,
            ));
        }
    }
    figure
}

/// `GET /charts/{id}/{field}?…` ([`View`]): a simulation's field.
pub(crate) async fn chart(
    State(app): State<AppState>,
    Path((id, field)): Path<(String, String)>,
    Query(view): Query<View>,
) -> std::result::Result<Response, Failure> {
    let options = view.options()?;
    let format = options.format;
    let name = field.clone();
    let drawn = blocking(move || {
        let id = SimulationId::new(&id)?;
        // Drawn once per watermark for every viewer (chart_cache).
        let sim = app.svc.simulation(&id)?;
        let key = (
            id.to_string(),
            format!("{field}\u{0}{}", options.key()),
            options.buckets,
            sim.committed_step,
            sim.status,
        );
        if let Some(drawn) = app.charts.get(&key) {
            return Ok(drawn);
        }
        let series = field_series(&app.svc, &id, &field, options.buckets, options.steps())?;
        let drawn = std::sync::Arc::new(render(field_figure(&series, &options), &options)?);
        app.charts.put(key, drawn.clone());
        Ok(drawn)
    })
    .await?;
    Ok(respond(&drawn, format, &name)?)
}

#[cfg(test)]
mod tests {
    use super::{axis_label, label_decimals, log_label, smooth, View};

    #[test]
    fn axis_labels_never_show_a_negative_zero() {
        assert_eq!(axis_label(-0.0, 1), "0.0");
        assert_eq!(axis_label(-1e-12, 2), "0.00");
        assert_eq!(axis_label(-0.004, 2), "0.00");
        assert_eq!(axis_label(-0.006, 2), "-0.01");
        assert_eq!(axis_label(-3.0, 0), "-3");
        assert_eq!(axis_label(12.5, 1), "12.5");
        assert_eq!(label_decimals(1.0), 2);
        assert_eq!(label_decimals(0.02), 4);
        assert_eq!(label_decimals(5000.0), 0);
        assert_eq!(label_decimals(0.0), 2);
        assert_eq!(label_decimals(f64::NAN), 2);
        assert_eq!(log_label(2.0), "100");
        assert_eq!(log_label(-1.0), "0.100");
        assert_eq!(log_label(7.0), "1.00e7");
    }

    #[test]
    fn smoothing_is_an_exponential_moving_average() {
        let mut points = vec![(0.0, 1.0), (1.0, 0.0), (2.0, 0.0)];
        smooth(&mut points, 0.5);
        assert_eq!(points, vec![(0.0, 1.0), (1.0, 0.5), (2.0, 0.25)]);
        let mut same = vec![(0.0, 1.0), (1.0, 3.0)];
        smooth(&mut same, 0.0);
        assert_eq!(same, vec![(0.0, 1.0), (1.0, 3.0)]);
    }

    #[test]
    fn views_are_checked() {
        let view = |from: &str, to: &str, smooth: &str| View {
            from: Some(from.into()),
            to: Some(to.into()),
            smooth: Some(smooth.into()),
            ..View::default()
        };
        assert!(view("10", "20", "0.6").options().is_ok());
        assert!(view("", "", "").options().is_ok());
        assert!(view("20", "10", "").options().is_err());
        assert!(view("x", "", "").options().is_err());
        assert!(view("", "", "1").options().is_err());
        assert!(view("", "", "-0.1").options().is_err());
        let bad_format = View {
            format: Some("xml".into()),
            ..View::default()
        };
        assert!(bad_format.options().is_err());
    }
}
