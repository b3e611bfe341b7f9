//! Exporting simulations as Parquet, for pandas, polars and DuckDB
//! (feature `parquet`): one file per kind of data, each with a
//! `simulation_id` column, so a sweep is one file per kind. Every table is
//! read in keyset pages and written in row groups, so memory stays flat.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use super::export::pages;
use crate::analytics::flatten_json;
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::models::Simulation;
use crate::service::SimulationService;
use crate::store::prelude::*;
use crate::with_connection;

/// Rows per page read and per record batch written.
const PAGE_ROWS: i64 = 10_000;
/// Rows per Parquet row group: big enough to compress well, small enough
/// that a 10M-row export stays well under 100 MiB.
const ROW_GROUP_ROWS: usize = 131_072;
/// And at most this many bytes (encoded), whichever comes first.
const ROW_GROUP_BYTES: usize = 32 << 20;

/// The codec of the Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ParquetCompression {
    /// zstd level 1 (the default): the smaller files.
    #[default]
    Zstd,
    /// Snappy: what every reader has, a little faster, larger files.
    Snappy,
}

/// How [`SimulationService::export_parquet`] lays its files out.
#[derive(Debug, Clone, Default)]
pub struct ParquetOptions {
    /// Every numeric leaf of the agents' states as its own `Float64` column
    /// named by its dot path (`state.inventory.ore`), null where a row lacks
    /// it. Costs a first pass over the states to find the paths.
    pub flatten_state: bool,
    /// Metrics pivoted into one column each (`agent_metrics`: one row per
    /// simulation, agent and step; `step_metrics`: per simulation and step).
    pub wide: bool,
    /// The codec.
    pub compression: ParquetCompression,
}

