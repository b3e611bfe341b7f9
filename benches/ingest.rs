//! Ingest throughput: the canonical workload of DESIGN.md (100 agents x
//! 10,000 steps, a reward and a ~60-byte JSON state per agent-step, one step
//! row per step) through the simdb Recorder, against the raw ceiling in the
//! same run: rusqlite prepared multi-row INSERTs into the same SQLite schema,
//! and binary COPY through the `postgres` crate into the same PostgreSQL
//! schema — both given the same 10,000-row batches in the same (primary-key)
//! order as the Recorder writes them. Also times the simple one-call-per-row facade path, for contrast.
//!
//! Each runs under both durability settings, the ceilings with the matching
//! setting (SQLite `synchronous` FULL / NORMAL, PostgreSQL
//! `synchronous_commit` on / off), so the cost of each is printed too.
//!
//! `cargo bench --bench ingest`; `SIMDB_BENCH_ROWS` sets the number of agent
//! states (default 1,000,000); `SIMDB_BENCH_BACKENDS=sqlite` skips PostgreSQL.
//! The same ceiling also runs against the previous release's layout of
//! `agent_states` (a foreign key to `agents` and a `(sim_key, step)` index,
//! recreated in a scratch database), so the hot-table design's gain is
//! printed as a ratio measured in the same run.
//!
//! Prints `RESULT backend=... recorder=<rows/s> ceiling=<rows/s> ratio=...
//! old_ceiling=<rows/s> gain=<recorder/old_ceiling> durability=... simple=...`.

use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{
    Backend, Database, Durability, NewAgent, NewSimulation, RecorderOptions, Simulation,
    SimulationService,
};

const AGENTS: i64 = 100;

#[derive(Serialize)]
struct Inventory {
    ore: i64,
    battery: i64,
}

#[derive(Serialize)]
struct State {
    energy: f64,
    inventory: Inventory,
    hp: i64,
}

fn state(step: i64, agent: i64) -> State {
    State {
        energy: ((step * 31 + agent * 17) % 10_000) as f64 / 100.0,
        inventory: Inventory {
            ore: agent % 7,
            battery: 1,
        },
        hp: 100 - (step % 4),
    }
}

fn reward(step: i64, agent: i64) -> f64 {
    ((step * 7 + agent) % 1000) as f64 / 1000.0
}

mod common;
use common::{bench_rows, selected_backends, status_mib};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Which layout of `agent_states` a ceiling writes into.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Today's: the primary key only.
    Hot,
    /// The previous release's: plus a foreign key to `agents` and a
    /// `(sim_key, step)` index.
    Old,
}

/// Puts the previous release's `agent_states` back (it is empty here).
const SQLITE_OLD_LAYOUT: &str = "DROP TABLE simdb_agent_states;
    CREATE TABLE simdb_agent_states (
        sim_key     INTEGER NOT NULL,
        agent_index INTEGER NOT NULL,
        step        INTEGER NOT NULL CHECK (step >= 0),
        reward      REAL NOT NULL,
        state       TEXT NOT NULL,
        PRIMARY KEY (sim_key, agent_index, step),
        FOREIGN KEY (sim_key, agent_index) REFERENCES simdb_agents (sim_key, agent_index) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX simdb_agent_states_by_step ON simdb_agent_states (sim_key, step);";

const POSTGRES_OLD_LAYOUT: &str = "ALTER TABLE simdb_agent_states ALTER COLUMN state TYPE jsonb;
    ALTER TABLE simdb_agent_states ADD FOREIGN KEY (sim_key, agent_index)
        REFERENCES simdb_agents (sim_key, agent_index) ON DELETE CASCADE;
    CREATE INDEX simdb_agent_states_by_step ON simdb_agent_states (sim_key, step);";

fn setup(svc: &SimulationService) -> BenchResult<Simulation> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"agents": AGENTS})))?;
    let agents: Vec<NewAgent> = (0..AGENTS as i32)
        .map(|i| NewAgent::new(i).kind("bench"))
        .collect();
    svc.register_agents(&sim.id, &agents)?;
    Ok(svc.start_simulation(&sim.id)?)
}

/// One row per agent: (step, agent, reward, span of its JSON state in `json`).
type Rows = Vec<(i64, i64, f64, std::ops::Range<usize>)>;

