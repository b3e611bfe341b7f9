//! Charts as SVG, drawn on the server by plotters: a field's mean across
//! all agents with its min–max band, and one line per agent kind.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use plotters::prelude::*;

use super::api::{field_series, AggregatesQuery, FieldSeries};
use super::{blocking, AppState, Failure};
use crate::analytics::StepAggregate;
use crate::error::{Error, Result};
use crate::ids::SimulationId;

const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

fn drawing(e: impl std::fmt::Display) -> Error {
    Error::InvalidInput {
        field: "chart",
        reason: e.to_string(),
    }
}

fn middle(a: &StepAggregate) -> f64 {
    (a.first_step + a.last_step) as f64 / 2.0
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

/// The SVG text of a field's chart (plotters escapes every label).
pub(crate) fn render(series: &FieldSeries) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let points = &series.all;
        let kinds: &BTreeMap<String, Vec<StepAggregate>> = &series.by_kind;
        let x0 = points.first().map_or(0.0, |a| a.first_step as f64);
        let x1 = points.last().map_or(1.0, |a| a.last_step as f64);
        let lo = points.iter().map(|a| a.min).fold(f64::INFINITY, f64::min);
        let hi = points
            .iter()
            .map(|a| a.max)
            .fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        let pad = ((hi - lo).abs() * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(&root)
            .caption(&series.field, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1.max(x0 + 1.0), (lo - pad)..(hi + pad))
            .map_err(drawing)?;
        let decimals = label_decimals(hi - lo);
        chart
            .configure_mesh()
            .x_desc("step")
            .y_label_formatter(&|v| axis_label(*v, decimals))
            .draw()
            .map_err(drawing)?;
        // Per-agent fields spread across agents; a simulation-level
        // metric has one value per step, spread across a bucket's steps.
        let (band, mean) = if series.per_agent {
            ("min–max of agents", "mean, all agents")
        } else {
            ("min–max of the bucket's steps", "mean")
        };
        let mut outline: Vec<(f64, f64)> = points.iter().map(|a| (middle(a), a.max)).collect();
        outline.extend(points.iter().rev().map(|a| (middle(a), a.min)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                BLUE.mix(0.15).filled(),
            )))
            .map_err(drawing)?
            .label(band)
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], BLUE.mix(0.15).filled())
            });
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|a| (middle(a), a.mean)),
                BLUE.stroke_width(2),
            ))
            .map_err(drawing)?
            .label(mean)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLUE.stroke_width(2)));
        if kinds.len() > 1 {
            for (i, (kind, rows)) in kinds.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(
                        rows.iter().map(|a| (middle(a), a.mean)),
                        color.stroke_width(1),
                    ))
                    .map_err(drawing)?
                    .label(format!("mean, {kind}"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(1))
                    });
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// `GET /charts/{id}/{field}?buckets=200`: the chart as `image/svg+xml`,
/// with a policy that forbids any script or fetch should it be opened on
/// its own, and its number of points in `x-simdb-points`.
pub(crate) async fn chart(
    State(app): State<AppState>,
    Path((id, field)): Path<(String, String)>,
    Query(q): Query<AggregatesQuery>,
) -> std::result::Result<impl IntoResponse, Failure> {
    let buckets = q.buckets.unwrap_or(200).clamp(1, 2000);
    let drawing = blocking(move || {
        let id = SimulationId::new(&id)?;
        // Drawn once per watermark for every viewer (chart_cache).
        let sim = app.svc.simulation(&id)?;
        let key = (
            id.to_string(),
            field.clone(),
            buckets,
            sim.committed_step,
            sim.status,
        );
        if let Some(drawing) = app.charts.get(&key) {
            return Ok(drawing);
        }
        let series = field_series(&app.svc, &id, &field, buckets)?;
        let drawing = std::sync::Arc::new((render(&series)?, series.all.len()));
        app.charts.put(key, drawing.clone());
        Ok(drawing)
    })
    .await?;
    let (svg, points) = (drawing.0.clone(), drawing.1.to_string());
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml".to_string()),
            // The live page counts points from here: no second computation.
            (header::HeaderName::from_static("x-simdb-points"), points),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'".to_string(),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        svg,
    ))
}

#[cfg(test)]
mod tests {
    use super::{axis_label, label_decimals};

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
    }
}
