//! Status lifecycle: every valid and invalid transition, events, heartbeat,
//! listing with filters, deletion cascades, and typed errors for bad input.

mod common;
use common::*;

use simdb::NewAgentMemory;
use SimulationStatus::*;

/// Puts a fresh simulation into `status` through valid transitions.
fn sim_in(svc: &SimulationService, status: SimulationStatus) -> Result<Simulation> {
    let sim = svc.create_simulation(NewSimulation::new(json!({})))?;
    let id = sim.id.clone();
    match status {
        Pending => {}
        Running => {
            svc.start_simulation(&id)?;
        }
        Completed => {
            svc.start_simulation(&id)?;
            svc.complete_simulation(&id, json!({"ok": true}))?;
        }
        Failed => {
            svc.start_simulation(&id)?;
            svc.fail_simulation(&id, "boom")?;
        }
        Cancelled => {
            svc.cancel_simulation(&id)?;
        }
        Interrupted => {
            svc.start_simulation(&id)?;
            svc.interrupt_simulation(&id, "no heartbeat")?;
        }
    }
    svc.simulation(&id)
}

fn apply(svc: &SimulationService, id: &SimulationId, to: SimulationStatus) -> Result<Simulation> {
    match to {
        Running => svc.start_simulation(id),
        Completed => svc.complete_simulation(id, json!({"mean_reward": 0.7})),
        Failed => svc.fail_simulation(id, "out of memory"),
        Cancelled => svc.cancel_simulation(id),
        Interrupted => svc.interrupt_simulation(id, "stale"),
        Pending => unreachable!("no call moves a simulation back to pending"),
    }
}

