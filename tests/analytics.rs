//! Analytics against a plain computation in Rust over the recorded rows:
//! summaries, series, step aggregates (empty, single agent, gaps, negative
//! and extreme values), comparisons, leaderboards, parameter search, progress.

mod common;
use common::*;

use std::collections::BTreeMap;

use simdb::{Cursor, Field, GroupBy, ParameterQuery, RecorderOptions, StepAggregate};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Rewards with gaps in steps, negatives and large magnitudes.
fn reward_of(step: i64, agent: i32) -> f64 {
    let base = ((step * 37 + agent as i64 * 11) % 101) as f64 - 50.0;
    match (step + agent as i64) % 13 {
        0 => base * 1e12,
        1 => -base * 1e-9,
        _ => base / 3.0,
    }
}

/// Steps 0..200 except multiples of 7 and 50..60 (gaps); agent 3 only on even steps.
fn record(svc: &SimulationService, sim: &Simulation, agents: i32) -> Result<Vec<(i64, i32, f64)>> {
    let mut rows = Vec::new();
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(333))?;
    for step in (0..200).filter(|s| s % 7 != 0 && !(50..60).contains(s)) {
        for agent in 0..agents {
            if agent == 3 && step % 2 == 1 {
                continue;
            }
            let r = reward_of(step, agent);
            rec.agent_state(step, agent, r, &json!({"r": r}))?;
            rec.agent_metric(step, agent, "energy", r * 2.0)?;
            rows.push((step, agent, r));
        }
        rec.step(step, &json!({"step": step}))?;
        rec.metric(step, "food", step as f64 * 0.5)?;
    }
    rec.close()?;
    Ok(rows)
}

fn expected_aggregates(rows: &[(i64, i32, f64)], buckets: i64) -> Vec<StepAggregate> {
    let lo = rows.iter().map(|r| r.0).min().unwrap_or(0);
    let hi = rows.iter().map(|r| r.0).max().unwrap_or(0);
    let span = hi - lo + 1;
    let width = if buckets == 0 {
        1
    } else {
        (span + buckets - 1) / buckets
    };
    let mut groups: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for &(step, _, v) in rows {
        groups
            .entry((step - lo) / width)
            .or_default()
            .push((step, v));
    }
    groups
        .values()
        .map(|g| {
            let sum: f64 = g.iter().map(|x| x.1).sum();
            let mean = sum / g.len() as f64;
            // Two-pass, from the values themselves.
            let variance =
                g.iter().map(|x| (x.1 - mean) * (x.1 - mean)).sum::<f64>() / g.len() as f64;
            StepAggregate {
                first_step: g.iter().map(|x| x.0).min().unwrap_or(0),
                last_step: g.iter().map(|x| x.0).max().unwrap_or(0),
                count: g.len() as i64,
                sum,
                mean: sum / g.len() as f64,
                min: g.iter().map(|x| x.1).fold(f64::INFINITY, f64::min),
                max: g.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max),
                std_dev: Some(variance.sqrt()),
            }
        })
        .collect()
}

fn assert_aggregates(got: &[StepAggregate], want: &[StepAggregate]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.first_step, g.last_step, g.count),
            (w.first_step, w.last_step, w.count)
        );
        assert!(
            close(g.sum, w.sum) && close(g.mean, w.mean),
            "{g:?} vs {w:?}"
        );
        assert_eq!((g.min, g.max), (w.min, w.max));
        let (gs, ws) = (g.std_dev.unwrap_or(f64::NAN), w.std_dev.unwrap_or(f64::NAN));
        assert!((gs - ws).abs() <= 1e-6 * (1.0 + ws.abs()), "{g:?} vs {w:?}");
    }
}

