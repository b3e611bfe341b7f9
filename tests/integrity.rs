//! Recording you can trust (issue 10): rows never land in another run,
//! resume cuts exactly above the commit watermark, slow runs commit and
//! heartbeat on a timer, leases stop a second writer, and the writer's error
//! paths keep order — each observation a regression test on both backends.

mod common;
use common::*;

use std::time::{Duration, Instant};

use simdb::{NewAgentMemory, Recorder, RecorderOptions};

/// Options whose timer never commits a partial batch during a test.
fn no_timer() -> RecorderOptions {
    RecorderOptions::default()
        .flush_interval(Duration::from_secs(3600))
        .lease_timeout(Duration::from_secs(3600))
}

/// The writer's error behind an `Error::Recorder`.
fn source_of(e: &Error) -> Option<&Error> {
    match e {
        Error::Recorder { source, .. } => Some(source),
        _ => None,
    }
}

backend_tests! {
    fn deleted_run_never_passes_its_key_or_rows_on(db) {
        let svc = service(db);
        let a = running_sim(&svc, 1)?;
        let mut rec = svc.recorder(&a.id)?;
        rec.agent_state(0, 0, 1.0, &json!({"run": "a"}))?;
        rec.flush()?;
        svc.delete_simulation(&a.id)?;
        // A was the newest simulation: SQLite's rowid alias would hand its
        // key to B.
        let b = running_sim(&svc, 1)?;
        assert_ne!(a.sim_key, b.sim_key, "a deleted simulation's key was reused");
        assert!(b.sim_key > a.sim_key);
        rec.agent_state(1, 0, 1.0, &json!({"run": "a"}))?;
        let err = rec.close().err().ok_or(Error::RecorderClosed)?;
        assert!(matches!(source_of(&err), Some(Error::SimulationDeleted { .. })), "{err}");
        assert_eq!(table_counts(db, b.sim_key)?, (0, 0, 0, 0, 0), "B received A's rows");
        Ok(())
    }

    fn finished_run_refuses_late_batches(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let mut rec = svc.recorder_with(&sim.id, no_timer())?;
        rec.agent_state(0, 0, 1.0, &json!({}))?;
        rec.flush()?;
        svc.complete_simulation(&sim.id, json!({}))?;
        rec.agent_state(1, 0, 1.0, &json!({}))?;
        let err = rec.flush().err().ok_or(Error::RecorderClosed)?;
        assert!(
            matches!(source_of(&err), Some(Error::SimulationNotRunning { status: SimulationStatus::Completed, .. })),
            "{err}"
        );
        assert_eq!(table_counts(db, sim.sim_key)?.0, 1);
        Ok(())
    }

    fn one_live_recorder_per_run(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let first = svc.recorder(&sim.id)?;
        assert!(matches!(svc.recorder(&sim.id), Err(Error::LeaseHeld { .. })));
        first.close()?;
        // Closing gives the lease up.
        svc.recorder(&sim.id)?.close()?;
        Ok(())
    }

    fn resume_refused_while_the_recorder_lives_and_takeover_stops_it(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let lease = Duration::from_millis(600);
        let options = RecorderOptions::default().lease_timeout(lease).flush_interval(Duration::from_millis(50));
        let mut old = svc.recorder_with(&sim.id, options)?;
        old.agent_state(0, 0, 1.0, &json!({}))?;
        old.end_step(0)?;
        old.flush()?;
        // Someone judges the run dead too early.
        svc.interrupt_simulation(&sim.id, "misjudged")?;
        assert!(matches!(svc.resume_with(&sim.id, lease), Err(Error::LeaseHeld { .. })));
        // The old recorder notices on its next heartbeat and stops.
        let started = Instant::now();
        while old.agent_state(1, 0, 1.0, &json!({})).is_ok() {
            assert!(started.elapsed() < Duration::from_secs(20), "the old recorder never stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(lease);
        let point = svc.resume_with(&sim.id, lease)?;
        assert_eq!(point.last_complete_step, Some(0));
        let mut new = svc.recorder(&sim.id)?;
        new.agent_state(1, 0, 2.0, &json!({"new": true}))?;
        new.close()?;
        let err = old.close().err().ok_or(Error::RecorderClosed)?;
        assert!(
            matches!(source_of(&err), Some(Error::SimulationNotRunning { .. } | Error::LeaseLost { .. })),
            "{err}"
        );
        let rows = svc.agent_states(&sim.id, 0, ..)?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].state, json!({"new": true}), "the old recorder wrote into the taken-over run");
        Ok(())
    }

    fn taken_over_recorder_stops_with_lease_lost(db) {
        // The old recorder is silent (long timer) while its run is
        // interrupted and resumed by force: its next batch finds another
        // recorder's lease.
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let mut old = svc.recorder_with(&sim.id, no_timer())?;
        old.agent_state(0, 0, 1.0, &json!({}))?;
        old.end_step(0)?;
        old.flush()?;
        svc.interrupt_simulation(&sim.id, "judged dead")?;
        svc.resume_with(&sim.id, Duration::ZERO)?;
        let mut new = svc.recorder_with(&sim.id, no_timer())?;
        old.agent_state(1, 0, 1.0, &json!({"old": true}))?;
        let err = old.flush().err().ok_or(Error::RecorderClosed)?;
        assert!(matches!(source_of(&err), Some(Error::LeaseLost { .. })), "{err}");
        new.agent_state(1, 0, 2.0, &json!({"new": true}))?;
        new.close()?;
        let rows = svc.agent_states(&sim.id, 0, ..)?;
        assert_eq!(rows.iter().map(|r| r.state.clone()).collect::<Vec<_>>(), vec![json!({}), json!({"new": true})]);
        Ok(())
    }

    fn resume_keeps_agents_that_stop_reporting(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder_with(&sim.id, no_timer().batch_rows(50))?;
        for step in 0..1000 {
            rec.agent_state(step, 0, 1.0, &json!({}))?;
            if step < 10 {
                rec.agent_state(step, 1, 1.0, &json!({}))?;
            }
            rec.end_step(step)?;
        }
        rec.flush()?;
        rec.crash_for_tests();
        svc.interrupt_simulation(&sim.id, "crash")?;
        let point = svc.resume_with(&sim.id, Duration::ZERO)?;
        assert_eq!(point.last_complete_step, Some(999));
        assert_eq!(point.discarded_rows, 0);
        assert_eq!(table_counts(db, sim.sim_key)?.0, 1010);
        // Agent 1's last state is at step 9.
        let last: Vec<(i32, i64)> = point.states.iter().map(|s| (s.agent_index.0, s.step)).collect();
        assert_eq!(last, vec![(0, 999), (1, 9)]);
        Ok(())
    }

    fn resume_keeps_runs_without_agent_states(db) {
        let svc = service(db);
        // Steps and metrics only.
        let sim = running_sim(&svc, 1)?;
        let mut rec = svc.recorder_with(&sim.id, no_timer().batch_rows(7))?;
        for step in 0..30 {
            rec.step(step, &json!({"n": step}))?;
            rec.metric(step, "food", step as f64)?;
            rec.end_step(step)?;
        }
        rec.flush()?;
        rec.crash_for_tests();
        svc.interrupt_simulation(&sim.id, "crash")?;
        let point = svc.resume_with(&sim.id, Duration::ZERO)?;
        assert_eq!((point.last_complete_step, point.discarded_rows), (Some(29), 0));
        assert_eq!(table_counts(db, sim.sim_key)?, (0, 30, 30, 0, 0));
        // Memories only.
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder_with(&sim.id, no_timer().batch_rows(3))?;
        for step in 0..10 {
            for agent in 0..2 {
                rec.memory(step, agent, NewAgentMemory::from_f32(vec![1], &[step as f32]))?;
            }
            rec.end_step(step)?;
        }
        rec.flush()?;
        rec.crash_for_tests();
        svc.interrupt_simulation(&sim.id, "crash")?;
        let point = svc.resume_with(&sim.id, Duration::ZERO)?;
        assert_eq!((point.last_complete_step, point.discarded_rows), (Some(9), 0));
        assert_eq!(point.memories.len(), 2);
        assert_eq!(table_counts(db, sim.sim_key)?.4, 20);
        Ok(())
    }

    fn kill_at_every_batch_boundary_resumes_to_the_uninterrupted_run(db) {
        let svc = service(db);
        let (agents, steps) = (2, 4);
        let reference = running_sim(&svc, agents)?;
        let mut rec = svc.recorder_with(&reference.id, no_timer())?;
        let total = record_readme_order(&mut rec, 0, steps, agents, None)?;
        rec.close()?;
        let want = contents(&svc, &reference.id, agents)?;
        for batch in 1..=5usize {
            // Every prefix of whole batches is a possible crash.
            for kill_after in (0..=total).step_by(batch) {
                let sim = running_sim(&svc, agents)?;
                let mut rec = svc.recorder_with(&sim.id, no_timer().batch_rows(batch))?;
                record_readme_order(&mut rec, 0, steps, agents, Some(kill_after))?;
                rec.crash_for_tests();
                svc.interrupt_simulation(&sim.id, "killed")?;
                let point = svc.resume_with(&sim.id, Duration::ZERO)?;
                let mut rec = svc.recorder_with(&sim.id, no_timer().batch_rows(batch))?;
                record_readme_order(&mut rec, point.next_step(), steps, agents, None)?;
                rec.close()?;
                assert_eq!(
                    contents(&svc, &sim.id, agents)?,
                    want,
                    "batch {batch}, killed after {kill_after} rows, resumed at {}",
                    point.next_step()
                );
            }
        }
        Ok(())
    }

    fn slow_run_commits_and_heartbeats_on_a_timer(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let options = RecorderOptions::default()
            .flush_interval(Duration::from_millis(100))
            .lease_timeout(Duration::from_millis(800));
        let mut rec = svc.recorder_with(&sim.id, options)?;
        rec.agent_state(0, 0, 1.0, &json!({}))?;
        rec.end_step(0)?;
        let first_beat = svc.simulation(&sim.id)?.heartbeat_at;
        // No recording call for a while: the writer commits and heartbeats
        // on its own.
        let started = Instant::now();
        while svc.simulation(&sim.id)?.committed_step != Some(0) {
            assert!(started.elapsed() < Duration::from_secs(20), "the row never committed");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(table_counts(db, sim.sim_key)?.0, 1);
        std::thread::sleep(Duration::from_millis(600));
        assert!(svc.simulation(&sim.id)?.heartbeat_at > first_beat);
        assert!(svc.recover_stale(Duration::from_millis(500))?.is_empty(), "a live, slow run was judged dead");
        rec.close()?;
        Ok(())
    }

    fn heartbeats_come_from_the_database_clock(db) {
        use simdb::diesel::prelude::*;
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let beat = svc.heartbeat(&sim.id)?;
        // The stored heartbeat is the database's time, returned as stored.
        assert_eq!(svc.simulation(&sim.id)?.heartbeat_at, Some(beat));
        // A heartbeat written as "the database's now minus an hour" is stale
        // after 30 minutes and not after 2 hours, whatever this host's clock.
        let hour_ago = match db.backend() {
            simdb::Backend::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now', '-3600 seconds') || '000+00:00'",
            simdb::Backend::Postgres => "now() - interval '1 hour'",
        };
        simdb::with_connection!(db.database().writer()?, |c| {
            simdb::diesel::sql_query(format!("UPDATE simdb_simulations SET heartbeat_at = {hour_ago} WHERE sim_key = {}", sim.sim_key)).execute(c)?;
        });
        assert!(svc.recover_stale(Duration::from_secs(7200))?.is_empty());
        assert_eq!(svc.recover_stale(Duration::from_secs(1800))?, vec![sim.id.clone()]);
        Ok(())
    }

    fn a_lapsed_recorder_cannot_write_over_a_one_row_write(db) {
        use simdb::diesel::prelude::*;
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let mut rec = svc.recorder_with(&sim.id, no_timer())?;
        for step in 0..3 {
            rec.agent_state(step, 0, 1.0, &json!({}))?;
            rec.end_step(step)?;
        }
        assert_eq!(rec.flush()?, Some(2));
        // The recorder stalls past its lease (its heartbeat an hour old)...
        let hour_ago = match db.backend() {
            simdb::Backend::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now', '-3600 seconds') || '000+00:00'",
            simdb::Backend::Postgres => "now() - interval '1 hour'",
        };
        simdb::with_connection!(db.database().writer()?, |c| {
            simdb::diesel::sql_query(format!("UPDATE simdb_simulations SET heartbeat_at = {hour_ago} WHERE sim_key = {}", sim.sim_key)).execute(c)?;
        });
        // ...so another caller may write a row into the chunk it wrote...
        svc.record_agent_state(&sim.id, 3, 0, 10.0, &json!({"other": true}))?;
        // ...and when it comes back, its batch is refused: it would have
        // merged its rows into the chunk and totals as it last knew them.
        rec.agent_state(4, 0, 1.0, &json!({}))?;
        rec.end_step(4)?;
        let err = rec.flush().err().ok_or(Error::RecorderClosed)?;
        assert!(matches!(source_of(&err), Some(Error::LeaseLost { .. })), "{err}");
        let steps: Vec<i64> = svc.agent_states(&sim.id, 0, ..)?.iter().map(|s| s.step).collect();
        assert_eq!(steps, vec![0, 1, 2, 3]);
        let totals = svc.analytics().agent_totals(&sim.id)?;
        assert_eq!((totals[0].rows, totals[0].total_reward), (4, 13.0), "{totals:?}");
        assert_rollups_match_rows(&svc, &sim.id)?;
        Ok(())
    }

    fn retry_and_discard_travel_in_order(db) {
        use simdb::diesel::prelude::*;
        use simdb::schema::agent_state_chunks;
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        // A row recorded elsewhere makes the recorder's second batch collide.
        svc.record_agent_state(&sim.id, 7, 0, 0.0, &json!({"other": true}))?;
        let mut rec = svc.recorder_with(&sim.id, no_timer().batch_rows(5))?;
        let mut failed = None;
        for step in 0..20 {
            // The failure surfaces on whichever call comes after it.
            if let Err(e) = rec.agent_state(step, 0, step as f64, &json!({})).and_then(|()| rec.end_step(step)) {
                failed = Some(e);
                break;
            }
        }
        let err = match failed { Some(e) => e, None => rec.flush().err().ok_or(Error::RecorderClosed)? };
        assert!(matches!(source_of(&err), Some(Error::Duplicate { .. })), "{err}");
        // The watermark stopped below the failed batch: the first batch
        // (steps 0..=4) was handed off before step 4 was ended.
        assert_eq!(rec.committed_step(), Some(3));
        // Remove the collision; retry writes the held batches in order.
        simdb::with_connection!(db.database().writer()?, |c| {
            simdb::diesel::delete(agent_state_chunks::table.filter(agent_state_chunks::sim_key.eq(sim.sim_key))).execute(c)?;
        });
        let committed = rec.retry()?;
        let written = rec.rows_recorded();
        rec.close()?;
        let steps: Vec<i64> = svc.agent_states(&sim.id, 0, ..)?.iter().map(|s| s.step).collect();
        // Steps 0..=4 were deleted with the collision; the rest arrived once, in order.
        assert_eq!(steps, (5..written as i64).collect::<Vec<_>>());
        assert!(committed >= Some(9));

        // Discard: the watermark never passes the first dropped row.
        let sim = running_sim(&svc, 1)?;
        svc.record_agent_state(&sim.id, 7, 0, 0.0, &json!({}))?;
        let mut rec = svc.recorder_with(&sim.id, no_timer().batch_rows(5))?;
        for step in 0..10 {
            let _ = rec.agent_state(step, 0, 1.0, &json!({}));
            let _ = rec.end_step(step);
        }
        let _ = rec.flush();
        assert_eq!(rec.discard_unpersisted(), 5);
        for step in 10..20 {
            rec.agent_state(step, 0, 1.0, &json!({}))?;
            rec.end_step(step)?;
        }
        // Step 4's rows all came with the first batch: the watermark may
        // reach it, never the first discarded step (5).
        assert_eq!(rec.flush()?, Some(4), "the watermark passed discarded rows");
        rec.close()?;
        assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(4));
        Ok(())
    }

    fn memory_and_size_stay_bounded(db) {
        let svc = service(db);
        let sim = svc.create_simulation(NewSimulation::new(json!({})))?;
        svc.register_agents(&sim.id, &[NewAgent::new(300_000_000)])?;
        svc.start_simulation(&sim.id)?;
        let options = no_timer().batch_rows(1_000_000).batch_bytes(64 * 1024);
        let mut rec = svc.recorder_with(&sim.id, options)?;
        rec.agent_state(0, 300_000_000, 1.0, &json!({}))?;
        // One row larger than a batch may be: a typed error naming the limit.
        let big = "x".repeat(100 * 1024);
        match rec.agent_state(1, 300_000_000, 1.0, &json!({"blob": big})) {
            Err(Error::RowTooLarge { limit, bytes }) => assert!(limit == 64 * 1024 && bytes > limit),
            other => panic!("expected RowTooLarge, got {other:?}"),
        }
        // Batches are handed off by bytes, far below `batch_rows`.
        let chunk = "y".repeat(8 * 1024);
        for step in 1..40 {
            rec.agent_state(step, 300_000_000, 1.0, &json!({"blob": chunk}))?;
        }
        let started = Instant::now();
        while rec.rows_written() == 0 {
            assert!(started.elapsed() < Duration::from_secs(20), "no batch was handed off by size");
            std::thread::sleep(Duration::from_millis(10));
        }
        rec.close()?;
        assert_eq!(table_counts(db, sim.sim_key)?.0, 40);
        Ok(())
    }

    fn same_refusals_on_both_backends(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let bad_summary = svc.complete_simulation(&sim.id, json!({"note": "a\u{0}b"}));
        assert!(matches!(bad_summary, Err(Error::InvalidInput { .. })), "{bad_summary:?}");
        let bad_message = svc.fail_simulation(&sim.id, "oops\0");
        assert!(matches!(bad_message, Err(Error::InvalidInput { .. })), "{bad_message:?}");
        let bad_reason = svc.interrupt_simulation(&sim.id, "\0");
        assert!(matches!(bad_reason, Err(Error::InvalidInput { .. })), "{bad_reason:?}");
        let bad_description = svc.create_experiment(NewExperiment::new("e").description("x\0y"));
        assert!(matches!(bad_description, Err(Error::InvalidInput { .. })), "{bad_description:?}");
        let negative = svc.list_simulations(&SimulationFilter::new().limit(-1));
        assert!(matches!(negative, Err(Error::InvalidInput { .. })), "{negative:?}");
        assert_eq!(svc.simulation(&sim.id)?.status, SimulationStatus::Running);
        // Any duration, however large, without a panic.
        assert!(svc.recover_stale(Duration::from_secs(10_000_000_000_000))?.is_empty());
        assert!(svc.recover_stale(Duration::MAX)?.is_empty());
        Ok(())
    }
}

