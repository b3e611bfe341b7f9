//! Parquet exports read back by the real readers: pyarrow, polars, DuckDB
//! and pandas, installed from the package registry into a virtual
//! environment cached under `target/`. A run with hostile names (a metric
//! called `a,b"c`, a state key with a dot, unicode) and the gridworld-like
//! run of a sweep, on both backends; each reader's row counts, column sums
//! and exact values must equal simdb's own analytics.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use simdb::{ParquetCompression, ParquetOptions};

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: what.to_string(),
        source: e,
    }
}

/// The cached virtual environment's python, made once (a directory lock
/// keeps parallel test processes from building it twice).
fn python() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyreaders");
    let python = root.join("bin/python");
    let ready = root.join(".ready");
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyreaders.lock");
    loop {
        if ready.exists() {
            return Ok(python);
        }
        if std::fs::create_dir(&lock).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let made = (|| -> Result<()> {
        let run = |cmd: &mut Command| -> Result<()> {
            let out = cmd.output().map_err(io("python3"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(Error::Io {
                    path: "pip".into(),
                    source: std::io::Error::other(
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    ),
                })
            }
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&root))?;
        run(Command::new(root.join("bin/pip"))
            .args(["install", "-q", "pyarrow", "polars", "duckdb", "pandas"]))?;
        std::fs::write(&ready, b"").map_err(io("venv"))
    })();
    let _ = std::fs::remove_dir(&lock);
    made.map(|()| python)
}

/// What each reader makes of the files: JSON from the script below.
const READERS: &str = r#"
import json, sys
import pyarrow.parquet as pq, polars as pl, duckdb, pandas as pd
d = sys.argv[1]
def f(kind): return f"{d}/{kind}.parquet"
out = {}
t = pq.read_table(f("agent_states"))
m = pq.read_table(f("agent_metrics"))
out["pyarrow"] = {
    "states": t.num_rows,
    "reward_sum": sum(x for x in t.column("reward").to_pylist()),
    "dotted_sum": sum(x for x in t.column("state.we.ird").to_pylist() if x is not None),
    "metrics": m.num_rows,
    "hostile": [r["value"] for r in m.to_pylist() if r["metric"] == 'a,b"c' and r["agent_index"] == 1 and r["step"] == 3],
}
s = pl.read_parquet(f("agent_states"))
sm = pl.read_parquet(f("step_metrics"))
out["polars"] = {
    "states": s.height,
    "reward_sum": s["reward"].sum(),
    "unicode_sum": s["state.énergie"].sum(),
    "step_metrics": sm.height,
    "delta_sum": sm.filter(pl.col("metric") == "δ-metric")["value"].sum(),
    "sims": pl.read_parquet(f("simulations"))["simulation_id"].to_list(),
}
c = duckdb.connect()
q = lambda sql: c.execute(sql).fetchall()
out["duckdb"] = {
    "states": q(f"SELECT COUNT(*) FROM '{f('agent_states')}'")[0][0],
    "reward_sum": q(f"SELECT SUM(reward) FROM '{f('agent_states')}'")[0][0],
    "last_state": q(f"SELECT state FROM '{f('agent_states')}' WHERE agent_index = 2 AND step = 9")[0][0],
    "metric_sum": q(f"""SELECT SUM(value) FROM '{f('agent_metrics')}' WHERE metric = 'a,b"c'""")[0][0],
    "agents": q(f"SELECT COUNT(*) FROM '{f('agents')}'")[0][0],
    "events": q(f"SELECT COUNT(*) FROM '{f('events')}'")[0][0],
    "steps": q(f"SELECT COUNT(*) FROM '{f('steps')}'")[0][0],
    "param": q(f"""SELECT "param.lr" FROM '{f('simulations')}' ORDER BY simulation_id""")[0][0],
}
p = pd.read_parquet(f("agent_states"))
out["pandas"] = {"states": len(p), "reward_sum": float(p["reward"].sum())}
print(json.dumps(out))
"#;

