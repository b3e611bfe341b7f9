//! The batched recorder: exact read-back, backpressure, writer errors,
//! duplicates, and concurrent recorders — on both backends.

mod common;
use common::*;

use simdb::{NewAgentMemory, RecorderOptions};

use common::table_counts as count;

backend_tests! {
    /// A batch holding half of `batch_rows` goes to the writer at the
    /// first row of the next 64-step chunk, so the chunks it wrote are
    /// whole: with 10 agents and `batch_rows(1000)`, steps 0..=63 (640
    /// rows) commit when step 64's first row arrives — with no flush and
    /// no timer — and the next batch starts a fresh chunk.
    fn batches_end_on_chunk_boundaries(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 10)?;
        let options = RecorderOptions::default()
            .batch_rows(1000)
            .flush_interval(std::time::Duration::from_secs(3600))
            .lease_timeout(std::time::Duration::from_secs(3600));
        let mut rec = svc.recorder_with(&sim.id, options)?;
        for step in 0..64i64 {
            for agent in 0..10 {
                rec.agent_state(step, agent, 1.0, &state(step, agent))?;
            }
            rec.end_step(step)?;
        }
        // 640 rows: more than half a batch, not a full one; nothing is sent.
        assert_eq!(rec.committed_step(), None);
        rec.agent_state(64, 0, 1.0, &state(64, 0))?;
        // The batch of steps 0..=63 went to the writer: it commits by
        // itself (waited for, never timed).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while rec.committed_step().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(rec.committed_step(), Some(63));
        assert_eq!(rec.rows_written(), 640);
        rec.close()?;
        let states = svc.agent_states(&sim.id, 0, ..)?;
        assert_eq!(states.len(), 65);
        Ok(())
    }

    /// A parallel engine: 8 threads record one simulation through lanes,
    /// every step ended once its lanes are gone; every row lands once and
    /// the watermark is exact.
    fn eight_threads_record_one_simulation_through_lanes(db) {
        let svc = service(db);
        let agents = 64i32;
        let sim = running_sim(&svc, agents)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(500))?;
        let steps = 40i64;
        for step in 0..steps {
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let rec = &rec;
                        s.spawn(move || -> Result<()> {
                            let mut lane = rec.lane();
                            for agent in (t..agents).step_by(8) {
                                lane.agent_state(step, agent, step as f64 + agent as f64, &state(step, agent))?;
                                lane.agent_metric(step, agent, if t % 2 == 0 { "even" } else { "odd" }, agent as f64)?;
                            }
                            lane.finish()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(Err(Error::RecorderClosed))).collect()
            });
            for r in results {
                r?;
            }
            rec.metric(step, "food", step as f64)?;
            rec.end_step(step)?;
            if step == steps / 2 {
                assert_eq!(rec.flush()?, Some(step));
            }
        }
        assert_eq!(rec.rows_recorded(), (steps * (2 * agents as i64 + 1)) as u64);
        rec.close()?;
        assert_eq!(count(db, sim.sim_key)?.0, steps * agents as i64);
        assert_eq!(count(db, sim.sim_key)?.3, steps * agents as i64);
        assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(steps - 1));
        let a = svc.analytics();
        for agent in [0, 9, 63] {
            let series = a.agent_series(&sim.id, agent, "reward", ..)?;
            assert_eq!(series, (0..steps).map(|s| (s, s as f64 + agent as f64)).collect::<Vec<_>>());
        }
        assert_eq!(a.agent_series(&sim.id, 8, "even", 3..=3)?, vec![(3, 8.0)]);
        assert_eq!(a.agent_series(&sim.id, 9, "odd", 3..=3)?, vec![(3, 9.0)]);
        assert_rollups_match_rows(&svc, &sim.id)?;
        Ok(())
    }

    /// Vectorised engines: a whole step of agents from slices, checked once
    /// per call, all or nothing; the same rows as the per-row calls.
    fn slices_record_a_whole_step(db) {
        let svc = service(db);
        let n = 50;
        let sim = running_sim(&svc, n)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(64))?;
        for step in 0..20i64 {
            let rewards: Vec<f64> = (0..n).map(|a| step as f64 + a as f64 / 100.0).collect();
            let states: Vec<Value> = (0..n).map(|a| state(step, a)).collect();
            rec.agent_states(step, &rewards, &states)?;
            let energy: Vec<f64> = (0..n).map(|a| a as f64 * 2.0).collect();
            rec.agent_metric_slice(step, "energy", &energy)?;
            rec.end_step(step)?;
        }
        // Refused whole, nothing of the call recorded.
        let mut bad = vec![1.0; n as usize];
        bad[7] = f64::NAN;
        let states: Vec<Value> = (0..n).map(|a| state(20, a)).collect();
        assert!(matches!(rec.agent_states(20, &bad, &states), Err(Error::InvalidInput { .. })));
        assert!(matches!(rec.agent_states(20, &[1.0], &states), Err(Error::InvalidInput { .. })));
        let too_many: Vec<f64> = vec![1.0; n as usize + 1];
        assert!(matches!(rec.agent_metric_slice(20, "energy", &too_many), Err(Error::NotFound { entity: "agent", .. })));
        let nul: Vec<Value> = (0..n).map(|a| if a == 30 { json!({"s": "a\u{0}b"}) } else { state(20, a) }).collect();
        assert!(rec.agent_states(20, &vec![1.0; n as usize], &nul).is_err());
        rec.close()?;
        assert_eq!(count(db, sim.sim_key)?.0, 20 * n as i64);
        assert_eq!(count(db, sim.sim_key)?.3, 20 * n as i64);
        let a = svc.analytics();
        assert_eq!(a.agent_series(&sim.id, 7, "reward", ..)?[3], (3, 3.07));
        assert_eq!(a.agent_series(&sim.id, 9, "energy", 5..=5)?, vec![(5, 18.0)]);
        assert_eq!(svc.agent_states(&sim.id, 49, 19..=19)?[0].state, state(19, 49));
        assert_rollups_match_rows(&svc, &sim.id)?;
        Ok(())
    }

    /// Engines index agents by unsigned types; an index beyond i32 is refused.
    fn unsigned_agent_indexes_convert_checked(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let mut rec = svc.recorder(&sim.id)?;
        rec.agent_state(0, 1usize, 1.0, &json!({}))?;
        rec.agent_state(0, 2u32, 1.0, &json!({}))?;
        rec.agent_metric(0, 0u64, "m", 1.0)?;
        let huge = rec.agent_state(0, u64::MAX, 1.0, &json!({}));
        assert!(matches!(huge, Err(Error::InvalidInput { field: "agent index", .. })), "{huge:?}");
        rec.close()?;
        assert_eq!(svc.agent_states(&sim.id, 2usize, ..)?.len(), 1);
        Ok(())
    }

    /// Dropping a recorder commits what it holds and releases its lease;
    /// agents registered while it records are accepted.
    fn dropping_a_recorder_commits_and_releases(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        {
            let mut rec = svc.recorder(&sim.id)?;
            rec.agent_state(0, 0, 1.0, &json!({}))?;
            svc.register_agents(&sim.id, &[NewAgent::new(5).kind("late")])?;
            rec.agent_state(0, 5, 2.0, &json!({}))?;
            rec.end_step(0)?;
        }
        assert_eq!(count(db, sim.sim_key)?.0, 2);
        assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(0));
        // Released: another recorder takes the run at once, and one-row
        // writes are accepted again.
        let mut again = svc.recorder(&sim.id)?;
        again.agent_state(1, 0, 1.0, &json!({}))?;
        again.close()?;
        svc.end_step(&sim.id, 1)?;
        Ok(())
    }

    /// Parameters from a struct keep their digits (f32 included).
    fn parameters_from_a_struct_keep_their_digits(db) {
        #[derive(serde::Serialize)]
        struct Params { alignment: f32, agents: u32 }
        let svc = service(db);
        let sim = svc.create_simulation(NewSimulation::with_parameters(&Params { alignment: 0.12, agents: 64 })?)?;
        assert_eq!(sim.parameters, json!({"alignment": 0.12, "agents": 64}));
        Ok(())
    }

    fn records_read_back_exactly(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 5)?;
        // An odd batch size so batches split steps and chunk remainders occur.
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(137))?;
        let steps = 300;
        for step in 0..steps {
            for agent in 0..5 {
                let reward = (step * 7 + agent as i64) as f64 * 0.001 - 0.5;
                rec.agent_state(step, agent, reward, &state(step, agent))?;
                rec.agent_metric(step, agent, "energy", step as f64 + agent as f64)?;
            }
            rec.step(step, &json!({"food_left": 1000 - step, "name": "ünï"}))?;
            rec.metric(step, "food_left", (1000 - step) as f64)?;
            rec.metric(step, "alive", 5.0)?;
            if step % 100 == 0 {
                rec.memory(step, 2, NewAgentMemory::from_f32(vec![2], &[step as f32, -1.0]))?;
            }
        }
        assert_eq!(rec.rows_recorded(), (steps * (5 + 5 + 1 + 2) + 3) as u64);
        rec.close()?;
        assert_eq!(count(db, sim.sim_key)?, (1500, 300, 600, 1500, 3));
        for agent in 0..5 {
            let rows = svc.agent_states(&sim.id, agent, ..)?;
            assert_eq!(rows.len(), steps as usize);
            for (step, row) in rows.iter().enumerate() {
                let step = step as i64;
                assert_eq!(row.step, step);
                assert_eq!(row.reward, (step * 7 + agent as i64) as f64 * 0.001 - 0.5);
                assert_eq!(row.state, state(step, agent));
            }
        }
        let steps_back = svc.steps(&sim.id, 10..=10)?;
        assert_eq!(steps_back[0].metrics, json!({"food_left": 990, "name": "ünï"}));
        let mem = svc.latest_memory(&sim.id, 2)?.ok_or(Error::RecorderClosed)?;
        assert_eq!((mem.step, mem.to_f32()), (200, Some(vec![200.0, -1.0])));
        assert!(svc.simulation(&sim.id)?.heartbeat_at.is_some());
        Ok(())
    }

    fn flush_makes_rows_visible_and_durable(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..10 {
            rec.agent_state(step, 0, 1.0, &json!({"s": step}))?;
        }
        rec.flush()?;
        // A separate handle (another pool, as another process would) sees them.
        let other = SimulationService::new(Database::open(db.url())?);
        assert_eq!(other.agent_states(&sim.id, 0, ..)?.len(), 10);
        assert_eq!(rec.rows_written(), 10);
        rec.close()?;
        Ok(())
    }

    /// What a recorder acknowledges is durable, however it commits. On a
    /// SQLite file under `PowerLoss` the writer commits its batches with the
    /// WAL unsynced and a thread syncs it apart: there a batch can be
    /// committed (the stored watermark and rows are there) while the
    /// recorder has not acknowledged it, and `flush` waits for the sync.
    /// Elsewhere the commit is the sync. Either way `flush` returns the
    /// stored watermark with every row written.
    fn a_flush_returns_once_its_commits_are_synced(db) {
        use std::time::{Duration, Instant};
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let hold = simdb::test_support::hold_wal_syncs(db.database());
        // The test databases are files under `PowerLoss` on SQLite.
        assert_eq!(hold.holds(), db.backend() == simdb::Backend::Sqlite);
        let options = RecorderOptions::default().flush_interval(Duration::from_millis(20));
        let mut rec = svc.recorder_with(&sim.id, options)?;
        for step in 0..10 {
            for agent in 0..2 {
                rec.agent_state(step, agent, 1.0, &state(step, agent))?;
            }
            rec.end_step(step)?;
        }
        // The timer commits the batch (waited for, never timed).
        let other = SimulationService::new(Database::open(db.url())?);
        let deadline = Instant::now() + Duration::from_secs(60);
        while other.simulation(&sim.id)?.committed_step != Some(9) {
            assert!(Instant::now() < deadline, "the batch was never committed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(other.agent_states(&sim.id, 1, ..)?.len(), 10);
        let rec = if hold.holds() {
            // Committed, not synced: not acknowledged, and a flush waits.
            assert_eq!(rec.committed_step(), None);
            assert_eq!(rec.rows_written(), 0);
            let (done, flushed) = std::sync::mpsc::channel();
            let flusher = std::thread::spawn(move || {
                let watermark = rec.flush();
                let _ = done.send(());
                (rec, watermark)
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(flushed.try_recv().is_err(), "flush returned before the WAL was synced");
            drop(hold);
            let Ok((rec, watermark)) = flusher.join() else {
                panic!("the flushing thread panicked");
            };
            assert_eq!(watermark?, Some(9));
            rec
        } else {
            assert_eq!(rec.flush()?, Some(9));
            rec
        };
        assert_eq!(rec.committed_step(), Some(9));
        assert_eq!(rec.rows_written(), 20);
        rec.close()?;
        assert_eq!(other.simulation(&sim.id)?.committed_step, Some(9));
        Ok(())
    }

    fn tiny_buffer_backpressure_loses_nothing(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let opts = RecorderOptions::default().batch_rows(1).max_pending_batches(1);
        let mut rec = svc.recorder_with(&sim.id, opts)?;
        for step in 0..400 {
            for agent in 0..3 {
                rec.agent_state(step, agent, step as f64, &json!({"a": agent}))?;
            }
        }
        rec.close()?;
        assert_eq!(count(db, sim.sim_key)?.0, 1200);
        Ok(())
    }

    fn hot_path_validation(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&sim.id)?;
        assert!(matches!(rec.agent_state(-1, 0, 1.0, &json!({})), Err(Error::InvalidInput { field: "step", .. })));
        assert!(matches!(rec.agent_state(0, -1, 1.0, &json!({})), Err(Error::InvalidInput { .. })));
        assert!(matches!(rec.agent_state(0, 0, f64::NAN, &json!({})), Err(Error::InvalidInput { field: "reward", .. })));
        assert!(matches!(rec.agent_state(0, 9, 1.0, &json!({})), Err(Error::NotFound { entity: "agent", .. })));
        assert!(matches!(rec.agent_state(0, 0, 1.0, &json!({"k": "\u{0}"})), Err(Error::InvalidInput { field: "state", .. })));
        // NUL in a key, deep in a typed value, in step metrics.
        assert!(matches!(rec.agent_state(0, 0, 1.0, &json!({"a\u{0}": 1})), Err(Error::InvalidInput { field: "state", .. })));
        assert!(matches!(rec.agent_state(0, 0, 1.0, &(1, vec!["ok", "n\u{0}"])), Err(Error::InvalidInput { field: "state", .. })));
        assert!(matches!(rec.step(0, &json!({"m": ["\u{0}"]})), Err(Error::InvalidInput { field: "step metrics", .. })));
        assert!(matches!(rec.step(0, &json!([1, 2])), Err(Error::InvalidInput { .. })));
        assert!(matches!(rec.metric(0, "", 1.0), Err(Error::InvalidInput { .. })));
        assert!(matches!(rec.metric(0, "m", f64::INFINITY), Err(Error::InvalidInput { .. })));
        // Raw JSON text is checked too.
        let raw = serde_json::value::RawValue::from_string(r#"{"k":"\u0000"}"#.into())?;
        assert!(matches!(rec.agent_state(0, 0, 1.0, &raw), Err(Error::InvalidInput { field: "state", .. })));
        // A literal backslash-u0000 in text is not a NUL.
        rec.agent_state(0, 0, 1.0, &json!({"k": "\\u0000"}))?;
        // Agents registered after the recorder was made are picked up.
        svc.register_agents(&sim.id, &[NewAgent::new(9)])?;
        rec.agent_state(0, 9, 1.0, &json!({}))?;
        rec.close()?;
        assert_eq!(count(db, sim.sim_key)?.0, 2);
        assert_eq!(svc.agent_states(&sim.id, 0, ..)?[0].state, json!({"k": "\\u0000"}));
        let pending = svc.create_simulation(NewSimulation::new(json!({})))?;
        assert!(matches!(svc.recorder(&pending.id), Err(Error::InvalidInput { .. })));
        Ok(())
    }

    fn duplicate_is_an_error_and_batches_are_atomic(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(50))?;
        for step in 0..100 {
            rec.agent_state(step, 0, 1.0, &json!({}))?;
        }
        rec.flush()?;
        // The next batch holds 10 new rows and one duplicate: none of it lands.
        for step in 100..110 {
            rec.agent_state(step, 1, 1.0, &json!({}))?;
        }
        rec.agent_state(5, 0, 2.0, &json!({"dup": true}))?;
        let err = rec.flush();
        match &err {
            Err(Error::Recorder { unpersisted_rows, source }) => {
                assert_eq!(*unpersisted_rows, 11);
                assert!(matches!(**source, Error::Duplicate { .. }), "{source:?}");
            }
            other => panic!("expected a recorder error, got {other:?}"),
        }
        // Every later call reports it; nothing is silently dropped.
        assert!(matches!(rec.agent_state(200, 0, 1.0, &json!({})), Err(Error::Recorder { .. })));
        assert_eq!(count(db, sim.sim_key)?.0, 100);
        assert_eq!(svc.agent_states(&sim.id, 0, 5..=5)?[0].reward, 1.0);
        assert_eq!(rec.discard_unpersisted(), 11);
        rec.agent_state(200, 0, 1.0, &json!({}))?;
        rec.close()?;
        assert_eq!(count(db, sim.sim_key)?.0, 101);
        Ok(())
    }

    fn simulation_deleted_mid_run(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(10))?;
        for step in 0..20 {
            rec.agent_state(step, 0, 1.0, &json!({}))?;
        }
        rec.flush()?;
        svc.delete_simulation(&sim.id)?;
        for step in 20..45 {
            // Calls may start failing as soon as the writer notices.
            if rec.agent_state(step, 0, 1.0, &json!({})).is_err() {
                break;
            }
        }
        match rec.close() {
            Err(Error::Recorder { unpersisted_rows, .. }) => assert!(unpersisted_rows > 0),
            other => panic!("expected a recorder error, got {other:?}"),
        }
        Ok(())
    }

    fn concurrent_recorders_do_not_interfere(db) {
        let svc = service(db);
        let sims: Vec<Simulation> = (0..3).map(|_| running_sim(&svc, 4)).collect::<Result<_>>()?;
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = sims
                .iter()
                .enumerate()
                .map(|(i, sim)| {
                    // Each thread uses its own handle, like separate processes.
                    let url = db.url().to_string();
                    scope.spawn(move || -> Result<()> {
                        let svc = SimulationService::new(Database::open(&url)?);
                        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(97))?;
                        for step in 0..250 {
                            for agent in 0..4 {
                                rec.agent_state(step, agent, (i * 1000) as f64 + step as f64, &json!({"sim": i}))?;
                            }
                        }
                        rec.close()
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| Error::RecorderClosed)??;
            }
            Ok(())
        })?;
        for (i, sim) in sims.iter().enumerate() {
            assert_eq!(count(db, sim.sim_key)?.0, 1000);
            let rows = svc.agent_states(&sim.id, 3, ..)?;
            assert!(rows.iter().all(|r| r.state == json!({"sim": i}) && r.reward == (i * 1000) as f64 + r.step as f64));
        }
        Ok(())
    }

    fn drop_flushes(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        {
            let mut rec = svc.recorder(&sim.id)?;
            for step in 0..25 {
                rec.agent_state(step, 0, 0.5, &json!({}))?;
            }
        }
        assert_eq!(count(db, sim.sim_key)?.0, 25);
        Ok(())
    }
}