/// Records steps `from..to` in the README's order (each agent's state and
/// metric, the step, its metric, a memory every other step, end of step),
/// stopping after `stop_after` recorded rows; returns the rows recorded.
fn record_readme_order(
    rec: &mut Recorder,
    from: i64,
    to: i64,
    agents: i32,
    stop_after: Option<usize>,
) -> Result<usize> {
    let mut rows = 0;
    let room = |rows: &mut usize| {
        *rows += 1;
        stop_after.is_none_or(|limit| *rows <= limit)
    };
    for step in from..to {
        for agent in 0..agents {
            let x = (step * 10 + agent as i64) as f64;
            if !room(&mut rows) {
                return Ok(rows - 1);
            }
            rec.agent_state(step, agent, x / 7.0, &json!({"x": x}))?;
            if !room(&mut rows) {
                return Ok(rows - 1);
            }
            rec.agent_metric(step, agent, "energy", x)?;
            if step % 2 == 0 {
                if !room(&mut rows) {
                    return Ok(rows - 1);
                }
                rec.memory(step, agent, NewAgentMemory::from_f32(vec![1], &[x as f32]))?;
            }
        }
        if !room(&mut rows) {
            return Ok(rows - 1);
        }
        rec.step(step, &json!({"food": 100 - step}))?;
        if !room(&mut rows) {
            return Ok(rows - 1);
        }
        rec.metric(step, "food", (100 - step) as f64)?;
        rec.end_step(step)?;
    }
    Ok(rows)
}

