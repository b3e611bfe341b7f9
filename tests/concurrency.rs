//! Many hands on one run: conflicting lifecycle calls released together
//! from two `Database`s, concurrent resumes, and one-row writes against a
//! live recorder. Of two conflicting calls exactly one wins; the loser gets
//! a typed error; the events of a run always form a chain of allowed
//! transitions.

mod common;
use common::*;

use std::sync::Barrier;
use std::time::Duration;

use simdb::RecorderOptions;
use SimulationStatus::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Complete,
    Fail,
    Cancel,
    Interrupt,
    RecoverStale,
    Resume,
    Delete,
}

const OPS: [Op; 7] = [
    Op::Complete,
    Op::Fail,
    Op::Cancel,
    Op::Interrupt,
    Op::RecoverStale,
    Op::Resume,
    Op::Delete,
];

/// Runs `op`; `Ok(true)` if it changed the run's status.
fn apply(svc: &SimulationService, id: &SimulationId, op: Op) -> Result<bool> {
    match op {
        Op::Complete => svc
            .complete_simulation(id, json!({"mean": 1}))
            .map(|_| true),
        Op::Fail => svc.fail_simulation(id, "boom").map(|_| true),
        Op::Cancel => svc.cancel_simulation(id).map(|_| true),
        Op::Interrupt => svc.interrupt_simulation(id, "gone").map(|_| true),
        Op::RecoverStale => svc.recover_stale(Duration::ZERO).map(|v| v.contains(id)),
        Op::Resume => svc.resume_with(id, Duration::ZERO).map(|_| true),
        Op::Delete => svc.delete_simulation(id).map(|_| false),
    }
}

/// The status events of a run form a chain of allowed transitions from
/// `pending` that ends at its status; returns how many there are.
fn assert_chain(svc: &SimulationService, sim: &Simulation) -> Result<usize> {
    let events = svc.events(&sim.id)?;
    let mut at: Option<SimulationStatus> = None;
    let mut count = 0;
    for e in events.iter().filter(|e| e.to_status.is_some()) {
        let to = e.to_status.ok_or(Error::RecorderClosed)?;
        match at {
            None => assert_eq!((e.from_status, to), (None, Pending), "{events:?}"),
            Some(from) => {
                assert_eq!(e.from_status, Some(from), "chain broken: {events:?}");
                assert!(from.can_become(to), "{from} -> {to}: {events:?}");
            }
        }
        at = Some(to);
        count += 1;
    }
    assert_eq!(
        at,
        Some(sim.status),
        "the last event is the status: {events:?}"
    );
    assert_eq!(sim.ended_at.is_some(), sim.status.is_final(), "{sim:?}");
    assert_eq!(
        sim.results_summary.is_some(),
        sim.status == Completed,
        "{sim:?}"
    );
    Ok(count)
}

/// A loser's error: typed, never a raw database error.
fn assert_typed_loss(op: Op, e: &Error, delete_in_pair: bool) {
    let typed = matches!(e, Error::InvalidTransition { .. })
        || (delete_in_pair
            && matches!(
                e,
                Error::NotFound {
                    entity: "simulation",
                    ..
                }
            ));
    assert!(typed, "{op:?} lost with an untyped error: {e:?}");
}