/// Serializes every agent's state at `step` onto `json`, as the Recorder
/// does, so that the ceilings pay the same serialization cost.
fn serialize_step(step: i64, json: &mut Vec<u8>, rows: &mut Rows) -> BenchResult<()> {
    for agent in 0..AGENTS {
        let from = json.len();
        serde_json::to_writer(&mut *json, &state(step, agent))?;
        rows.push((step, agent, reward(step, agent), from..json.len()));
    }
    Ok(())
}

/// The database of `db` opened with `durability`.
fn open(db: &TestDatabase, durability: Durability) -> BenchResult<SimulationService> {
    Ok(SimulationService::new(
        Database::builder(db.url()).durability(durability).open()?,
    ))
}

/// The Recorder, as a simulation loop would call it (ending every step).
fn recorder_run(db: &TestDatabase, steps: i64, durability: Durability) -> BenchResult<f64> {
    let svc = open(db, durability)?;
    let sim = setup(&svc)?;
    let start = Instant::now();
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default())?;
    for step in 0..steps {
        for agent in 0..AGENTS {
            rec.agent_state(step, agent as i32, reward(step, agent), &state(step, agent))?;
        }
        rec.step(step, &json!({"alive": AGENTS}))?;
        rec.end_step(step)?;
    }
    rec.close()?;
    let secs = start.elapsed().as_secs_f64();
    check_count(&svc, &sim, steps)?;
    Ok(secs)
}

fn check_count(svc: &SimulationService, sim: &Simulation, steps: i64) -> BenchResult<()> {
    let last = svc.states_at_step(&sim.id, steps - 1)?;
    if last.len() != AGENTS as usize {
        return Err(format!(
            "expected {AGENTS} states at the last step, found {}",
            last.len()
        )
        .into());
    }
    Ok(())
}

/// One call (one transaction) per row through the facade.
fn simple_run(db: &TestDatabase, rows: i64, durability: Durability) -> BenchResult<f64> {
    let svc = open(db, durability)?;
    let sim = setup(&svc)?;
    let start = Instant::now();
    for i in 0..rows {
        let (step, agent) = (i / AGENTS, i % AGENTS);
        let value = serde_json::to_value(state(step, agent))?;
        svc.record_agent_state(&sim.id, step, agent as i32, reward(step, agent), &value)?;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

/// rusqlite, prepared multi-row INSERTs of 128 rows bound in place,
/// 10,000 rows per transaction sorted into primary-key order (as the
/// Recorder does), into the same schema (migrated by simdb).
fn sqlite_ceiling(
    db: &TestDatabase,
    steps: i64,
    durability: Durability,
    layout: Layout,
) -> BenchResult<f64> {
    let svc = SimulationService::new(db.database().clone());
    let sim = setup(&svc)?;
    let path = db
        .database()
        .path()
        .ok_or("not a file database")?
        .to_path_buf();
    let conn = rusqlite::Connection::open(path)?;
    let synchronous = match durability {
        Durability::ProcessCrash => "NORMAL",
        _ => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous};"
    ))?;
    if layout == Layout::Old {
        conn.execute_batch(SQLITE_OLD_LAYOUT)?;
    }
    const CHUNK: usize = 128;
    let values = vec!["(?, ?, ?, ?, ?)"; CHUNK].join(", ");
    let sql = format!(
        "INSERT INTO simdb_agent_states (sim_key, agent_index, step, reward, state) VALUES {values}"
    );
    let one = "INSERT INTO simdb_agent_states (sim_key, agent_index, step, reward, state) VALUES (?, ?, ?, ?, ?)";
    let step_sql =
        "INSERT INTO simdb_simulation_steps (sim_key, step, recorded_at, metrics) VALUES (?, ?, ?, ?)";
    let metrics = serde_json::to_string(&json!({"alive": AGENTS}))?;
    let start = Instant::now();
    let mut json = Vec::with_capacity(64 * 10_000);
    let mut rows: Rows = Vec::with_capacity(10_000);
    let mut step_rows: Vec<(i64, String)> = Vec::new();
    let write = |rows: &mut Rows,
                 json: &mut Vec<u8>,
                 step_rows: &mut Vec<(i64, String)>|
     -> BenchResult<()> {
        rows.sort_unstable_by_key(|r| (r.1, r.0));
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut chunks = rows.chunks_exact(CHUNK);
            for chunk in &mut chunks {
                for (i, (step, agent, reward, span)) in chunk.iter().enumerate() {
                    let at = i * 5;
                    stmt.raw_bind_parameter(at + 1, sim.sim_key)?;
                    stmt.raw_bind_parameter(at + 2, *agent)?;
                    stmt.raw_bind_parameter(at + 3, *step)?;
                    stmt.raw_bind_parameter(at + 4, *reward)?;
                    stmt.raw_bind_parameter(at + 5, std::str::from_utf8(&json[span.clone()])?)?;
                }
                stmt.raw_execute()?;
            }
            let mut single = tx.prepare_cached(one)?;
            for (step, agent, reward, span) in chunks.remainder() {
                single.execute(rusqlite::params![
                    sim.sim_key,
                    agent,
                    step,
                    reward,
                    std::str::from_utf8(&json[span.clone()])?
                ])?;
            }
            let mut st = tx.prepare_cached(step_sql)?;
            for (step, at) in step_rows.iter() {
                st.execute(rusqlite::params![sim.sim_key, step, at, metrics])?;
            }
        }
        tx.commit()?;
        rows.clear();
        json.clear();
        step_rows.clear();
        Ok(())
    };
    for step in 0..steps {
        serialize_step(step, &mut json, &mut rows)?;
        step_rows.push((
            step,
            chrono::Utc::now().format("%F %T%.f+00:00").to_string(),
        ));
        if rows.len() >= 10_000 {
            write(&mut rows, &mut json, &mut step_rows)?;
        }
    }
    if !rows.is_empty() {
        write(&mut rows, &mut json, &mut step_rows)?;
    }
    let secs = start.elapsed().as_secs_f64();
    check_count(&svc, &sim, steps)?;
    Ok(secs)
}