/// Everything stored for a run but timestamps.
fn contents(svc: &SimulationService, sim: &SimulationId, agents: i32) -> Result<Value> {
    let mut states = Vec::new();
    let mut memories = Vec::new();
    for agent in 0..agents {
        for s in svc.agent_states(sim, agent, ..)? {
            states.push(json!([s.step, agent, s.reward, s.state]));
        }
        for m in svc.memories(sim, agent)? {
            memories.push(json!([m.step, agent, m.data]));
        }
    }
    let steps: Vec<Value> = svc
        .steps(sim, ..)?
        .into_iter()
        .map(|s| json!([s.step, s.metrics]))
        .collect();
    let a = svc.analytics();
    let mut metrics = Vec::new();
    for agent in 0..agents {
        metrics.push(json!(a.agent_series(sim, agent, "energy", ..)?));
    }
    let key = svc.simulation(sim)?.sim_key;
    let food: Vec<(i64, f64)> = simdb::with_connection!(svc.database().connection()?, |c| {
        use simdb::diesel::prelude::*;
        use simdb::schema::step_metrics;
        step_metrics::table
            .filter(step_metrics::sim_key.eq(key))
            .select((step_metrics::step, step_metrics::value))
            .order(step_metrics::step)
            .load(c)?
    });
    Ok(
        json!({"states": states, "memories": memories, "steps": steps, "agent_metrics": metrics, "food": food}),
    )
}

