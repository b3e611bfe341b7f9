//! Rollups at ingest (issue 14): the per-step aggregates simdb keeps while
//! it writes equal what the rows themselves give — whatever the batch
//! boundaries (a step split across batches, timer commits), through every
//! write path (Recorder, one-row calls, import), after a crash and resume
//! cuts rows, per agent kind and for agent metrics. Every test on both
//! backends.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::time::Duration;

use simdb::{OnConflict, RecorderOptions};

/// Rewards that differ per agent and step (and are not all representable
/// sums in any order: 0.1-steps).
fn reward(step: i64, agent: i32) -> f64 {
    ((step * 7 + i64::from(agent) * 3) % 11) as f64 * 0.1 - 0.3
}

backend_tests! {
    fn steps_split_across_batches_merge(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 5)?;
        // 3 rows per batch: almost every step is split across two or three.
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(3))?;
        for step in 0..40 {
            for agent in 0..5 {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
                rec.agent_metric(step, agent, "energy", reward(step, agent) * 10.0)?;
            }
        }
        rec.close()?;
        assert_rollups_match_rows(&svc, &sim.id)?;
        // Agent metrics: per step, 5 values of 10x the reward.
        let energy = svc.analytics().step_aggregates(&sim.id, "energy", 0)?;
        let rewards = svc.analytics().step_aggregates(&sim.id, "reward", 0)?;
        assert_eq!(energy.len(), 40);
        for (e, r) in energy.iter().zip(&rewards) {
            assert_eq!(e.count, 5);
            assert!((e.sum - 10.0 * r.sum).abs() < 1e-9 && (e.max - 10.0 * r.max).abs() < 1e-9);
        }
        Ok(())
    }

    fn kinds_are_rolled_up_apart(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 6)?; // kinds a, b, a, b, ...
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(4))?;
        for step in 0..25 {
            for agent in 0..6 {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
            }
        }
        rec.close()?;
        let by_kind = svc.analytics().step_aggregates_by_kind(&sim.id, "reward", 0)?;
        assert_eq!(by_kind.keys().cloned().collect::<Vec<_>>(), ["a", "b"]);
        for (kind, buckets) in &by_kind {
            let first = if kind == "a" { 0 } else { 1 };
            for b in buckets {
                let values: Vec<f64> = (first..6).step_by(2).map(|a| reward(b.first_step, a)).collect();
                assert_eq!(b.count, 3);
                assert_eq!(b.min, values.iter().cloned().fold(f64::INFINITY, f64::min));
                assert!((b.sum - values.iter().sum::<f64>()).abs() < 1e-9);
            }
        }
        Ok(())
    }

    fn one_row_calls_and_timer_commits_roll_up(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        for agent in 0..3 {
            svc.record_agent_state(&sim.id, 0, agent, reward(0, agent), &json!({}))?;
        }
        svc.record_metric(&sim.id, 0, Some(AgentIndex(1)), "energy", 2.5)?;
        // The recorder continues the run, committing on a short timer in
        // the middle of steps.
        let options = RecorderOptions::default().flush_interval(Duration::from_millis(5));
        let mut rec = svc.recorder_with(&sim.id, options)?;
        for step in 1..15 {
            for agent in 0..3 {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        rec.close()?;
        assert_rollups_match_rows(&svc, &sim.id)?;
        let energy = svc.analytics().step_aggregates(&sim.id, "energy", 0)?;
        assert_eq!((energy.len(), energy[0].count, energy[0].sum), (1, 1, 2.5));
        // Per-agent totals kept at ingest equal the rows'.
        let summary = svc.analytics().summary(&sim.id)?;
        for a in &summary.per_agent {
            let rows = svc.agent_states(&sim.id, a.agent, ..)?;
            assert_eq!(a.rows, rows.len() as i64);
            assert!((a.total_reward - rows.iter().map(|s| s.reward).sum::<f64>()).abs() < 1e-9);
        }
        Ok(())
    }

    fn resume_cuts_rollups_with_the_rows(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 4)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(6))?;
        for step in 0..10 {
            for agent in 0..4 {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
            }
            rec.end_step(step)?;
        }
        // Step 10 half-written and committed, its end never marked.
        for agent in 0..2 {
            rec.agent_state(10, agent, reward(10, agent), &json!({}))?;
        }
        rec.flush()?;
        rec.crash_for_tests();
        svc.interrupt_simulation(&sim.id, "crash")?;
        let point = svc.resume_with(&sim.id, Duration::ZERO)?;
        assert_eq!((point.last_complete_step, point.discarded_rows), (Some(9), 2));
        assert_rollups_match_rows(&svc, &sim.id)?;
        let summary = svc.analytics().summary(&sim.id)?;
        assert_eq!(summary.per_agent.iter().map(|a| a.rows).sum::<i64>(), 40);
        // Recording goes on from step 10 and the sums stay exact.
        let mut rec = svc.recorder(&sim.id)?;
        for step in 10..12 {
            for agent in 0..4 {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
            }
        }
        rec.close()?;
        assert_rollups_match_rows(&svc, &sim.id)?;
        Ok(())
    }

    fn import_rolls_up_what_it_writes(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..30 {
            for agent in 0..3 {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
            }
        }
        rec.close()?;
        let dir = std::env::temp_dir().join(format!("simdb-rollups-{}-{}", std::process::id(), sim.sim_key));
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
        let path = dir.join("run.jsonl");
        let file = std::fs::File::create(&path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
        svc.export_jsonl(&sim.id, std::io::BufWriter::new(file))?;
        let before: BTreeMap<i64, (i64, f64, f64, f64)> = raw_reward_by_step(&svc, &sim.id)?;
        svc.delete_simulation(&sim.id)?;
        svc.import_jsonl(&path, OnConflict::Error)?;
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(raw_reward_by_step(&svc, &sim.id)?, before);
        assert_rollups_match_rows(&svc, &sim.id)?;
        Ok(())
    }

    fn a_steps_only_kind_is_named_not_repeated(db) {
        // Agents 0..4 of kind "a"; agent 4 of kind "b" joins at step 10 and
        // agent 5 (no kind) at step 20, registered while the recorder is
        // live; 3 rows per batch, so steps are split across batches and a
        // step first stored with one kind gets a second one later.
        let svc = service(db);
        let sim = svc.create_simulation(NewSimulation::new(json!({})))?;
        svc.register_agents(&sim.id, &(0..4).map(|i| NewAgent::new(i).kind("a")).collect::<Vec<_>>())?;
        svc.start_simulation(&sim.id)?;
        let kind = |agent: i32| match agent {
            0..=3 => "a",
            4 => "b",
            _ => "(none)",
        };
        let agents_at = |step: i64| match step {
            0..=9 => 4,
            10..=19 => 5,
            _ => 6,
        };
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(3))?;
        for step in 0..30 {
            if step == 10 {
                svc.register_agents(&sim.id, &[NewAgent::new(4).kind("b")])?;
            }
            if step == 20 {
                svc.register_agents(&sim.id, &[NewAgent::new(5)])?;
            }
            for agent in 0..agents_at(step) {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
                rec.agent_metric(step, agent, "energy", reward(step, agent) * 10.0)?;
            }
        }
        rec.close()?;
        assert_rollups_match_rows(&svc, &sim.id)?;
        // Per kind and step, what the rows give.
        for (field, scale) in [("reward", 1.0), ("energy", 10.0)] {
            let by_kind = svc.analytics().step_aggregates_by_kind(&sim.id, field, 0)?;
            assert_eq!(by_kind.keys().cloned().collect::<Vec<_>>(), ["(none)", "a", "b"], "{field}");
            for (k, buckets) in &by_kind {
                let steps: Vec<i64> = buckets.iter().map(|b| b.first_step).collect();
                let first = match k.as_str() { "a" => 0, "b" => 10, _ => 20 };
                assert_eq!(steps, (first..30).collect::<Vec<_>>(), "{field} {k}");
                for b in buckets {
                    let values: Vec<f64> = (0..agents_at(b.first_step))
                        .filter(|&a| kind(a) == k)
                        .map(|a| reward(b.first_step, a) * scale)
                        .collect();
                    assert_eq!(b.count, values.len() as i64, "{field} {k} {}", b.first_step);
                    assert_eq!(b.max, values.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
                    assert!((b.sum - values.iter().sum::<f64>()).abs() < 1e-9);
                }
            }
        }
        // The README's SQL for the mean reward per kind and step agrees.
        let by_kind = svc.analytics().step_aggregates_by_kind(&sim.id, "reward", 0)?;
        // (Sorted here: how the server's collation orders `(none)` varies.)
        let mut sql_rows = readme_kind_means(&svc, &sim.id)?;
        sql_rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let api_rows: Vec<(String, i64, f64)> = by_kind
            .iter()
            .flat_map(|(k, buckets)| buckets.iter().map(move |b| (k.clone(), b.first_step, b.mean)))
            .collect();
        assert_eq!(sql_rows.len(), api_rows.len());
        for (s, a) in sql_rows.iter().zip(&api_rows) {
            assert_eq!((&s.0, s.1), (&a.0, a.1));
            assert!((s.2 - a.2).abs() < 1e-12, "{s:?} {a:?}");
        }
        // Stored: a step with one kind has one row per field, naming it;
        // a step with more has a row per kind besides.
        let rows = rollup_rows(&svc, &sim.id)?;
        for step in 0..30 {
            let at: Vec<_> = rows.iter().filter(|r| r.2 == step && r.0 == 0).collect();
            match step {
                0..=9 => assert_eq!(at, [&(0, String::new(), step, Some("a".to_string()))]),
                10..=19 => assert_eq!(at.iter().map(|r| (r.1.as_str(), r.3.clone())).collect::<Vec<_>>(), [("", None), ("a", None), ("b", None)]),
                _ => assert_eq!(at.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["", "(none)", "a", "b"]),
            }
        }
        assert_eq!(rows.len(), 2 * (10 + 10 * 3 + 10 * 4));
        Ok(())
    }

    fn a_run_of_one_kind_stores_one_rollup_per_step(db) {
        // Agents without a kind, recorded in the default batches (on
        // PostgreSQL the one-statement write).
        let svc = service(db);
        let sim = svc.create_simulation(NewSimulation::new(json!({})))?;
        svc.register_agents(&sim.id, &(0..5).map(NewAgent::new).collect::<Vec<_>>())?;
        svc.start_simulation(&sim.id)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..200 {
            for agent in 0..5 {
                rec.agent_state(step, agent, reward(step, agent), &json!({}))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        assert_rollups_match_rows(&svc, &sim.id)?;
        let rows = rollup_rows(&svc, &sim.id)?;
        assert_eq!(rows.len(), 200);
        assert!(rows.iter().all(|r| r.1.is_empty() && r.3.as_deref() == Some("(none)")), "{:?}", &rows[..3]);
        let by_kind = svc.analytics().step_aggregates_by_kind(&sim.id, "reward", 10)?;
        let all = svc.analytics().step_aggregates(&sim.id, "reward", 10)?;
        assert_eq!(by_kind.keys().cloned().collect::<Vec<_>>(), ["(none)"]);
        assert_eq!(by_kind["(none)"], all);
        Ok(())
    }
}

/// One stored step rollup: (field, kind, step, sole kind).
type StoredRollup = (i32, String, i64, Option<String>);

/// A run's step rollups as stored, in key order.
fn rollup_rows(svc: &SimulationService, id: &SimulationId) -> Result<Vec<StoredRollup>> {
    use simdb::diesel::prelude::*;
    use simdb::schema::step_rollups as r;
    let sim_key = svc.simulation(id)?.sim_key;
    Ok(simdb::with_connection!(svc.database().connection()?, |c| {
        r::table
            .filter(r::sim_key.eq(sim_key))
            .select((r::field_id, r::kind, r::step, r::sole_kind))
            .order((r::field_id, r::step, r::kind))
            .load(c)?
    }))
}

/// The README's mean reward per agent kind and step, as SQL.
fn readme_kind_means(
    svc: &SimulationService,
    id: &SimulationId,
) -> Result<Vec<(String, i64, f64)>> {
    use simdb::diesel::prelude::*;
    use simdb::diesel::sql_types::{BigInt, Double, Text};
    #[derive(QueryableByName)]
    struct Mean {
        #[diesel(sql_type = Text)]
        agent_kind: String,
        #[diesel(sql_type = BigInt)]
        step: i64,
        #[diesel(sql_type = Double)]
        mean_reward: f64,
    }
    let sim_key = svc.simulation(id)?.sim_key;
    let sql = format!(
        "SELECT COALESCE(sole_kind, kind) AS agent_kind, step, total / n AS mean_reward \
           FROM simdb_step_rollups \
          WHERE sim_key = {sim_key} AND field_id = 0 AND (kind <> '' OR sole_kind IS NOT NULL) \
          ORDER BY agent_kind, step"
    );
    let rows: Vec<Mean> = simdb::with_connection!(svc.database().connection()?, |c| {
        simdb::diesel::sql_query(&sql).load(c)?
    });
    Ok(rows
        .into_iter()
        .map(|m| (m.agent_kind, m.step, m.mean_reward))
        .collect())
}
