//! Under load, for a while: recorders on one database while other hands
//! delete runs, interrupt and resume others, complete others early, and 20
//! readers poll progress, aggregates and the dashboard's JSON API. Then,
//! with independent SQL on the host's own connection: no row of a deleted
//! run anywhere; every run's events form a valid chain; every watermark a
//! reader saw only rose; every row at or below a run's watermark is present
//! exactly once. Both backends, from one body.
//!
//! Short by default (`scripts/test`); `SIMDB_SOAK_STEPS=5000
//! SIMDB_SOAK_RUNS=16 cargo nextest run --all-features --test soak` soaks
//! for minutes. It prints its figures.

mod common;
use common::fixtures::Host;
use common::*;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use simdb::diesel::prelude::*;
use simdb::diesel::sql_types::{BigInt, Nullable, Text};
use simdb::{Backend, RecorderOptions};

const AGENTS: i32 = 8;

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    /// Typed refusals and losses, by kind.
    conflicts: Mutex<BTreeMap<String, u64>>,
    operations: AtomicU64,
    polls: AtomicU64,
}

impl Tally {
    /// Counts a typed outcome of a lost race; anything else is returned.
    fn conflict(&self, e: Error) -> Result<()> {
        let kind = match &e {
            Error::InvalidTransition { .. } => "InvalidTransition",
            Error::NotFound { .. } => "NotFound",
            Error::LeaseHeld { .. } => "LeaseHeld",
            Error::LeaseLost { .. } => "LeaseLost",
            Error::SimulationDeleted { .. } => "SimulationDeleted",
            Error::SimulationNotRunning { .. } => "SimulationNotRunning",
            Error::Recorder { source, .. } => match &**source {
                Error::SimulationDeleted { .. } => "SimulationDeleted",
                Error::SimulationNotRunning { .. } => "SimulationNotRunning",
                Error::LeaseLost { .. } => "LeaseLost",
                _ => return Err(e),
            },
            _ => return Err(e),
        };
        *lock(&self.conflicts).entry(kind.to_string()).or_default() += 1;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records steps `from..to` of every agent; stops quietly (counting the
/// conflict) when another hand took the run away.
fn record(
    svc: &SimulationService,
    id: &SimulationId,
    from: i64,
    to: i64,
    tally: &Tally,
) -> Result<bool> {
    let options = RecorderOptions::default()
        .batch_rows(64)
        .lease_timeout(Duration::from_secs(1));
    let mut rec = match svc.recorder_with(id, options) {
        Ok(rec) => rec,
        Err(e) => return tally.conflict(e).map(|()| false),
    };
    let outcome = (|| -> Result<()> {
        for step in from..to {
            for agent in 0..AGENTS {
                rec.agent_state(step, agent, (step % 7) as f64 * 0.5, &state(step, agent))?;
            }
            rec.metric(step, "food", step as f64)?;
            rec.end_step(step)?;
        }
        Ok(())
    })();
    let closed = rec.close();
    match outcome.and(closed) {
        Ok(()) => Ok(true),
        Err(e) => tally.conflict(e).map(|()| false),
    }
}

fn table(backend: Backend, name: &str) -> String {
    match backend {
        Backend::Sqlite => name.to_string(),
        Backend::Postgres => format!("simdb.{name}"),
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Transition {
    #[diesel(sql_type = Nullable<Text>)]
    from_status: Option<String>,
    #[diesel(sql_type = Text)]
    to_status: String,
}

#[derive(QueryableByName)]
struct Mark {
    #[diesel(sql_type = Nullable<BigInt>)]
    committed_step: Option<i64>,
    #[diesel(sql_type = Text)]
    status: String,
}

fn count(host: &mut Host, sql: &str) -> Result<i64> {
    Ok(match host {
        Host::Sqlite(c) => simdb::diesel::sql_query(sql).get_result::<Count>(c)?,
        Host::Postgres(c) => simdb::diesel::sql_query(sql).get_result::<Count>(c)?,
    }
    .n)
}

fn load<
    T: QueryableByName<simdb::diesel::sqlite::Sqlite>
        + QueryableByName<simdb::diesel::pg::Pg>
        + 'static,
>(
    host: &mut Host,
    sql: &str,
) -> Result<Vec<T>> {
    Ok(match host {
        Host::Sqlite(c) => simdb::diesel::sql_query(sql).load::<T>(c)?,
        Host::Postgres(c) => simdb::diesel::sql_query(sql).load::<T>(c)?,
    })
}

/// A dashboard on its own `Database`, serving on a free loopback port.
fn dashboard(url: &str) -> Result<String> {
    let svc = SimulationService::new(Database::builder(url).read_only(true).open()?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = simdb::serve::serve(svc, ([127, 0, 0, 1], 0).into(), |addr| {
            let _ = tx.send(addr);
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| Error::RecorderClosed)?;
    Ok(format!("http://{addr}"))
}

fn soak(db: &TestDatabase) -> Result<()> {
    let steps = env("SIMDB_SOAK_STEPS", 240);
    let runs = env("SIMDB_SOAK_RUNS", 8) as usize;
    let started = Instant::now();
    let svc = service(db);
    let sims: Vec<Simulation> = (0..runs)
        .map(|_| running_sim(&svc, AGENTS))
        .collect::<Result<_>>()?;
    let base = dashboard(db.url())?;
    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let seen: Mutex<BTreeMap<(u64, String), Vec<i64>>> = Mutex::default();
    let deleted: Mutex<Vec<i32>> = Mutex::default();
    let http_polls = AtomicU64::new(0);

    std::thread::scope(|s| -> Result<()> {
        // Readers: progress, aggregates and the dashboard API, until told.
        let readers: Vec<_> = (0..20)
            .map(|r: u64| {
                let (sims, tally, stop, seen, base, http_polls) =
                    (&sims, &tally, &stop, &seen, &base, &http_polls);
                s.spawn(move || -> Result<()> {
                    let reader =
                        SimulationService::new(Database::builder(db.url()).read_only(true).open()?);
                    let analytics = reader.analytics();
                    let mut round = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for sim in sims {
                            match analytics.progress(&sim.id, None) {
                                Ok(p) => {
                                    if let Some(w) = p.latest_step {
                                        lock(seen)
                                            .entry((r, sim.id.to_string()))
                                            .or_default()
                                            .push(w);
                                    }
                                }
                                Err(Error::NotFound { .. }) => {}
                                Err(e) => return Err(e),
                            }
                            match analytics.step_aggregates(&sim.id, "reward", 10) {
                                Ok(_) | Err(Error::NotFound { .. }) => {}
                                Err(e) => return Err(e),
                            }
                            tally.polls.fetch_add(2, Ordering::Relaxed);
                        }
                        if (round + r) % 5 == 0 {
                            let list = ureq::get(&format!("{base}/api/simulations")).call();
                            assert!(list.is_ok(), "dashboard list: {list:?}");
                            let id = &sims[(round as usize + r as usize) % sims.len()].id;
                            match ureq::get(&format!("{base}/api/simulations/{id}/progress")).call()
                            {
                                Ok(_) | Err(ureq::Error::Status(404, _)) => {}
                                Err(e) => panic!("dashboard progress: {e}"),
                            }
                            http_polls.fetch_add(2, Ordering::Relaxed);
                        }
                        round += 1;
                    }
                    Ok(())
                })
            })
            .collect();

        // Recorders, one Database each.
        let recorders: Vec<_> = sims
            .iter()
            .map(|sim| {
                let tally = &tally;
                s.spawn(move || -> Result<()> {
                    let svc = SimulationService::new(Database::open(db.url())?);
                    if record(&svc, &sim.id, 0, steps, tally)? {
                        if let Err(e) = svc.complete_simulation(&sim.id, json!({"steps": steps})) {
                            tally.conflict(e)?;
                        }
                    }
                    tally.operations.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();

        // Other hands: by run, delete (0), interrupt then resume and finish
        // (1), complete early (2), leave alone (3).
        let chaos = s.spawn(|| -> Result<()> {
            let other = SimulationService::new(Database::open(db.url())?);
            let analytics = other.analytics();
            for (i, sim) in sims.iter().enumerate() {
                // Wait until the run is about a third through.
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    match analytics.progress(&sim.id, None) {
                        Ok(p)
                            if p.latest_step.unwrap_or(-1) >= steps / 3 || p.status.is_final() =>
                        {
                            break
                        }
                        Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                        Err(e) => return Err(e),
                    }
                }
                tally.operations.fetch_add(1, Ordering::Relaxed);
                match i % 4 {
                    0 => match other.delete_simulation(&sim.id) {
                        Ok(()) => lock(&deleted).push(sim.sim_key),
                        Err(e) => tally.conflict(e)?,
                    },
                    1 => {
                        if let Err(e) = other.interrupt_simulation(&sim.id, "soak") {
                            tally.conflict(e)?;
                            continue;
                        }
                        // The recorder's lease lapses within a second.
                        let point = loop {
                            match other.resume_with(&sim.id, Duration::from_secs(1)) {
                                Ok(point) => break point,
                                Err(e @ Error::LeaseHeld { .. }) => {
                                    tally.conflict(e)?;
                                    std::thread::sleep(Duration::from_millis(100));
                                }
                                Err(e) => return Err(e),
                            }
                        };
                        tally.operations.fetch_add(1, Ordering::Relaxed);
                        if record(&other, &sim.id, point.next_step(), steps, &tally)? {
                            other.complete_simulation(&sim.id, json!({"resumed": true}))?;
                        }
                    }
                    2 => {
                        if let Err(e) = other.complete_simulation(&sim.id, json!({"early": true})) {
                            tally.conflict(e)?;
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        });

        let mut outcome = Ok(());
        for h in recorders {
            let r = h
                .join()
                .map_err(|_| Error::Migration("a recorder panicked".into()))?;
            outcome = outcome.and(r);
        }
        let r = chaos
            .join()
            .map_err(|_| Error::Migration("the chaos thread panicked".into()))?;
        outcome = outcome.and(r);
        stop.store(true, Ordering::Relaxed);
        for h in readers {
            let r = h
                .join()
                .map_err(|_| Error::Migration("a reader panicked".into()))?;
            outcome = outcome.and(r);
        }
        outcome
    })?;

    // Independent checks, on the host's own connection.
    let backend = db.backend();
    let mut host = Host::open(db.url())?;
    let deleted = lock(&deleted).clone();
    for key in &deleted {
        for name in [
            "simdb_simulations",
            "simdb_agents",
            "simdb_agent_state_chunks",
            "simdb_agent_metric_chunks",
            "simdb_agent_memories",
            "simdb_simulation_steps",
            "simdb_step_metrics",
            "simdb_step_rollups",
            "simdb_agent_totals",
            "simdb_events",
            "simdb_simulation_tags",
        ] {
            let n = count(
                &mut host,
                &format!(
                    "SELECT COUNT(*) AS n FROM {} WHERE sim_key = {key}",
                    table(backend, name)
                ),
            )?;
            assert_eq!(n, 0, "{n} rows of deleted run {key} left in {name}");
        }
    }
    let mut rows = 0;
    for sim in sims.iter().filter(|s| !deleted.contains(&s.sim_key)) {
        let chain: Vec<Transition> = load(
            &mut host,
            &format!(
                "SELECT from_status, to_status FROM {} WHERE sim_key = {} AND to_status IS NOT NULL ORDER BY event_id",
                table(backend, "simdb_events"),
                sim.sim_key
            ),
        )?;
        let mut at: Option<SimulationStatus> = None;
        for t in &chain {
            let to: SimulationStatus = t.to_status.parse()?;
            let from: Option<SimulationStatus> =
                t.from_status.as_deref().map(str::parse).transpose()?;
            assert_eq!(from, at, "run {}: broken chain", sim.id);
            if let Some(f) = from {
                assert!(f.can_become(to), "run {}: {f} -> {to}", sim.id);
            }
            at = Some(to);
        }
        let mark: Vec<Mark> = load(
            &mut host,
            &format!(
                "SELECT committed_step, status FROM {} WHERE sim_key = {}",
                table(backend, "simdb_simulations"),
                sim.sim_key
            ),
        )?;
        let mark = mark.first().ok_or(Error::RecorderClosed)?;
        assert_eq!(
            at.map(|s| s.to_string()),
            Some(mark.status.clone()),
            "run {}",
            sim.id
        );
        let w = mark.committed_step.unwrap_or(-1);
        // The states' chunks, read on the host's connection and decoded
        // with the public model: every (agent, step) at or below the
        // watermark once.
        let chunks: Vec<simdb::models::AgentStateChunk> = load(
            &mut host,
            &format!(
                "SELECT sim_key, agent_index, chunk, present, rewards, states FROM {} WHERE sim_key = {}",
                table(backend, "simdb_agent_state_chunks"),
                sim.sim_key
            ),
        )?;
        let mut below = 0i64;
        let mut keys = std::collections::HashSet::new();
        for chunk in &chunks {
            for row in chunk.rows()? {
                rows += 1;
                if row.step <= w {
                    below += 1;
                    keys.insert((row.agent_index, row.step));
                }
            }
        }
        let distinct = keys.len() as i64;
        assert_eq!(
            (below, distinct),
            ((w + 1) * AGENTS as i64, (w + 1) * AGENTS as i64),
            "run {} at watermark {w}",
            sim.id
        );
    }
    // What each reader saw of each run, in its own poll order.
    for ((reader, id), marks) in lock(&seen).iter() {
        assert!(
            marks.windows(2).all(|w| w[0] <= w[1]),
            "run {id}: reader {reader} saw the watermark go down: {marks:?}"
        );
    }
    let conflicts = lock(&tally.conflicts).clone();
    eprintln!(
        "soak ({backend:?}): {runs} runs x {AGENTS} agents x {steps} steps, {rows} agent-state rows kept, \
         {} deleted, {} lifecycle/recording operations, {} reader polls + {} dashboard requests, \
         conflicts resolved {conflicts:?}, {:.1} s, 0 violations",
        deleted.len(),
        tally.operations.load(Ordering::Relaxed),
        tally.polls.load(Ordering::Relaxed),
        http_polls.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

backend_tests! {
    fn soak_many_hands_on_one_database(db) {
        soak(db)
    }
}