/// A COMMIT whose reply is lost (a proxy cuts the connection right after
/// forwarding it): the writer finds its batch sequence number stored and
/// moves on — never stuck on `Duplicate`, never writing the batch twice.
/// Here the batch goes as one statement, which commits on its own: the
/// proxy cuts the reply to that.
#[test]
fn lost_commit_reply_is_settled_not_resent() -> Result<()> {
    cut_at_step_49(Cut::BatchCommit)
}

/// The connection dies while the writer prepares its one-statement batch
/// (the statement's first run on a connection): the batch never ran, and
/// the retry must get a new connection, not the dead one back from the
/// pool (Diesel marks a connection broken when a statement runs on it,
/// not when preparing one fails). Nothing lost or doubled.
#[test]
fn a_connection_lost_while_preparing_the_batch_is_replaced() -> Result<()> {
    cut_at_step_49(Cut::BatchPrepare)
}

/// The same for a batch written in a transaction (a memory snapshot keeps
/// it off the one-statement path): the lost reply is COMMIT's.
#[test]
fn lost_commit_reply_of_a_transaction_is_settled_not_resent() -> Result<()> {
    cut_at_step_49(Cut::TransactionCommit)
}

/// The same for a batch the writer handed to its sender thread: once a
/// recorder's last write went as one statement, the next is sent from
/// that thread while the writer encodes the one after (PostgreSQL). Its
/// lost reply is settled by the batch's sequence number as the writer's
/// own would be: nothing lost or doubled, the watermark exact.
#[test]
fn lost_commit_reply_of_a_sent_batch_is_settled_not_resent() -> Result<()> {
    let (db, proxy, svc) = through_a_proxy()?;
    let sim = running_sim(&svc, 2)?;
    let mut rec = svc.recorder_with(&sim.id, no_timer())?;
    let sender = format!("simdb-send-{}", sim.sim_key);
    let record = |rec: &mut Recorder, steps: std::ops::Range<i64>| -> Result<()> {
        for step in steps {
            for agent in 0..2 {
                rec.agent_state(step, agent, 1.0, &json!({"s": step}))?;
            }
            rec.end_step(step)?;
        }
        Ok(())
    };
    // One whole chunk, written by the writer itself as one statement.
    record(&mut rec, 0..64)?;
    assert_eq!(rec.flush()?, Some(63));
    assert!(
        !thread_named(&sender),
        "a sender thread before any batch was sent"
    );
    // The next chunk goes from the sender thread; its reply is cut.
    record(&mut rec, 64..128)?;
    proxy.cut_next_commit();
    assert_eq!(rec.flush()?, Some(127));
    assert!(
        thread_named(&sender),
        "the batch was not handed to a sender thread"
    );
    assert_eq!(
        proxy.commits_cut(),
        1,
        "the proxy did not cut the connection"
    );
    assert!(rec.transient_retries() >= 1);
    record(&mut rec, 128..192)?;
    rec.close()?;
    assert_eq!(
        table_counts(&db, sim.sim_key)?.0,
        384,
        "rows lost or doubled"
    );
    assert_eq!(service(&db).simulation(&sim.id)?.committed_step, Some(191));
    Ok(())
}

