//! Transient failures are recognised by their kind, not by the words of an
//! English message: a PostgreSQL server whose `lc_messages` is German is
//! restarted and has its sessions terminated under a live recorder, and
//! nothing is lost or doubled.

mod common;
use common::cluster::Cluster;
use common::*;

use simdb::diesel::connection::SimpleConnection;
use simdb::RecorderOptions;
use std::time::Duration;

#[test]
fn a_server_speaking_german_restarts_under_a_recorder() -> Result<()> {
    // scripts/test generates the locale; without it the server cannot speak German.
    let cluster = Cluster::start(&["--locale=C.UTF-8"], &["lc_messages = 'de_DE.UTF-8'"])?;
    let mut admin = common::fixtures::Host::open(&cluster.url("postgres"))?;
    admin.run("CREATE DATABASE simdb_german")?;
    // The premise: the server's messages are German.
    let german = match &mut admin {
        common::fixtures::Host::Postgres(c) => c.batch_execute("SELECT 1/0"),
        common::fixtures::Host::Sqlite(_) => unreachable!("a PostgreSQL host"),
    };
    let message = format!("{german:?}");
    assert!(
        message.contains("Division durch Null"),
        "not German: {message}"
    );
    drop(admin);

    let svc = SimulationService::new(Database::open(&cluster.url("simdb_german"))?);
    let sim = running_sim(&svc, 4)?;
    let mut rec = svc.recorder_with(
        &sim.id,
        RecorderOptions::default().batch_rows(100).max_attempts(10),
    )?;
    for step in 0..400 {
        for agent in 0..4 {
            rec.agent_state(step, agent, step as f64, &json!({"s": step}))?;
        }
        rec.end_step(step)?;
        if step % 100 == 50 {
            rec.flush()?;
            cluster.restart()?;
        }
    }
    rec.close()?;
    let s = svc.analytics().summary(&sim.id)?;
    assert_eq!(s.agent_state_rows, 1600, "rows lost or duplicated");
    assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(399));
    for agent in 0..4 {
        let steps: Vec<i64> = svc
            .agent_states(&sim.id, agent, ..)?
            .iter()
            .map(|r| r.step)
            .collect();
        assert_eq!(steps, (0..400).collect::<Vec<_>>());
    }
    Ok(())
}

#[test]
fn a_server_speaking_german_terminates_sessions_under_a_recorder() -> Result<()> {
    let cluster = Cluster::start(&["--locale=C.UTF-8"], &["lc_messages = 'de_DE.UTF-8'"])?;
    let mut admin = common::fixtures::Host::open(&cluster.url("postgres"))?;
    admin.run("CREATE DATABASE simdb_german")?;
    let svc = SimulationService::new(Database::open(&cluster.url("simdb_german"))?);
    let sim = running_sim(&svc, 4)?;
    let mut rec = svc.recorder_with(
        &sim.id,
        RecorderOptions::default().batch_rows(50).max_attempts(10),
    )?;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = AtomicBool::new(false);
    // Rounds of terminations so far: the recorder keeps recording until
    // 5 rounds have hit it (the assertion below asks for more than 3) and
    // it has recorded at least 3,000 steps, however fast the machine.
    let rounds = AtomicUsize::new(0);
    let (kills, steps) = std::thread::scope(|s| -> Result<(usize, i64)> {
        let killer = s.spawn(|| -> Result<usize> {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(250));
                admin.run(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = 'simdb_german' AND pid <> pg_backend_pid()",
                )?;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            Ok(rounds.load(Ordering::Relaxed))
        });
        let recorded = (|| -> Result<i64> {
            let mut step = 0;
            while step < 3000 || (rounds.load(Ordering::Relaxed) <= 4 && step < 1_000_000) {
                for agent in 0..4 {
                    rec.agent_state(step, agent, step as f64, &json!({"s": step}))?;
                }
                rec.end_step(step)?;
                step += 1;
            }
            rec.flush()?;
            Ok(step)
        })();
        stop.store(true, Ordering::Relaxed);
        let killed = killer.join().map_err(|_| Error::RecorderClosed)??;
        Ok((killed, recorded?))
    })?;
    let retries = rec.transient_retries();
    rec.close()?;
    assert!(retries > 0, "no retry was counted");
    assert!(kills > 3, "only {kills} rounds of terminations");
    let s = svc.analytics().summary(&sim.id)?;
    assert_eq!(s.agent_state_rows, 4 * steps, "rows lost or duplicated");
    assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(steps - 1));
    Ok(())
}

