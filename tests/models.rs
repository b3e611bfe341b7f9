//! Round-trips of every model through both backends: unicode, large and
//! nested JSON, extreme integers and floats, timestamps.

mod common;
use common::*;

use chrono::{TimeZone, Utc};
use simdb::NewAgentMemory;

fn nested(depth: usize) -> Value {
    let mut v = json!({"leaf": [1, 2.5, "x", null, true]});
    for i in 0..depth {
        v = json!({ format!("level{i}"): v, "n": i });
    }
    v
}

backend_tests! {
    fn experiment_round_trip(db) {
        let svc = service(db);
        let meta = json!({"owner": "Zoë 🚀", "grid": [[1, 2], [3, 4]], "big": i64::MAX, "small": i64::MIN, "pi": std::f64::consts::PI, "tiny": 5e-324, "huge": 1e300, "neg": -2.5e-300});
        let new = NewExperiment::new("sweep — ünïcödé 実験")
            .id(ExperimentId::new("exp-1")?)
            .description("line one\nline two\ttabbed")
            .metadata(meta.clone())
            .external_ref("mlflow://runs/42");
        let created = svc.create_experiment(new.clone())?;
        assert_eq!(created.id.as_str(), "exp-1");
        assert_eq!(created.name, new.name);
        assert_eq!(created.description, new.description);
        assert_eq!(created.metadata, meta);
        assert_eq!(created.external_ref.as_deref(), Some("mlflow://runs/42"));
        // Microsecond precision survives on both backends.
        assert_eq!(created.created_at.timestamp_micros(), new.created_at.timestamp_micros());
        assert_eq!(svc.experiment(&created.id)?, created);
        assert_eq!(svc.experiment_by_name(&new.name)?, created);
        assert_eq!(svc.list_experiments()?, vec![created]);
        Ok(())
    }

    fn simulation_round_trip(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("e"))?;
        let params = json!({"agents": 64, "seed": 7, "lr": 3e-4, "nested": nested(40), "text": "🙂 \u{0007}\n\t control characters are fine in JSON", "list": (0..2000).collect::<Vec<_>>()});
        let sim = svc.create_simulation(
            NewSimulation::new(params.clone())
                .id(SimulationId::new("sim-ü-1")?)
                .experiment(&exp.id)
                .name("first run")
                .data_uri("s3://bucket/run1")
                .tag("baseline")
                .tag("gpu")
                .tag("baseline"),
        )?;
        assert_eq!(sim.parameters, params);
        assert_eq!(sim.status, SimulationStatus::Pending);
        assert_eq!(sim.experiment_id.as_ref(), Some(&exp.id));
        assert_eq!(sim.name.as_deref(), Some("first run"));
        assert_eq!(sim.data_uri.as_deref(), Some("s3://bucket/run1"));
        assert_eq!(svc.simulation_tags(&sim.id)?, vec!["baseline", "gpu"]);
        assert_eq!(svc.simulation(&sim.id)?, sim);
        Ok(())
    }

    fn agent_state_and_step_round_trip(db) {
        let svc = service(db);
        let sim = svc.create_simulation(NewSimulation::new(json!({})))?;
        let agents = svc.register_agents(&sim.id, &[
            NewAgent::new(0).name("Ålice").kind("lstm").policy("ppo", 3).checkpoint("file:///ckpt/3").metadata(json!({"layers": [64, 64]})),
            NewAgent::new(i32::MAX).kind("random"),
        ])?;
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0].name.as_deref(), Some("Ålice"));
        assert_eq!(agents[0].policy_name.as_deref(), Some("ppo"));
        assert_eq!(agents[0].policy_version, Some(3));
        assert_eq!(agents[0].metadata, json!({"layers": [64, 64]}));
        assert_eq!(agents[1].agent_index, AgentIndex(i32::MAX));
        assert_eq!(svc.agents(&sim.id)?, agents);
        svc.start_simulation(&sim.id)?;

        let rewards = [0.0, -0.0, f64::MAX, f64::MIN, f64::MIN_POSITIVE, 1e-300, -123.456];
        for (step, reward) in rewards.iter().enumerate() {
            let st = json!({"step": step, "deep": nested(10), "s": "ünï"});
            svc.record_agent_state(&sim.id, step as i64, 0, *reward, &st)?;
        }
        svc.record_agent_state(&sim.id, i64::MAX, i32::MAX, 1.0, &json!(null))?;
        let back = svc.agent_states(&sim.id, 0, ..)?;
        assert_eq!(back.len(), rewards.len());
        for (row, reward) in back.iter().zip(rewards) {
            // -0.0 is stored as 0.0 on both backends (SQLite cannot keep the sign).
            let expected = if reward == 0.0 { 0.0f64 } else { reward };
            assert_eq!(row.reward.to_bits(), expected.to_bits(), "reward {reward} changed");
            assert_eq!(row.state["step"], json!(row.step));
            assert_eq!(row.state["deep"], nested(10));
        }
        assert_eq!(svc.agent_states(&sim.id, 0, 2..4)?.len(), 2);
        assert_eq!(svc.agent_states(&sim.id, 0, 2..=4)?.len(), 3);
        let last = svc.states_at_step(&sim.id, i64::MAX)?;
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].agent_index, AgentIndex(i32::MAX));
        assert_eq!(last[0].state, Value::Null);

        svc.record_step(&sim.id, 0, &json!({"food": 10, "ünï": [1.5]}))?;
        let steps = svc.steps(&sim.id, ..)?;
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].metrics, json!({"food": 10, "ünï": [1.5]}));
        Ok(())
    }

    fn metric_and_memory_round_trip(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        svc.record_metric(&sim.id, 0, None, "food left", 12.5)?;
        svc.record_metric(&sim.id, 0, Some(AgentIndex(1)), "energy", -1e308)?;
        let values = [0.5f32, -1.25, f32::MAX, f32::MIN_POSITIVE, 0.0, 3.0];
        let mem = NewAgentMemory::from_f32(vec![2, 3], &values);
        svc.record_memory(&sim.id, 7, 1, &mem)?;
        svc.record_memory(&sim.id, 9, 1, &NewAgentMemory::new("bf16", vec![1], vec![1, 2]))?;
        let all = svc.memories(&sim.id, 1)?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].step, 7);
        assert_eq!(all[0].shape, json!([2, 3]));
        assert_eq!(all[0].to_f32(), Some(values.to_vec()));
        let latest = svc.latest_memory(&sim.id, 1)?.ok_or_else(|| Error::NotFound { entity: "memory", id: "1".into() })?;
        assert_eq!(latest.step, 9);
        assert_eq!(latest.dtype, "bf16");
        assert_eq!(latest.data, vec![1, 2]);
        assert!(svc.latest_memory(&sim.id, 0)?.is_none());

        // Metrics are in their own tables, readable with plain Diesel.
        use simdb::diesel::prelude::*;
        use simdb::schema::{agent_metric_chunks, metric_names, step_metrics};
        let rows: Vec<(String, f64)> = simdb::with_connection!(db.database().connection()?, |c| {
            step_metrics::table
                .inner_join(metric_names::table)
                .select((metric_names::name, step_metrics::value))
                .load(c)?
        });
        assert_eq!(rows, vec![("food left".to_string(), 12.5)]);
        // Agent metrics are in chunks, decoded by their model.
        let agent_rows: Vec<(i32, f64)> = simdb::with_connection!(db.database().connection()?, |c| {
            let mut rows = Vec::new();
            for chunk in agent_metric_chunks::table
                .select(simdb::models::AgentMetricChunk::as_select())
                .load(c)?
            {
                rows.extend(chunk.points()?.into_iter().map(|(_, v)| (chunk.agent_index, v)));
            }
            rows
        });
        assert_eq!(agent_rows, vec![(1, -1e308)]);
        Ok(())
    }

    fn a_host_encodes_metric_chunks_as_simdb_stores_them(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let mut rec = svc.recorder(&sim.id)?;
        // A walk, integers, decimals, a constant and a gap: every codec.
        let mut walk = 10.0f64;
        for step in 0..150i64 {
            walk += ((step * 7919) % 13) as f64 / 13.0 - 0.5;
            rec.agent_metric(step, 0, "walk", walk)?;
            rec.agent_metric(step, 1, "count", (step % 9) as f64)?;
            rec.agent_metric(step, 2, "price", (step % 50) as f64 / 100.0)?;
            if step % 3 != 0 {
                rec.agent_metric(step, 0, "flat", 2.5)?;
            }
        }
        rec.close()?;
        use simdb::diesel::prelude::*;
        use simdb::models::AgentMetricChunk;
        use simdb::schema::agent_metric_chunks;
        let stored: Vec<AgentMetricChunk> = simdb::with_connection!(db.database().connection()?, |c| {
            agent_metric_chunks::table
                .filter(agent_metric_chunks::sim_key.eq(sim.sim_key))
                .select(AgentMetricChunk::as_select())
                .load(c)?
        });
        assert_eq!(stored.len(), 4 * 3);
        for chunk in &stored {
            let again = AgentMetricChunk::encode(chunk.sim_key, chunk.metric_id, chunk.agent_index, &chunk.points()?)?;
            assert_eq!(&again, chunk);
        }
        // What no chunk can hold is refused.
        for bad in [
            vec![],
            vec![(5, 1.0), (5, 2.0)],
            vec![(6, 1.0), (5, 2.0)],
            vec![(63, 1.0), (64, 2.0)],
            vec![(-1, 1.0)],
            vec![(1, f64::NAN)],
        ] {
            assert!(matches!(AgentMetricChunk::encode(1, 1, 0, &bad), Err(Error::InvalidInput { .. })), "{bad:?}");
        }
        Ok(())
    }

    fn a_host_encodes_state_chunks_as_simdb_stores_them(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let mut rec = svc.recorder(&sim.id)?;
        let extremes = [0.1, -0.0, 1e-7, 1.7976931348623157e308, -5e-324, 12.5, 1.0, 1.0];
        let mut written: Vec<(i64, i32, String)> = Vec::new();
        for step in 0..150i64 {
            // Agent 0: one shape, numbers of every form (and some repeats).
            let x = extremes[(step % 8) as usize] * (1.0 + step as f64 / 7.0);
            let a = json!({"x": x, "n": if step % 5 == 0 { i64::MIN } else { step }, "u": u64::MAX, "tag": format!("a{}", step % 3)});
            // Agent 1: a changing key, so no one shape.
            let b = json!({format!("k{}", step % 2): "v", "hp": 100 - step % 4});
            // Agent 2: one shape without numbers, every other step.
            let c = json!({"alive": true, "name": "e\u{e9}\"\\"});
            for (agent, state) in [(0, a), (1, b), (2, c)] {
                if agent == 2 && step % 2 == 1 {
                    continue;
                }
                rec.agent_state(step, agent, step as f64 / 8.0, &state)?;
                written.push((step, agent, serde_json::to_string(&state)?));
            }
        }
        rec.close()?;
        use simdb::diesel::prelude::*;
        use simdb::models::AgentStateChunk;
        use simdb::schema::agent_state_chunks;
        let stored: Vec<AgentStateChunk> = simdb::with_connection!(db.database().connection()?, |c| {
            agent_state_chunks::table
                .filter(agent_state_chunks::sim_key.eq(sim.sim_key))
                .select(AgentStateChunk::as_select())
                .load(c)?
        });
        assert_eq!(stored.len(), 3 * 3);
        let mut read = Vec::new();
        for chunk in &stored {
            let rows = chunk.rows()?;
            let texts: Vec<String> = rows.iter().map(|r| r.state.to_string()).collect();
            let again = AgentStateChunk::encode(
                chunk.sim_key,
                chunk.agent_index,
                &rows.iter().zip(&texts).map(|(r, t)| (r.step, r.reward, t.as_str())).collect::<Vec<_>>(),
            )?;
            assert_eq!(&again, chunk);
            read.extend(rows.iter().zip(texts).map(|(r, t)| (r.step, r.agent_index.0, t)));
        }
        // Every text as written, whichever codec holds it (both are used).
        read.sort();
        written.sort();
        assert_eq!(read, written);
        let codecs: std::collections::BTreeSet<u8> = stored.iter().map(|c| c.states[0]).collect();
        assert_eq!(codecs.len(), 2, "{codecs:?}");
        // What no chunk can hold is refused.
        for bad in [
            vec![],
            vec![(5, 1.0, "1"), (5, 2.0, "2")],
            vec![(6, 1.0, "1"), (5, 2.0, "2")],
            vec![(63, 1.0, "1"), (64, 2.0, "2")],
            vec![(-1, 1.0, "1")],
            vec![(1, f64::INFINITY, "1")],
            vec![(1, 1.0, "\"\\u0000\"")],
        ] {
            assert!(matches!(AgentStateChunk::encode(1, 0, &bad), Err(Error::InvalidInput { .. })), "{bad:?}");
        }
        Ok(())
    }

    fn timestamps_are_utc(db) {
        let svc = service(db);
        let mut new = NewExperiment::new("t");
        new.created_at = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).single().ok_or(Error::RecorderClosed)?
            + chrono::Duration::microseconds(123_456);
        let exp = svc.create_experiment(new.clone())?;
        assert_eq!(exp.created_at, new.created_at);
        Ok(())
    }
}

/// Handles are shared across threads (a compile-time check).
#[test]
fn handles_are_clone_send_sync() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Database>();
    shareable::<SimulationService>();
    shareable::<simdb::Analytics>();
    fn sendable<T: Send + 'static>() {}
    sendable::<simdb::Recorder>();
}