/// Whether a thread of this process has this name (Linux).
fn thread_named(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks.flatten().any(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
            })
        })
        .unwrap_or(false)
}

/// A fresh PostgreSQL database, a proxy in front of it, and a service
/// that reaches the database only through the proxy.
fn through_a_proxy() -> Result<(TestDatabase, proxy::Proxy, SimulationService)> {
    let db = TestDatabase::postgres()?;
    let upstream = proxy::upstream_of(db.url()).ok_or(Error::RecorderClosed)?;
    let proxy =
        proxy::Proxy::start(upstream).map_err(|e| Error::invalid_for_tests(e.to_string()))?;
    let svc = SimulationService::new(Database::open(&proxy.url_for(db.url()))?);
    Ok((db, proxy, svc))
}

/// Where the proxy cuts the connection of the write that ends at step 49.
#[derive(PartialEq)]
enum Cut {
    /// After the one-statement batch ran: its reply is lost.
    BatchCommit,
    /// After its preparation: it never ran.
    BatchPrepare,
    /// After the COMMIT of a batch written in a transaction (it holds a
    /// memory snapshot): its reply is lost.
    TransactionCommit,
}

/// Records 100 steps of 2 agents through a proxy that cuts the connection
/// of the write of the batch that ends at step 49 where `cut` says;
/// nothing may be lost or doubled.
fn cut_at_step_49(cut: Cut) -> Result<()> {
    let memory = cut == Cut::TransactionCommit;
    let (db, proxy, svc) = through_a_proxy()?;
    let sim = running_sim(&svc, 2)?;
    let mut rec = svc.recorder_with(&sim.id, no_timer())?;
    for step in 0..100 {
        for agent in 0..2 {
            rec.agent_state(step, agent, 1.0, &json!({"s": step}))?;
        }
        if memory && step == 49 {
            let bytes = 0.5f32.to_le_bytes().to_vec();
            rec.memory(49, 0, NewAgentMemory::new("float32", vec![1], bytes))?;
        }
        rec.end_step(step)?;
        if step == 49 {
            match cut {
                Cut::BatchPrepare => proxy.cut_next_batch_prepare(),
                Cut::BatchCommit | Cut::TransactionCommit => proxy.cut_next_commit(),
            }
            assert_eq!(rec.flush()?, Some(49));
            assert_eq!(
                proxy.commits_cut(),
                1,
                "the proxy did not cut the connection"
            );
            assert!(rec.transient_retries() >= 1);
        }
    }
    rec.close()?;
    assert_eq!(
        table_counts(&db, sim.sim_key)?.0,
        200,
        "rows lost or doubled"
    );
    assert_eq!(svc.memories(&sim.id, 0)?.len(), usize::from(memory));
    assert_eq!(service(&db).simulation(&sim.id)?.committed_step, Some(99));
    Ok(())
}