/// What an export wrote: each file with its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetExport {
    /// `(path, rows)` of every file, in the order written.
    pub files: Vec<(PathBuf, u64)>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn pq(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn arrow(e: arrow_schema::ArrowError) -> Error {
    Error::invalid("parquet", e.to_string())
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A column being filled for the current record batch.
enum Column {
    Str(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Time(TimestampMicrosecondBuilder),
}

impl Column {
    fn new(t: &DataType) -> Column {
        match t {
            DataType::Int32 => Column::I32(Int32Builder::new()),
            DataType::Int64 => Column::I64(Int64Builder::new()),
            DataType::Float64 => Column::F64(Float64Builder::new()),
            DataType::Timestamp(..) => {
                Column::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            _ => Column::Str(StringBuilder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str(b) => Arc::new(b.finish()),
            Column::I32(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Time(b) => Arc::new(b.finish()),
        }
    }
}

/// A cell of a row.
enum Cell<'a> {
    Str(Option<&'a str>),
    I32(Option<i32>),
    I64(Option<i64>),
    F64(Option<f64>),
    Time(Option<DateTime<Utc>>),
}

/// One Parquet file being written in record batches.
struct Table {
    path: PathBuf,
    schema: SchemaRef,
    columns: Vec<Column>,
    writer: ArrowWriter<File>,
    pending: usize,
    rows: u64,
}

impl Table {
    fn create(
        dir: &Path,
        name: &str,
        fields: Vec<Field>,
        compression: ParquetCompression,
    ) -> Result<Table> {
        let path = dir.join(format!("{name}.parquet"));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let codec = match compression {
            ParquetCompression::Zstd => {
                Compression::ZSTD(ZstdLevel::try_new(1).map_err(pq(&path))?)
            }
            ParquetCompression::Snappy => Compression::SNAPPY,
        };
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .build();
        let file = File::create(&path).map_err(io(&path))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(pq(&path))?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column::new(f.data_type()))
            .collect();
        Ok(Table {
            path,
            schema,
            columns,
            writer,
            pending: 0,
            rows: 0,
        })
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<()> {
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            match (column, cell) {
                (Column::Str(b), Cell::Str(v)) => b.append_option(*v),
                (Column::I32(b), Cell::I32(v)) => b.append_option(*v),
                (Column::I64(b), Cell::I64(v)) => b.append_option(*v),
                (Column::F64(b), Cell::F64(v)) => b.append_option(*v),
                (Column::Time(b), Cell::Time(v)) => {
                    b.append_option(v.map(|t| t.timestamp_micros()))
                }
                _ => return Err(Error::invalid("parquet", "a cell of the wrong type")),
            }
        }
        self.pending += 1;
        self.rows += 1;
        if self.pending as i64 >= PAGE_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(arrow)?;
        self.writer.write(&batch).map_err(pq(&self.path))?;
        self.pending = 0;
        Ok(())
    }

    fn close(mut self) -> Result<(PathBuf, u64)> {
        self.write_batch()?;
        self.writer.close().map_err(pq(&self.path))?;
        Ok((self.path, self.rows))
    }
}

fn field(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

impl SimulationService {
    /// Writes `sims` (one, an experiment's, a filter's) as Parquet files in
    /// `dir` (created if missing): `agent_states`, `agent_metrics`,
    /// `step_metrics`, `steps`, `agents`, `simulations` and `events`, each
    /// `<kind>.parquet` with a `simulation_id` column. Standard types only:
    /// Int32, Int64, Float64, UTF-8 and UTC timestamps (microseconds); JSON
    /// values as their text. A file of the same name is replaced.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation;
    /// [`Error::Io`](crate::Error::Io) if a file cannot be written.
    pub fn export_parquet(
        &self,
        sims: &[SimulationId],
        dir: &Path,
        options: &ParquetOptions,
    ) -> Result<ParquetExport> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let sims: Vec<Simulation> = sims
            .iter()
            .map(|id| self.simulation(id))
            .collect::<Result<_>>()?;
        let c = options.compression;
        let mut files = Vec::new();
        files.push(self.parquet_states(&sims, dir, options.flatten_state, c)?);
        if options.wide {
            files.push(self.parquet_agent_metrics_wide(&sims, dir, c)?);
            files.push(self.parquet_step_metrics_wide(&sims, dir, c)?);
        } else {
            files.push(self.parquet_agent_metrics(&sims, dir, c)?);
            files.push(self.parquet_step_metrics(&sims, dir, c)?);
        }
        files.push(self.parquet_steps(&sims, dir, c)?);
        files.push(self.parquet_agents(&sims, dir, c)?);
        files.push(self.parquet_simulations(&sims, dir, c)?);
        files.push(self.parquet_events(&sims, dir, c)?);
        Ok(ParquetExport { files })
    }

    fn parquet_states(
        &self,
        sims: &[Simulation],
        dir: &Path,
        flatten: bool,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        // The numeric leaves of every state, found by a first pass.
        let mut paths: BTreeSet<String> = BTreeSet::new();
        if flatten {
            for sim in sims {
                for agent in self.agents(&sim.id)? {
                    self.for_each_state_text(sim.sim_key, agent.agent_index.0, |_, _, text| {
                        let state: Value = serde_json::from_str(text)?;
                        for (path, leaf) in flatten_json(&state) {
                            if leaf.is_number() {
                                paths.insert(path);
                            }
                        }
                        Ok(())
                    })?;
                }
            }
        }
        let paths: Vec<String> = paths.into_iter().collect();
        let mut fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("agent_index", DataType::Int32, false),
            field("step", DataType::Int64, false),
            field("reward", DataType::Float64, false),
            field("state", DataType::Utf8, false),
        ];
        fields.extend(
            paths
                .iter()
                .map(|p| field(&format!("state.{p}"), DataType::Float64, true)),
        );
        let mut table = Table::create(dir, "agent_states", fields, c)?;
        let column: BTreeMap<&str, usize> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        let mut leaves: Vec<Option<f64>> = vec![None; paths.len()];
        for sim in sims {
            let id = sim.id.as_str();
            for agent in self.agents(&sim.id)? {
                let a = agent.agent_index.0;
                // The state column is the JSON text as stored: no parse and
                // no print unless its leaves are flattened.
                self.for_each_state_text(sim.sim_key, a, |step, reward, text| {
                    let mut cells = Vec::with_capacity(5 + leaves.len());
                    cells.extend([
                        Cell::Str(Some(id)),
                        Cell::I32(Some(a)),
                        Cell::I64(Some(step)),
                        Cell::F64(Some(reward)),
                        Cell::Str(Some(text)),
                    ]);
                    if flatten {
                        leaves.iter_mut().for_each(|l| *l = None);
                        let state: Value = serde_json::from_str(text)?;
                        for (path, leaf) in flatten_json(&state) {
                            if let (Some(&i), Some(v)) = (column.get(path.as_str()), leaf.as_f64())
                            {
                                leaves[i] = Some(v);
                            }
                        }
                        cells.extend(leaves.iter().map(|v| Cell::F64(*v)));
                    }
                    table.row(&cells)
                })?;
            }
        }
        table.close()
    }

    fn parquet_agent_metrics(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        let fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("agent_index", DataType::Int32, false),
            field("step", DataType::Int64, false),
            field("metric", DataType::Utf8, false),
            field("value", DataType::Float64, false),
        ];
        let mut table = Table::create(dir, "agent_metrics", fields, c)?;
        let db = self.database();
        for sim in sims {
            let (id, key) = (sim.id.as_str(), sim.sim_key);
            for agent in self.agents(&sim.id)? {
                let a = agent.agent_index.0;
                let names = with_connection!(db.connection()?, |c| c.agent_metric_names(key, a))?;
                for (metric, name) in names {
                    pages(
                        |after| {
                            with_connection!(db.connection()?, |c| c
                                .agent_metric_page(key, a, metric, after, PAGE_ROWS))
                        },
                        |p| p.0,
                        |page| {
                            for (step, value) in page {
                                table.row(&[
                                    Cell::Str(Some(id)),
                                    Cell::I32(Some(a)),
                                    Cell::I64(Some(step)),
                                    Cell::Str(Some(&name)),
                                    Cell::F64(Some(value)),
                                ])?;
                            }
                            Ok(())
                        },
                    )?;
                }
            }
        }
        table.close()
    }

    fn parquet_step_metrics(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        let fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("step", DataType::Int64, false),
            field("metric", DataType::Utf8, false),
            field("value", DataType::Float64, false),
        ];
        let mut table = Table::create(dir, "step_metrics", fields, c)?;
        let db = self.database();
        for sim in sims {
            let (id, key) = (sim.id.as_str(), sim.sim_key);
            let names = with_connection!(db.connection()?, |c| c.step_metric_names(key))?;
            for (metric, name) in names {
                pages(
                    |after| {
                        with_connection!(db.connection()?, |c| c
                            .step_metric_page(key, metric, after, PAGE_ROWS))
                    },
                    |p| p.0,
                    |page| {
                        for (step, value) in page {
                            table.row(&[
                                Cell::Str(Some(id)),
                                Cell::I64(Some(step)),
                                Cell::Str(Some(&name)),
                                Cell::F64(Some(value)),
                            ])?;
                        }
                        Ok(())
                    },
                )?;
            }
        }
        table.close()
    }

    /// Wide agent metrics: per simulation and agent, every metric's series
    /// read in step windows and merged by step.
    fn parquet_agent_metrics_wide(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        let db = self.database();
        // Every metric name of every agent, for the columns.
        let mut all: BTreeSet<String> = BTreeSet::new();
        for sim in sims {
            for agent in self.agents(&sim.id)? {
                let names = with_connection!(db.connection()?, |c| c
                    .agent_metric_names(sim.sim_key, agent.agent_index.0))?;
                all.extend(names.into_iter().map(|(_, n)| n));
            }
        }
        let all: Vec<String> = all.into_iter().collect();
        let mut fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("agent_index", DataType::Int32, false),
            field("step", DataType::Int64, false),
        ];
        fields.extend(all.iter().map(|n| field(n, DataType::Float64, true)));
        let mut table = Table::create(dir, "agent_metrics", fields, c)?;
        for sim in sims {
            let (id, key) = (sim.id.as_str(), sim.sim_key);
            for agent in self.agents(&sim.id)? {
                let a = agent.agent_index.0;
                let names = with_connection!(db.connection()?, |c| c.agent_metric_names(key, a))?;
                let columns: Vec<(i32, usize)> = names
                    .iter()
                    .filter_map(|(m, n)| all.iter().position(|x| x == n).map(|col| (*m, col)))
                    .collect();
                wide_rows(
                    &columns,
                    all.len(),
                    |metric, after| {
                        let first = with_connection!(db.connection()?, |c| c
                            .agent_metric_page(key, a, metric, after, 1))?;
                        Ok(first.first().map(|p| p.0))
                    },
                    |metric, lo, hi| {
                        with_connection!(db.connection()?, |c| c
                            .agent_metric_range(key, a, metric, lo, hi))
                    },
                    |step, values| {
                        let mut cells = vec![
                            Cell::Str(Some(id)),
                            Cell::I32(Some(a)),
                            Cell::I64(Some(step)),
                        ];
                        cells.extend(values.iter().map(|v| Cell::F64(*v)));
                        table.row(&cells)
                    },
                )?;
            }
        }
        table.close()
    }

    fn parquet_step_metrics_wide(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        let db = self.database();
        let mut all: BTreeSet<String> = BTreeSet::new();
        for sim in sims {
            let names = with_connection!(db.connection()?, |c| c.step_metric_names(sim.sim_key))?;
            all.extend(names.into_iter().map(|(_, n)| n));
        }
        let all: Vec<String> = all.into_iter().collect();
        let mut fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("step", DataType::Int64, false),
        ];
        fields.extend(all.iter().map(|n| field(n, DataType::Float64, true)));
        let mut table = Table::create(dir, "step_metrics", fields, c)?;
        for sim in sims {
            let (id, key) = (sim.id.as_str(), sim.sim_key);
            let names = with_connection!(db.connection()?, |c| c.step_metric_names(key))?;
            let columns: Vec<(i32, usize)> = names
                .iter()
                .filter_map(|(m, n)| all.iter().position(|x| x == n).map(|col| (*m, col)))
                .collect();
            // Simulation-level metrics have no range query: pages merged.
            let mut merged: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
            for &(metric, col) in &columns {
                pages(
                    |after| {
                        with_connection!(db.connection()?, |c| c
                            .step_metric_page(key, metric, after, PAGE_ROWS))
                    },
                    |p| p.0,
                    |page| {
                        for (step, v) in page {
                            merged.entry(step).or_insert_with(|| vec![None; all.len()])[col] =
                                Some(v);
                        }
                        Ok(())
                    },
                )?;
            }
            for (step, values) in merged {
                let mut cells = vec![Cell::Str(Some(id)), Cell::I64(Some(step))];
                cells.extend(values.iter().map(|v| Cell::F64(*v)));
                table.row(&cells)?;
            }
        }
        table.close()
    }

    fn parquet_steps(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        let fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("step", DataType::Int64, false),
            field("recorded_at", utc(), false),
            field("metrics", DataType::Utf8, false),
        ];
        let mut table = Table::create(dir, "steps", fields, c)?;
        let db = self.database();
        for sim in sims {
            let (id, key) = (sim.id.as_str(), sim.sim_key);
            pages(
                |after| with_connection!(db.connection()?, |c| c.steps_page(key, after, PAGE_ROWS)),
                |s| s.step,
                |page| {
                    for s in page {
                        let text = json_text(&s.metrics);
                        table.row(&[
                            Cell::Str(Some(id)),
                            Cell::I64(Some(s.step)),
                            Cell::Time(Some(s.recorded_at)),
                            Cell::Str(Some(&text)),
                        ])?;
                    }
                    Ok(())
                },
            )?;
        }
        table.close()
    }

    fn parquet_agents(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        let fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("agent_index", DataType::Int32, false),
            field("name", DataType::Utf8, true),
            field("kind", DataType::Utf8, true),
            field("policy_name", DataType::Utf8, true),
            field("policy_version", DataType::Int32, true),
            field("checkpoint_uri", DataType::Utf8, true),
            field("metadata", DataType::Utf8, false),
            field("created_at", utc(), false),
        ];
        let mut table = Table::create(dir, "agents", fields, c)?;
        for sim in sims {
            for a in self.agents(&sim.id)? {
                let metadata = json_text(&a.metadata);
                table.row(&[
                    Cell::Str(Some(sim.id.as_str())),
                    Cell::I32(Some(a.agent_index.0)),
                    Cell::Str(a.name.as_deref()),
                    Cell::Str(a.kind.as_deref()),
                    Cell::Str(a.policy_name.as_deref()),
                    Cell::I32(a.policy_version),
                    Cell::Str(a.checkpoint_uri.as_deref()),
                    Cell::Str(Some(&metadata)),
                    Cell::Time(Some(a.created_at)),
                ])?;
            }
        }
        table.close()
    }

    fn parquet_simulations(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        // `param.<path>` columns: Float64 where every run's value is a
        // number, else UTF-8 (strings as they are, other values as JSON).
        let flat: Vec<BTreeMap<String, Value>> =
            sims.iter().map(|s| flatten_json(&s.parameters)).collect();
        let mut numeric: BTreeMap<String, bool> = BTreeMap::new();
        for params in &flat {
            for (path, v) in params {
                let n = numeric.entry(path.clone()).or_insert(true);
                *n &= v.is_number();
            }
        }
        let mut fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("name", DataType::Utf8, true),
            field("experiment_id", DataType::Utf8, true),
            field("status", DataType::Utf8, false),
            field("created_at", utc(), false),
            field("started_at", utc(), true),
            field("ended_at", utc(), true),
            field("committed_step", DataType::Int64, true),
            field("parameters", DataType::Utf8, false),
            field("results_summary", DataType::Utf8, true),
            field("error_message", DataType::Utf8, true),
            field("data_uri", DataType::Utf8, true),
            field("tags", DataType::Utf8, false),
        ];
        fields.extend(numeric.iter().map(|(path, &n)| {
            field(
                &format!("param.{path}"),
                if n { DataType::Float64 } else { DataType::Utf8 },
                true,
            )
        }));
        let mut table = Table::create(dir, "simulations", fields, c)?;
        let tags = self.tags_of(sims)?;
        for ((sim, params), tags) in sims.iter().zip(&flat).zip(&tags) {
            let parameters = json_text(&sim.parameters);
            let summary = sim.results_summary.as_ref().map(json_text);
            let experiment = sim.experiment_id.as_ref().map(|e| e.to_string());
            let tags = serde_json::to_string(tags)?;
            let status = sim.status.to_string();
            let texts: Vec<Option<String>> = numeric
                .iter()
                .map(|(path, &n)| match params.get(path) {
                    Some(Value::String(s)) if !n => Some(s.clone()),
                    Some(v) if !n => Some(v.to_string()),
                    _ => None,
                })
                .collect();
            let mut cells = vec![
                Cell::Str(Some(sim.id.as_str())),
                Cell::Str(sim.name.as_deref()),
                Cell::Str(experiment.as_deref()),
                Cell::Str(Some(&status)),
                Cell::Time(Some(sim.created_at)),
                Cell::Time(sim.started_at),
                Cell::Time(sim.ended_at),
                Cell::I64(sim.committed_step),
                Cell::Str(Some(&parameters)),
                Cell::Str(summary.as_deref()),
                Cell::Str(sim.error_message.as_deref()),
                Cell::Str(sim.data_uri.as_deref()),
                Cell::Str(Some(&tags)),
            ];
            for ((path, &n), text) in numeric.iter().zip(&texts) {
                cells.push(if n {
                    Cell::F64(params.get(path).and_then(Value::as_f64))
                } else {
                    Cell::Str(text.as_deref())
                });
            }
            table.row(&cells)?;
        }
        table.close()
    }

    fn parquet_events(
        &self,
        sims: &[Simulation],
        dir: &Path,
        c: ParquetCompression,
    ) -> Result<(PathBuf, u64)> {
        let fields = vec![
            field("simulation_id", DataType::Utf8, false),
            field("event_id", DataType::Int64, false),
            field("occurred_at", utc(), false),
            field("kind", DataType::Utf8, false),
            field("from_status", DataType::Utf8, true),
            field("to_status", DataType::Utf8, true),
            field("message", DataType::Utf8, true),
            field("data", DataType::Utf8, true),
        ];
        let mut table = Table::create(dir, "events", fields, c)?;
        let db = self.database();
        for sim in sims {
            let (id, key) = (sim.id.as_str(), sim.sim_key);
            pages(
                |after| {
                    with_connection!(db.connection()?, |c| c.events_page(key, after, PAGE_ROWS))
                },
                |e| e.event_id,
                |page| {
                    for e in page {
                        let (from, to) = (
                            e.from_status.map(|s| s.to_string()),
                            e.to_status.map(|s| s.to_string()),
                        );
                        let data = e.data.as_ref().map(json_text);
                        table.row(&[
                            Cell::Str(Some(id)),
                            Cell::I64(Some(e.event_id)),
                            Cell::Time(Some(e.occurred_at)),
                            Cell::Str(Some(&e.kind)),
                            Cell::Str(from.as_deref()),
                            Cell::Str(to.as_deref()),
                            Cell::Str(e.message.as_deref()),
                            Cell::Str(data.as_deref()),
                        ])?;
                    }
                    Ok(())
                },
            )?;
        }
        table.close()
    }
}

