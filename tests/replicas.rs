//! Readers on a hot standby (issue 24): a real streaming replica of a
//! private primary (`pg_basebackup -R`, a second server on another
//! loopback port), recorded into on the primary and read on the replica.

mod common;
use common::cluster::{primary_and_replica, wait_until_replayed};
use common::*;

use std::time::{Duration, Instant};

use simdb::diesel::prelude::*;
use simdb::{Error, RecorderOptions, ReplicaFallback};

/// Steps the recorder writes while the reader polls the replica.
const STEPS: i64 = 3_000;
const AGENTS: i32 = 4;

/// True if `db`'s reads land on a server in recovery (a standby).
fn reads_on_a_standby(db: &Database) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Standby {
        #[diesel(sql_type = simdb::diesel::sql_types::Bool)]
        standby: bool,
    }
    let row: Standby = simdb::with_connection!(db.connection()?, |c| {
        simdb::diesel::sql_query("SELECT pg_is_in_recovery() AS standby").get_result(c)?
    });
    Ok(row.standby)
}

#[test]
fn a_replica_serves_consistent_reads_while_the_primary_records() -> Result<()> {
    let (primary, replica, db) = primary_and_replica()?;
    let svc = SimulationService::new(db.clone());
    let reader = SimulationService::new(db.for_reading());
    assert!(reader.database().reads_from_replicas());
    assert!(
        reads_on_a_standby(reader.database())?,
        "reads did not go to the replica"
    );
    assert!(
        !reads_on_a_standby(svc.database())?,
        "plain reads left the primary"
    );
    let sim = running_sim(&svc, AGENTS)?;
    // A new standby first replays the schema simdb just created.
    wait_until_replayed(reader.database())?;

    // The recorder commits often (small batches, a short timer) while a
    // reader polls the replica.
    let options = RecorderOptions::default()
        .batch_rows(64)
        .flush_interval(Duration::from_millis(20));
    let mut rec = svc.recorder_with(&sim.id, options)?;
    let writer = std::thread::spawn(move || -> Result<()> {
        for step in 0..STEPS {
            for agent in 0..AGENTS {
                rec.agent_state(
                    step,
                    agent,
                    step as f64,
                    &json!({"step": step, "agent": agent}),
                )?;
            }
            rec.end_step(step)?;
            if step % 100 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        rec.close()
    });

    let (mut last_mark, mut last_rows, mut polls, mut seen_lag) = (None::<i64>, 0usize, 0, false);
    loop {
        let finished = writer.is_finished();
        let mark = match reader.simulation(&sim.id) {
            Ok(s) => s.committed_step,
            // The replica may not have replayed the run's creation yet.
            Err(Error::NotFound { .. }) if last_mark.is_none() => None,
            Err(e) => return Err(e),
        };
        assert!(
            mark >= last_mark,
            "the watermark went back: {last_mark:?} -> {mark:?}"
        );
        if let Some(w) = mark {
            // Everything up to the watermark is there, on every agent,
            // however far behind the replica is.
            let mut rows = 0;
            for agent in 0..AGENTS {
                let steps: Vec<i64> = reader
                    .agent_states(&sim.id, agent, 0..=w)?
                    .iter()
                    .map(|s| s.step)
                    .collect();
                assert_eq!(
                    steps,
                    (0..=w).collect::<Vec<_>>(),
                    "agent {agent} below watermark {w}"
                );
                rows += steps.len();
            }
            assert!(rows >= last_rows, "counts went back: {last_rows} -> {rows}");
            last_rows = rows;
            // The rollups agree (analytics read the replica too).
            let buckets =
                reader
                    .analytics()
                    .step_aggregates_within(&sim.id, "reward", 0..=w, 50)?;
            let counted: i64 = buckets.iter().map(|b| b.count).sum();
            assert_eq!(
                counted,
                (w + 1) * i64::from(AGENTS),
                "rollups below watermark {w}"
            );
        }
        last_mark = mark;
        polls += 1;
        if let Some(status) = reader.database().replica_status().first() {
            assert_eq!(status.error, None);
            seen_lag |= status.lag_bytes.is_some() && status.lag_seconds.is_some();
        }
        if finished {
            break;
        }
    }
    writer.join().map_err(|_| Error::RecorderClosed)??;
    assert!(polls > 3, "the reader polled {polls} times only");
    assert!(seen_lag, "no lag was ever reported");

    // Caught up: the replica holds every row.
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.simulation(&sim.id)?.committed_step != Some(STEPS - 1) {
        assert!(Instant::now() < deadline, "the replica never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
    for agent in 0..AGENTS {
        assert_eq!(reader.agent_states(&sim.id, agent, ..)?.len() as i64, STEPS);
    }
    wait_until_replayed(reader.database())?;

    // The replica stops: reads go to the primary, or fail typed, as set.
    replica.stop()?;
    let failing = Database::builder(primary.url("postgres"))
        .read_replica(replica.url("postgres"))
        .replica_fallback(ReplicaFallback::Fail)
        .open()?
        .for_reading();
    match SimulationService::new(failing).simulation(&sim.id) {
        Err(Error::ReplicaUnavailable { url, .. }) => assert!(url.contains("127.0.0.1")),
        other => panic!("expected ReplicaUnavailable, got {other:?}"),
    }
    let started = Instant::now();
    assert_eq!(reader.simulation(&sim.id)?.committed_step, Some(STEPS - 1));
    assert!(!reads_on_a_standby(reader.database())?);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fail-over took {:?}",
        started.elapsed()
    );
    let status = &reader.database().replica_status()[0];
    assert!(
        status.error.is_some() && status.lag_bytes.is_none(),
        "{status:?}"
    );

    // Back up: reads return to it once it answers and its rest is over.
    replica.start_again()?;
    let back = Instant::now() + Duration::from_secs(30);
    while !reads_on_a_standby(reader.database())? {
        assert!(Instant::now() < back, "reads never returned to the replica");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// A replica of a SQLite file means nothing: a typed refusal, nothing opened.
#[test]
fn sqlite_has_no_read_replicas() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("simdb-replica-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let path = dir.join("runs.db");
    let opened = Database::builder(path.display().to_string())
        .read_replica("postgres://postgres@127.0.0.1:1/postgres")
        .open();
    assert!(
        matches!(opened, Err(Error::InvalidInput { .. })),
        "{opened:?}"
    );
    assert!(!path.exists(), "a refused open created the file");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
