//! Ingest throughput: the canonical workload of DESIGN.md (100 agents x
//! 10,000 steps, a reward and a ~60-byte JSON state per agent-step, one step
//! row per step) through the simdb Recorder, against two raw ceilings in the
//! same run, both given the same states serialized the same way:
//!
//! - `ceiling`: today's chunk layout written by a raw driver (rusqlite
//!   prepared multi-row INSERTs; binary COPY through the `postgres` crate):
//!   whole 64-step chunks, encoded by simdb's own `AgentStateChunk::encode`,
//!   five chunks of steps (32,000 agent-steps; a default Recorder batch of
//!   this workload holds six) per transaction;
//! - `old_ceiling`: the row layout before it (one row per agent-step, primary
//!   key only, `json` state), recreated in a scratch database, 10,000-row
//!   batches in primary-key order.
//!
//! Each runs under both durability settings, the ceilings with the matching
//! setting (SQLite `synchronous` FULL / NORMAL, PostgreSQL
//! `synchronous_commit` on / off). Bytes per agent-state are the state
//! table's size on disk (SQLite's `dbstat`, PostgreSQL's
//! `pg_total_relation_size`, indexes included) over the states it holds.
//!
//! `cargo bench --bench ingest`; `SIMDB_BENCH_ROWS` sets the number of agent
//! states (default 1,000,000); `SIMDB_BENCH_BACKENDS=sqlite` skips PostgreSQL.
//!
//! Prints `RESULT backend=... recorder=<rows/s> ceiling=<rows/s> ratio=...
//! old_ceiling=<rows/s> gain=<recorder/old_ceiling> bytes_per_row=...
//! old_bytes_per_row=... durability=... simple=... slice=... parallel_2_lanes=...`
//! (`slice`: one `agent_states` call per step; `parallel_2_lanes`: two
//! threads per step, each through its own `RecorderLane`).

use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use simdb::models::{AgentMetricChunk, AgentStateChunk};
use simdb::test_support::TestDatabase;
use simdb::{
    Backend, Durability, NewAgent, NewSimulation, RecorderOptions, Simulation, SimulationService,
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
use common::{bench_rows, selected_backends, service_with, status_mib};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Which layout a ceiling writes into.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Today's: 64-step chunks per agent, states compressed.
    Chunks,
    /// The previous release's: one row per agent-step, primary key only.
    Rows,
}

/// The previous release's `agent_states` (recreated in a scratch database).
const SQLITE_ROW_LAYOUT: &str = "CREATE TABLE simdb_agent_states (
        sim_key     INTEGER NOT NULL,
        agent_index INTEGER NOT NULL,
        step        INTEGER NOT NULL CHECK (step >= 0),
        reward      REAL NOT NULL,
        state       TEXT NOT NULL,
        PRIMARY KEY (sim_key, agent_index, step)
    ) WITHOUT ROWID;";

const POSTGRES_ROW_LAYOUT: &str = "CREATE TABLE simdb_agent_states (
        sim_key     INTEGER NOT NULL,
        agent_index INTEGER NOT NULL,
        step        BIGINT NOT NULL CHECK (step >= 0),
        reward      DOUBLE PRECISION NOT NULL,
        state       JSON NOT NULL,
        PRIMARY KEY (sim_key, agent_index, step)
    );";

/// Steps per chunk (simdb's `chunk::STEPS`).
const CHUNK_STEPS: i64 = 64;

/// Whole chunks of steps per transaction of the chunk ceilings: 32,000
/// agent-steps, as many as one of the Recorder's default batches holds.
const CHUNKS_PER_TRANSACTION: i64 = 5;

/// One packed chunk: agent, chunk number, presence mask, rewards, states.
type Packed = (i32, i64, i64, Vec<u8>, Vec<u8>);

/// Packs the rows of whole chunks (every agent, `CHUNK_STEPS` steps) as
/// simdb stores them: `AgentStateChunk::encode`, simdb's own encoder.
fn pack(rows: &mut Rows, json: &[u8]) -> BenchResult<Vec<Packed>> {
    rows.sort_unstable_by_key(|r| (r.1, r.0));
    let mut out = Vec::new();
    let mut chunk_rows = Vec::new();
    for group in rows.chunk_by(|a, b| a.1 == b.1 && a.0 / CHUNK_STEPS == b.0 / CHUNK_STEPS) {
        chunk_rows.clear();
        for (step, _, reward, span) in group {
            chunk_rows.push((*step, *reward, std::str::from_utf8(&json[span.clone()])?));
        }
        let c = AgentStateChunk::encode(0, group[0].1 as i32, &chunk_rows)?;
        out.push((c.agent_index, c.chunk, c.present, c.rewards, c.states));
    }
    Ok(out)
}