/// JSON text sent as JSONB in binary COPY: version byte 1, then the text.
#[derive(Debug)]
struct RawJsonb<'a>(&'a [u8]);

/// JSON text sent as JSON in binary COPY: the text itself.
#[derive(Debug)]
struct RawJson<'a>(&'a [u8]);

impl postgres::types::ToSql for RawJson<'_> {
    fn to_sql(
        &self,
        _ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0);
        Ok(postgres::types::IsNull::No)
    }
    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::JSON
    }
    postgres::types::to_sql_checked!();
}

impl postgres::types::ToSql for RawJsonb<'_> {
    fn to_sql(
        &self,
        _ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0);
        Ok(postgres::types::IsNull::No)
    }
    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::JSONB
    }
    postgres::types::to_sql_checked!();
}

/// Binary COPY through the `postgres` crate, 10,000 rows per COPY and
/// transaction sorted into primary-key order (as the Recorder does), into
/// the same schema (migrated by simdb).
fn postgres_ceiling(
    db: &TestDatabase,
    steps: i64,
    durability: Durability,
    layout: Layout,
) -> BenchResult<f64> {
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    let svc = SimulationService::new(db.database().clone());
    let sim = setup(&svc)?;
    let mut client = postgres::Client::connect(db.url(), postgres::NoTls)?;
    let synchronous_commit = match durability {
        Durability::ProcessCrash => "off",
        _ => "on",
    };
    client.batch_execute(&format!(
        "SET synchronous_commit = {synchronous_commit}; SET search_path TO simdb, public"
    ))?;
    if layout == Layout::Old {
        client.batch_execute(POSTGRES_OLD_LAYOUT)?;
    }
    let start = Instant::now();
    let mut json = Vec::with_capacity(64 * 10_000);
    let mut rows: Rows = Vec::with_capacity(10_000);
    let mut step_rows: Vec<i64> = Vec::new();
    let metrics = serde_json::to_vec(&json!({"alive": AGENTS}))?;
    let write = |client: &mut postgres::Client,
                 rows: &mut Rows,
                 json: &mut Vec<u8>,
                 step_rows: &mut Vec<i64>|
     -> BenchResult<()> {
        let mut tx = client.transaction()?;
        {
            let sink = tx.copy_in("COPY simdb_agent_states (sim_key, agent_index, step, reward, state) FROM STDIN (FORMAT binary)")?;
            // The state column's type in each layout: JSON now, JSONB before.
            let state_type = match layout {
                Layout::Hot => Type::JSON,
                Layout::Old => Type::JSONB,
            };
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[Type::INT4, Type::INT4, Type::INT8, Type::FLOAT8, state_type],
            );
            for (step, agent, reward, span) in rows.iter() {
                let text = &json[span.clone()];
                let (as_json, as_jsonb) = (RawJson(text), RawJsonb(text));
                let state: &(dyn postgres::types::ToSql + Sync) = match layout {
                    Layout::Hot => &as_json,
                    Layout::Old => &as_jsonb,
                };
                w.write(&[&sim.sim_key, &(*agent as i32), step, reward, state])?;
            }
            w.finish()?;
        }
        {
            let sink = tx.copy_in("COPY simdb_simulation_steps (sim_key, step, recorded_at, metrics) FROM STDIN (FORMAT binary)")?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[Type::INT4, Type::INT8, Type::TIMESTAMPTZ, Type::JSONB],
            );
            let now = std::time::SystemTime::now();
            for step in step_rows.iter() {
                w.write(&[&sim.sim_key, step, &now, &RawJsonb(&metrics)])?;
            }
            w.finish()?;
        }
        tx.commit()?;
        rows.clear();
        json.clear();
        step_rows.clear();
        Ok(())
    };
    for step in 0..steps {
        serialize_step(step, &mut json, &mut rows)?;
        step_rows.push(step);
        if rows.len() >= 10_000 {
            write(&mut client, &mut rows, &mut json, &mut step_rows)?;
        }
    }
    if !rows.is_empty() {
        write(&mut client, &mut rows, &mut json, &mut step_rows)?;
    }
    let secs = start.elapsed().as_secs_f64();
    match layout {
        Layout::Hot => check_count(&svc, &sim, steps)?,
        // simdb reads the state column as JSON; this one is JSONB.
        Layout::Old => {
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM simdb_agent_states WHERE sim_key = $1",
                    &[&sim.sim_key],
                )?
                .get(0);
            if n != steps * AGENTS {
                return Err(format!("expected {} states, found {n}", steps * AGENTS).into());
            }
        }
    }
    Ok(secs)
}