/// Batches that queued up behind a blocked writer are written together
/// (PostgreSQL, one statement); when that write fails for good, they are
/// written again one by one, so that a bad row in the second holds back
/// only its own batch: the first commits and the watermark covers it.
#[test]
fn batches_written_together_fail_one_by_one() -> Result<()> {
    use simdb::diesel::connection::{Connection, SimpleConnection};
    let db = TestDatabase::postgres()?;
    let svc = service(&db);
    let sim = running_sim(&svc, 1)?;
    // Two rows a step: batches of one 64-step chunk, room for three in flight.
    let options = no_timer().batch_rows(128).max_pending_batches(3);
    let mut rec = svc.recorder_with(&sim.id, options)?;
    let record = |rec: &mut Recorder, steps: std::ops::Range<i64>| -> Result<()> {
        for step in steps {
            rec.agent_state(step, 0, 1.0, &json!({}))?;
            rec.step(step, &json!({}))?;
            rec.end_step(step)?;
        }
        Ok(())
    };
    record(&mut rec, 0..64)?;
    assert_eq!(rec.flush()?, Some(63));
    // Another session holds the run's row, so the writer's next write
    // waits; it also stores step 200's step row, which the recorder will
    // collide with.
    let mut blocker = simdb::diesel::PgConnection::establish(db.url())
        .map_err(|e| Error::invalid_for_tests(e.to_string()))?;
    blocker.batch_execute(&format!(
        "SET search_path TO simdb; BEGIN; \
         SELECT 1 FROM simdb_simulations WHERE sim_key = {0} FOR UPDATE; \
         INSERT INTO simdb_simulation_steps (sim_key, step, recorded_at, metrics) \
         VALUES ({0}, 200, now(), '{{}}')",
        sim.sim_key
    ))?;
    // Steps 64..=127 go to the writer (when full), which blocks...
    record(&mut rec, 64..127)?;
    rec.agent_state(127, 0, 1.0, &json!({}))?;
    rec.step(127, &json!({}))?;
    std::thread::sleep(Duration::from_millis(300));
    rec.end_step(127)?;
    // ...while steps 128..=191 and 192..=255 queue up behind it.
    record(&mut rec, 128..256)?;
    blocker.batch_execute("COMMIT")?;
    let err = rec.flush().err().ok_or(Error::RecorderClosed)?;
    assert!(
        matches!(source_of(&err), Some(Error::Duplicate { .. })),
        "{err}"
    );
    // Steps 128..=191 committed (a batch goes as soon as it is full, before
    // its last step is ended: the watermark is 190); written together with
    // the bad batch and not split, it would be 126.
    assert_eq!(
        rec.committed_step(),
        Some(190),
        "the batch before the bad one was held back too"
    );
    let steps: Vec<i64> = svc
        .agent_states(&sim.id, 0, ..)?
        .iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(steps, (0..192).collect::<Vec<_>>());
    Ok(())
}

