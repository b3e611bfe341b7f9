//! Several processes at once, on both backends: SIGKILL of a recording
//! process (nothing acknowledged lost, no partial batch, recovery), eight
//! processes opening a fresh database (and one of the previous release), two processes recording at once, a
//! SQLite reader polling while a writer records; and PostgreSQL connection
//! loss under a recorder.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use simdb::{Backend, RecorderOptions};

fn spawn(url: &str, args: &[&str]) -> Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_simdb"))
        .args(args)
        .env("SIMDB_DATABASE_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io {
            path: "simdb".into(),
            source: e,
        })
}

fn io(e: std::io::Error) -> Error {
    Error::Io {
        path: "child".into(),
        source: e,
    }
}

fn integrity_ok(db: &TestDatabase) -> Result<()> {
    if db.backend() != Backend::Sqlite {
        return Ok(());
    }
    use simdb::diesel::prelude::*;
    use simdb::diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = Text)]
        integrity_check: String,
    }
    let fresh = Database::open(db.url())?;
    let rows: Vec<Check> =
        simdb::with_connection!(fresh.connection()?, |c| simdb::diesel::sql_query(
            "PRAGMA integrity_check"
        )
        .load(c)?);
    assert_eq!(
        rows.iter()
            .map(|r| r.integrity_check.as_str())
            .collect::<Vec<_>>(),
        vec!["ok"]
    );
    Ok(())
}

