//! Moving runs: `simdb export`, `simdb import`, `simdb copy`.

use std::process::ExitCode;

use clap::Args;
use std::path::PathBuf;

use clap::ValueEnum;
use simdb::{
    Database, Error, OnConflict, Result, SimulationFilter, SimulationId, SimulationService,
};

use crate::output::{print_json, Progress};
use crate::resolve::{open, open_read, read_only, sim_id};

/// Arguments of `simdb export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Simulation id (for Parquet: or --experiment / --tag instead).
    pub sim: Option<String>,
    /// jsonl, csv or (with the `parquet` feature) parquet.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Output file (standard output by default); for Parquet, a directory.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Parquet: every simulation of this experiment (id or name).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Parquet: every simulation with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Parquet: every numeric leaf of the states as its own column.
    #[arg(long)]
    pub flatten_state: bool,
    /// Parquet: one column per metric instead of long format.
    #[arg(long)]
    pub wide: bool,
    /// Parquet: zstd (smaller) or snappy.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
}

/// Arguments of `simdb import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file.
    pub file: PathBuf,
    /// What to do if the simulation exists.
    #[arg(long, value_enum, default_value_t = Conflict::Error)]
    pub on_conflict: Conflict,
}

/// Arguments of `simdb copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source database URL.
    #[arg(long)]
    pub from: String,
    /// Target database URL.
    #[arg(long)]
    pub to: String,
    /// Simulation ids (all if none).
    pub sims: Vec<String>,
    /// What to do if a simulation exists in the target.
    #[arg(long, value_enum, default_value_t = Conflict::Error)]
    pub on_conflict: Conflict,
}

/// `path` with a hidden temporary name in the same directory (so that the
/// final rename stays on one file system).
fn temp_beside(path: &std::path::Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.simdb-{}.tmp", std::process::id()))
}