backend_tests! {
    fn every_transition(db) {
        let svc = service(db);
        // No call returns a simulation to pending.
        let targets = [Running, Completed, Failed, Cancelled, Interrupted];
        for from in SimulationStatus::ALL {
            for to in targets {
                let sim = sim_in(&svc, from)?;
                assert_eq!(sim.status, from);
                let events_before = svc.events(&sim.id)?.len();
                let result = apply(&svc, &sim.id, to);
                if from.can_become(to) {
                    let after = result?;
                    assert_eq!(after.status, to, "{from} -> {to}");
                    let events = svc.events(&sim.id)?;
                    assert_eq!(events.len(), events_before + 1);
                    let last = events.last().ok_or(Error::RecorderClosed)?;
                    assert_eq!((last.kind.as_str(), last.from_status, last.to_status), ("status", Some(from), Some(to)));
                    match to {
                        Completed => {
                            assert_eq!(after.results_summary, Some(json!({"mean_reward": 0.7})));
                            assert!(after.ended_at.is_some());
                        }
                        Failed => {
                            assert_eq!(after.error_message.as_deref(), Some("out of memory"));
                            assert!(after.ended_at.is_some());
                        }
                        Running => assert!(after.started_at.is_some() && after.heartbeat_at.is_some()),
                        _ => {}
                    }
                } else {
                    match result {
                        Err(Error::InvalidTransition { from: f, to: t, .. }) => assert_eq!((f, t), (from, to)),
                        other => panic!("{from} -> {to} should be refused, got {other:?}"),
                    }
                    // Nothing changed.
                    assert_eq!(svc.simulation(&sim.id)?, sim);
                    assert_eq!(svc.events(&sim.id)?.len(), events_before);
                }
            }
        }
        Ok(())
    }

    fn heartbeat_only_when_running(db) {
        let svc = service(db);
        let sim = sim_in(&svc, Running)?;
        let at = svc.heartbeat(&sim.id)?;
        assert_eq!(svc.simulation(&sim.id)?.heartbeat_at.map(|t| t.timestamp_micros()), Some(at.timestamp_micros()));
        let done = sim_in(&svc, Completed)?;
        assert!(matches!(svc.heartbeat(&done.id), Err(Error::InvalidInput { .. })));
        assert!(matches!(svc.heartbeat(&SimulationId::new("nope")?), Err(Error::NotFound { .. })));
        Ok(())
    }

    fn list_and_filter(db) {
        let svc = service(db);
        let e1 = svc.create_experiment(NewExperiment::new("one"))?;
        let e2 = svc.create_experiment(NewExperiment::new("two"))?;
        let a = svc.create_simulation(NewSimulation::new(json!({"x": 1})).experiment(&e1.id).tag("gpu"))?;
        let b = svc.create_simulation(NewSimulation::new(json!({"x": 2})).experiment(&e1.id))?;
        let c = svc.create_simulation(NewSimulation::new(json!({"x": 3})).experiment(&e2.id).tag("gpu").tag("long"))?;
        svc.start_simulation(&b.id)?;
        let ids = |sims: Vec<Simulation>| sims.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(svc.list_simulations(&SimulationFilter::new())?), vec![c.id.clone(), b.id.clone(), a.id.clone()]);
        assert_eq!(ids(svc.list_simulations(&SimulationFilter::new().experiment(&e1.id))?), vec![b.id.clone(), a.id.clone()]);
        assert_eq!(ids(svc.list_simulations(&SimulationFilter::new().status(Running))?), vec![b.id.clone()]);
        assert_eq!(ids(svc.list_simulations(&SimulationFilter::new().tag("gpu"))?), vec![c.id.clone(), a.id.clone()]);
        assert_eq!(ids(svc.list_simulations(&SimulationFilter::new().tag("gpu").experiment(&e1.id))?), vec![a.id.clone()]);
        assert_eq!(ids(svc.list_simulations(&SimulationFilter::new().limit(1))?), vec![c.id.clone()]);
        assert!(svc.list_simulations(&SimulationFilter::new().tag("' OR 1=1 --"))?.is_empty());
        Ok(())
    }

    fn delete_cascades(db) {
        let svc = service(db);
        let keep = running_sim(&svc, 2)?;
        let gone = running_sim(&svc, 3)?;
        for sim in [&keep, &gone] {
            for step in 0..5 {
                for agent in 0..2 {
                    svc.record_agent_state(&sim.id, step, agent, 1.0, &state(step, agent))?;
                    svc.record_metric(&sim.id, step, Some(AgentIndex(agent)), "energy", 1.0)?;
                }
                svc.record_step(&sim.id, step, &json!({"s": step}))?;
                svc.record_metric(&sim.id, step, None, "food", 2.0)?;
            }
            svc.record_memory(&sim.id, 4, 1, &NewAgentMemory::from_f32(vec![1], &[1.0]))?;
        }
        svc.delete_simulation(&gone.id)?;
        assert!(matches!(svc.simulation(&gone.id), Err(Error::NotFound { .. })));
        assert!(matches!(svc.delete_simulation(&gone.id), Err(Error::NotFound { .. })));

        use simdb::diesel::prelude::*;
        use simdb::schema::*;
        // Agent states and metric values, counted inside their chunks.
        let (states, metrics) = chunked_counts(db, None)?;
        let counts: Vec<i64> = simdb::with_connection!(db.database().connection()?, |c| {
            vec![
                agents::table.count().get_result(c)?,
                states,
                simulation_steps::table.count().get_result(c)?,
                step_metrics::table.count().get_result(c)?,
                metrics,
                agent_memories::table.count().get_result(c)?,
                events::table.filter(events::sim_key.eq(gone.sim_key)).count().get_result(c)?,
                simulation_tags::table.filter(simulation_tags::sim_key.eq(gone.sim_key)).count().get_result(c)?,
            ]
        });
        assert_eq!(counts, vec![2, 10, 5, 5, 10, 1, 0, 0]);
        assert_eq!(svc.agent_states(&keep.id, 1, ..)?.len(), 5);
        Ok(())
    }

    fn bad_input_is_typed_and_harmless(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("taken").id(ExperimentId::new("e1")?))?;
        let sim = running_sim(&svc, 2)?;
        svc.record_agent_state(&sim.id, 0, 0, 1.0, &json!({"a": 1}))?;
        let before = (svc.list_experiments()?, svc.simulation(&sim.id)?, svc.agent_states(&sim.id, 0, ..)?, svc.agents(&sim.id)?);

        let long = "x".repeat(65);
        for bad in ["", " padded", "tab\there", "nul\0", long.as_str()] {
            assert!(matches!(SimulationId::new(bad), Err(Error::InvalidInput { .. })), "{bad:?}");
            assert!(matches!(ExperimentId::new(bad), Err(Error::InvalidInput { .. })), "{bad:?}");
        }
        assert!(SimulationId::new("x".repeat(64)).is_ok());
        assert!(SimulationId::new("ü".repeat(64)).is_ok());

        let dup = svc.create_experiment(NewExperiment::new("taken"));
        assert!(matches!(dup, Err(Error::Duplicate { .. })), "{dup:?}");
        let dup = svc.create_experiment(NewExperiment::new("other").id(exp.id.clone()));
        assert!(matches!(dup, Err(Error::Duplicate { .. })), "{dup:?}");
        assert!(matches!(svc.create_experiment(NewExperiment::new("")), Err(Error::InvalidInput { .. })));
        assert!(matches!(svc.create_experiment(NewExperiment::new("m").metadata(json!({"k": "a\u{0}b"}))), Err(Error::InvalidInput { .. })));
        for params in [json!([1, 2]), json!(null), json!("x"), json!(3)] {
            assert!(matches!(svc.create_simulation(NewSimulation::new(params)), Err(Error::InvalidInput { field: "parameters", .. })));
        }
        let dup_sim = svc.create_simulation(NewSimulation::new(json!({})).id(sim.id.clone()));
        assert!(matches!(dup_sim, Err(Error::Duplicate { .. })), "{dup_sim:?}");
        let unknown_exp = svc.create_simulation(NewSimulation::new(json!({})).experiment(&ExperimentId::new("nope")?));
        assert!(matches!(unknown_exp, Err(Error::NotFound { entity: "experiment", .. })), "{unknown_exp:?}");
        assert!(matches!(svc.create_simulation(NewSimulation::new(json!({})).tag("")), Err(Error::InvalidInput { .. })));

        assert!(matches!(svc.register_agents(&sim.id, &[NewAgent::new(-1)]), Err(Error::InvalidInput { .. })));
        assert!(matches!(svc.register_agents(&sim.id, &[NewAgent::new(0)]), Err(Error::Duplicate { .. })));
        // All or nothing: agent 5 is not kept when agent 1 collides.
        assert!(matches!(svc.register_agents(&sim.id, &[NewAgent::new(5), NewAgent::new(1)]), Err(Error::Duplicate { .. })));
        assert!(matches!(svc.register_agents(&sim.id, &[NewAgent::new(7), NewAgent::new(7)]), Err(Error::Duplicate { .. })));

        let id = &sim.id;
        let st = json!({"a": 2});
        assert!(matches!(svc.record_agent_state(id, -1, 0, 1.0, &st), Err(Error::InvalidInput { field: "step", .. })));
        assert!(matches!(svc.record_agent_state(id, 1, -3, 1.0, &st), Err(Error::InvalidInput { .. })));
        for r in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(svc.record_agent_state(id, 1, 0, r, &st), Err(Error::InvalidInput { field: "reward", .. })));
        }
        assert!(matches!(svc.record_agent_state(id, 1, 9, 1.0, &st), Err(Error::NotFound { entity: "agent", .. })));
        assert!(matches!(svc.record_agent_state(id, 0, 0, 5.0, &st), Err(Error::Duplicate { .. })));
        assert!(matches!(svc.record_agent_state(id, 1, 0, 5.0, &json!({"s": "\u{0}"})), Err(Error::InvalidInput { .. })));
        assert!(matches!(svc.record_agent_state(&SimulationId::new("ghost")?, 1, 0, 1.0, &st), Err(Error::NotFound { entity: "simulation", .. })));
        assert!(matches!(svc.record_step(id, 0, &json!([1])), Err(Error::InvalidInput { .. })));
        assert!(matches!(svc.record_metric(id, 0, None, "", 1.0), Err(Error::InvalidInput { .. })));
        assert!(matches!(svc.record_metric(id, 0, None, "m", f64::NAN), Err(Error::InvalidInput { .. })));
        assert!(matches!(svc.record_memory(id, 0, 0, &NewAgentMemory::new("f32", vec![2], vec![0; 7])), Err(Error::InvalidInput { .. })));
        let pending = svc.create_simulation(NewSimulation::new(json!({})))?;
        assert!(matches!(svc.record_step(&pending.id, 0, &json!({})), Err(Error::InvalidInput { field: "simulation status", .. })));

        let after = (svc.list_experiments()?, svc.simulation(&sim.id)?, svc.agent_states(&sim.id, 0, ..)?, svc.agents(&sim.id)?);
        assert_eq!(before, after);
        Ok(())
    }

    fn injection_strings_are_data(db) {
        let svc = service(db);
        let evil = "x'); DROP TABLE simulations; --";
        let exp = svc.create_experiment(NewExperiment::new(evil).description(evil).external_ref(evil))?;
        assert_eq!(svc.experiment_by_name(evil)?.id, exp.id);
        let sim = svc.create_simulation(NewSimulation::new(json!({evil: evil})).name(evil).tag(evil).experiment(&exp.id))?;
        assert_eq!(svc.list_simulations(&SimulationFilter::new().tag(evil))?.len(), 1);
        assert_eq!(svc.simulation(&sim.id)?.parameters, json!({evil: evil}));
        Ok(())
    }
}