/// Bytes on disk of `table` over the `values` it holds
/// (`common::table_bytes`).
fn bytes_per(db: &TestDatabase, table: &str, values: i64) -> BenchResult<f64> {
    Ok(common::table_bytes(db, table)? as f64 / values as f64)
}

/// Bytes on disk per agent-state of the table holding the states.
fn bytes_per_state(db: &TestDatabase, layout: Layout, states: i64) -> BenchResult<f64> {
    let table = match layout {
        Layout::Chunks => "simdb_agent_state_chunks",
        Layout::Rows => "simdb_agent_states",
    };
    bytes_per(db, table, states)
}

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

/// How the Recorder is called.
#[derive(Clone, Copy)]
enum Calls {
    /// One `agent_state` call per agent-step.
    Rows,
    /// One `agent_states` call per step (rewards and states as slices).
    Slices,
    /// `n` threads per step, each recording its share of the agents
    /// through its own `RecorderLane`; the step ended once all are done.
    Lanes(usize),
}

/// The Recorder, as a simulation loop would call it (ending every step).
fn recorder_run(db: &TestDatabase, steps: i64, durability: Durability) -> BenchResult<f64> {
    recorder_run_with(db, steps, durability, Calls::Rows)
}

fn recorder_run_with(
    db: &TestDatabase,
    steps: i64,
    durability: Durability,
    calls: Calls,
) -> BenchResult<f64> {
    let svc = service_with(db, durability)?;
    let sim = setup(&svc)?;
    let start = Instant::now();
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default())?;
    let mut rewards = Vec::with_capacity(AGENTS as usize);
    let mut states = Vec::with_capacity(AGENTS as usize);
    for step in 0..steps {
        match calls {
            Calls::Rows => {
                for agent in 0..AGENTS {
                    rec.agent_state(step, agent as i32, reward(step, agent), &state(step, agent))?;
                }
            }
            Calls::Slices => {
                rewards.clear();
                states.clear();
                for agent in 0..AGENTS {
                    rewards.push(reward(step, agent));
                    states.push(state(step, agent));
                }
                rec.agent_states(step, &rewards, &states)?;
            }
            Calls::Lanes(n) => {
                let rec = &rec;
                std::thread::scope(|scope| -> BenchResult<()> {
                    let handles: Vec<_> = (0..n as i64)
                        .map(|t| {
                            scope.spawn(move || -> simdb::Result<()> {
                                let mut lane = rec.lane();
                                for agent in (t..AGENTS).step_by(n) {
                                    lane.agent_state(
                                        step,
                                        agent as i32,
                                        reward(step, agent),
                                        &state(step, agent),
                                    )?;
                                }
                                lane.finish()
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().map_err(|_| "a recording thread panicked")??;
                    }
                    Ok(())
                })?;
            }
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
    let svc = service_with(db, durability)?;
    let sim = setup(&svc)?;
    let start = Instant::now();
    for i in 0..rows {
        let (step, agent) = (i / AGENTS, i % AGENTS);
        let value = serde_json::to_value(state(step, agent))?;
        svc.record_agent_state(&sim.id, step, agent as i32, reward(step, agent), &value)?;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

/// rusqlite, prepared multi-row INSERTs bound in place, into the same
/// schema (migrated by simdb): whole 64-step chunks per transaction
/// (`Chunks`), or 10,000 rows per transaction in primary-key order (`Rows`).
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
        "PRAGMA busy_timeout = 30000; PRAGMA synchronous = {synchronous};"
    ))?;
    if layout == Layout::Rows {
        conn.execute_batch(SQLITE_ROW_LAYOUT)?;
    }
    let (columns, per_statement, table_sql) = match layout {
        Layout::Rows => (
            5,
            128,
            "simdb_agent_states (sim_key, agent_index, step, reward, state)",
        ),
        Layout::Chunks => (
            6,
            64,
            "simdb_agent_state_chunks (sim_key, agent_index, chunk, present, rewards, states)",
        ),
    };
    let one_row = format!("({})", vec!["?"; columns].join(", "));
    let many = format!(
        "INSERT INTO {table_sql} VALUES {}",
        vec![one_row.as_str(); per_statement].join(", ")
    );
    let one = format!("INSERT INTO {table_sql} VALUES {one_row}");
    let step_sql =
        "INSERT INTO simdb_simulation_steps (sim_key, step, recorded_at, metrics) VALUES (?, ?, ?, ?)";
    let metrics = serde_json::to_string(&json!({"alive": AGENTS}))?;
    let batch_steps = match layout {
        Layout::Rows => 10_000 / AGENTS,
        Layout::Chunks => CHUNKS_PER_TRANSACTION * CHUNK_STEPS,
    };
    let start = Instant::now();
    let mut json = Vec::with_capacity(64 * 10_000);
    let mut rows: Rows = Vec::with_capacity(10_000);
    let mut step_rows: Vec<(i64, String)> = Vec::new();
    let write = |rows: &mut Rows,
                 json: &mut Vec<u8>,
                 step_rows: &mut Vec<(i64, String)>|
     -> BenchResult<()> {
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(&many)?;
            let mut single = tx.prepare_cached(&one)?;
            match layout {
                Layout::Rows => {
                    rows.sort_unstable_by_key(|r| (r.1, r.0));
                    let mut chunks = rows.chunks_exact(per_statement);
                    for chunk in &mut chunks {
                        for (i, (step, agent, reward, span)) in chunk.iter().enumerate() {
                            let at = i * 5;
                            stmt.raw_bind_parameter(at + 1, sim.sim_key)?;
                            stmt.raw_bind_parameter(at + 2, *agent)?;
                            stmt.raw_bind_parameter(at + 3, *step)?;
                            stmt.raw_bind_parameter(at + 4, *reward)?;
                            stmt.raw_bind_parameter(
                                at + 5,
                                std::str::from_utf8(&json[span.clone()])?,
                            )?;
                        }
                        stmt.raw_execute()?;
                    }
                    for (step, agent, reward, span) in chunks.remainder() {
                        single.execute(rusqlite::params![
                            sim.sim_key,
                            agent,
                            step,
                            reward,
                            std::str::from_utf8(&json[span.clone()])?
                        ])?;
                    }
                }
                Layout::Chunks => {
                    let packed = pack(rows, json)?;
                    let mut chunks = packed.chunks_exact(per_statement);
                    for chunk in &mut chunks {
                        for (i, (agent, number, present, rewards, states)) in
                            chunk.iter().enumerate()
                        {
                            let at = i * 6;
                            stmt.raw_bind_parameter(at + 1, sim.sim_key)?;
                            stmt.raw_bind_parameter(at + 2, *agent)?;
                            stmt.raw_bind_parameter(at + 3, *number)?;
                            stmt.raw_bind_parameter(at + 4, *present)?;
                            stmt.raw_bind_parameter(at + 5, rewards)?;
                            stmt.raw_bind_parameter(at + 6, states)?;
                        }
                        stmt.raw_execute()?;
                    }
                    for (agent, number, present, rewards, states) in chunks.remainder() {
                        single.execute(rusqlite::params![
                            sim.sim_key,
                            agent,
                            number,
                            present,
                            rewards,
                            states
                        ])?;
                    }
                }
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
        if (step + 1) % batch_steps == 0 {
            write(&mut rows, &mut json, &mut step_rows)?;
        }
    }
    if !rows.is_empty() {
        write(&mut rows, &mut json, &mut step_rows)?;
    }
    let secs = start.elapsed().as_secs_f64();
    check_layout_count(db, &svc, &sim, steps, layout)?;
    Ok(secs)
}

/// Checks that a ceiling wrote every state: through simdb for the chunks
/// (which decodes them), by counting rows for the row layout.
fn check_layout_count(
    db: &TestDatabase,
    svc: &SimulationService,
    sim: &Simulation,
    steps: i64,
    layout: Layout,
) -> BenchResult<()> {
    if layout == Layout::Chunks {
        return check_count(svc, sim, steps);
    }
    let n: i64 = match db.backend() {
        Backend::Sqlite => {
            let path = db
                .database()
                .path()
                .ok_or("not a file database")?
                .to_path_buf();
            rusqlite::Connection::open(path)?.query_row(
                "SELECT count(*) FROM simdb_agent_states WHERE sim_key = ?1",
                [sim.sim_key],
                |r| r.get(0),
            )?
        }
        Backend::Postgres => postgres::Client::connect(db.url(), postgres::NoTls)?
            .query_one(
                "SELECT count(*) FROM simdb.simdb_agent_states WHERE sim_key = $1",
                &[&sim.sim_key],
            )?
            .get(0),
    };
    if n != steps * AGENTS {
        return Err(format!("expected {} states, found {n}", steps * AGENTS).into());
    }
    Ok(())
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

/// Binary COPY through the `postgres` crate into the same schema (migrated
/// by simdb): whole 64-step chunks per COPY and transaction (`Chunks`), or
/// 10,000 rows per COPY in primary-key order (`Rows`).
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
    if layout == Layout::Rows {
        client.batch_execute(POSTGRES_ROW_LAYOUT)?;
    }
    let batch_steps = match layout {
        Layout::Rows => 10_000 / AGENTS,
        Layout::Chunks => CHUNKS_PER_TRANSACTION * CHUNK_STEPS,
    };
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
        match layout {
            Layout::Rows => {
                rows.sort_unstable_by_key(|r| (r.1, r.0));
                let sink = tx.copy_in("COPY simdb_agent_states (sim_key, agent_index, step, reward, state) FROM STDIN (FORMAT binary)")?;
                let mut w = BinaryCopyInWriter::new(
                    sink,
                    &[Type::INT4, Type::INT4, Type::INT8, Type::FLOAT8, Type::JSON],
                );
                for (step, agent, reward, span) in rows.iter() {
                    w.write(&[
                        &sim.sim_key,
                        &(*agent as i32),
                        step,
                        reward,
                        &RawJson(&json[span.clone()]),
                    ])?;
                }
                w.finish()?;
            }
            Layout::Chunks => {
                let packed = pack(rows, json)?;
                let sink = tx.copy_in("COPY simdb_agent_state_chunks (sim_key, agent_index, chunk, present, rewards, states) FROM STDIN (FORMAT binary)")?;
                let mut w = BinaryCopyInWriter::new(
                    sink,
                    &[
                        Type::INT4,
                        Type::INT4,
                        Type::INT8,
                        Type::INT8,
                        Type::BYTEA,
                        Type::BYTEA,
                    ],
                );
                for (agent, number, present, rewards, states) in &packed {
                    w.write(&[&sim.sim_key, agent, number, present, rewards, states])?;
                }
                w.finish()?;
            }
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
        if (step + 1) % batch_steps == 0 {
            write(&mut client, &mut rows, &mut json, &mut step_rows)?;
        }
    }
    if !rows.is_empty() {
        write(&mut client, &mut rows, &mut json, &mut step_rows)?;
    }
    let secs = start.elapsed().as_secs_f64();
    check_layout_count(db, &svc, &sim, steps, layout)?;
    Ok(secs)
}

/// Which numeric series a metrics run records.
#[derive(Clone, Copy)]
enum Series {
    /// A random walk per agent (8 bytes of noise per value: the floor).
    Walk,
    /// Integers `(step * 7 + agent) mod 1000`.
    Integers,
    /// `((step * 7 + agent) mod 1000) / 1000`, DuckDB's 2.4-byte case.
    Decimals,
}

/// The value of agent `agent` at step `step`; `walk` carries the walks.
fn metric_value(series: Series, step: i64, agent: i64, walk: &mut [f64]) -> f64 {
    match series {
        Series::Walk => {
            // A deterministic step of -1..1 (an LCG on the step and agent).
            let x = (step as u64)
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(agent as u64 * 1_442_695_040_888_963_407);
            let w = &mut walk[agent as usize];
            *w += ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            *w
        }
        Series::Integers => ((step * 7 + agent) % 1000) as f64,
        Series::Decimals => ((step * 7 + agent) % 1000) as f64 / 1000.0,
    }
}

/// The Recorder recording one agent metric per agent-step (per-row calls,
/// or one slice call per step), ending every step.
fn metrics_recorder_run(
    db: &TestDatabase,
    steps: i64,
    series: Series,
    slices: bool,
) -> BenchResult<f64> {
    let svc = service_with(db, Durability::PowerLoss)?;
    let sim = setup(&svc)?;
    let mut walk = vec![0.0; AGENTS as usize];
    let mut values = vec![0.0; AGENTS as usize];
    let start = Instant::now();
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default())?;
    for step in 0..steps {
        if slices {
            for agent in 0..AGENTS {
                values[agent as usize] = metric_value(series, step, agent, &mut walk);
            }
            rec.agent_metric_slice(step, "walk", &values)?;
        } else {
            for agent in 0..AGENTS {
                let v = metric_value(series, step, agent, &mut walk);
                rec.agent_metric(step, agent as i32, "walk", v)?;
            }
        }
        rec.end_step(step)?;
    }
    rec.close()?;
    let secs = start.elapsed().as_secs_f64();
    let series = svc.analytics().agent_series(&sim.id, 3, "walk", ..)?;
    if series.len() != steps as usize {
        return Err(format!("expected {steps} values, found {}", series.len()).into());
    }
    Ok(secs)
}

/// The previous release's agent metric rows (recreated in a scratch database).
const SQLITE_METRIC_ROWS: &str = "CREATE TABLE simdb_agent_metrics (
        sim_key     INTEGER NOT NULL,
        agent_index INTEGER NOT NULL,
        metric_id   INTEGER NOT NULL,
        step        INTEGER NOT NULL CHECK (step >= 0),
        value       REAL NOT NULL,
        PRIMARY KEY (sim_key, metric_id, agent_index, step)
    ) WITHOUT ROWID;";

/// rusqlite into the same schema: the row layout (10,000 rows per
/// transaction in primary-key order, 128-row INSERTs) or whole 64-step
/// chunks per transaction (64-row INSERTs); a random walk per agent.
fn sqlite_metrics_ceiling(db: &TestDatabase, steps: i64, layout: Layout) -> BenchResult<f64> {
    let svc = SimulationService::new(db.database().clone());
    let sim = setup(&svc)?;
    let path = db
        .database()
        .path()
        .ok_or("not a file database")?
        .to_path_buf();
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("PRAGMA busy_timeout = 30000; PRAGMA synchronous = FULL;")?;
    if layout == Layout::Rows {
        conn.execute_batch(SQLITE_METRIC_ROWS)?;
    }
    conn.execute("INSERT INTO simdb_metric_names (name) VALUES ('walk')", [])?;
    let metric: i32 = conn.query_row(
        "SELECT metric_id FROM simdb_metric_names WHERE name = 'walk'",
        [],
        |r| r.get(0),
    )?;
    let (per, sql) = match layout {
        Layout::Rows => (128, format!("INSERT INTO simdb_agent_metrics (sim_key, agent_index, metric_id, step, value) VALUES {}", vec!["(?, ?, ?, ?, ?)"; 128].join(", "))),
        Layout::Chunks => (64, format!("INSERT INTO simdb_agent_metric_chunks (sim_key, metric_id, agent_index, chunk, present, vals) VALUES {}", vec!["(?, ?, ?, ?, ?, ?)"; 64].join(", "))),
    };
    let batch_steps = match layout {
        Layout::Rows => 10_000 / AGENTS,
        Layout::Chunks => CHUNKS_PER_TRANSACTION * CHUNK_STEPS,
    };
    let mut walk = vec![0.0; AGENTS as usize];
    let start = Instant::now();
    // By agent, then step: the batch's values in key order.
    let mut batch: Vec<Vec<(i64, f64)>> = vec![Vec::new(); AGENTS as usize];
    let mut step = 0;
    while step < steps {
        let end = (step + batch_steps).min(steps);
        for s in step..end {
            for agent in 0..AGENTS {
                batch[agent as usize].push((s, metric_value(Series::Walk, s, agent, &mut walk)));
            }
        }
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(&sql)?;
            match layout {
                Layout::Rows => {
                    let rows: Vec<(i64, i64, f64)> = batch
                        .iter()
                        .enumerate()
                        .flat_map(|(a, v)| v.iter().map(move |&(s, x)| (a as i64, s, x)))
                        .collect();
                    for part in rows.chunks(per) {
                        if part.len() < per {
                            for (agent, s, v) in part {
                                tx.execute("INSERT INTO simdb_agent_metrics (sim_key, agent_index, metric_id, step, value) VALUES (?, ?, ?, ?, ?)", rusqlite::params![sim.sim_key, agent, metric, s, v])?;
                            }
                            continue;
                        }
                        for (i, (agent, s, v)) in part.iter().enumerate() {
                            stmt.raw_bind_parameter(i * 5 + 1, sim.sim_key)?;
                            stmt.raw_bind_parameter(i * 5 + 2, *agent)?;
                            stmt.raw_bind_parameter(i * 5 + 3, metric)?;
                            stmt.raw_bind_parameter(i * 5 + 4, *s)?;
                            stmt.raw_bind_parameter(i * 5 + 5, *v)?;
                        }
                        stmt.raw_execute()?;
                    }
                }
                Layout::Chunks => {
                    let mut rows = Vec::new();
                    for (agent, v) in batch.iter().enumerate() {
                        for part in v.chunk_by(|a, b| a.0 / CHUNK_STEPS == b.0 / CHUNK_STEPS) {
                            let present = part
                                .iter()
                                .fold(0u64, |m, &(s, _)| m | 1 << (s % CHUNK_STEPS));
                            rows.push((
                                agent as i64,
                                part[0].0 / CHUNK_STEPS,
                                present as i64,
                                AgentMetricChunk::encode(sim.sim_key, metric, agent as i32, part)?
                                    .vals,
                            ));
                        }
                    }
                    for part in rows.chunks(per) {
                        if part.len() < per {
                            for (agent, chunk, present, vals) in part {
                                tx.execute("INSERT INTO simdb_agent_metric_chunks (sim_key, metric_id, agent_index, chunk, present, vals) VALUES (?, ?, ?, ?, ?, ?)", rusqlite::params![sim.sim_key, metric, agent, chunk, present, vals])?;
                            }
                            continue;
                        }
                        for (i, (agent, chunk, present, vals)) in part.iter().enumerate() {
                            stmt.raw_bind_parameter(i * 6 + 1, sim.sim_key)?;
                            stmt.raw_bind_parameter(i * 6 + 2, metric)?;
                            stmt.raw_bind_parameter(i * 6 + 3, *agent)?;
                            stmt.raw_bind_parameter(i * 6 + 4, *chunk)?;
                            stmt.raw_bind_parameter(i * 6 + 5, *present)?;
                            stmt.raw_bind_parameter(i * 6 + 6, vals)?;
                        }
                        stmt.raw_execute()?;
                    }
                }
            }
        }
        tx.commit()?;
        batch.iter_mut().for_each(Vec::clear);
        step = end;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Binary COPY into the same schema: the row layout (10,000 rows per COPY
/// in key order) or whole 64-step chunks per COPY; a random walk per agent.
fn postgres_metrics_ceiling(db: &TestDatabase, steps: i64, layout: Layout) -> BenchResult<f64> {
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    let svc = SimulationService::new(db.database().clone());
    let sim = setup(&svc)?;
    let mut client = postgres::Client::connect(db.url(), postgres::NoTls)?;
    client.batch_execute("SET search_path TO simdb, public")?;
    if layout == Layout::Rows {
        client.batch_execute(
            &SQLITE_METRIC_ROWS
                .replace(") WITHOUT ROWID;", ");")
                .replace("step        INTEGER", "step        BIGINT")
                .replace("value       REAL", "value       DOUBLE PRECISION"),
        )?;
    }
    let metric: i32 = client
        .query_one(
            "INSERT INTO simdb_metric_names (name) VALUES ('walk') RETURNING metric_id",
            &[],
        )?
        .get(0);
    let batch_steps = match layout {
        Layout::Rows => 10_000 / AGENTS,
        Layout::Chunks => CHUNKS_PER_TRANSACTION * CHUNK_STEPS,
    };
    let mut walk = vec![0.0; AGENTS as usize];
    let start = Instant::now();
    let mut batch: Vec<Vec<(i64, f64)>> = vec![Vec::new(); AGENTS as usize];
    let mut step = 0;
    while step < steps {
        let end = (step + batch_steps).min(steps);
        for s in step..end {
            for agent in 0..AGENTS {
                batch[agent as usize].push((s, metric_value(Series::Walk, s, agent, &mut walk)));
            }
        }
        let mut tx = client.transaction()?;
        match layout {
            Layout::Rows => {
                let sink = tx.copy_in("COPY simdb_agent_metrics (sim_key, agent_index, metric_id, step, value) FROM STDIN (FORMAT binary)")?;
                let mut w = BinaryCopyInWriter::new(
                    sink,
                    &[Type::INT4, Type::INT4, Type::INT4, Type::INT8, Type::FLOAT8],
                );
                for (agent, v) in batch.iter().enumerate() {
                    for (s, x) in v {
                        w.write(&[&sim.sim_key, &(agent as i32), &metric, s, x])?;
                    }
                }
                w.finish()?;
            }
            Layout::Chunks => {
                let sink = tx.copy_in("COPY simdb_agent_metric_chunks (sim_key, metric_id, agent_index, chunk, present, vals) FROM STDIN (FORMAT binary)")?;
                let mut w = BinaryCopyInWriter::new(
                    sink,
                    &[
                        Type::INT4,
                        Type::INT4,
                        Type::INT4,
                        Type::INT8,
                        Type::INT8,
                        Type::BYTEA,
                    ],
                );
                for (agent, v) in batch.iter().enumerate() {
                    for part in v.chunk_by(|a, b| a.0 / CHUNK_STEPS == b.0 / CHUNK_STEPS) {
                        let present = part
                            .iter()
                            .fold(0u64, |m, &(s, _)| m | 1 << (s % CHUNK_STEPS))
                            as i64;
                        let vals =
                            AgentMetricChunk::encode(sim.sim_key, metric, agent as i32, part)?.vals;
                        w.write(&[
                            &sim.sim_key,
                            &metric,
                            &(agent as i32),
                            &(part[0].0 / CHUNK_STEPS),
                            &present,
                            &vals,
                        ])?;
                    }
                }
                w.finish()?;
            }
        }
        tx.commit()?;
        batch.iter_mut().for_each(Vec::clear);
        step = end;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Bytes on disk per value of the agent metric table.
fn bytes_per_value(db: &TestDatabase, layout: Layout, values: i64) -> BenchResult<f64> {
    let table = match layout {
        Layout::Chunks => "simdb_agent_metric_chunks",
        Layout::Rows => "simdb_agent_metrics",
    };
    bytes_per(db, table, values)
}

/// The numeric agent metrics section: per-row and slice calls against both
/// ceilings (power-loss durability), and bytes per value of three series.
fn metrics_section(backend: Backend, name: &str, steps: i64) -> BenchResult<()> {
    let values = steps * AGENTS;
    let rec_db = TestDatabase::new(backend)?;
    let rec_secs = metrics_recorder_run(&rec_db, steps, Series::Walk, false)?;
    let walk_bytes = bytes_per_value(&rec_db, Layout::Chunks, values)?;
    drop(rec_db);
    let slice_secs = metrics_recorder_run(&TestDatabase::new(backend)?, steps, Series::Walk, true)?;
    let ceiling_in = |layout| -> BenchResult<(f64, f64)> {
        let db = TestDatabase::new(backend)?;
        let secs = match backend {
            Backend::Sqlite => sqlite_metrics_ceiling(&db, steps, layout)?,
            Backend::Postgres => postgres_metrics_ceiling(&db, steps, layout)?,
        };
        Ok((secs, bytes_per_value(&db, layout, values)?))
    };
    let (ceil_secs, _) = ceiling_in(Layout::Chunks)?;
    let (old_secs, old_bytes) = ceiling_in(Layout::Rows)?;
    let small = (steps / 10).max(64);
    let mut other = Vec::new();
    for (series, label) in [
        (Series::Integers, "integers"),
        (Series::Decimals, "decimals"),
    ] {
        let db = TestDatabase::new(backend)?;
        metrics_recorder_run(&db, small, series, true)?;
        other.push(format!(
            "{label}_bytes={:.2}",
            bytes_per_value(&db, Layout::Chunks, small * AGENTS)?
        ));
    }
    let (recorder, slice) = (values as f64 / rec_secs, values as f64 / slice_secs);
    let (ceiling, old_ceiling) = (values as f64 / ceil_secs, values as f64 / old_secs);
    println!("{name} metrics (power-loss): recorder {recorder:.0} values/s per row, {slice:.0} by slices; raw chunk ceiling {ceiling:.0}; row layout's raw ceiling {old_ceiling:.0} values/s at {old_bytes:.1} B/value; random walk {walk_bytes:.2} B/value, {}", other.join(", "));
    println!(
        "RESULT backend={name} kind=metrics recorder={recorder:.0} slice={slice:.0} ceiling={ceiling:.0} ratio={:.2} old_ceiling={old_ceiling:.0} gain={:.2} slice_gain={:.2} bytes_per_row={walk_bytes:.2} old_bytes_per_row={old_bytes:.1} {} durability=power-loss",
        recorder / ceiling,
        recorder / old_ceiling,
        slice / old_ceiling,
        other.join(" ")
    );
    Ok(())
}

/// `SIMDB_BENCH_WIDE_AGENTS=n`: only this section runs: `n` agents (open
/// chunks for all of them), `SIMDB_BENCH_ROWS` states through the
/// Recorder on each backend, printing states/s and the peak RSS of the
/// process that recorded them. With more than one backend selected, each
/// runs in a process of its own (this bench again, given one backend), so
/// that one backend's peak does not include what another's run left
/// mapped.
fn wide_section(agents: i32) -> BenchResult<()> {
    let backends = selected_backends("sqlite,postgres");
    if backends.len() > 1 {
        let me = std::env::current_exe()?;
        for (_, name) in backends {
            let status = std::process::Command::new(&me)
                .args(std::env::args_os().skip(1))
                .env("SIMDB_BENCH_BACKENDS", name)
                .status()?;
            if !status.success() {
                return Err(format!("the wide run on {name} failed: {status}").into());
            }
        }
        return Ok(());
    }
    let steps = (bench_rows() / i64::from(agents)).max(1);
    for (backend, name) in backends {
        let db = TestDatabase::new(backend)?;
        let svc = service_with(&db, Durability::PowerLoss)?;
        let sim = svc.create_simulation(NewSimulation::new(json!({"agents": agents})))?;
        let new: Vec<NewAgent> = (0..agents).map(NewAgent::new).collect();
        svc.register_agents(&sim.id, &new)?;
        svc.start_simulation(&sim.id)?;
        let start = Instant::now();
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..steps {
            for agent in 0..agents {
                rec.agent_state(
                    step,
                    agent,
                    reward(step, agent.into()),
                    &state(step, agent.into()),
                )?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        let rate = (steps * i64::from(agents)) as f64 / start.elapsed().as_secs_f64();
        let rss = status_mib("VmHWM:").unwrap_or(f64::NAN);
        println!("RESULT backend={name} kind=wide agents={agents} steps={steps} recorder={rate:.0} peak_rss_mib={rss:.1} rss_ceiling_mib=100");
    }
    Ok(())
}

fn main() -> BenchResult<()> {
    if let Some(agents) = std::env::var("SIMDB_BENCH_WIDE_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return wide_section(agents);
    }
    let steps = (bench_rows() / AGENTS).max(1);
    let rows = steps * AGENTS;
    println!(
        "ingest: {rows} agent states ({AGENTS} agents x {steps} steps) + {steps} step rows per run"
    );

    for (backend, name) in selected_backends("sqlite,postgres") {
        metrics_section(backend, name, steps)?;
        for durability in [Durability::PowerLoss, Durability::ProcessCrash] {
            let mode = match durability {
                Durability::ProcessCrash => "process-crash",
                _ => "power-loss",
            };
            // Recorder first, its peak RSS its own: the kernel's high-water
            // mark is reset to the current RSS before it records.
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let rec_db = TestDatabase::new(backend)?;
            let rec_secs = recorder_run(&rec_db, steps, durability)?;
            let rss = status_mib("VmHWM:");
            let bytes = bytes_per_state(&rec_db, Layout::Chunks, rows)?;
            drop(rec_db);
            let ceiling_in = |layout| -> BenchResult<(f64, f64)> {
                let db = TestDatabase::new(backend)?;
                let secs = match backend {
                    Backend::Sqlite => sqlite_ceiling(&db, steps, durability, layout),
                    Backend::Postgres => postgres_ceiling(&db, steps, durability, layout),
                }?;
                Ok((secs, bytes_per_state(&db, layout, rows)?))
            };
            let (ceil_secs, ceil_bytes) = ceiling_in(Layout::Chunks)?;
            let (old_secs, old_bytes) = ceiling_in(Layout::Rows)?;
            // The other recording APIs, in the default durability only.
            let (slice, lanes) = if durability == Durability::PowerLoss {
                let slices = recorder_run_with(
                    &TestDatabase::new(backend)?,
                    steps,
                    durability,
                    Calls::Slices,
                )?;
                let lanes = recorder_run_with(
                    &TestDatabase::new(backend)?,
                    steps,
                    durability,
                    Calls::Lanes(2),
                )?;
                (rows as f64 / slices, rows as f64 / lanes)
            } else {
                (f64::NAN, f64::NAN)
            };
            let simple_rows = (rows / 50).clamp(100, 20_000);
            let simple = simple_run(&TestDatabase::new(backend)?, simple_rows, durability)?;
            let recorder = rows as f64 / rec_secs;
            let ceiling = rows as f64 / ceil_secs;
            let old_ceiling = rows as f64 / old_secs;
            println!("{name} ({mode}): recorder {rec_secs:.2}s ({recorder:.0} states/s, {bytes:.1} B/state), raw chunk ceiling {ceil_secs:.2}s ({ceiling:.0} states/s, {ceil_bytes:.1} B/state), row layout's raw ceiling {old_secs:.2}s ({old_ceiling:.0} states/s, {old_bytes:.1} B/state), simple facade {simple:.0} rows/s ({simple_rows} rows)");
            if let Some(rss) = rss {
                println!(
                    "{name}: peak RSS of this process while recording {rows} rows: {rss:.1} MiB (memory kept from its earlier sections included; the 100 MiB target is measured by SIMDB_BENCH_WIDE_AGENTS in a process of its own)"
                );
            }
            println!(
                "RESULT backend={name} kind=states recorder={recorder:.0} ceiling={ceiling:.0} ratio={:.2} old_ceiling={old_ceiling:.0} gain={:.2} bytes_per_row={bytes:.1} old_bytes_per_row={old_bytes:.1} durability={mode} simple={simple:.0} slice={slice:.0} slice_gain={:.2} parallel_2_lanes={lanes:.0} parallel_gain={:.2}",
                recorder / ceiling,
                recorder / old_ceiling,
                slice / old_ceiling,
                lanes / old_ceiling
            );
        }
    }
    Ok(())
}