/// Merges per-metric series into rows by step: `emit(step, values by
/// column)`. Read in windows of `PAGE_ROWS` steps through `range`; `next`
/// gives a series' first step after a step, so memory stays bounded.
fn wide_rows(
    columns: &[(i32, usize)],
    width: usize,
    mut next: impl FnMut(i32, i64) -> Result<Option<i64>>,
    mut range: impl FnMut(i32, i64, i64) -> Result<Vec<(i64, f64)>>,
    mut emit: impl FnMut(i64, &[Option<f64>]) -> Result<()>,
) -> Result<()> {
    let mut after = i64::MIN;
    loop {
        let mut start: Option<i64> = None;
        for &(metric, _) in columns {
            if let Some(s) = next(metric, after)? {
                start = Some(start.map_or(s, |x: i64| x.min(s)));
            }
        }
        let Some(start) = start else {
            return Ok(());
        };
        let end = start.saturating_add(PAGE_ROWS - 1);
        let mut merged: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
        for &(metric, col) in columns {
            for (step, v) in range(metric, start, end)? {
                merged.entry(step).or_insert_with(|| vec![None; width])[col] = Some(v);
            }
        }
        for (step, values) in merged {
            emit(step, &values)?;
        }
        if end == i64::MAX {
            return Ok(());
        }
        after = end;
    }
}
