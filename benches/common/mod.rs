//! What the benches share: which rows and backends to run, timing, and the
//! process's memory figures. (Each bench uses part of it.)
#![allow(dead_code)]

use std::time::{Duration, Instant};

use simdb::Backend;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The database of `db` opened with `durability`, as a service.
pub fn service_with(
    db: &simdb::test_support::TestDatabase,
    durability: simdb::Durability,
) -> BenchResult<simdb::SimulationService> {
    Ok(simdb::SimulationService::new(
        simdb::Database::builder(db.url())
            .durability(durability)
            .open()?,
    ))
}

/// `SIMDB_BENCH_ROWS`: agent states per run (default 1,000,000).
pub fn bench_rows() -> i64 {
    std::env::var("SIMDB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The backends `SIMDB_BENCH_BACKENDS` names (comma-separated; `default`
/// when unset), each with its name.
pub fn selected_backends(default: &str) -> Vec<(Backend, &'static str)> {
    let wanted = std::env::var("SIMDB_BENCH_BACKENDS").unwrap_or_else(|_| default.into());
    [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")]
        .into_iter()
        .filter(|(_, name)| wanted.split(',').any(|b| b == *name))
        .collect()
}

/// Median of `runs` timings of `f`.
pub fn median(runs: usize, mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS:`,
/// `VmHWM:` for the peak), in MiB.
pub fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Bytes on disk of `table`, its primary key's index included (SQLite's
/// `dbstat`, with the autoindex of a rowid table; PostgreSQL's
/// `pg_total_relation_size` after a plain `VACUUM`).
pub fn table_bytes(db: &simdb::test_support::TestDatabase, table: &str) -> BenchResult<i64> {
    Ok(match db.backend() {
        Backend::Sqlite => {
            let path = db
                .database()
                .path()
                .ok_or("not a file database")?
                .to_path_buf();
            let conn = rusqlite::Connection::open(path)?;
            conn.query_row(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 OR name = 'sqlite_autoindex_' || ?1 || '_1'",
                [table],
                |r| r.get(0),
            )?
        }
        Backend::Postgres => {
            let mut client = postgres::Client::connect(db.url(), postgres::NoTls)?;
            client.batch_execute("SET search_path TO simdb, public")?;
            client.batch_execute("VACUUM")?;
            client
                .query_one(&format!("SELECT pg_total_relation_size('{table}')"), &[])?
                .get(0)
        }
    })
}

/// One step of the canonical workload (DESIGN.md): each of `agents` agents'
/// reward (`((step·7 + agent) mod 1000) / 1000`) and ~60-byte JSON state.
pub fn canonical_step(rec: &mut simdb::Recorder, step: i64, agents: i32) -> simdb::Result<()> {
    for agent in 0..agents {
        let reward = ((step * 7 + i64::from(agent)) % 1000) as f64 / 1000.0;
        rec.agent_state(
            step,
            agent,
            reward,
            &serde_json::json!({"energy": 12.34, "inventory": {"ore": 3, "battery": 1}, "hp": 97}),
        )?;
    }
    Ok(())
}