/// A recorder's commits leave WAL checkpoints to the database's checkpoint
/// thread (SQLite only: PostgreSQL has no WAL for a client to checkpoint).
/// While the database stays open, the rows reach the main file anyway:
/// without that thread nothing would copy them there until the last
/// connection closed. One-row writes on the writer connection keep
/// SQLite's own checkpoints.
#[test]
fn sqlite_checkpoints_run_beside_the_recorder(
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let db = TestDatabase::new(simdb::Backend::Sqlite)?;
    let svc = service(&db);
    let sim = running_sim(&svc, 20)?;
    // Enough for the recorder's commits to cross the checkpoint mark (4 MiB).
    let path = db.database().path().ok_or("not a file")?.to_path_buf();
    let main_file = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = main_file();
    // No timer commit nor heartbeat (one-row writes, which checkpoint as
    // SQLite does by default) while the test looks.
    let options = RecorderOptions::default()
        .batch_rows(2_000)
        .flush_interval(std::time::Duration::from_secs(60))
        .lease_timeout(std::time::Duration::from_secs(600));
    let mut rec = svc.recorder_with(&sim.id, options)?;
    for step in 0..6_000i64 {
        for agent in 0..20 {
            rec.agent_state(
                step,
                agent,
                (step % 7) as f64,
                &json!({"x": ((step * 7919 + i64::from(agent) * 104_729) % 1_000_003) as f64 / 3.7, "tag": "a"}),
            )?;
        }
        rec.end_step(step)?;
    }
    // Every batch committed, the recorder still open (its close would be
    // a one-row write, which checkpoints as SQLite does by default).
    rec.flush()?;
    // The pages the data takes, as a connection sees them (through the WAL).
    let pages: i64 = simdb::with_connection!(db.database().connection()?, |c| {
        use simdb::diesel::RunQueryDsl;
        #[derive(simdb::diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = simdb::diesel::sql_types::BigInt)]
            n: i64,
        }
        simdb::diesel::sql_query(
            "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
        )
        .get_result::<N>(c)?
        .n
    });
    assert!(
        pages as u64 > before + (1 << 20),
        "{pages} bytes of pages, the file had {before}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while main_file() < pages as u64 * 9 / 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the main file holds {} of {pages} bytes: the WAL was not checkpointed",
            main_file()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    rec.close()?;
    // The writer connection is back to SQLite's own checkpoints.
    let auto: i64 = simdb::with_connection!(db.database().writer()?, |c| {
        use simdb::diesel::RunQueryDsl;
        #[derive(simdb::diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = simdb::diesel::sql_types::BigInt)]
            wal_autocheckpoint: i64,
        }
        simdb::diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result::<N>(c)?
            .wal_autocheckpoint
    });
    assert_eq!(auto, 1000);
    Ok(())
}