/// Export a simulation (JSONL is lossless; CSV has one row per agent-step).
pub fn export(url: &Option<String>, json_out: bool, args: ExportArgs) -> Result<ExitCode> {
    #[cfg(feature = "parquet")]
    if args.format == Format::Parquet {
        return export_parquet(url, json_out, args);
    }
    let _ = json_out;
    let ExportArgs {
        sim, format, out, ..
    } = args;
    let svc = open_read(url)?;
    let sim = sim.ok_or_else(|| Error::InvalidInput {
        field: "SIM",
        reason: "name the simulation to export".into(),
    })?;
    let id = sim_id(&sim)?;
    let progress = Progress::new("export");
    let io = |path: &PathBuf| {
        let p = path.display().to_string();
        move |source| Error::Io { path: p, source }
    };
    let count = match &out {
        // Into a temporary file beside the target, renamed over it only once
        // the export succeeded: a failed export never truncates an existing
        // file (`--out runs.db` with a typo'd id leaves runs.db alone).
        Some(path) => {
            let tmp = temp_beside(path);
            let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            let written = match format {
                Format::Jsonl => svc.export_jsonl_with_progress(&id, file, |n| progress.update(n)),
                _ => svc.export_csv(&id, file),
            };
            match written {
                Ok(count) => {
                    std::fs::rename(&tmp, path).map_err(io(path))?;
                    count
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        None => match format {
            Format::Jsonl => {
                svc.export_jsonl_with_progress(&id, std::io::stdout().lock(), |n| {
                    progress.update(n)
                })?
            }
            _ => svc.export_csv(&id, std::io::stdout().lock())?,
        },
    };
    progress.done();
    if out.is_some() {
        eprintln!(
            "exported {count} {}",
            if format == Format::Csv {
                "rows"
            } else {
                "lines"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Import a JSONL export, all or nothing.
pub fn import(url: &Option<String>, json_out: bool, args: ImportArgs) -> Result<ExitCode> {
    let ImportArgs { file, on_conflict } = args;
    let svc = open(url)?;
    let progress = Progress::new("import");
    let outcome =
        svc.import_jsonl_with_progress(&file, on_conflict.into(), |n| progress.update(n))?;
    progress.done();
    report_import(json_out, &outcome)?;
    Ok(ExitCode::SUCCESS)
}

/// Copy simulations between databases (public ids kept).
pub fn copy(_url: &Option<String>, json_out: bool, args: CopyArgs) -> Result<ExitCode> {
    let CopyArgs {
        from,
        to,
        sims,
        on_conflict,
    } = args;
    let source = read_only(&from)?;
    let target = SimulationService::new(Database::open(&to)?);
    let ids: Vec<SimulationId> = if sims.is_empty() {
        source
            .list_simulations(&SimulationFilter::new())?
            .into_iter()
            .rev()
            .map(|s| s.id)
            .collect()
    } else {
        sims.iter().map(|s| sim_id(s)).collect::<Result<_>>()?
    };
    // Check every id first so that a typo copies nothing.
    for id in &ids {
        source.simulation(id)?;
    }
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in &ids {
        let tmp =
            std::env::temp_dir().join(format!("simdb-copy-{}-{}.jsonl", std::process::id(), id));
        let progress = Progress::new("copy");
        let file = std::fs::File::create(&tmp).map_err(|e| Error::Io {
            path: tmp.display().to_string(),
            source: e,
        })?;
        let result = source
            .export_jsonl_with_progress(id, file, |n| progress.update(n))
            .and_then(|_| {
                target.import_jsonl_with_progress(&tmp, on_conflict.into(), |n| progress.update(n))
            });
        progress.done();
        let _ = std::fs::remove_file(&tmp);
        let outcome = result?;
        if !json_out {
            report_import(false, &outcome)?;
        }
        outcomes.push(outcome);
    }
    // One JSON document, whatever the number of simulations.
    if json_out {
        print_json(&outcomes)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lossless JSON Lines.
    Jsonl,
    /// One row per agent-step.
    Csv,
    /// A directory of Parquet files, one per kind of data.
    #[cfg(feature = "parquet")]
    Parquet,
}

/// `simdb export --format parquet`: one simulation, an experiment's or a
/// tag's, into a directory of Parquet files.
#[cfg(feature = "parquet")]
fn export_parquet(url: &Option<String>, json_out: bool, args: ExportArgs) -> Result<ExitCode> {
    let svc = open_read(url)?;
    let mut ids: Vec<simdb::SimulationId> = Vec::new();
    if let Some(sim) = &args.sim {
        ids.push(sim_id(sim)?);
    }
    if args.experiment.is_some() || args.tag.is_some() {
        let mut filter = simdb::SimulationFilter::new();
        if let Some(e) = &args.experiment {
            filter = filter.experiment(&crate::resolve::experiment(&svc, e)?);
        }
        if let Some(t) = &args.tag {
            filter = filter.tag(t);
        }
        let mut found: Vec<_> = svc
            .list_simulations(&filter)?
            .into_iter()
            .map(|s| s.id)
            .collect();
        found.reverse();
        ids.extend(found);
    }
    if ids.is_empty() {
        return Err(Error::InvalidInput {
            field: "export",
            reason: "name a simulation, --experiment or --tag".into(),
        });
    }
    let dir = args.out.ok_or_else(|| Error::InvalidInput {
        field: "--out",
        reason: "Parquet needs a directory to write its files into".into(),
    })?;
    let compression = match args.compression.as_str() {
        "zstd" => simdb::ParquetCompression::Zstd,
        "snappy" => simdb::ParquetCompression::Snappy,
        other => {
            return Err(Error::InvalidInput {
                field: "--compression",
                reason: format!("`{other}`: use zstd or snappy"),
            })
        }
    };
    let options = simdb::ParquetOptions {
        flatten_state: args.flatten_state,
        wide: args.wide,
        compression,
    };
    let written = svc.export_parquet(&ids, &dir, &options)?;
    if json_out {
        let files: Vec<_> = written
            .files
            .iter()
            .map(|(p, n)| serde_json::json!({"file": p.display().to_string(), "rows": n}))
            .collect();
        crate::output::print_json(&serde_json::json!({"simulations": ids, "files": files}))?;
    } else {
        for (path, rows) in &written.files {
            eprintln!("wrote {} ({rows} rows)", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What an import does with a simulation that exists.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Conflict {
    /// Refuse.
    Error,
    /// Leave it, import nothing.
    Skip,
    /// Delete it, then import.
    Replace,
}

impl From<Conflict> for OnConflict {
    fn from(c: Conflict) -> Self {
        match c {
            Conflict::Error => OnConflict::Error,
            Conflict::Skip => OnConflict::Skip,
            Conflict::Replace => OnConflict::Replace,
        }
    }
}

/// Prints what an import did.
fn report_import(json_out: bool, outcome: &simdb::ImportOutcome) -> Result<()> {
    if json_out {
        return print_json(outcome);
    }
    match outcome {
        simdb::ImportOutcome::Imported { simulation, lines } => {
            println!("imported {simulation} ({lines} lines)")
        }
        simdb::ImportOutcome::Skipped { simulation } => println!("skipped {simulation} (exists)"),
    }
    Ok(())
}