/// Dropping a recorder whose database stopped answering returns within
/// `drop_timeout` (plus the time to notice), instead of blocking for minutes.
#[test]
fn drop_waits_at_most_drop_timeout() -> Result<()> {
    let (_db, proxy, svc) = through_a_proxy()?;
    let sim = running_sim(&svc, 1)?;
    let mut rec =
        svc.recorder_with(&sim.id, no_timer().drop_timeout(Duration::from_millis(500)))?;
    rec.agent_state(0, 0, 1.0, &json!({}))?;
    proxy.black_hole(true);
    let started = Instant::now();
    drop(rec);
    let waited = started.elapsed();
    proxy.black_hole(false);
    assert!(
        waited < Duration::from_secs(10),
        "drop blocked for {waited:?}"
    );
    Ok(())
}

/// A server that accepts the connection and never answers: the open fails
/// after the connect timeout instead of hanging.
#[test]
fn connect_timeout_on_a_silent_server() -> Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::invalid_for_tests(e.to_string()))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::invalid_for_tests(e.to_string()))?
        .port();
    // Accepts, then says nothing for longer than the test runs.
    std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(60));
        drop(conn);
    });
    let started = Instant::now();
    let opened = Database::builder(format!("postgres://u:secret@127.0.0.1:{port}/db"))
        .connect_timeout(Duration::from_secs(1))
        .open();
    let waited = started.elapsed();
    match opened {
        Err(Error::Connection { url, message }) => {
            assert!(!url.contains("secret") && !message.contains("secret"));
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(waited < Duration::from_secs(15), "open hung for {waited:?}");
    Ok(())
}

/// `sqlite::memory:` stays the same database when a thread panics while
/// holding its connection inside a transaction.
#[test]
fn memory_database_survives_a_panicking_holder() -> Result<()> {
    let db = Database::open("sqlite::memory:")?;
    let svc = SimulationService::new(db.clone());
    let sim = running_sim(&svc, 1)?;
    let for_thread = db.clone();
    let crashed = std::thread::spawn(move || -> Result<()> {
        simdb::with_connection!(for_thread.writer()?, |c| {
            use simdb::diesel::connection::Connection;
            let _ = c.transaction::<(), simdb::diesel::result::Error, _>(|_| {
                panic!("simulated crash inside a transaction")
            });
        });
        Ok(())
    })
    .join();
    assert!(crashed.is_err(), "the thread was meant to panic");
    assert_eq!(
        svc.simulation(&sim.id)?.id,
        sim.id,
        "the in-memory database was replaced"
    );
    svc.record_agent_state(&sim.id, 0, 0, 1.0, &json!({}))?;
    assert_eq!(svc.agent_states(&sim.id, 0, ..)?.len(), 1);
    Ok(())
}

trait InvalidForTests {
    fn invalid_for_tests(message: String) -> Error;
}
impl InvalidForTests for Error {
    fn invalid_for_tests(message: String) -> Error {
        Error::InvalidInput {
            field: "test setup",
            reason: message,
        }
    }
}
