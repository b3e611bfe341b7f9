//! Peak memory of a lossless JSONL export: every table is read in keyset
//! pages, so the export of a 10M-row simulation must need no more memory than
//! that of a 1M-row one. Records `SIMDB_BENCH_ROWS` agent states (default
//! 1,000,000; 100 agents, each with an agent metric per step, plus a step row
//! and a step metric per step), resets the process's peak RSS
//! (`/proc/self/clear_refs`), exports to a sink and prints the peak RSS of
//! the export next to the 100 MiB ceiling of DESIGN.md.
//!
//! Then writes the same run as JSONL and CSV files and, with the `parquet`
//! feature, as Parquet (zstd and snappy), printing for each the agent
//! states per second, the bytes per agent state and the peak RSS.
//!
//! `cargo bench --bench export --features parquet`;
//! `SIMDB_BENCH_BACKENDS=sqlite,postgres` (default sqlite). Prints
//! `RESULT backend=... rows=... export_peak_rss_mib=...` and
//! `RESULT backend=... format=... agent_states_per_sec=... bytes_per_agent_state=... peak_rss_mib=...`.

use std::time::Instant;

use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{NewAgent, NewSimulation, RecorderOptions, SimulationService};

mod common;
use common::{bench_rows, selected_backends, status_mib};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const AGENTS: i64 = 100;

fn main() -> BenchResult<()> {
    let rows = bench_rows();
    let steps = (rows / AGENTS).max(1);
    for (backend, name) in selected_backends("sqlite") {
        let db = TestDatabase::new(backend)?;
        let svc = SimulationService::new(db.database().clone());
        let sim = svc.create_simulation(NewSimulation::new(json!({"agents": AGENTS})))?;
        let agents: Vec<NewAgent> = (0..AGENTS as i32).map(NewAgent::new).collect();
        svc.register_agents(&sim.id, &agents)?;
        svc.start_simulation(&sim.id)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default())?;
        for step in 0..steps {
            for agent in 0..AGENTS as i32 {
                let x = (step * 31 + agent as i64) % 1000;
                // The canonical ~70-byte state.
                rec.agent_state(
                    step,
                    agent,
                    x as f64 / 1000.0,
                    &json!({"energy": x as f64 / 10.0 + 0.25, "inventory": {"ore": agent % 5, "battery": 1}, "hp": 97}),
                )?;
                rec.agent_metric(step, agent, "energy", x as f64)?;
            }
            rec.step(step, &json!({"alive": AGENTS}))?;
            rec.metric(step, "alive", AGENTS as f64)?;
            rec.end_step(step)?;
        }
        rec.close()?;
        let before = status_mib("VmRSS:").unwrap_or(0.0);
        // Resets VmHWM to the current RSS, so the next peak is the export's.
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let start = Instant::now();
        let lines = svc.export_jsonl(&sim.id, std::io::sink())?;
        let secs = start.elapsed().as_secs_f64();
        let peak = status_mib("VmHWM:").unwrap_or(0.0);
        println!(
            "{name}: exported {lines} lines ({} agent states) in {secs:.1}s; RSS {before:.1} MiB before, peak {peak:.1} MiB during (peak reset: {reset}; ceiling 100 MiB)",
            steps * AGENTS
        );
        println!(
            "RESULT backend={name} rows={} export_peak_rss_mib={peak:.1} rss_before_mib={before:.1}",
            steps * AGENTS
        );
        formats(&svc, &sim.id, name, steps * AGENTS)?;
    }
    Ok(())
}

/// Bytes of a file, or of every file of a directory.
fn size(path: &std::path::Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

/// Each format into a scratch file: speed, size and peak memory.
fn formats(
    svc: &SimulationService,
    id: &simdb::SimulationId,
    name: &str,
    rows: i64,
) -> BenchResult<()> {
    let dir = std::env::temp_dir().join(format!("simdb-export-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let run = |format: &str,
               write: &mut dyn FnMut(&std::path::Path) -> BenchResult<()>|
     -> BenchResult<()> {
        let out = dir.join(format);
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let start = Instant::now();
        write(&out)?;
        let secs = start.elapsed().as_secs_f64();
        let peak = status_mib("VmHWM:").unwrap_or(0.0);
        let bytes = size(&out);
        println!(
            "{name} {format}: {:.0} agent-states/s, {:.1} bytes per agent state, peak RSS {peak:.1} MiB",
            rows as f64 / secs,
            bytes as f64 / rows as f64
        );
        println!(
            "RESULT backend={name} format={format} agent_states_per_sec={:.0} bytes_per_agent_state={:.2} peak_rss_mib={peak:.1}",
            rows as f64 / secs,
            bytes as f64 / rows as f64
        );
        Ok(())
    };
    run("jsonl", &mut |p| {
        svc.export_jsonl(id, std::io::BufWriter::new(std::fs::File::create(p)?))?;
        Ok(())
    })?;
    run("csv", &mut |p| {
        svc.export_csv(id, std::fs::File::create(p)?)?;
        Ok(())
    })?;
    #[cfg(feature = "parquet")]
    for (format, compression) in [
        ("parquet-zstd", simdb::ParquetCompression::Zstd),
        ("parquet-snappy", simdb::ParquetCompression::Snappy),
    ] {
        run(format, &mut |p| {
            let options = simdb::ParquetOptions {
                compression,
                ..Default::default()
            };
            svc.export_parquet(std::slice::from_ref(id), p, &options)?;
            Ok(())
        })?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