/// Two sessions that lock two rows in opposite orders: one of them gets
/// PostgreSQL's deadlock error, returned here as simdb's `Error`.
fn deadlock(url: &str) -> Result<Error> {
    use simdb::diesel::{Connection, PgConnection};
    let connect = || {
        PgConnection::establish(url).map_err(|e| Error::Connection {
            url: "test".into(),
            message: e.to_string(),
        })
    };
    let mut setup = connect()?;
    setup.batch_execute(
        "DROP TABLE IF EXISTS dl; CREATE TABLE dl (k int PRIMARY KEY, v int); INSERT INTO dl VALUES (1, 0), (2, 0)",
    )?;
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = [(1, 2), (2, 1)]
            .into_iter()
            .map(|(first, second)| {
                let barrier = &barrier;
                s.spawn(move || -> Result<()> {
                    let mut c = connect()?;
                    c.batch_execute("BEGIN")?;
                    c.batch_execute(&format!("UPDATE dl SET v = 1 WHERE k = {first}"))?;
                    barrier.wait();
                    let second =
                        c.batch_execute(&format!("UPDATE dl SET v = 1 WHERE k = {second}"));
                    let _ = c.batch_execute("ROLLBACK");
                    second.map_err(Error::from)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(Error::RecorderClosed)))
            .collect()
    });
    results
        .into_iter()
        .find_map(|r| r.err())
        .ok_or_else(|| Error::Migration("no deadlock happened".into()))
}

#[test]
fn deadlocks_are_transient_in_any_language() -> Result<()> {
    let german = Cluster::start(
        &["--locale=C.UTF-8"],
        &["lc_messages = 'de_DE.UTF-8'", "deadlock_timeout = '50ms'"],
    )?;
    let mut admin = common::fixtures::Host::open(&german.url("postgres"))?;
    admin.run("CREATE DATABASE dl")?;
    let e = deadlock(&german.url("dl"))?;
    assert!(
        !format!("{e}").contains("deadlock detected"),
        "the server spoke English: {e}"
    );
    assert!(
        e.is_transient(),
        "a German deadlock was taken for a fatal error: {e:?}"
    );

    let english = TestDatabase::postgres()?;
    let e = deadlock(english.url())?;
    assert!(e.is_transient(), "{e:?}");
    // Not every error is transient.
    let db = Database::open(english.url())?;
    let other = simdb::with_connection!(db.writer()?, |c| c
        .batch_execute("SELECT 1/0")
        .map_err(Error::from));
    assert!(
        other.as_ref().is_err_and(|e| !e.is_transient()),
        "{other:?}"
    );
    Ok(())
}

/// SQLite: another process holds the file's write lock past the busy
/// timeout; the writer's batch meets SQLITE_BUSY, retries (counted) and
/// commits once the lock is gone, nothing lost or doubled.
#[test]
fn a_busy_sqlite_file_is_retried() -> Result<()> {
    let db = TestDatabase::sqlite()?;
    let database = Database::builder(db.url())
        .busy_timeout(Duration::from_millis(50))
        .open()?;
    let svc = SimulationService::new(database);
    let sim = running_sim(&svc, 2)?;
    let mut rec = svc.recorder_with(
        &sim.id,
        RecorderOptions::default().batch_rows(10).max_attempts(10),
    )?;
    for step in 0..10 {
        rec.agent_state(step, 0, 1.0, &json!({}))?;
        rec.end_step(step)?;
    }
    rec.flush()?;
    let mut holder = common::fixtures::Host::open(db.url())?;
    holder.run("BEGIN IMMEDIATE")?;
    for step in 10..40 {
        rec.agent_state(step, 0, 1.0, &json!({}))?;
        rec.end_step(step)?;
    }
    std::thread::sleep(Duration::from_millis(400));
    holder.run("COMMIT")?;
    assert_eq!(rec.flush()?, Some(39));
    let retries = rec.transient_retries();
    rec.close()?;
    assert!(retries > 0, "the writer never met the lock");
    assert_eq!(svc.agent_states(&sim.id, 0, ..)?.len(), 40);
    Ok(())
}

/// After a server restart every pooled connection is dead: a call may fail
/// (transiently), but calling again must work — not get the same dead
/// connection back, as when the call's first statement on that connection
/// is one Diesel still has to prepare there (a failed preparation does not
/// mark a connection broken).
#[test]
fn calls_after_a_server_restart_get_live_connections() -> Result<()> {
    let cluster = Cluster::start(&["--locale=C.UTF-8"], &[])?;
    let mut admin = common::fixtures::Host::open(&cluster.url("postgres"))?;
    admin.run("CREATE DATABASE simdb_restart")?;
    drop(admin);
    let svc = SimulationService::new(Database::open(&cluster.url("simdb_restart"))?);
    let sim = running_sim(&svc, 2)?;
    // Statements prepared on the pooled connections before the restart.
    svc.simulation(&sim.id)?;
    cluster.restart()?;
    // Statements no connection has prepared yet (the first is one): the
    // first call may fail, the next must find a live connection.
    let calls = || -> Result<()> {
        svc.list_experiments()?;
        svc.agents(&sim.id)?;
        svc.states_at_step(&sim.id, 0)?;
        Ok(())
    };
    let mut failures = 0;
    while let Err(e) = calls() {
        assert!(e.is_transient(), "not transient: {e}");
        failures += 1;
        assert!(failures <= 1, "still failing after {failures} calls: {e}");
    }
    Ok(())
}
