//! JSONL export/import: lossless across backends (SQLite -> PostgreSQL and
//! back), all-or-nothing on malformed or truncated files with the line
//! number, conflict policies; CSV export readable as a table.

mod common;
use common::*;

use simdb::{ImportOutcome, NewAgentMemory, OnConflict, RecorderOptions};

/// A simulation with every kind of row.
fn populate(svc: &SimulationService) -> Result<Simulation> {
    let exp = svc.create_experiment(
        NewExperiment::new("transfer")
            .metadata(json!({"k": [1, 2.5]}))
            .external_ref("ext://1"),
    )?;
    let sim = svc.create_simulation(
        NewSimulation::new(json!({"lr": 0.1, "ünï": "✓", "nested": {"a": [1, {"b": null}]}}))
            .experiment(&exp.id)
            .name("run")
            .data_uri("s3://x")
            .tag("t1")
            .tag("t2"),
    )?;
    svc.register_agents(
        &sim.id,
        &[
            NewAgent::new(0)
                .kind("a")
                .policy("ppo", 2)
                .metadata(json!({"m": 1})),
            NewAgent::new(3).name("three"),
        ],
    )?;
    svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder_with(&sim.id, RecorderOptions::default().batch_rows(50))?;
    for step in 0..120 {
        for agent in [0, 3] {
            rec.agent_state(
                step,
                agent,
                step as f64 * 0.1 - agent as f64 * 1e-12,
                &json!({"e": step as f64 / 7.0, "s": "a,b\"c"}),
            )?;
            rec.agent_metric(step, agent, "energy", step as f64 + 0.5)?;
        }
        rec.step(step, &json!({"food": 120 - step}))?;
        rec.metric(step, "food", (120 - step) as f64)?;
    }
    rec.memory(119, 3, NewAgentMemory::from_f32(vec![2], &[1.5, -2.0]))?;
    rec.close()?;
    svc.complete_simulation(&sim.id, json!({"mean": 1.25}))
}

type Snapshot = (Value, Vec<String>, Value, Value, Value, Value, Value, Value);

/// Everything about a simulation except database-local keys.
fn snapshot(svc: &SimulationService, id: &SimulationId) -> Result<Snapshot> {
    let mut sim = serde_json::to_value(svc.simulation(id)?)?;
    sim["sim_key"] = Value::Null;
    let strip = |mut v: Value| {
        if let Some(items) = v.as_array_mut() {
            for item in items {
                item["sim_key"] = Value::Null;
                if item.get("event_id").is_some() {
                    item["event_id"] = Value::Null;
                }
            }
        }
        v
    };
    let agents = strip(serde_json::to_value(svc.agents(id)?)?);
    let events = strip(serde_json::to_value(svc.events(id)?)?);
    let mut states = Vec::new();
    let mut memories = Vec::new();
    let mut metrics = Vec::new();
    let a = svc.analytics();
    for agent in [0, 3] {
        states.extend(
            svc.agent_states(id, agent, ..)?
                .into_iter()
                .map(|s| json!([s.agent_index, s.step, s.reward, s.state])),
        );
        memories.push(strip(serde_json::to_value(svc.memories(id, agent)?)?));
        metrics.push(json!(a.agent_series(id, agent, "energy", ..)?));
    }
    let steps = strip(serde_json::to_value(svc.steps(id, ..)?)?);
    let summary = a
        .step_aggregates(id, "food", 0)?
        .iter()
        .map(|x| x.sum)
        .collect::<Vec<_>>();
    metrics.push(json!(
        a.compare_simulations(std::slice::from_ref(id), &["food"])?
            .rows[0]
            .final_values
    ));
    metrics.push(json!(summary));
    Ok((
        sim,
        svc.simulation_tags(id)?,
        agents,
        events,
        json!(states),
        steps,
        json!(memories),
        json!(metrics),
    ))
}

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "simdb-{}-{}-{name}",
        std::process::id(),
        std::thread::current()
            .name()
            .unwrap_or("t")
            .replace("::", "_")
    ))
}