backend_tests! {
    /// The issue's run: `early` on steps 0..10, `late` on 10..20. A state
    /// field's buckets lie over the steps that have it.
    fn a_state_field_is_bucketed_over_its_own_span(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        for t in 0..20i64 {
            for a in 0..2 {
                let state = if t < 10 {
                    json!({"early": 1.0 + a as f64})
                } else {
                    json!({"late": t as f64 + a as f64 / 2.0})
                };
                svc.record_agent_state(&sim.id, t, a, 0.0, &state)?;
            }
            svc.record_metric(&sim.id, t, Some(AgentIndex(0)), "early_metric", 1.5)?;
        }
        let a = svc.analytics();
        let late = a.step_aggregates(&sim.id, "state.late", 5)?;
        let spans: Vec<(i64, i64)> = late.iter().map(|b| (b.first_step, b.last_step)).collect();
        assert_eq!(spans, vec![(10, 11), (12, 13), (14, 15), (16, 17), (18, 19)]);
        assert_eq!(late[0].count, 4);
        assert_eq!(late[0].mean, (10.0 + 10.5 + 11.0 + 11.5) / 4.0);
        let early = a.step_aggregates(&sim.id, "state.early", 5)?;
        let spans: Vec<(i64, i64)> = early.iter().map(|b| (b.first_step, b.last_step)).collect();
        assert_eq!(spans, vec![(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]);
        let by_kind = a.step_aggregates_by_kind(&sim.id, "state.late", 5)?;
        assert!(by_kind.values().all(|b| b.first().is_some_and(|f| f.first_step == 10)), "{by_kind:?}");
        // The final value is the mean at the last step that has the field.
        let cmp = a.compare_simulations(std::slice::from_ref(&sim.id), &["state.early", "early_metric"])?;
        assert_eq!(cmp.rows[0].final_values["state.early"], Some(1.5));
        assert_eq!(cmp.rows[0].final_values["early_metric"], Some(1.5));
        Ok(())
    }

    /// One rule for what was never recorded: an unregistered agent is
    /// `NotFound { entity: "agent" }` in every per-agent call; a field the
    /// run never recorded is `NotFound { entity: "field" }`, whatever kind.
    fn one_rule_for_not_recorded(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        svc.record_agent_state(&sim.id, 0, 0, 1.0, &json!({"energy": 2.0, "tag": "x"}))?;
        svc.record_metric(&sim.id, 0, None, "food_left", 7.0)?;
        let a = svc.analytics();
        let agent = |r: Result<_>| matches!(r, Err(Error::NotFound { entity: "agent", .. }));
        assert!(agent(a.agent_series(&sim.id, 99, "food_left", ..).map(|_| ())));
        assert!(agent(a.agent_series(&sim.id, 99, "reward", ..).map(|_| ())));
        assert!(agent(a.agent_series(&sim.id, 99, "state.energy", ..).map(|_| ())));
        assert!(agent(a.state_series(&sim.id, 99, ..).map(|_| ())));
        assert!(agent(svc.agent_states(&sim.id, 99, ..).map(|_| ())));
        assert!(agent(svc.memories(&sim.id, 99).map(|_| ())));
        assert!(agent(svc.latest_memory(&sim.id, 99).map(|_| ())));
        let field = |r: Result<()>| matches!(r, Err(Error::NotFound { entity: "field", .. }));
        for name in ["state.nope", "nope", "state.tag"] {
            assert!(field(a.step_aggregates(&sim.id, name, 5).map(|_| ())), "{name}");
            assert!(field(a.agent_series(&sim.id, 0, name, ..).map(|_| ())), "{name}");
        }
        assert!(field(a.step_aggregates_by_kind(&sim.id, "state.nope", 5).map(|_| ())));
        // Recorded by another agent only: this agent's series is empty.
        assert!(a.agent_series(&sim.id, 1, "state.energy", ..)?.is_empty());
        assert_eq!(a.agent_series(&sim.id, 0, "state.energy", ..)?, vec![(0, 2.0)]);
        // The reward is part of every agent state: empty, not missing.
        let fresh = running_sim(&svc, 1)?;
        assert!(a.step_aggregates(&fresh.id, "reward", 5)?.is_empty());
        assert!(a.agent_series(&fresh.id, 0, "reward", ..)?.is_empty());
        Ok(())
    }

    fn summary_matches_rows(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 5)?;
        let rows = record(&svc, &sim, 5)?;
        let s = svc.analytics().summary(&sim.id)?;
        assert_eq!(s.agents, 5);
        assert_eq!(s.agent_state_rows, rows.len() as i64);
        assert_eq!(s.last_step, rows.iter().map(|r| r.0).max());
        let total: f64 = rows.iter().map(|r| r.2).sum();
        assert!(close(s.total_reward, total));
        assert!(close(s.mean_reward.unwrap_or(f64::NAN), total / rows.len() as f64));
        for a in &s.per_agent {
            let mine: Vec<f64> = rows.iter().filter(|r| r.1 == a.agent.0).map(|r| r.2).collect();
            assert_eq!(a.rows, mine.len() as i64);
            assert!(close(a.total_reward, mine.iter().sum()));
            assert_eq!(a.kind.as_deref(), Some(if a.agent.0 % 2 == 0 { "a" } else { "b" }));
        }
        assert_eq!(s.latest_step.map(|st| st.metrics), Some(json!({"step": 199})));
        assert_eq!(s.steps, rows.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>().len() as i64);
        assert!(s.duration_secs.is_some());

        let empty = running_sim(&svc, 2)?;
        let e = svc.analytics().summary(&empty.id)?;
        assert_eq!((e.agent_state_rows, e.total_reward, e.mean_reward, e.last_step, e.steps), (0, 0.0, None, None, 0));
        // Registered agents are listed even without rows (issue 11).
        assert!(e.per_agent.len() == 2 && e.per_agent.iter().all(|a| a.rows == 0 && a.mean_reward.is_none()));
        assert!(e.latest_step.is_none());
        Ok(())
    }

    fn series_match_rows(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 4)?;
        let rows = record(&svc, &sim, 4)?;
        let a = svc.analytics();
        for agent in 0..4 {
            let want: Vec<(i64, f64)> = rows.iter().filter(|r| r.1 == agent).map(|r| (r.0, r.2)).collect();
            assert_eq!(a.agent_series(&sim.id, agent, "reward", ..)?, want);
            let energy: Vec<(i64, f64)> = want.iter().map(|&(s, r)| (s, r * 2.0)).collect();
            assert_eq!(a.agent_series(&sim.id, agent, "energy", ..)?, energy);
            let ranged: Vec<(i64, f64)> = want.iter().copied().filter(|r| (40..=120).contains(&r.0)).collect();
            assert_eq!(a.agent_series(&sim.id, agent, "reward", 40..=120)?, ranged);
        }
        // An unknown field is a typed error, not an empty result.
        assert!(matches!(
            a.agent_series(&sim.id, 0, "no such metric", ..),
            Err(Error::NotFound { entity: "field", .. })
        ));
        let states = a.state_series(&sim.id, 2, 10..=20)?;
        let want: Vec<(i64, Value)> = rows.iter().filter(|r| r.1 == 2 && (10..=20).contains(&r.0)).map(|r| (r.0, json!({"r": r.2}))).collect();
        assert_eq!(states, want);
        assert!(matches!(a.agent_series(&sim.id, 99, "reward", ..), Err(Error::NotFound { entity: "agent", .. })));
        Ok(())
    }

    fn step_aggregates_match_rows(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 5)?;
        let rows = record(&svc, &sim, 5)?;
        let a = svc.analytics();
        for buckets in [0usize, 1, 7, 10, 500] {
            assert_aggregates(&a.step_aggregates(&sim.id, "reward", buckets)?, &expected_aggregates(&rows, buckets as i64));
            let energy: Vec<(i64, i32, f64)> = rows.iter().map(|&(s, ag, r)| (s, ag, r * 2.0)).collect();
            assert_aggregates(&a.step_aggregates(&sim.id, "energy", buckets)?, &expected_aggregates(&energy, buckets as i64));
            // The same numbers read from the state JSON (rows, not rollups).
            assert_aggregates(&a.step_aggregates(&sim.id, "state.r", buckets)?, &expected_aggregates(&rows, buckets as i64));
        }
        let ten = a.step_aggregates(&sim.id, "reward", 10)?;
        assert!(ten.len() <= 10);

        // A single agent.
        let solo = running_sim(&svc, 1)?;
        let solo_rows = record(&svc, &solo, 1)?;
        assert_aggregates(&a.step_aggregates(&solo.id, "reward", 0)?, &expected_aggregates(&solo_rows, 0));
        // An empty simulation.
        let empty = running_sim(&svc, 3)?;
        assert!(a.step_aggregates(&empty.id, "reward", 10)?.is_empty());
        assert!(matches!(a.step_aggregates(&SimulationId::new("nope")?, "reward", 0), Err(Error::NotFound { .. })));
        Ok(())
    }

    fn compare_and_leaderboard(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("sweep"))?;
        let mut expected_kind: BTreeMap<String, (f64, i64)> = BTreeMap::new();
        let mut sims = Vec::new();
        for (i, lr) in [0.1, 0.01].iter().enumerate() {
            let sim = svc.create_simulation(NewSimulation::new(json!({"opt": {"lr": lr}, "layers": [64, 32], "name": format!("run,{i}")})).experiment(&exp.id))?;
            svc.register_agents(&sim.id, &[NewAgent::new(0).kind("greedy").policy("ppo", 1), NewAgent::new(1).kind("random").policy("ppo", 2)])?;
            svc.start_simulation(&sim.id)?;
            let mut rec = svc.recorder(&sim.id)?;
            for step in 0..10 {
                for agent in 0..2 {
                    let r = (step as f64 + 1.0) * if agent == 0 { 2.0 } else { -1.0 } * (i as f64 + 1.0);
                    rec.agent_state(step, agent, r, &json!({}))?;
                    let e = expected_kind.entry(if agent == 0 { "greedy" } else { "random" }.into()).or_default();
                    e.0 += r;
                    e.1 += 1;
                }
                rec.metric(step, "food", 100.0 - step as f64)?;
            }
            rec.close()?;
            sims.push(sim);
        }
        let a = svc.analytics();
        let cmp = a.compare(&exp.id, &["reward", "food"])?;
        assert_eq!(cmp.rows.len(), 2);
        assert_eq!(cmp.parameter_columns, vec!["layers.0", "layers.1", "name", "opt.lr"]);
        let first = cmp.rows.iter().find(|r| r.simulation == sims[0].id).ok_or(Error::RecorderClosed)?;
        assert_eq!(first.parameters.get("opt.lr"), Some(&json!(0.1)));
        // Last step 9: rewards 20 and -10 -> mean 5; overall mean (110 - 55) / 20.
        assert_eq!(first.final_values.get("reward"), Some(&Some(5.0)));
        assert!(close(first.mean_values.get("reward").copied().flatten().unwrap_or(f64::NAN), 55.0 / 20.0));
        assert_eq!(first.final_values.get("food"), Some(&Some(91.0)));
        assert_eq!(first.mean_values.get("food"), Some(&Some(95.5)));
        let csv = cmp.to_csv();
        assert!(csv.starts_with("simulation,status,layers.0,layers.1,name,opt.lr,final_reward,mean_reward,final_food,mean_food\n"), "{csv}");
        assert!(csv.contains("\"run,0\""));
        assert_eq!(csv.lines().count(), 3);

        let board = a.leaderboard(&exp.id, GroupBy::Kind)?;
        assert_eq!(board.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(), vec!["greedy", "random"]);
        for row in &board {
            let (total, n) = expected_kind[&row.group];
            assert!(close(row.total_reward, total));
            assert_eq!((row.rows, row.simulations, row.agents), (n, 2, 2));
            assert!(close(row.mean_reward, total / n as f64));
        }
        assert_eq!(board[0].rank, 1);
        let by_policy = a.leaderboard(&exp.id, GroupBy::Policy)?;
        assert_eq!(by_policy[0].group, "ppo@1");
        let by_agent = a.leaderboard(&exp.id, GroupBy::Agent)?;
        assert_eq!(by_agent.len(), 4);
        assert_eq!(by_agent[0].group, format!("{}#0", sims[1].id));
        Ok(())
    }

    fn find_by_parameters(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("p"))?;
        for (lr, seed, tag) in [(0.1, 1, "a"), (0.01, 2, "b"), (0.001, 3, "a")] {
            svc.create_simulation(NewSimulation::new(json!({"opt": {"lr": lr}, "seed": seed, "env": "grid'; DROP TABLE x"})).experiment(&exp.id).tag(tag))?;
        }
        let a = svc.analytics();
        let seeds = |q: ParameterQuery| -> Result<Vec<i64>> {
            Ok(a.find_simulations(&q)?.iter().filter_map(|s| s.parameters["seed"].as_i64()).collect())
        };
        assert_eq!(seeds(ParameterQuery::default().equals("seed", json!(2)))?, vec![2]);
        assert_eq!(seeds(ParameterQuery::default().equals("seed", json!(2.0)))?, vec![2]);
        assert_eq!(seeds(ParameterQuery::default().range("opt.lr", Some(0.005), None))?, vec![2, 1]);
        assert_eq!(seeds(ParameterQuery::default().range("opt.lr", None, Some(0.05)).equals("env", json!("grid'; DROP TABLE x")))?, vec![3, 2]);
        assert_eq!(seeds(ParameterQuery::new(SimulationFilter::new().tag("a")).range("seed", Some(2.0), Some(9.0)))?, vec![3]);
        assert!(seeds(ParameterQuery::default().equals("missing.path", json!(1)))?.is_empty());
        assert!(matches!(a.find_simulations(&ParameterQuery::default().equals("", json!(1))), Err(Error::InvalidInput { .. })));
        Ok(())
    }

    fn progress_from_another_handle(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let watcher = SimulationService::new(Database::open(db.url())?).analytics();
        let first = watcher.progress(&sim.id, None)?;
        assert_eq!((first.rows, first.latest_step, first.new_steps.len()), (0, None, 0));
        let mut rec = svc.recorder(&sim.id)?;
        let mut cursor: Cursor = first.cursor;
        let mut seen_steps = Vec::new();
        for round in 0..3 {
            for step in round * 10..(round + 1) * 10 {
                for agent in 0..3 {
                    rec.agent_state(step, agent, 1.0, &json!({}))?;
                }
                rec.step(step, &json!({"s": step}))?;
                rec.end_step(step)?;
            }
            rec.flush()?;
            let p = watcher.progress(&sim.id, Some(cursor))?;
            assert_eq!(p.rows, (round + 1) * 30);
            assert_eq!(p.latest_step, Some((round + 1) * 10 - 1));
            assert_eq!(p.new_steps.len(), 10);
            assert!(p.rows_per_sec.is_some());
            assert!(p.heartbeat_age_secs.is_some_and(|a| a >= 0.0));
            seen_steps.extend(p.new_steps.iter().map(|s| s.step));
            cursor = p.cursor;
        }
        rec.close()?;
        assert_eq!(seen_steps, (0..30).collect::<Vec<_>>());
        let idle = watcher.progress(&sim.id, Some(cursor))?;
        assert!(idle.new_steps.is_empty());
        assert_eq!(idle.rows, 90);
        Ok(())
    }

    fn progress_counts_rows_split_across_batches(db) {
        // The issue's case: a step's rows split over two commits.
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let a = svc.analytics();
        let mut rec = svc.recorder(&sim.id)?;
        rec.agent_state(0, 0, 1.0, &json!({}))?;
        rec.flush()?;
        let p = a.progress(&sim.id, None)?;
        assert_eq!((p.rows, p.new_steps.len()), (0, 0), "a half-recorded step was delivered");
        rec.agent_state(0, 1, 1.0, &json!({}))?;
        rec.step(0, &json!({}))?;
        rec.close()?;
        let p = a.progress(&sim.id, Some(p.cursor))?;
        assert_eq!(p.rows, 2);
        assert_eq!(p.new_steps.iter().map(|s| s.step).collect::<Vec<_>>(), vec![0]);

        // Many polls at arbitrary batch boundaries: every row and step
        // counted exactly once.
        let sim = running_sim(&svc, 4)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(37))?;
        let mut cursor = None;
        let (mut rows, mut steps) = (0, Vec::new());
        for step in 0..2_000 {
            for agent in 0..4 {
                rec.agent_state(step, agent, 1.0, &json!({}))?;
            }
            rec.step(step, &json!({}))?;
            rec.end_step(step)?;
            if step % 97 == 0 {
                let p = a.progress(&sim.id, cursor)?;
                rows = p.rows;
                steps.extend(p.new_steps.iter().map(|s| s.step));
                cursor = Some(p.cursor);
            }
        }
        rec.close()?;
        let p = a.progress(&sim.id, cursor)?;
        steps.extend(p.new_steps.iter().map(|s| s.step));
        assert!(p.rows >= rows);
        assert_eq!(p.rows, 8_000);
        assert_eq!(steps, (0..2_000).collect::<Vec<_>>());
        Ok(())
    }

    fn progress_of_a_list_equals_each_runs_progress(db) {
        // A list's progress (batched) says what each run's own poll says,
        // whatever state each run is in.
        let svc = service(db);
        let a = svc.analytics();
        let empty = running_sim(&svc, 2)?;
        let steps_only = running_sim(&svc, 2)?;
        svc.record_step(&steps_only.id, 0, &json!({"x": 1}))?;
        svc.end_step(&steps_only.id, 0)?;
        let done = running_sim(&svc, 3)?;
        let mut rec = svc.recorder(&done.id)?;
        for step in 0..20 {
            for agent in 0..3 {
                rec.agent_state(step, agent, 0.5, &json!({}))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        svc.complete_simulation(&done.id, json!({}))?;
        // Running, with a step in flight above the watermark.
        let live = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&live.id)?;
        for step in 0..5 {
            for agent in 0..2 {
                rec.agent_state(step, agent, 1.0, &json!({}))?;
            }
            rec.end_step(step)?;
        }
        rec.agent_state(5, 0, 1.0, &json!({}))?;
        rec.flush()?;
        let sims = svc.list_simulations(&SimulationFilter::new())?;
        assert_eq!(sims.len(), 4);
        let listed = a.progress_of(&sims)?;
        for (sim, p) in sims.iter().zip(&listed) {
            let own = a.progress(&sim.id, None)?;
            assert_eq!(
                (p.rows, p.latest_step, p.status, p.cursor.step, p.cursor.rows),
                (own.rows, own.latest_step, own.status, own.cursor.step, own.cursor.rows),
                "{}",
                sim.id
            );
            assert!(p.new_steps.is_empty());
        }
        let rows: Vec<i64> = [&empty, &steps_only, &done, &live]
            .iter()
            .map(|s| sims.iter().position(|x| x.id == s.id).map(|i| listed[i].rows))
            .collect::<Option<_>>()
            .ok_or(Error::RecorderClosed)?;
        assert_eq!(rows, [0, 0, 60, 10]);
        let tags = svc.tags_of(&sims)?;
        assert_eq!(tags.len(), 4);
        assert!(a.progress_of(&[])?.is_empty());
        rec.close()?;
        Ok(())
    }

    fn state_paths_read_alike_on_both_backends(db) {
        // PostgreSQL's `#>` takes a key as an array index where the value is
        // an array (negative from the end, `+0`, ` 1`) and as a field name
        // where it is an object; SQLite gives the same numbers.
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..3 {
            rec.agent_state(step, 0, 0.0, &json!({"pos": [7, 8 + step], "inv": {"0": 5, "-1": 6, " 1": 9}, "it's": 3}))?;
            rec.agent_state(step, 1, 0.0, &json!({"pos": {"1": 40, "-1": 41}, "inv": [1, 2], "it's": "x"}))?;
            rec.end_step(step)?;
        }
        rec.close()?;
        let a = svc.analytics();
        let last = |agent: i32, field: &str| -> Result<Option<f64>> {
            Ok(a.agent_series(&sim.id, agent, Field::from(field), 2..=2)?.first().map(|p| p.1))
        };
        for (field, agent0, agent1) in [
            ("state.pos.1", Some(10.0), Some(40.0)),
            ("state.pos.-1", Some(10.0), Some(41.0)),
            ("state.pos.+0", Some(7.0), None),
            ("state.pos.01", Some(10.0), None),
            ("state.pos.9", None, None),
            ("state.inv.0", Some(5.0), Some(1.0)),
            ("state.inv.-1", Some(6.0), Some(2.0)),
            ("state.inv. 1", Some(9.0), Some(2.0)),
            ("state.it's", Some(3.0), None),
        ] {
            if agent0.is_none() && agent1.is_none() {
                // No row has a number there: never recorded (one rule).
                assert!(matches!(a.agent_series(&sim.id, 0, Field::from(field), ..), Err(Error::NotFound { entity: "field", .. })), "{field}");
                assert!(matches!(a.step_aggregates(&sim.id, Field::from(field), 3), Err(Error::NotFound { entity: "field", .. })), "{field}");
                continue;
            }
            assert_eq!((last(0, field)?, last(1, field)?), (agent0, agent1), "{field}");
            // Aggregates and the by-kind split read the same numbers.
            let all = a.step_aggregates(&sim.id, Field::from(field), 3)?;
            let expected = agent0.iter().chain(agent1.iter()).count() as i64;
            assert_eq!(all.last().map_or(0, |b| b.count), expected, "{field}");
            let by_kind = a.step_aggregates_by_kind(&sim.id, Field::from(field), 3)?;
            let counted: i64 = by_kind.values().filter_map(|v| v.last()).map(|b| b.count).sum();
            assert_eq!(counted, expected, "{field}");
        }
        assert!(matches!(
            a.agent_series(&sim.id, 0, Field::from("state.1.2.3.4.5"), ..),
            Err(Error::InvalidInput { .. })
        ));
        Ok(())
    }

    fn every_recorded_number_is_a_field(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..10 {
            for agent in 0..2 {
                let energy = (step * 10 + agent as i64) as f64;
                rec.agent_state(step, agent, 1.0, &json!({"energy": energy, "pos": [agent, step], "tag": "x"}))?;
            }
            rec.metric(step, "food_left", (100 - step) as f64)?;
            rec.end_step(step)?;
        }
        rec.close()?;
        let a = svc.analytics();
        // A simulation-level metric: aggregates, series, compare.
        let food = a.step_aggregates(&sim.id, "food_left", 0)?;
        assert_eq!(food.len(), 10);
        assert_eq!((food[0].mean, food[9].mean), (100.0, 91.0));
        assert_eq!(a.agent_series(&sim.id, 1, "food_left", 2..4)?, vec![(2, 98.0), (3, 97.0)]);
        // A numeric field of the state, by path.
        let energy = a.step_aggregates(&sim.id, "state.energy", 0)?;
        assert_eq!(energy.len(), 10);
        assert_eq!((energy[3].count, energy[3].mean, energy[3].min, energy[3].max), (2, 30.5, 30.0, 31.0));
        assert_eq!(a.agent_series(&sim.id, 1, "state.pos.1", 5..7)?, vec![(5, 5.0), (6, 6.0)]);
        // Non-numeric values are skipped; a path with no number anywhere
        // was never recorded as a numeric field.
        assert!(matches!(a.step_aggregates(&sim.id, "state.tag", 0), Err(Error::NotFound { entity: "field", .. })));
        assert!(matches!(a.agent_series(&sim.id, 0, "state.missing", ..), Err(Error::NotFound { entity: "field", .. })));
        assert!(matches!(a.agent_series(&sim.id, 0, "state.a..b", ..), Err(Error::InvalidInput { .. })));
        // Unknown metric names are typed errors everywhere.
        assert!(matches!(a.step_aggregates(&sim.id, "nope", 10), Err(Error::NotFound { entity: "field", .. })));
        let exp = svc.create_experiment(NewExperiment::new("fields"))?;
        let other = svc.create_simulation(NewSimulation::new(json!({})).experiment(&exp.id))?;
        assert!(matches!(a.compare(&exp.id, &["nope"]), Err(Error::NotFound { entity: "field", .. })));
        let _ = other;
        Ok(())
    }

    fn summary_lists_every_registered_agent(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..4 {
            rec.agent_state(step, 0, 2.0, &json!({}))?;
            rec.metric(step, "food", (10 - step) as f64)?;
        }
        rec.close()?;
        let s = svc.analytics().summary(&sim.id)?;
        let agents: Vec<(i32, i64, Option<f64>)> = s.per_agent.iter().map(|a| (a.agent.0, a.rows, a.mean_reward)).collect();
        assert_eq!(agents, vec![(0, 4, Some(2.0)), (1, 0, None), (2, 0, None)]);
        assert_eq!(s.latest_metrics.get("food"), Some(&(3, 7.0)));
        assert_eq!(s.agents, 3);
        Ok(())
    }

    fn leaderboard_ties_idle_agents_and_40000_simulations(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("big").id(ExperimentId::new("big")?))?;
        // Ties share a rank; idle agents count.
        let sim = svc.create_simulation(NewSimulation::new(json!({})).experiment(&exp.id))?;
        svc.register_agents(&sim.id, &[NewAgent::new(0).kind("a"), NewAgent::new(1).kind("b"), NewAgent::new(2).kind("c"), NewAgent::new(3).kind("a")])?;
        svc.start_simulation(&sim.id)?;
        for (agent, reward) in [(0, 1.0), (1, 1.0), (2, 0.5)] {
            svc.record_agent_state(&sim.id, 0, agent, reward, &json!({}))?;
        }
        let board = svc.analytics().leaderboard(&exp.id, GroupBy::Kind)?;
        let ranks: Vec<(usize, &str, i64)> = board.iter().map(|r| (r.rank, r.group.as_str(), r.agents)).collect();
        assert_eq!(ranks, vec![(1, "a", 2), (1, "b", 1), (3, "c", 1)]);

        // 40,000 more simulations, beyond SQLite's 32,766 bind parameters
        // (written by SQL, so with the per-agent totals simdb keeps at ingest;
        // each state is a one-step chunk: reward 0.25, and the state `{}` as
        // the first run's agent 0 stored it).
        let bulk = match db.backend() {
            simdb::Backend::Sqlite => "
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
                INSERT INTO simdb_simulations (sim_key, id, experiment_id, status, parameters, created_at)
                SELECT 100000 + i, 'bulk-' || i, 'big', 'completed', '{}', '2026-01-01 00:00:00.000000+00:00' FROM n;
                INSERT INTO simdb_agents (sim_key, agent_index, kind, metadata, created_at)
                SELECT sim_key, 0, 'bulk', '{}', created_at FROM simdb_simulations WHERE id LIKE 'bulk-%';
                INSERT INTO simdb_agent_state_chunks (sim_key, agent_index, chunk, present, rewards, states)
                SELECT s.sim_key, 0, 0, 1, X'000000000000D03F', c.states FROM simdb_simulations s
                JOIN simdb_agent_state_chunks c ON c.sim_key = TEMPLATE AND c.agent_index = 0 AND c.chunk = 0
                WHERE s.id LIKE 'bulk-%';
                INSERT INTO simdb_agent_totals (sim_key, agent_index, n, total)
                SELECT sim_key, 0, 1, 0.25 FROM simdb_simulations WHERE id LIKE 'bulk-%';",
            simdb::Backend::Postgres => "
                INSERT INTO simdb_simulations (sim_key, id, experiment_id, status, parameters, created_at)
                SELECT 100000 + i, 'bulk-' || i, 'big', 'completed', '{}', now() FROM generate_series(1, 40000) AS i;
                INSERT INTO simdb_agents (sim_key, agent_index, kind, metadata, created_at)
                SELECT sim_key, 0, 'bulk', '{}', created_at FROM simdb_simulations WHERE id LIKE 'bulk-%';
                INSERT INTO simdb_agent_state_chunks (sim_key, agent_index, chunk, present, rewards, states)
                SELECT s.sim_key, 0, 0, 1, '\\x000000000000d03f'::bytea, c.states FROM simdb_simulations s
                JOIN simdb_agent_state_chunks c ON c.sim_key = TEMPLATE AND c.agent_index = 0 AND c.chunk = 0
                WHERE s.id LIKE 'bulk-%';
                INSERT INTO simdb_agent_totals (sim_key, agent_index, n, total)
                SELECT sim_key, 0, 1, 0.25 FROM simdb_simulations WHERE id LIKE 'bulk-%';",
        };
        simdb::with_connection!(db.database().writer()?, |c| {
            use simdb::diesel::connection::SimpleConnection;
            c.batch_execute(&bulk.replace("TEMPLATE", &sim.sim_key.to_string()))?;
        });
        let board = svc.analytics().leaderboard(&exp.id, GroupBy::Kind)?;
        let bulk_row = board.iter().find(|r| r.group == "bulk").ok_or(Error::RecorderClosed)?;
        assert_eq!((bulk_row.simulations, bulk_row.agents, bulk_row.rows, bulk_row.rank), (40_000, 40_000, 40_000, 4));
        assert!((bulk_row.mean_reward - 0.25).abs() < 1e-12);
        assert_eq!(svc.analytics().leaderboard(&exp.id, GroupBy::Agent)?.len(), 40_003);
        // A list as long: its tags and progress, past the bind limit too.
        let sims = svc.list_simulations(&SimulationFilter::new())?;
        assert_eq!(sims.len(), 40_001);
        assert_eq!(svc.tags_of(&sims)?.len(), 40_001);
        let progress = svc.analytics().progress_of(&sims)?;
        assert_eq!(progress.iter().filter(|p| p.rows == 1).count(), 40_000);
        Ok(())
    }

    fn search_in_sql_then_order_and_limit(db) {
        let svc = service(db);
        let a = svc.analytics();
        let make = |p: Value| -> Result<Simulation> { svc.create_simulation(NewSimulation::new(p)) };
        let s1 = make(json!({"opt": {"name": "adam", "lr": 0.01}, "layers": [64, 32], "flag": true, "seed": 1}))?;
        let s2 = make(json!({"opt": {"name": "sgd", "lr": 0.1}, "layers": [64], "flag": false, "seed": 2}))?;
        let s3 = make(json!({"opt": {"name": "adam", "lr": "high"}, "map": {"0": "zero"}, "none": null, "seed": 3}))?;
        let ids = |q: ParameterQuery| -> Result<Vec<SimulationId>> { Ok(a.find_simulations(&q)?.into_iter().map(|s| s.id).collect()) };
        // The limit applies after the conditions (the issue's case).
        assert_eq!(ids(ParameterQuery::new(SimulationFilter::new().limit(1)).equals("seed", json!(1)))?, vec![s1.id.clone()]);
        // Types: a string never matches a range, numbers match by value.
        assert_eq!(ids(ParameterQuery::default().range("opt.lr", Some(0.0), None))?, vec![s2.id.clone(), s1.id.clone()]);
        assert_eq!(ids(ParameterQuery::default().equals("opt.lr", json!("high")))?, vec![s3.id.clone()]);
        assert_eq!(ids(ParameterQuery::default().equals("flag", json!(false)))?, vec![s2.id.clone()]);
        assert_eq!(ids(ParameterQuery::default().equals("none", Value::Null))?, vec![s3.id.clone()]);
        assert_eq!(ids(ParameterQuery::default().equals("layers", json!([64, 32])))?, vec![s1.id.clone()]);
        // A numeric key indexes an array or names an object key.
        assert_eq!(ids(ParameterQuery::default().equals("layers.0", json!(64)))?, vec![s2.id.clone(), s1.id.clone()]);
        assert_eq!(ids(ParameterQuery::default().equals("map.0", json!("zero")))?, vec![s3.id.clone()]);
        // Order by a parameter (missing last), pages by offset and limit.
        let by_lr = ParameterQuery::default().order_by("opt.lr", true);
        assert_eq!(ids(by_lr.clone().equals("opt.name", json!("adam")).range("seed", None, Some(2.0)))?, vec![s1.id.clone()]);
        assert_eq!(ids(ParameterQuery::default().order_by("seed", false))?, vec![s1.id.clone(), s2.id.clone(), s3.id.clone()]);
        assert_eq!(ids(ParameterQuery::new(SimulationFilter::new().limit(1)).order_by("seed", false).offset(1))?, vec![s2.id.clone()]);
        assert_eq!(ids(ParameterQuery::default().order_by("seed", true).offset(2))?, vec![s1.id.clone()]);
        assert!(matches!(a.find_simulations(&ParameterQuery::default().offset(-1)), Err(Error::InvalidInput { .. })));
        Ok(())
    }

    fn search_pages_across_key_windows(db) {
        // 25,000 simulations, a match every 997th: pages walk several key
        // windows and must equal slices of the full, unlimited answer.
        let bulk = match db.backend() {
            simdb::Backend::Sqlite => "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000)
                INSERT INTO simdb_simulations (sim_key, id, status, parameters, created_at)
                SELECT i, 'w-' || i, 'completed', json_object('hit', json(CASE WHEN i % 997 = 0 THEN 'true' ELSE 'false' END), 'i', i),
                       '2026-01-01 00:00:00.000000+00:00' FROM n",
            simdb::Backend::Postgres => "INSERT INTO simdb_simulations (sim_key, id, status, parameters, created_at)
                SELECT i, 'w-' || i, 'completed', jsonb_build_object('hit', i % 997 = 0, 'i', i), now()
                FROM generate_series(1, 25000) AS i",
        };
        simdb::with_connection!(db.database().writer()?, |c| {
            use simdb::diesel::connection::SimpleConnection;
            c.batch_execute(bulk)?;
        });
        let a = service(db).analytics();
        let hits = ParameterQuery::default().equals("hit", json!(true));
        let all: Vec<SimulationId> = a.find_simulations(&hits)?.into_iter().map(|s| s.id).collect();
        assert_eq!(all.len(), 25);
        for (limit, offset) in [(1, 0), (3, 2), (10, 20), (50, 0), (5, 24), (5, 25)] {
            let mut page = hits.clone();
            page.filter = SimulationFilter::new().limit(limit);
            let got: Vec<SimulationId> = a.find_simulations(&page.offset(offset))?.into_iter().map(|s| s.id).collect();
            let want: Vec<SimulationId> = all.iter().skip(offset as usize).take(limit as usize).cloned().collect();
            assert_eq!(got, want, "limit {limit} offset {offset}");
        }
        Ok(())
    }

    fn aggregates_per_agent_kind(db) {
        // Agents 0 and 2 are kind "a", 1 and 3 kind "b".
        let svc = service(db);
        let sim = running_sim(&svc, 4)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..6 {
            for agent in 0..4 {
                let x = (agent * 10) as f64 + step as f64;
                rec.agent_state(step, agent, x, &json!({"energy": x}))?;
                rec.agent_metric(step, agent, "hp", -x)?;
            }
            rec.metric(step, "food", 1.0)?;
        }
        rec.close()?;
        let a = svc.analytics();
        for field in ["reward", "state.energy", "hp"] {
            let by = a.step_aggregates_by_kind(&sim.id, field, 3)?;
            assert_eq!(by.keys().cloned().collect::<Vec<_>>(), vec!["a".to_string(), "b".to_string()], "{field}");
            let sign = if field == "hp" { -1.0 } else { 1.0 };
            // Bucket 0 holds steps 0..=1: kind a has agents 0 and 2.
            let a0 = &by["a"][0];
            assert_eq!((a0.first_step, a0.last_step, a0.count), (0, 1, 4), "{field}");
            assert!((a0.mean - sign * 10.5).abs() < 1e-12, "{field}: {}", a0.mean);
            let b2 = &by["b"][2];
            assert_eq!((b2.first_step, b2.count), (4, 4));
            assert!((b2.mean - sign * 24.5).abs() < 1e-12, "{field}: {}", b2.mean);
        }
        assert!(matches!(a.step_aggregates_by_kind(&sim.id, "food", 3), Err(Error::InvalidInput { .. })));
        assert!(matches!(a.step_aggregates_by_kind(&sim.id, "nope", 3), Err(Error::NotFound { .. })));
        Ok(())
    }

    fn search_ordered_by_a_final_value(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("finals"))?;
        let mut ids = Vec::new();
        for (seed, last_reward, score) in [(1, 0.5, 3.0), (2, 0.9, 1.0), (3, 0.1, 2.0)] {
            let sim = svc.create_simulation(NewSimulation::new(json!({"seed": seed})).experiment(&exp.id))?;
            svc.register_agents(&sim.id, &[NewAgent::new(0), NewAgent::new(1)])?;
            svc.start_simulation(&sim.id)?;
            let mut rec = svc.recorder(&sim.id)?;
            for step in 0..3 {
                // Earlier steps say the opposite, so only the last one counts.
                let r = if step == 2 { last_reward } else { 1.0 - last_reward };
                rec.agent_state(step, 0, r, &json!({}))?;
                rec.agent_state(step, 1, r, &json!({}))?;
                rec.metric(step, "score", if step == 2 { score } else { -score })?;
            }
            rec.close()?;
            ids.push(sim.id);
        }
        let idle = svc.create_simulation(NewSimulation::new(json!({"seed": 4})).experiment(&exp.id))?;
        let a = svc.analytics();
        let order = |q: ParameterQuery| -> Result<Vec<SimulationId>> { Ok(a.find_simulations(&q)?.into_iter().map(|s| s.id).collect()) };
        let by = ParameterQuery::new(SimulationFilter::new().experiment(&exp.id));
        assert_eq!(order(by.clone().order_by_final("reward", true))?, vec![ids[1].clone(), ids[0].clone(), ids[2].clone(), idle.id.clone()]);
        assert_eq!(order(by.clone().order_by_final("score", false))?, vec![ids[1].clone(), ids[2].clone(), ids[0].clone(), idle.id.clone()]);
        let mut page = by.clone().order_by_final("score", true);
        page.filter = page.filter.limit(1);
        assert_eq!(order(page)?, vec![ids[0].clone()]);
        assert!(matches!(a.find_simulations(&by.order_by_final("nope", true)), Err(Error::NotFound { .. })));
        Ok(())
    }

    /// Issue 23: several runs on shared step buckets (runs of different
    /// spans line up bucket by bucket), a zoomed window, a run without the
    /// field, and the runs grouped by a parameter — against sums in Rust.
    fn overlays_share_step_buckets_across_runs(db) {
        let svc = service(db);
        let mut ids = Vec::new();
        for (lr, first) in [(0.1, 0i64), (0.2, 50), (0.1, 20)] {
            let sim = svc.create_simulation(NewSimulation::new(json!({"lr": lr, "first": first})))?;
            svc.register_agents(&sim.id, &[NewAgent::new(0), NewAgent::new(1)])?;
            svc.start_simulation(&sim.id)?;
            let mut rec = svc.recorder(&sim.id)?;
            for step in first..first + 100 {
                for agent in 0..2 {
                    rec.agent_state(step, agent, lr * step as f64 + f64::from(agent), &json!({}))?;
                }
                if first == 0 {
                    rec.agent_metric(step, 0, "only_here", 1.0)?;
                }
                rec.end_step(step)?;
            }
            rec.close()?;
            ids.push(sim.id);
        }
        let analytics = svc.analytics();
        // Steps 0..=149 in at most 15 buckets: 10 steps each from step 0.
        let overlay = analytics.overlay(&ids, "reward", .., 15)?;
        assert_eq!((overlay.origin, overlay.width), (0, 10));
        for (run, (lr, first)) in overlay.runs.iter().zip([(0.1, 0i64), (0.2, 50), (0.1, 20)]) {
            assert_eq!(run.points.len(), 10, "{}", run.simulation.id);
            for p in &run.points {
                assert_eq!(p.first_step % 10, 0, "buckets start on multiples of 10");
                let steps: Vec<i64> = (p.first_step..=p.last_step).collect();
                assert!(steps.iter().all(|s| (first..first + 100).contains(s)));
                let mean = steps.iter().map(|s| lr * *s as f64 + 0.5).sum::<f64>() / steps.len() as f64;
                assert!(close(p.mean, mean), "{p:?} against {mean}");
                assert_eq!(p.count, 2 * steps.len() as i64);
            }
        }
        // A window: steps 60..=89 in 3 buckets from step 60.
        let zoomed = analytics.overlay(&ids, "reward", 60..=89, 3)?;
        assert_eq!((zoomed.origin, zoomed.width), (60, 10));
        assert!(zoomed.runs.iter().all(|r| r.points.len() == 3 && r.points.iter().all(|p| (60..=89).contains(&p.first_step) && (60..=89).contains(&p.last_step))));
        // A field only the first run recorded: the others have no line.
        let only = analytics.overlay(&ids, "only_here", .., 10)?;
        assert_eq!(only.runs.iter().map(|r| r.points.len()).collect::<Vec<_>>(), vec![10, 0, 0]);
        // Grouped by lr: runs 1 and 3 share 0.1; their buckets' means are
        // averaged where both have data, and spread between them.
        let groups = overlay.group_by("lr");
        assert_eq!(groups.iter().map(|g| g.simulations.len()).collect::<Vec<_>>(), vec![2, 1]);
        let both = groups[0].points.iter().find(|p| p.first_step == 20).ok_or(Error::RecorderClosed)?;
        let (a, b) = (
            overlay.runs[0].points.iter().find(|p| p.first_step == 20).map(|p| p.mean).unwrap_or(f64::NAN),
            overlay.runs[2].points.iter().find(|p| p.first_step == 20).map(|p| p.mean).unwrap_or(f64::NAN),
        );
        assert_eq!(both.runs, 2);
        assert!(close(both.mean, (a + b) / 2.0) && close(both.min, a.min(b)) && close(both.max, a.max(b)));
        // Bad selections.
        assert!(matches!(analytics.overlay(&[], "reward", .., 10), Err(Error::InvalidInput { .. })));
        assert!(matches!(analytics.overlay(&[ids[0].clone(), ids[0].clone()], "reward", .., 10), Err(Error::InvalidInput { .. })));
        assert!(matches!(analytics.overlay(&[SimulationId::new("sim-nope")?], "reward", .., 10), Err(Error::NotFound { .. })));
        Ok(())
    }


    /// Issue 23: overlay buckets of 64 steps or more are whole 64-step
    /// blocks read from the block rollups (and the steps after the last
    /// whole block from the step rollups): they equal sums over the rows,
    /// for the reward and an agent metric, written in batches that split
    /// steps, over the whole run and over a window that ends inside a block.
    fn overlays_of_long_runs_read_whole_blocks(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(7))?;
        let value = |step: i64, agent: i32| ((step * 13 + i64::from(agent) * 5) % 17) as f64 * 0.1 - 0.8;
        for step in 0..1000i64 {
            for agent in 0..3 {
                rec.agent_state(step, agent, value(step, agent), &json!({}))?;
                rec.agent_metric(step, agent, "speed", value(step, agent) * 3.0)?;
            }
        }
        rec.close()?;
        let analytics = svc.analytics();
        let ids = [sim.id.clone()];
        for (field, scale) in [("reward", 1.0), ("speed", 3.0)] {
            for (window, origin, width) in [((0i64, 999i64), 0i64, 256i64), ((100, 700), 64, 128)] {
                let overlay = analytics.overlay(&ids, field, window.0..=window.1, 5)?;
                assert_eq!((overlay.origin, overlay.width), (origin, width), "{field} {window:?}");
                let mut want: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for step in window.0.max(0)..=window.1 {
                    for agent in 0..3 {
                        want.entry((step - origin) / width).or_default().push(value(step, agent) * scale);
                    }
                }
                let points = &overlay.runs[0].points;
                assert_eq!(points.len(), want.len(), "{field} {window:?}");
                for (p, (bucket, values)) in points.iter().zip(&want) {
                    let first = (origin + bucket * width).max(window.0);
                    let last = (origin + (bucket + 1) * width - 1).min(window.1);
                    assert_eq!((p.first_step, p.last_step, p.count), (first, last, values.len() as i64), "{field} {window:?}");
                    let sum: f64 = values.iter().sum();
                    assert!(close(p.sum, sum), "{field} {window:?} bucket {bucket}: {} vs {sum}", p.sum);
                    assert_eq!(p.min, values.iter().copied().fold(f64::INFINITY, f64::min));
                    assert_eq!(p.max, values.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                }
            }
        }
        Ok(())
    }

}
