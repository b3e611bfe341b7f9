//! The batched recorder: exact read-back, backpressure, writer errors,
//! duplicates, and concurrent recorders — on both backends.

mod common;
use common::*;

use simdb::{NewAgentMemory, RecorderOptions};

use common::table_counts as count;

backend_tests! {
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
        assert!(matches!(rec.agent_state(0, 0, 1.0, &json!({"k": "\u{0}"})), Err(Error::InvalidInput { .. })));
        assert!(matches!(rec.step(0, &json!([1, 2])), Err(Error::InvalidInput { .. })));
        assert!(matches!(rec.metric(0, "", 1.0), Err(Error::InvalidInput { .. })));
        assert!(matches!(rec.metric(0, "m", f64::INFINITY), Err(Error::InvalidInput { .. })));
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