fn round_trip(from: &TestDatabase, to: &TestDatabase) -> Result<()> {
    let src = service(from);
    let sim = populate(&src)?;
    let path = temp_file("export.jsonl");
    let lines = src.export_jsonl(
        &sim.id,
        std::fs::File::create(&path).map_err(|e| Error::Io {
            path: "x".into(),
            source: e,
        })?,
    )?;
    assert!(lines > 500);
    let dst = service(to);
    let outcome = dst.import_jsonl(&path, OnConflict::Error)?;
    assert!(matches!(outcome, ImportOutcome::Imported { .. }));
    let (a, b) = (snapshot(&src, &sim.id)?, snapshot(&dst, &sim.id)?);
    // Compare part by part so a failure names the part, not a huge dump.
    assert_eq!(a.0, b.0, "simulation");
    assert_eq!(a.1, b.1, "tags");
    assert_eq!(a.2, b.2, "agents");
    assert_eq!(a.3, b.3, "events");
    assert!(a.4 == b.4, "states differ");
    assert!(a.5 == b.5, "steps differ");
    assert_eq!(a.6, b.6, "memories");
    assert!(a.7 == b.7, "metrics differ");
    // Exporting the copy gives the same file.
    let again = temp_file("again.jsonl");
    dst.export_jsonl(
        &sim.id,
        std::fs::File::create(&again).map_err(|e| Error::Io {
            path: "x".into(),
            source: e,
        })?,
    )?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| Error::Io {
            path: "x".into(),
            source: e,
        })
    };
    assert_eq!(read(&path)?, read(&again)?);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&again);
    Ok(())
}

#[test]
fn sqlite_to_postgres_is_lossless() -> Result<()> {
    round_trip(&TestDatabase::sqlite()?, &TestDatabase::postgres()?)
}

#[test]
fn postgres_to_sqlite_is_lossless() -> Result<()> {
    round_trip(&TestDatabase::postgres()?, &TestDatabase::sqlite()?)
}

backend_tests! {
    fn conflicts_and_bad_files(db) {
        let svc = service(db);
        let sim = populate(&svc)?;
        let path = temp_file("conflict.jsonl");
        svc.export_jsonl(&sim.id, std::fs::File::create(&path).map_err(|e| Error::Io { path: "x".into(), source: e })?)?;
        let before = snapshot(&svc, &sim.id)?;
        assert!(matches!(svc.import_jsonl(&path, OnConflict::Error), Err(Error::Duplicate { .. })));
        assert!(matches!(svc.import_jsonl(&path, OnConflict::Skip)?, ImportOutcome::Skipped { .. }));
        assert!(matches!(svc.import_jsonl(&path, OnConflict::Replace)?, ImportOutcome::Imported { .. }));
        assert_eq!(before, snapshot(&svc, &sim.id)?);

        let text = std::fs::read_to_string(&path).map_err(|e| Error::Io { path: "x".into(), source: e })?;
        let lines: Vec<&str> = text.lines().collect();
        svc.delete_simulation(&sim.id)?;
        let bad = temp_file("bad.jsonl");
        let write = |content: String| std::fs::write(&bad, content).map_err(|e| Error::Io { path: "x".into(), source: e });
        // Truncated: the end line is missing.
        write(lines[..lines.len() - 1].join("\n"))?;
        assert!(matches!(svc.import_jsonl(&bad, OnConflict::Error), Err(Error::Import { line: 0, .. })));
        // Cut in the middle of a line.
        let mut cut = lines[..300].join("\n");
        cut.push('\n');
        cut.push_str(&lines[300][..lines[300].len() / 2]);
        write(cut)?;
        assert!(matches!(svc.import_jsonl(&bad, OnConflict::Error), Err(Error::Import { line: 301, .. })));
        // A malformed line deep inside; a NaN-like reward; an unknown agent; garbage.
        for (at, replacement) in [(250, "{\"state\":[0,5,\"x\",{}]}"), (260, "{\"state\":[7,5,1.0,{}]}"), (270, "not json"), (280, "{\"state\":[0,-1,1.0,{}]}")] {
            let mut l: Vec<&str> = lines.clone();
            l[at - 1] = replacement;
            write(l.join("\n") + "\n")?;
            match svc.import_jsonl(&bad, OnConflict::Error) {
                Err(Error::Import { line, .. }) => assert_eq!(line, at),
                other => panic!("line {at}: expected an import error, got {other:?}"),
            }
        }
        write(String::new())?;
        assert!(matches!(svc.import_jsonl(&bad, OnConflict::Error), Err(Error::Import { .. })));
        assert!(matches!(svc.import_jsonl(&temp_file("missing.jsonl"), OnConflict::Error), Err(Error::Io { .. })));
        // Nothing of the simulation was left behind by any failed import.
        assert!(matches!(svc.simulation(&sim.id), Err(Error::NotFound { .. })));
        // A duplicate row inside the file fails in the database: all or nothing.
        let mut dup: Vec<&str> = lines.clone();
        let state_line = dup.iter().position(|l| l.starts_with("{\"state\"")).ok_or(Error::RecorderClosed)?;
        let copy = dup[state_line];
        let end = dup.len() - 1;
        dup.insert(end, copy);
        let declared = end + 1 - 1; // lines before end, now one more
        let end_line = format!("{{\"end\":{{\"lines\":{declared}}}}}");
        let last = dup.len() - 1;
        dup[last] = &end_line;
        write(dup.join("\n") + "\n")?;
        assert!(svc.import_jsonl(&bad, OnConflict::Error).is_err());
        assert!(matches!(svc.simulation(&sim.id), Err(Error::NotFound { .. })));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&bad);
        Ok(())
    }

    fn csv_export(db) {
        let svc = service(db);
        let sim = populate(&svc)?;
        let mut out = Vec::new();
        let rows = svc.export_csv(&sim.id, &mut out)?;
        assert_eq!(rows, 240);
        let text = String::from_utf8(out).map_err(|_| Error::RecorderClosed)?;
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("step,agent,kind,reward,energy,state"));
        assert_eq!(lines.next(), Some(r#"0,0,a,0,0.5,"{""e"":0.0,""s"":""a,b\""c""}""#));
        assert_eq!(text.lines().count(), 241);
        Ok(())
    }
}