fn pair_rounds(db: &TestDatabase, a: Op, b: Op, rounds: usize) -> Result<()> {
    let svc = service(db);
    let other = SimulationService::new(Database::open(db.url())?);
    let start = if a == Op::Resume || b == Op::Resume {
        Interrupted
    } else {
        Running
    };
    for _ in 0..rounds {
        let sim = running_sim(&svc, 2)?;
        if start == Interrupted {
            svc.interrupt_simulation(&sim.id, "crash")?;
        }
        let before = assert_chain(&svc, &svc.simulation(&sim.id)?)?;
        let barrier = Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                barrier.wait();
                apply(&svc, &sim.id, a)
            });
            let tb = s.spawn(|| {
                barrier.wait();
                apply(&other, &sim.id, b)
            });
            (ta.join(), tb.join())
        });
        let (ra, rb) = (
            ra.map_err(|_| Error::RecorderClosed)?,
            rb.map_err(|_| Error::RecorderClosed)?,
        );
        let delete_in_pair = a == Op::Delete || b == Op::Delete;
        let mut changes = 0;
        for (op, r) in [(a, &ra), (b, &rb)] {
            match r {
                Ok(true) => changes += 1,
                Ok(false) => {}
                Err(e) => assert_typed_loss(op, e, delete_in_pair),
            }
        }
        match svc.simulation(&sim.id) {
            Ok(now) => {
                let deleted = (a == Op::Delete && ra.is_ok()) || (b == Op::Delete && rb.is_ok());
                assert!(!deleted, "a delete won but the run is there");
                let after = assert_chain(&svc, &now)?;
                assert_eq!(after - before, changes, "{a:?} vs {b:?}: {ra:?} {rb:?}");
                let resumed = svc
                    .events(&sim.id)?
                    .iter()
                    .filter(|e| e.kind == "resumed")
                    .count();
                let resumes_won = [(a, &ra), (b, &rb)]
                    .iter()
                    .filter(|(op, r)| *op == Op::Resume && r.is_ok())
                    .count();
                assert_eq!(resumed, resumes_won);
            }
            Err(Error::NotFound { .. }) => {
                assert!(
                    (a == Op::Delete && ra.is_ok()) || (b == Op::Delete && rb.is_ok()),
                    "gone without a delete winning"
                );
                assert_eq!(table_counts(db, sim.sim_key)?, (0, 0, 0, 0, 0));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

backend_tests! {
    /// Issue 24: sixteen writers, each its own `Database` (its own pool and
    /// connections, as sixteen processes would have), each recording its own
    /// run, intern the same 50 new metric names at the same moment, each
    /// starting at another name. Every value lands in its own run, and
    /// every name gets exactly one id.
    fn sixteen_writers_intern_the_same_new_names_at_once(db) {
        use simdb::diesel::prelude::*;
        use simdb::schema::metric_names;
        const WRITERS: usize = 16;
        const NAMES: usize = 50;
        const STEPS: i64 = 6;
        const AGENTS: i32 = 2;
        let svc = service(db);
        let sims: Vec<Simulation> = (0..WRITERS).map(|_| running_sim(&svc, AGENTS)).collect::<Result<_>>()?;
        let services: Vec<SimulationService> = (0..WRITERS)
            .map(|_| Database::open(db.url()).map(SimulationService::new))
            .collect::<Result<_>>()?;
        let barrier = Barrier::new(WRITERS);
        let value = |w: usize, name: usize, step: i64, agent: i32| (w * 10_000 + name * 100) as f64 + step as f64 + f64::from(agent) / 10.0;
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = services
                .iter()
                .zip(&sims)
                .enumerate()
                .map(|(w, (svc, sim))| {
                    let barrier = &barrier;
                    s.spawn(move || -> Result<()> {
                        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(40))?;
                        barrier.wait();
                        for step in 0..STEPS {
                            for k in 0..NAMES {
                                let name = (k + w * 3) % NAMES;
                                for agent in 0..AGENTS {
                                    rec.agent_metric(step, agent, format!("shared-{name}").as_str(), value(w, name, step, agent))?;
                                }
                                rec.metric(step, format!("shared-{name}").as_str(), value(w, name, step, 0))?;
                            }
                            rec.end_step(step)?;
                        }
                        rec.close()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(Err(Error::RecorderClosed))).collect()
        });
        for r in results {
            r?;
        }
        // One id per name.
        let names: Vec<(i32, String)> = simdb::with_connection!(db.database().connection()?, |c| metric_names::table
            .filter(metric_names::name.like("shared-%"))
            .select((metric_names::metric_id, metric_names::name))
            .load(c)?);
        assert_eq!(names.len(), NAMES, "{names:?}");
        let distinct: std::collections::BTreeSet<&String> = names.iter().map(|n| &n.1).collect();
        assert_eq!(distinct.len(), NAMES);
        // Every value, in its own run, under its name.
        let a = svc.analytics();
        for (w, sim) in sims.iter().enumerate() {
            let (_, values) = chunked_counts(db, Some(sim.sim_key))?;
            assert_eq!(values, (NAMES as i64) * STEPS * i64::from(AGENTS), "writer {w}");
            for name in [0, 17, NAMES - 1] {
                for agent in 0..AGENTS {
                    let series = a.agent_series(&sim.id, agent, format!("shared-{name}").as_str(), ..)?;
                    let got: Vec<(i64, f64)> = series;
                    let want: Vec<(i64, f64)> = (0..STEPS).map(|step| (step, value(w, name, step, agent))).collect();
                    assert_eq!(got, want, "writer {w}, shared-{name}, agent {agent}");
                }
            }
            assert_eq!(table_counts(db, sim.sim_key)?.2, (NAMES as i64) * STEPS, "writer {w}'s step metrics");
        }
        Ok(())
    }

    fn conflicting_lifecycle_calls_have_one_winner(db) {
        for (i, &a) in OPS.iter().enumerate() {
            for &b in &OPS[i..] {
                pair_rounds(db, a, b, 6)?;
            }
        }
        Ok(())
    }

    fn concurrent_resumes_have_one_typed_winner(db) {
        let svc = service(db);
        let others: Vec<SimulationService> = (0..4)
            .map(|_| Database::open(db.url()).map(SimulationService::new))
            .collect::<Result<_>>()?;
        let agents = 3;
        for _ in 0..4 {
            let sim = running_sim(&svc, agents)?;
            let options = RecorderOptions::default().batch_rows(8).lease_timeout(Duration::from_secs(1));
            let mut rec = svc.recorder_with(&sim.id, options)?;
            for step in 0..20 {
                for agent in 0..agents {
                    rec.agent_state(step, agent, 0.5, &state(step, agent))?;
                }
                rec.end_step(step)?;
            }
            rec.flush()?;
            rec.crash_for_tests();
            std::thread::sleep(Duration::from_millis(1100));
            assert_eq!(svc.recover_stale(Duration::from_secs(1))?, vec![sim.id.clone()]);
            let barrier = Barrier::new(others.len());
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = others
                    .iter()
                    .map(|o| {
                        let (barrier, id) = (&barrier, &sim.id);
                        s.spawn(move || {
                            barrier.wait();
                            o.resume_with(id, Duration::from_secs(1))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join()).collect()
            });
            let mut winners = 0;
            for r in results {
                match r.map_err(|_| Error::RecorderClosed)? {
                    Ok(point) => {
                        winners += 1;
                        assert_eq!(point.last_complete_step, Some(19));
                    }
                    Err(Error::InvalidTransition { from: Running, .. } | Error::LeaseHeld { .. }) => {}
                    Err(e) => panic!("a losing resume got an untyped error: {e:?}"),
                }
            }
            assert_eq!(winners, 1);
            // The winner records normally.
            let mut rec = svc.recorder_with(&sim.id, options)?;
            for step in 20..40 {
                for agent in 0..agents {
                    rec.agent_state(step, agent, 0.5, &state(step, agent))?;
                }
                rec.end_step(step)?;
            }
            rec.close()?;
            assert_eq!(table_counts(db, sim.sim_key)?.0, 40 * agents as i64);
            let now = svc.simulation(&sim.id)?;
            assert_eq!(now.committed_step, Some(39));
            let resumed = svc.events(&sim.id)?.iter().filter(|e| e.kind == "resumed").count();
            assert_eq!(resumed, 1);
            assert_chain(&svc, &now)?;
            svc.complete_simulation(&sim.id, json!({}))?;
        }
        Ok(())
    }

    fn one_row_writes_refuse_a_run_a_live_recorder_holds(db) {
        let svc = service(db);
        let other = SimulationService::new(Database::open(db.url())?);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..10 {
            rec.agent_state(step, 0, 1.0, &state(step, 0))?;
            rec.end_step(step)?;
        }
        assert_eq!(rec.flush()?, Some(9));
        for result in [
            other.end_step(&sim.id, 50),
            other.record_agent_state(&sim.id, 10, 1, 1.0, &json!({})),
            other.record_step(&sim.id, 10, &json!({})),
            other.record_metric(&sim.id, 10, None, "m", 1.0),
        ] {
            assert!(matches!(result, Err(Error::LeaseHeld { .. })), "{result:?}");
        }
        assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(9));
        for step in 10..12 {
            rec.agent_state(step, 0, 1.0, &state(step, 0))?;
            rec.end_step(step)?;
        }
        rec.close()?;
        // Released: one-row writes are accepted again, and the watermark
        // never moves down.
        other.end_step(&sim.id, 3)?;
        assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(11));
        other.record_agent_state(&sim.id, 12, 1, 1.0, &json!({}))?;
        other.end_step(&sim.id, 12)?;
        assert_eq!(svc.simulation(&sim.id)?.committed_step, Some(12));
        Ok(())
    }

    fn transition_times_come_from_the_database_clock(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let started = svc.simulation(&sim.id)?;
        // heartbeat_at is the database's time at the start; started_at is
        // the same instant.
        assert_eq!(started.started_at, started.heartbeat_at);
        let done = svc.complete_simulation(&sim.id, json!({}))?;
        let last = svc.events(&sim.id)?.pop().ok_or(Error::RecorderClosed)?;
        assert_eq!(done.ended_at, Some(last.occurred_at));
        Ok(())
    }
}
