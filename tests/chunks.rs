//! The chunked layout of agent states (64 aligned steps of one agent per
//! row): gaps and late joiners, chunk boundaries under every read, batches
//! that end inside a chunk, duplicates refused across chunks already
//! stored, and damaged chunks reported as typed errors. Every test on both
//! backends.

mod common;
use common::*;

use simdb::diesel::prelude::*;
use simdb::models::AgentStateChunk;
use simdb::schema::agent_state_chunks as chunks;
use simdb::RecorderOptions;

/// Every chunk of simulation `sim_key`, by agent and chunk.
fn stored_chunks(db: &TestDatabase, sim_key: i32) -> Result<Vec<AgentStateChunk>> {
    Ok(simdb::with_connection!(db.database().connection()?, |c| {
        chunks::table
            .filter(chunks::sim_key.eq(sim_key))
            .order((chunks::agent_index, chunks::chunk))
            .select(AgentStateChunk::as_select())
            .load(c)?
    }))
}

/// Which steps agent `agent` records: agent 0 every step, agent 1 the odd
/// ones, agent 2 from step 70 on (it joins late), agent 3 every 64th.
fn records(agent: i32, step: i64) -> bool {
    match agent {
        0 => true,
        1 => step % 2 == 1,
        2 => step >= 70,
        _ => step % 64 == 0,
    }
}

fn reward(agent: i32, step: i64) -> f64 {
    step as f64 * 0.5 - agent as f64
}