backend_tests! {
    fn export_pages_through_long_series(db) {
        // Many export pages (10,000 rows each) for one agent.
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..100_001 {
            rec.agent_state(step, 0, 0.0, &Value::Null)?;
        }
        rec.close()?;
        let mut out = Vec::new();
        svc.export_jsonl(&sim.id, &mut out)?;
        let text = String::from_utf8(out).map_err(|_| Error::RecorderClosed)?;
        let steps: Vec<i64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v.get("state").and_then(|s| s[1].as_i64()))
            .collect();
        assert_eq!(steps, (0..100_001).collect::<Vec<_>>());
        let mut csv = Vec::new();
        assert_eq!(svc.export_csv(&sim.id, &mut csv)?, 100_001);
        Ok(())
    }

    fn export_streams_every_table_across_pages_and_gaps(db) {
        // Steps, metrics and memories beyond one page each, with gaps in
        // steps wider than a page: paging must neither stop early nor skip.
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        let mut rec = svc.recorder(&sim.id)?;
        let steps: Vec<i64> = (0..60_000).chain([200_000, 400_001]).collect();
        for &step in &steps {
            rec.step(step, &json!({}))?;
            rec.metric(step, "b", 1.0)?;
            if step % 1000 == 0 || step > 100_000 {
                rec.metric(step, "a", 2.0)?;
                rec.agent_metric(step, 0, "e", 3.0)?;
            }
            if step % 100 == 0 || step > 100_000 {
                rec.memory(step, 0, simdb::NewAgentMemory::from_f32(vec![1], &[step as f32]))?;
            }
        }
        rec.close()?;
        let mut out = Vec::new();
        let lines = svc.export_jsonl(&sim.id, &mut out)?;
        let text = String::from_utf8(out).map_err(|_| Error::RecorderClosed)?;
        let values: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert_eq!(values.len() as u64, lines);
        let of = |kind: &str| values.iter().filter_map(|v| v.get(kind)).cloned().collect::<Vec<_>>();
        let step_lines: Vec<i64> = of("step").iter().filter_map(|s| s[0].as_i64()).collect();
        assert_eq!(step_lines, steps);
        let metrics = of("metric");
        let count = |name: &str, agent: bool| metrics.iter().filter(|m| m[0] == json!(name) && m[1].is_null() != agent).count();
        assert_eq!(count("b", false), steps.len());
        assert_eq!(count("a", false), 62);
        assert_eq!(count("e", true), 62);
        assert_eq!(of("memory").len(), 602);
        // And it imports back whole.
        let path = std::env::temp_dir().join(format!("simdb-gaps-{}-{}.jsonl", std::process::id(), db.url().len()));
        std::fs::write(&path, &text).map_err(|e| Error::Io { path: "x".into(), source: e })?;
        svc.import_jsonl(&path, simdb::OnConflict::Replace)?;
        let _ = std::fs::remove_file(&path);
        assert_eq!(svc.steps(&sim.id, ..)?.len(), steps.len());
        assert_eq!(svc.memories(&sim.id, 0)?.len(), 602);
        Ok(())
    }

    fn import_errors_name_their_lines(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        for step in 0..3 {
            svc.record_agent_state(&sim.id, step, 0, 1.0, &json!({}))?;
        }
        let mut out = Vec::new();
        let exported = svc.export_jsonl(&sim.id, &mut out)?;
        let text = String::from_utf8(out).map_err(|_| Error::RecorderClosed)?;
        let lines: Vec<&str> = text.lines().collect();
        let dir = std::env::temp_dir().join(format!("simdb-lines-{}-{}", std::process::id(), db.url().len()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: "dir".into(), source: e })?;
        let write = |name: &str, content: String| -> Result<std::path::PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, content).map_err(|e| Error::Io { path: "x".into(), source: e })?;
            Ok(path)
        };
        let state_at = lines.iter().position(|l| l.starts_with("{\"state\"")).ok_or(Error::RecorderClosed)?;
        let message = |path: &std::path::Path| -> String {
            match svc.import_jsonl(path, simdb::OnConflict::Replace) {
                Err(e) => e.to_string(),
                Ok(o) => format!("imported {o:?}"),
            }
        };
        // A duplicated row, next to itself (sorted) or far from it (unsorted):
        // the validator names both lines, before anything is written.
        let mut dup = lines.clone();
        dup.insert(state_at + 1, lines[state_at]);
        let end = dup.len() - 1;
        let fixed_end = format!("{{\"end\":{{\"lines\":{end}}}}}");
        dup[end] = &fixed_end;
        let m = message(&write("dup.jsonl", dup.join("\n"))?);
        assert!(m.contains(&format!("line {}: duplicate of line {}", state_at + 2, state_at + 1)), "{m}");
        let mut far = lines.clone();
        far.insert(state_at + 3, lines[state_at]);
        let end = far.len() - 1;
        far[end] = &fixed_end;
        let m = message(&write("far.jsonl", far.join("\n"))?);
        assert!(m.contains(&format!("line {}: duplicate of line {}", state_at + 4, state_at + 1)), "{m}");
        // A trailing blank line is fine; the counts agree with the export.
        match svc.import_jsonl(&write("blank.jsonl", format!("{text}\n\n"))?, simdb::OnConflict::Replace)? {
            simdb::ImportOutcome::Imported { lines, .. } => assert_eq!(lines, exported),
            other => panic!("{other:?}"),
        }
        // An empty file is not "line 0".
        let m = message(&write("empty.jsonl", String::new())?);
        assert!(!m.contains("line 0") && m.contains("empty file"), "{m}");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn csv_quoting_read_back_by_python(db) {
        // Odd metric names and state text, read back with Python's csv module.
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        // (Names cannot hold control characters such as a newline; the
        // state text below does.)
        let odd = "energy, total (\"kJ\")";
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..3 {
            rec.agent_state(step, 0, 0.5, &json!({"note": "a,\"b\"\nc"}))?;
            rec.agent_metric(step, 0, odd, step as f64)?;
        }
        rec.close()?;
        let mut out = Vec::new();
        assert_eq!(svc.export_csv(&sim.id, &mut out)?, 3);
        let path = std::env::temp_dir().join(format!("simdb-csv-{}-{}.csv", std::process::id(), db.url().len()));
        std::fs::write(&path, &out).map_err(|e| Error::Io { path: "x".into(), source: e })?;
        let script = "import csv, json, sys\nrows = list(csv.reader(open(sys.argv[1], newline='')))\nprint(json.dumps(rows))";
        let py = std::process::Command::new("python3")
            .args(["-c", script, &path.display().to_string()])
            .output()
            .map_err(|e| Error::Io { path: "python3".into(), source: e })?;
        let _ = std::fs::remove_file(&path);
        assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
        let rows: Vec<Vec<String>> = serde_json::from_slice(&py.stdout).map_err(Error::from)?;
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], vec!["step", "agent", "kind", "reward", odd, "state"]);
        assert_eq!(rows[3][4], "2");
        let state: Value = serde_json::from_str(&rows[1][5]).map_err(Error::from)?;
        assert_eq!(state, json!({"note": "a,\"b\"\nc"}));
        Ok(())
    }
}
