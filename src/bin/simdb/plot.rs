//! `simdb plot`: SVG plots with plotters.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use plotters::prelude::*;
use simdb::{Error, Result, StepAggregate};

use crate::resolve::{open_read, sim_id};

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidInput {
        field: "plot",
        reason: e.to_string(),
    }
}

/// Mean over steps as a line, with the min-max band shaded behind it.
pub fn band(out: &Path, title: &str, field: &str, points: &[StepAggregate]) -> Result<()> {
    let x = |a: &StepAggregate| (a.first_step + a.last_step) as f64 / 2.0;
    let (x0, x1) = (
        points.first().map_or(0.0, |a| a.first_step as f64),
        points.last().map_or(1.0, |a| a.last_step as f64).max(1.0),
    );
    let lo = points.iter().map(|a| a.min).fold(f64::INFINITY, f64::min);
    let hi = points
        .iter()
        .map(|a| a.max)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo).abs() * 0.05).max(1e-9);
    let root = SVGBackend::new(out, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (lo - pad)..(hi + pad))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(field)
        .draw()
        .map_err(plot_error)?;
    let mut outline: Vec<(f64, f64)> = points.iter().map(|a| (x(a), a.max)).collect();
    outline.extend(points.iter().rev().map(|a| (x(a), a.min)));
    chart
        .draw_series(std::iter::once(Polygon::new(
            outline,
            BLUE.mix(0.18).filled(),
        )))
        .map_err(plot_error)?
        .label("min–max across agents")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.18).filled()));
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|a| (x(a), a.mean)),
            BLUE.stroke_width(2),
        ))
        .map_err(plot_error)?
        .label("mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Arguments of `simdb plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Simulation id.
    pub sim: String,
    /// What to plot: `reward`, a metric name (an agent metric or a
    /// simulation-level one) or `state.<path>`, a numeric field of the
    /// agents' JSON state (`state.energy`, `state.inventory.ore`, `state.pos.0`).
    #[arg(long, default_value = "reward")]
    pub field: String,
    /// Output SVG file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// At most this many points.
    #[arg(long, default_value_t = 500)]
    pub buckets: usize,
}

/// Plot a field over steps: mean across agents with a min-max band (SVG).
pub fn plot(url: &Option<String>, json_out: bool, args: PlotArgs) -> Result<ExitCode> {
    let PlotArgs {
        sim,
        field,
        out,
        buckets,
    } = args;
    if let Some(dir) = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        return Err(Error::Io {
            path: out.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("directory {} does not exist", dir.display()),
            ),
        });
    }
    let svc = open_read(url)?;
    let id = sim_id(&sim)?;
    let points = svc
        .analytics()
        .step_aggregates(&id, field.as_str(), buckets)?;
    if points.is_empty() {
        return Err(Error::InvalidInput {
            field: "--field",
            reason: format!("no `{field}` values recorded for {id}"),
        });
    }
    band(&out, &format!("{field} — {id}"), &field, &points)?;
    if json_out {
        // What was drawn, for scripts: the file and every point.
        crate::output::print_json(&serde_json::json!({
            "simulation": id,
            "field": field,
            "out": out.display().to_string(),
            "points": points,
        }))?;
    } else {
        eprintln!("wrote {} ({} points)", out.display(), points.len());
    }
    Ok(ExitCode::SUCCESS)
}