backend_tests! {
    /// Issue 24: sixteen processes, each recording its own run, meet the
    /// same 50 new metric names at the same moment (each starting at
    /// another name). Every process finishes, every value lands in its own
    /// run under its name, and every name gets exactly one id.
    fn sixteen_processes_intern_the_same_new_names_at_once(db) {
        use std::io::Write;
        use simdb::diesel::prelude::*;
        use simdb::schema::metric_names;
        const WRITERS: usize = 16;
        const NAMES: usize = 50;
        let mut children: Vec<Child> = (0..WRITERS)
            .map(|w| {
                let offset = (w * 3).to_string();
                let mut child = Command::new(env!("CARGO_BIN_EXE_simdb"))
                    .args(["synth", "--agents", "2", "--steps", "6", "--batch-rows", "40", "--metrics", "50"])
                    .args(["--metric-offset", offset.as_str(), "--wait-for-go", "--experiment", "interning"])
                    .env("SIMDB_DATABASE_URL", db.url())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(io)?;
                // Its run's id: it is ready.
                let mut line = String::new();
                BufReader::new(child.stdout.as_mut().ok_or(Error::RecorderClosed)?)
                    .read_line(&mut line)
                    .map_err(io)?;
                Ok(child)
            })
            .collect::<Result<_>>()?;
        // Go, all at once.
        for child in &mut children {
            child.stdin.as_mut().ok_or(Error::RecorderClosed)?.write_all(b"go\n").map_err(io)?;
        }
        for child in children {
            let out = child.wait_with_output().map_err(io)?;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let svc = service(db);
        let names: Vec<(i32, String)> = simdb::with_connection!(db.database().connection()?, |c| metric_names::table
            .filter(metric_names::name.like("synth-m-%"))
            .select((metric_names::metric_id, metric_names::name))
            .load(c)?);
        assert_eq!(names.len(), NAMES, "{names:?}");
        let distinct: std::collections::BTreeSet<&String> = names.iter().map(|n| &n.1).collect();
        assert_eq!(distinct.len(), NAMES);
        let sims = svc.list_simulations(&SimulationFilter::new())?;
        assert_eq!(sims.len(), WRITERS);
        let a = svc.analytics();
        for sim in &sims {
            let (_, values) = chunked_counts(db, Some(sim.sim_key))?;
            assert_eq!(values, (NAMES * 6 * 2) as i64, "{}", sim.id);
            for k in [0, 17, NAMES - 1] {
                for agent in 0..2 {
                    let got = a.agent_series(&sim.id, agent, format!("synth-m-{k}").as_str(), ..)?;
                    let want: Vec<(i64, f64)> = (0..6).map(|step| (step, k as f64 * 100.0 + step as f64 + f64::from(agent) / 10.0)).collect();
                    assert_eq!(got, want, "{} synth-m-{k} agent {agent}", sim.id);
                }
            }
        }
        Ok(())
    }

    fn sigkill_loses_nothing_acknowledged(db) {
        let agents = 5;
        let mut child = spawn(db.url(), &["synth", "--agents", "5", "--steps", "1000000", "--flush-every", "10", "--no-complete"])?;
        let stdout = child.stdout.take().ok_or(Error::RecorderClosed)?;
        let mut lines = BufReader::new(stdout).lines();
        let id = SimulationId::new(lines.next().ok_or(Error::RecorderClosed)?.map_err(io)?)?;
        let mut acknowledged = -1;
        for line in lines.by_ref() {
            let line = line.map_err(io)?;
            if let Some(step) = line.strip_prefix("flushed ") {
                acknowledged = step.parse().map_err(|_| Error::RecorderClosed)?;
                if acknowledged >= 300 {
                    break;
                }
            }
        }
        // Let it write past the acknowledgement, then kill it mid-run.
        std::thread::sleep(Duration::from_millis(30));
        child.kill().map_err(io)?;
        child.wait().map_err(io)?;

        integrity_ok(db)?;
        let svc = SimulationService::new(Database::open(db.url())?);
        // The watermark covers at least every acknowledged step, and every
        // step at or below it is whole in every table.
        let committed = svc.simulation(&id)?.committed_step.ok_or(Error::RecorderClosed)?;
        assert!(committed >= acknowledged, "acknowledged step {acknowledged} lost (watermark {committed})");
        let steps: Vec<i64> = svc.steps(&id, ..=committed)?.iter().map(|s| s.step).collect();
        assert_eq!(steps, (0..=committed).collect::<Vec<_>>());
        for agent in 0..agents {
            let series = svc.agent_states(&id, agent, ..=committed)?;
            assert_eq!(series.len() as i64, committed + 1, "agent {agent}");
        }
        // Rows above the watermark (a step the kill cut, committed by the
        // writer's timer) are what resume removes, and only those.
        let above = svc.steps(&id, committed + 1..)?.len()
            + (0..agents).map(|a| svc.agent_states(&id, a, committed + 1..).map(|v| v.len())).sum::<Result<usize>>()?;
        // The run is still `running`; recovery marks it interrupted.
        assert_eq!(svc.simulation(&id)?.status, SimulationStatus::Running);
        let recovered = svc.recover_stale(Duration::ZERO)?;
        assert_eq!(recovered, vec![id.clone()]);
        assert_eq!(svc.simulation(&id)?.status, SimulationStatus::Interrupted);
        let point = svc.resume_with(&id, Duration::ZERO)?;
        assert_eq!(point.last_complete_step, Some(committed));
        assert_eq!(point.discarded_rows, above);
        assert_eq!(point.states.len() as i32, agents);
        assert!(svc.steps(&id, committed + 1..)?.is_empty());
        Ok(())
    }

    fn eight_processes_open_a_fresh_database(db) {
        let empty = TestDatabase::empty(db.backend())?;
        let children: Vec<Child> = (0..8).map(|_| spawn(empty.url(), &["migrate"])).collect::<Result<_>>()?;
        for child in children {
            let out = child.wait_with_output().map_err(io)?;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let database = Database::open(empty.url())?;
        assert_eq!(database.applied_migrations()?, database.embedded_migrations()?);
        use simdb::diesel::prelude::*;
        use simdb::diesel::sql_types::BigInt;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let count: Count = simdb::with_connection!(database.connection()?, |c| simdb::diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {}", migration_table(empty.backend()))).get_result(c)?);
        assert_eq!(count.n, database.embedded_migrations()?.len() as i64, "migrations applied more than once");
        Ok(())
    }

    /// Eight processes open a database of the previous release at once:
    /// exactly one upgrades it (tables renamed, migration booked once), the
    /// others wait and find it done; every row is there afterwards.
    fn eight_processes_upgrade_an_earlier_release_at_once(db) {
        let old = common::fixtures::fixture(db.backend(), "v2")?;
        let children: Vec<Child> = (0..8).map(|_| spawn(old.url(), &["migrate"])).collect::<Result<_>>()?;
        for child in children {
            let out = child.wait_with_output().map_err(io)?;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let database = Database::open(old.url())?;
        assert_eq!(database.applied_migrations()?, database.embedded_migrations()?);
        let svc = SimulationService::new(database.clone());
        let sims = svc.list_simulations(&SimulationFilter::new())?;
        assert_eq!(sims.len(), 3);
        for sim in &sims {
            assert_eq!(table_counts(&database, sim.sim_key)?, (200, 50, 50, 200, 20));
        }
        Ok(())
    }

    fn two_processes_record_at_once(db) {
        let children: Vec<Child> = (0..2).map(|_| spawn(db.url(), &["synth", "--agents", "4", "--steps", "500", "--flush-every", "50"])).collect::<Result<_>>()?;
        let mut ids = Vec::new();
        for child in children {
            let out = child.wait_with_output().map_err(io)?;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            ids.push(SimulationId::new(text.lines().next().unwrap_or_default())?);
        }
        let svc = service(db);
        for id in &ids {
            let s = svc.analytics().summary(id)?;
            assert_eq!((s.simulation.status, s.agent_state_rows, s.steps), (SimulationStatus::Completed, 2000, 500));
        }
        assert_ne!(ids[0], ids[1]);
        Ok(())
    }

    fn reader_polls_while_a_writer_records(db) {
        // Long enough that the reader polls many times while it records,
        // however fast the writer.
        let mut child = spawn(db.url(), &["synth", "--agents", "8", "--steps", "20000", "--flush-every", "20"])?;
        let stdout = child.stdout.take().ok_or(Error::RecorderClosed)?;
        let mut lines = BufReader::new(stdout).lines();
        let id = SimulationId::new(lines.next().ok_or(Error::RecorderClosed)?.map_err(io)?)?;
        let drain = std::thread::spawn(move || lines.count());
        let reader = SimulationService::new(Database::open(db.url())?);
        let analytics = reader.analytics();
        let mut cursor = None;
        let mut polls = 0;
        let mut last_rows = 0;
        loop {
            // Any error here (e.g. "database is locked") fails the test.
            let p = analytics.progress(&id, cursor)?;
            assert!(p.rows >= last_rows);
            last_rows = p.rows;
            cursor = Some(p.cursor);
            reader.agent_states(&id, 3, ..)?;
            polls += 1;
            if p.status.is_final() {
                break;
            }
        }
        let status = child.wait().map_err(io)?;
        assert!(status.success());
        let _ = drain.join();
        assert_eq!(last_rows, 160_000);
        assert!(polls > 3, "only {polls} polls");
        Ok(())
    }
}

/// Kills every other connection to the test database.
fn terminate_others(db: &TestDatabase) -> Result<usize> {
    use simdb::diesel::prelude::*;
    use simdb::diesel::sql_types::Bool;
    #[derive(QueryableByName)]
    struct Killed {
        #[diesel(sql_type = Bool)]
        #[allow(dead_code)]
        pg_terminate_backend: bool,
    }
    let mut admin = <simdb::diesel::PgConnection as simdb::diesel::Connection>::establish(db.url())
        .map_err(|e| Error::Connection {
            url: "test".into(),
            message: e.to_string(),
        })?;
    let killed: Vec<Killed> = simdb::diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .load(&mut admin)?;
    Ok(killed.len())
}

#[test]
fn postgres_connection_loss_is_retried() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let svc = service(&db);
    let sim = running_sim(&svc, 4)?;
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(100))?;
    let mut killed = 0;
    for step in 0..600 {
        for agent in 0..4 {
            rec.agent_state(step, agent, step as f64, &json!({"s": step}))?;
        }
        if step % 100 == 50 {
            rec.flush()?;
            killed += terminate_others(&db)?;
        }
    }
    rec.close()?;
    assert!(killed >= 6, "terminated {killed} connections");
    let s = svc.analytics().summary(&sim.id)?;
    assert_eq!(s.agent_state_rows, 2400, "rows lost or duplicated");
    for agent in 0..4 {
        let series = svc.agent_states(&sim.id, agent, ..)?;
        assert_eq!(
            series.iter().map(|r| r.step).collect::<Vec<_>>(),
            (0..600).collect::<Vec<_>>()
        );
    }
    Ok(())
}

#[test]
fn postgres_give_up_reports_unpersisted_rows_and_retry_writes_them() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let svc = service(&db);
    let sim = running_sim(&svc, 2)?;
    let mut rec = svc.recorder_with(
        &sim.id,
        RecorderOptions::default().batch_rows(10).max_attempts(1),
    )?;
    for step in 0..20 {
        rec.agent_state(step, 0, 1.0, &json!({}))?;
    }
    rec.flush()?;
    terminate_others(&db)?;
    for step in 20..25 {
        rec.agent_state(step, 0, 1.0, &json!({}))?;
    }
    match rec.flush() {
        Err(Error::Recorder {
            unpersisted_rows, ..
        }) => assert_eq!(unpersisted_rows, 5),
        other => panic!("expected the writer to give up, got {other:?}"),
    }
    rec.retry()?;
    rec.close()?;
    assert_eq!(svc.agent_states(&sim.id, 0, ..)?.len(), 25);
    Ok(())
}