fn main() -> BenchResult<()> {
    let steps = (bench_rows() / AGENTS).max(1);
    let rows = steps * AGENTS;
    println!(
        "ingest: {rows} agent states ({AGENTS} agents x {steps} steps) + {steps} step rows per run"
    );

    for (backend, name) in selected_backends("sqlite,postgres") {
        for durability in [Durability::PowerLoss, Durability::ProcessCrash] {
            let mode = match durability {
                Durability::ProcessCrash => "process-crash",
                _ => "power-loss",
            };
            // Recorder first, in a fresh process state, so the first peak
            // RSS is its own.
            let rec_secs = recorder_run(&TestDatabase::new(backend)?, steps, durability)?;
            let rss = status_mib("VmHWM:");
            let ceiling_in = |layout| -> BenchResult<f64> {
                let db = TestDatabase::new(backend)?;
                match backend {
                    Backend::Sqlite => sqlite_ceiling(&db, steps, durability, layout),
                    Backend::Postgres => postgres_ceiling(&db, steps, durability, layout),
                }
            };
            let ceil_secs = ceiling_in(Layout::Hot)?;
            let old_secs = ceiling_in(Layout::Old)?;
            let simple_rows = (rows / 50).clamp(100, 20_000);
            let simple = simple_run(&TestDatabase::new(backend)?, simple_rows, durability)?;
            let recorder = rows as f64 / rec_secs;
            let ceiling = rows as f64 / ceil_secs;
            let old_ceiling = rows as f64 / old_secs;
            println!("{name} ({mode}): recorder {rec_secs:.2}s ({recorder:.0} rows/s), raw ceiling {ceil_secs:.2}s ({ceiling:.0} rows/s), previous layout's raw ceiling {old_secs:.2}s ({old_ceiling:.0} rows/s), simple facade {simple:.0} rows/s ({simple_rows} rows)");
            if let Some(rss) = rss {
                println!(
                    "{name}: peak RSS after recording {rows} rows: {rss:.1} MiB (ceiling: 100 MiB)"
                );
            }
            println!(
                "RESULT backend={name} recorder={recorder:.0} ceiling={ceiling:.0} ratio={:.2} old_ceiling={old_ceiling:.0} gain={:.2} durability={mode} simple={simple:.0}",
                recorder / ceiling,
                recorder / old_ceiling
            );
        }
    }
    Ok(())
}