/// A recorder that never pauses still keeps its SQLite WAL bounded. Its
/// commits leave checkpoints to the database's checkpoint thread, which
/// copies the WAL back in `PASSIVE` mode while the writer goes on: such a
/// checkpoint never catches up with a writer that commits during it, and
/// SQLite only starts the WAL over from its beginning once a checkpoint has
/// copied all of it. Before the writer finished those checkpoints, the WAL
/// of this run grew by every page every commit wrote (92 MB; 2 GiB over
/// the engine bench's 80,000 steps), each new page also costing the file
/// system an allocation. The bound is lowered for the test
/// (`restart_wal_after`): the WAL starts over past 4 MiB, not 64.
#[test]
fn sqlite_wal_stays_bounded_under_a_recorder_that_never_pauses(
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let db = TestDatabase::new(simdb::Backend::Sqlite)?;
    let svc = service(&db);
    let agents = 150;
    let sim = running_sim(&svc, agents)?;
    let path = db.database().path().ok_or("not a file")?.to_path_buf();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // 4 MiB instead of 64: the run writes 20 times that.
    simdb::test_support::restart_wal_after(db.database(), 1_024);
    // Small batches: many commits, each rewriting the chunks and index
    // pages it touches, so the WAL takes far more than the bound below.
    let options = RecorderOptions::default()
        .batch_rows(1_200)
        .flush_interval(std::time::Duration::from_secs(60))
        .lease_timeout(std::time::Duration::from_secs(600));
    let mut rec = svc.recorder_with(&sim.id, options)?;
    let mut largest = 0u64;
    for step in 0..1_500i64 {
        for agent in 0..agents {
            rec.agent_state(step, agent, (step % 7) as f64, &state(step, agent))?;
            rec.agent_metric(step, agent, "speed", (step + i64::from(agent)) as f64 / 3.0)?;
        }
        rec.end_step(step)?;
        // The file keeps the length it reached: started over, the WAL
        // is written again from its beginning.
        largest = largest.max(wal_len());
    }
    rec.close()?;
    assert_eq!(
        svc.agent_states(&sim.id, agents - 1, ..)?.len(),
        1_500,
        "every state read back"
    );
    // Before the writer finished the checkpoints: 92 MB, never started over.
    assert!(largest <= 16 << 20, "the WAL grew to {largest} bytes");
    Ok(())
}