fn hostile_run(svc: &SimulationService) -> Result<Simulation> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"lr": 0.25, "name": "ünï"})))?;
    svc.register_agents(
        &sim.id,
        &(0..3)
            .map(|i| NewAgent::new(i).kind("k,\"ind"))
            .collect::<Vec<_>>(),
    )?;
    svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..10i64 {
        for agent in 0..3 {
            let st = json!({"we.ird": step as f64 * 0.5 + agent as f64, "énergie": agent, "s": "a,b\"c\n"});
            rec.agent_state(step, agent, step as f64 / 10.0 + agent as f64, &st)?;
            rec.agent_metric(step, agent, "a,b\"c", step as f64 * 10.0 + agent as f64)?;
        }
        rec.metric(step, "δ-metric", step as f64 * 1.5)?;
        rec.step(step, &json!({"note": "ü"}))?;
        rec.end_step(step)?;
    }
    rec.close()?;
    svc.complete_simulation(&sim.id, json!({"ok": true}))?;
    Ok(sim)
}

fn read_back(dir: &Path) -> Result<Value> {
    let out = Command::new(python()?)
        .arg("-c")
        .arg(READERS)
        .arg(dir)
        .output()
        .map_err(io("python"))?;
    assert!(
        out.status.success(),
        "readers failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

backend_tests! {
    fn parquet_is_read_by_pyarrow_polars_duckdb_and_pandas(db) {
        let svc = service(db);
        let sim = hostile_run(&svc)?;
        let dir = std::env::temp_dir().join(format!("simdb-parquet-{}-{:?}", std::process::id(), db.backend()));
        for compression in [ParquetCompression::Zstd, ParquetCompression::Snappy] {
            let options = ParquetOptions { flatten_state: true, wide: false, compression };
            let written = svc.export_parquet(std::slice::from_ref(&sim.id), &dir, &options)?;
            assert_eq!(written.files.len(), 7);
            let got = read_back(&dir)?;
            // simdb's own numbers.
            let a = svc.analytics();
            let summary = a.summary(&sim.id)?;
            let rows = summary.agent_state_rows;
            let reward: f64 = a.step_aggregates(&sim.id, "reward", 0)?.iter().map(|b| b.sum).sum();
            // A key with a dot is no state path of simdb's: summed from the rows.
            let mut dotted = 0.0;
            for agent in 0..3 {
                dotted += svc.agent_states(&sim.id, agent, ..)?.iter().filter_map(|s| s.state["we.ird"].as_f64()).sum::<f64>();
            }
            let unicode: f64 = a.step_aggregates(&sim.id, "state.énergie", 0)?.iter().map(|b| b.sum).sum();
            let hostile: f64 = a.step_aggregates(&sim.id, "a,b\"c", 0)?.iter().map(|b| b.sum).sum();
            let delta: f64 = a.step_aggregates(&sim.id, "δ-metric", 0)?.iter().map(|b| b.sum).sum();
            let close = |v: &Value, want: f64| v.as_f64().is_some_and(|x| (x - want).abs() <= 1e-9 * want.abs().max(1.0));
            for reader in ["pyarrow", "polars", "duckdb", "pandas"] {
                assert_eq!(got[reader]["states"], json!(rows), "{reader}: {got}");
                assert!(close(&got[reader]["reward_sum"], reward), "{reader}: {got}");
            }
            assert!(close(&got["pyarrow"]["dotted_sum"], dotted), "{got}");
            assert_eq!(got["pyarrow"]["metrics"], json!(30));
            assert_eq!(got["pyarrow"]["hostile"], json!([31.0]));
            assert!(close(&got["polars"]["unicode_sum"], unicode), "{got}");
            assert_eq!(got["polars"]["step_metrics"], json!(10));
            assert!(close(&got["polars"]["delta_sum"], delta), "{got}");
            assert_eq!(got["polars"]["sims"], json!([sim.id.as_str()]));
            assert!(close(&got["duckdb"]["metric_sum"], hostile), "{got}");
            let last = svc.agent_states(&sim.id, 2, 9..=9)?;
            let text = got["duckdb"]["last_state"].as_str().unwrap_or_default();
            assert_eq!(serde_json::from_str::<Value>(text)?, last[0].state);
            assert_eq!(got["duckdb"]["agents"], json!(3));
            assert_eq!(got["duckdb"]["events"], json!(svc.events(&sim.id)?.len()));
            assert_eq!(got["duckdb"]["steps"], json!(10));
            assert_eq!(got["duckdb"]["param"], json!(0.25));
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn wide_metrics_pivot_one_column_each(db) {
        let svc = service(db);
        let sim = hostile_run(&svc)?;
        let dir = std::env::temp_dir().join(format!("simdb-parquet-wide-{}-{:?}", std::process::id(), db.backend()));
        let options = ParquetOptions { flatten_state: false, wide: true, compression: ParquetCompression::Zstd };
        svc.export_parquet(std::slice::from_ref(&sim.id), &dir, &options)?;
        let script = r#"
import json, sys, polars as pl
d = sys.argv[1]
m = pl.read_parquet(f"{d}/agent_metrics.parquet")
s = pl.read_parquet(f"{d}/step_metrics.parquet")
print(json.dumps({"rows": m.height, "cols": m.columns, "v": m.filter((pl.col("agent_index") == 1) & (pl.col("step") == 3))['a,b"c'].to_list(), "srows": s.height, "scols": s.columns}))
"#;
        let out = Command::new(python()?).arg("-c").arg(script).arg(&dir).output().map_err(io("python"))?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(got["rows"], json!(30), "{got}");
        assert_eq!(got["cols"], json!(["simulation_id", "agent_index", "step", "a,b\"c"]));
        assert_eq!(got["v"], json!([31.0]));
        assert_eq!(got["srows"], json!(10));
        assert_eq!(got["scols"], json!(["simulation_id", "step", "δ-metric"]));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// The canonical workload's size: 100 agents x 10,000 steps, read by
    /// every reader.
    fn a_million_agent_states_are_read_by_every_reader(db) {
        let svc = service(db);
        let agents = 100i32;
        let steps = 10_000i64;
        let sim = running_sim(&svc, agents)?;
        let mut rec = svc.recorder(&sim.id)?;
        let mut reward_sum = 0.0;
        for step in 0..steps {
            for agent in 0..agents {
                let x = ((step * 7 + agent as i64) % 1000) as f64 / 1000.0;
                reward_sum += x;
                rec.agent_state(step, agent, x, &state(step, agent))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        let dir = std::env::temp_dir().join(format!("simdb-parquet-1m-{}-{:?}", std::process::id(), db.backend()));
        let written = svc.export_parquet(std::slice::from_ref(&sim.id), &dir, &ParquetOptions::default())?;
        assert_eq!(written.files[0].1, (steps * agents as i64) as u64);
        let script = r#"
import json, sys, pyarrow.parquet as pq, polars as pl, duckdb, pandas as pd
f = sys.argv[1] + "/agent_states.parquet"
t = pq.read_table(f, columns=["reward"])
p = pd.read_parquet(f, columns=["reward", "step"])
print(json.dumps({
  "pyarrow": [t.num_rows, float(sum(t.column("reward").to_pylist()))],
  "polars": [pl.read_parquet(f).height, float(pl.read_parquet(f, columns=["reward"])["reward"].sum())],
  "duckdb": list(duckdb.connect().execute(f"SELECT COUNT(*), SUM(reward) FROM '{f}'").fetchall()[0]),
  "pandas": [len(p), float(p["reward"].sum())],
  "step_max": int(p["step"].max()),
}))
"#;
        let out = Command::new(python()?).arg("-c").arg(script).arg(&dir).output().map_err(io("python"))?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout)?;
        let rolled: f64 = svc.analytics().step_aggregates(&sim.id, "reward", 0)?.iter().map(|b| b.sum).sum();
        assert!((rolled - reward_sum).abs() < 1e-6 * reward_sum);
        for reader in ["pyarrow", "polars", "duckdb", "pandas"] {
            assert_eq!(got[reader][0], json!(steps * agents as i64), "{reader}: {got}");
            let sum = got[reader][1].as_f64().unwrap_or(f64::NAN);
            assert!((sum - rolled).abs() < 1e-6 * rolled, "{reader}: {sum} vs {rolled}");
        }
        assert_eq!(got["step_max"], json!(steps - 1));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
