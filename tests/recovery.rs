//! Crash recovery in-process: stale runs become interrupted, resume finds the
//! last complete step, drops a half-written step, and a resumed run ends up
//! identical to an uninterrupted one.

mod common;
use common::*;

use std::time::Duration;

use simdb::{NewAgentMemory, RecorderOptions};

/// A deterministic toy simulation: agent state evolves from the previous one.
fn run(
    svc: &SimulationService,
    sim: &SimulationId,
    from: i64,
    to: i64,
    energy: &mut [f64],
) -> Result<()> {
    let mut rec = svc.recorder_with(sim, RecorderOptions::default().batch_rows(64))?;
    for step in from..to {
        for (agent, e) in energy.iter_mut().enumerate() {
            *e = (*e * 1.01 + agent as f64).rem_euclid(1000.0);
            rec.agent_state(step, agent as i32, *e / 10.0, &json!({"energy": *e}))?;
            if step % 10 == 9 {
                rec.memory(
                    step,
                    agent as i32,
                    NewAgentMemory::from_f32(vec![1], &[*e as f32]),
                )?;
            }
        }
        rec.step(step, &json!({"step": step}))?;
    }
    rec.close()
}

fn dump(
    svc: &SimulationService,
    sim: &SimulationId,
    agents: i32,
) -> Result<Vec<(i64, i32, f64, Value)>> {
    let mut out = Vec::new();
    for agent in 0..agents {
        for s in svc.agent_states(sim, agent, ..)? {
            out.push((s.step, agent, s.reward, s.state));
        }
    }
    Ok(out)
}

backend_tests! {
    fn stale_runs_are_interrupted(db) {
        let svc = service(db);
        let stale = running_sim(&svc, 1)?;
        let fresh = running_sim(&svc, 1)?;
        let done = running_sim(&svc, 1)?;
        svc.complete_simulation(&done.id, json!({}))?;
        std::thread::sleep(Duration::from_millis(1200));
        svc.heartbeat(&fresh.id)?;
        let recovered = svc.recover_stale(Duration::from_secs(1))?;
        assert_eq!(recovered, vec![stale.id.clone()]);
        assert_eq!(svc.simulation(&stale.id)?.status, SimulationStatus::Interrupted);
        assert_eq!(svc.simulation(&fresh.id)?.status, SimulationStatus::Running);
        assert_eq!(svc.simulation(&done.id)?.status, SimulationStatus::Completed);
        let events = svc.events(&stale.id)?;
        let last = events.last().ok_or(Error::RecorderClosed)?;
        assert_eq!(last.to_status, Some(SimulationStatus::Interrupted));
        assert!(last.message.as_deref().is_some_and(|m| m.contains("no heartbeat")));
        // Idempotent.
        assert!(svc.recover_stale(Duration::from_secs(1))?.is_empty());
        Ok(())
    }

    fn resume_equals_uninterrupted_run(db) {
        let svc = service(db);
        let agents = 4;
        // Reference: one uninterrupted run.
        let reference = running_sim(&svc, agents)?;
        let mut energy = vec![1.0; agents as usize];
        run(&svc, &reference.id, 0, 100, &mut energy)?;

        // Interrupted run: 0..57, then a half-written step 57 (2 of 4 agents).
        let sim = running_sim(&svc, agents)?;
        let mut energy = vec![1.0; agents as usize];
        run(&svc, &sim.id, 0, 57, &mut energy)?;
        svc.record_agent_state(&sim.id, 57, 0, 9.0, &json!({"partial": true}))?;
        svc.record_agent_state(&sim.id, 57, 1, 9.0, &json!({"partial": true}))?;
        svc.record_memory(&sim.id, 57, 0, &NewAgentMemory::from_f32(vec![1], &[0.0]))?;
        assert!(matches!(svc.resume(&sim.id), Err(Error::InvalidTransition { .. })), "running runs are not resumed");
        svc.interrupt_simulation(&sim.id, "crash")?;

        let point = svc.resume(&sim.id)?;
        assert_eq!(point.last_complete_step, Some(56));
        assert_eq!(point.next_step(), 57);
        assert_eq!(point.discarded_rows, 3);
        assert_eq!(point.simulation.status, SimulationStatus::Running);
        assert_eq!(point.states.len(), agents as usize);
        assert_eq!(point.memories.len(), agents as usize);
        assert!(point.memories.iter().all(|m| m.step == 49));
        // Restore from the stored states, not from memory of the old process.
        let mut restored: Vec<f64> = point.states.iter().map(|s| s.state["energy"].as_f64().unwrap_or(f64::NAN)).collect();
        assert_eq!(restored, energy);
        run(&svc, &sim.id, point.next_step(), 100, &mut restored)?;
        assert_eq!(dump(&svc, &sim.id, agents)?, dump(&svc, &reference.id, agents)?);
        assert_eq!(svc.steps(&sim.id, ..)?.len(), 100);
        assert_eq!(svc.memories(&sim.id, 2)?.len(), 10);
        assert!(svc.events(&sim.id)?.iter().any(|e| e.kind == "resumed"));
        Ok(())
    }

    fn resume_with_nothing_complete(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        svc.record_agent_state(&sim.id, 0, 0, 1.0, &json!({}))?;
        svc.interrupt_simulation(&sim.id, "crash")?;
        let point = svc.resume(&sim.id)?;
        assert_eq!((point.last_complete_step, point.next_step(), point.discarded_rows), (None, 0, 1));
        assert!(point.states.is_empty());
        Ok(())
    }
}