backend_tests! {
    fn gaps_and_late_joiners_read_back_exactly(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 4)?;
        // Tiny batches: most end inside a chunk, whose tail the next merges.
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(7))?;
        for step in 0..300 {
            for agent in 0..4 {
                if records(agent, step) {
                    rec.agent_state(step, agent, reward(agent, step), &state(step, agent))?;
                }
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        for agent in 0..4 {
            let want: Vec<i64> = (0..300).filter(|&s| records(agent, s)).collect();
            let rows = svc.agent_states(&sim.id, agent, ..)?;
            assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), want, "agent {agent}");
            for r in &rows {
                assert_eq!((r.reward, &r.state), (reward(agent, r.step), &state(r.step, agent)));
            }
            // A range across chunk boundaries, cut on both sides.
            let part: Vec<i64> = svc.agent_states(&sim.id, agent, 63..=129)?.iter().map(|r| r.step).collect();
            assert_eq!(part, want.iter().copied().filter(|s| (63..=129).contains(s)).collect::<Vec<_>>());
        }
        // Agent 2 has no state before it joined.
        assert!(svc.agent_states(&sim.id, 2, ..=69)?.is_empty());
        // All agents at one step: only those that recorded it.
        for step in [0, 63, 64, 69, 70, 127, 128, 299] {
            let at: Vec<i32> = svc.states_at_step(&sim.id, step)?.iter().map(|s| s.agent_index.0).collect();
            let want: Vec<i32> = (0..4).filter(|&a| records(a, step)).collect();
            assert_eq!(at, want, "step {step}");
        }
        // The reward series reads the same steps, without the states.
        let series = svc.analytics().agent_series(&sim.id, 1, "reward", 60..=70)?;
        assert_eq!(series.iter().map(|p| p.0).collect::<Vec<_>>(), [61, 63, 65, 67, 69]);
        // One row per agent and chunk holding it, the mask saying which steps.
        let stored = stored_chunks(db, sim.sim_key)?;
        let of = |agent: i32| stored.iter().filter(move |c| c.agent_index == agent);
        assert_eq!(of(0).count(), 5);
        assert_eq!(of(2).map(|c| c.chunk).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(of(3).map(|c| c.len()).collect::<Vec<_>>(), [1, 1, 1, 1, 1]);
        let total: usize = stored.iter().map(AgentStateChunk::len).sum();
        assert_eq!(total as i64, (0..4).map(|a| (0..300).filter(|&s| records(a, s)).count() as i64).sum::<i64>());
        for chunk in &stored {
            assert_eq!(chunk.rows()?.len(), chunk.len());
            assert_eq!(chunk.rewards()?.iter().map(|p| p.0).collect::<Vec<_>>(), chunk.steps().collect::<Vec<_>>());
        }
        assert_rollups_match_rows(&svc, &sim.id)?;
        // A resume restores each agent's latest state, across the chunks
        // where it recorded nothing (agent 3's last is at 256).
        svc.interrupt_simulation(&sim.id, "test")?;
        let point = svc.resume(&sim.id)?;
        assert_eq!((point.last_complete_step, point.discarded_rows), (Some(299), 0));
        let latest: Vec<(i32, i64)> = point.states.iter().map(|s| (s.agent_index.0, s.step)).collect();
        assert_eq!(latest, [(0, 299), (1, 299), (2, 299), (3, 256)]);
        Ok(())
    }

    /// A read of one step decodes only that step's state from each chunk
    /// (states of one shape) or picks it from the whole decompressed chunk
    /// (zstd): either way, every step of every agent reads exactly what
    /// the agent's whole series holds, and a resume's latest states too.
    fn one_step_reads_match_whole_chunk_reads(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 4)?;
        // Agents 0 and 1: states of one shape; 2 and 3: keys that change
        // from step to step (zstd). Gaps as in `records`.
        let shaped = |step: i64, agent: i32| state(step, agent);
        let varied = |step: i64, agent: i32| match step % 3 {
            0 => json!({"a": agent, "x": step, "s": "é~x".repeat(agent as usize)}),
            _ => json!({"a": agent, "yy": [step, true]}),
        };
        let of = |step: i64, agent: i32| if agent < 2 { shaped(step, agent) } else { varied(step, agent) };
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(50))?;
        for step in 0..200 {
            for agent in 0..4 {
                if records(agent, step) {
                    rec.agent_state(step, agent, reward(agent, step), &of(step, agent))?;
                }
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        let codecs: std::collections::BTreeSet<u8> = stored_chunks(db, sim.sim_key)?.iter().map(|c| c.states[0]).collect();
        // zstd (1) and a template: of texts (2), or of captured floats (3).
        assert!(codecs.contains(&1) && (codecs.contains(&2) || codecs.contains(&3)), "both kinds of codec in use: {codecs:?}");
        let series: Vec<Vec<simdb::models::AgentState>> =
            (0..4).map(|a| svc.agent_states(&sim.id, a, ..)).collect::<Result<_>>()?;
        for step in 0..200 {
            let want: Vec<_> = series.iter().flatten().filter(|r| r.step == step).cloned().collect();
            assert_eq!(svc.states_at_step(&sim.id, step)?, want, "step {step}");
            for r in &want {
                assert_eq!((r.reward, &r.state), (reward(r.agent_index.0, step), &of(step, r.agent_index.0)));
            }
        }
        svc.interrupt_simulation(&sim.id, "test")?;
        let point = svc.resume(&sim.id)?;
        let last: Vec<_> = series.iter().filter_map(|s| s.last().cloned()).collect();
        assert_eq!(point.states, last);
        Ok(())
    }

    /// The recorder captures a state's floats as numbers and a chunk of
    /// one shape keeps the long ones as 8 bytes (codec 3): what is read
    /// back and exported is what serde_json wrote for the state (`-0.0`,
    /// `1e-300`, `f64::MAX`, an `f32` as its own shortest text, integers
    /// as they are); the codec's text, byte for byte, is checked in
    /// `chunk/shapes.rs`.
    fn captured_floats_read_back_as_serde_json_writes_them(db) {
        #[derive(serde::Serialize)]
        struct S {
            x: f64,
            short: f64,
            neg_zero: f64,
            tiny: f64,
            max: f64,
            single: f32,
            n: i64,
        }
        let of = |step: i64, agent: i32| S {
            x: (step as f64 + 0.5) / 3.0 + f64::from(agent),
            short: step as f64 / 4.0,
            neg_zero: -0.0,
            tiny: 1e-300 * step as f64,
            max: f64::MAX,
            single: 0.12,
            n: step,
        };
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..130 {
            for agent in 0..2 {
                rec.agent_state(step, agent, 1.0, &of(step, agent))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        let codecs: std::collections::BTreeSet<u8> = stored_chunks(db, sim.sim_key)?.iter().map(|c| c.states[0]).collect();
        assert_eq!(codecs, std::collections::BTreeSet::from([3]));
        let mut out = Vec::new();
        svc.export_jsonl(&sim.id, &mut out)?;
        let exported = String::from_utf8_lossy(&out);
        // Export writes each state as a JSON value (keys sorted): its text
        // is that of the value serde_json's text of the state parses to.
        for step in 0..130 {
            for agent in 0..2 {
                let text = serde_json::to_string(&of(step, agent)).unwrap_or_default();
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let line = format!("{{\"state\":[{agent},{step},1.0,{value}]}}");
                assert!(exported.lines().any(|l| l == line), "{line}");
            }
        }
        for agent in 0..2 {
            let series = svc.agent_states(&sim.id, agent, ..)?;
            assert_eq!(series.len(), 130);
            for r in &series {
                let text = serde_json::to_string(&of(r.step, agent)).unwrap_or_default();
                assert_eq!(r.state, serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default());
            }
        }
        Ok(())
    }

    fn a_step_stored_twice_is_refused_whatever_the_chunk(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        // One-row writes into one chunk, out of order, and into another.
        for step in [5, 3, 70] {
            svc.record_agent_state(&sim.id, step, 0, 1.0, &json!({"s": step}))?;
        }
        for step in [3, 5, 70] {
            assert!(matches!(
                svc.record_agent_state(&sim.id, step, 0, 2.0, &json!({})),
                Err(Error::Duplicate { .. })
            ), "step {step}");
        }
        // A recorder's batch colliding with a stored step inside a chunk:
        // the batch is refused whole and nothing stored changes.
        let before = svc.agent_states(&sim.id, 0, ..)?;
        let mut rec = svc.recorder(&sim.id)?;
        rec.agent_state(4, 0, 1.0, &json!({}))?;
        rec.agent_state(5, 0, 1.0, &json!({}))?;
        rec.agent_state(5, 1, 1.0, &json!({}))?;
        let err = rec.flush().err().ok_or(Error::RecorderClosed)?;
        assert!(format!("{err}").contains("agent 0 step 5"), "{err}");
        assert_eq!(rec.discard_unpersisted(), 3);
        rec.close()?;
        assert_eq!(svc.agent_states(&sim.id, 0, ..)?, before);
        assert!(svc.agent_states(&sim.id, 1, ..)?.is_empty());
        Ok(())
    }

    fn a_damaged_chunk_is_a_typed_error(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        for step in 0..10 {
            svc.record_agent_state(&sim.id, step, 0, 1.0, &state(step, 0))?;
            svc.record_agent_state(&sim.id, step, 1, 1.0, &state(step, 1))?;
        }
        simdb::with_connection!(db.database().writer()?, |c| {
            simdb::diesel::update(chunks::table.filter(chunks::sim_key.eq(sim.sim_key).and(chunks::agent_index.eq(1))))
                .set(chunks::states.eq(vec![1u8, 200, 0, 0, 0, 9, 9, 9]))
                .execute(c)?;
        });
        assert!(matches!(svc.agent_states(&sim.id, 1, ..), Err(Error::CorruptChunk { .. })));
        assert!(matches!(svc.states_at_step(&sim.id, 3), Err(Error::CorruptChunk { .. })));
        // The other agent's chunk is untouched and reads as before.
        assert_eq!(svc.agent_states(&sim.id, 0, ..)?.len(), 10);
        // Rewards are stored apart: still readable.
        assert_eq!(svc.analytics().agent_series(&sim.id, 1, "reward", ..)?.len(), 10);
        Ok(())
    }
}
