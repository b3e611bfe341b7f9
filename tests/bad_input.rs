//! A table of malformed inputs across the public API: each gets its
//! documented typed error, and the database is verifiably unchanged after
//! every one (row counts of every table and every simulation's state).

mod common;
use common::*;

use simdb::{NewAgentMemory, OnConflict, ParameterQuery, RecorderOptions};

/// Everything a failed call could have touched.
fn fingerprint(db: &TestDatabase) -> Result<Vec<String>> {
    use simdb::diesel::prelude::*;
    use simdb::schema::*;
    // Agent states and metric values, counted inside their chunks.
    let (states, metrics) = chunked_counts(db, None)?;
    let counts: Vec<i64> = simdb::with_connection!(db.database().connection()?, |c| {
        vec![
            experiments::table.count().get_result(c)?,
            simulations::table.count().get_result(c)?,
            simulation_tags::table.count().get_result(c)?,
            agents::table.count().get_result(c)?,
            states,
            simulation_steps::table.count().get_result(c)?,
            metric_names::table.count().get_result(c)?,
            step_metrics::table.count().get_result(c)?,
            metrics,
            agent_memories::table.count().get_result(c)?,
            events::table.count().get_result(c)?,
        ]
    });
    let svc = service(db);
    let mut out = vec![format!("{counts:?}")];
    for s in svc.list_simulations(&SimulationFilter::new())? {
        out.push(format!(
            "{} {} {:?} {:?}",
            s.id,
            s.status,
            s.heartbeat_at.is_some(),
            s.results_summary
        ));
    }
    Ok(out)
}

type Check = fn(&Error) -> bool;

fn invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidInput { .. })
}
fn not_found(e: &Error) -> bool {
    matches!(e, Error::NotFound { .. })
}
fn duplicate(e: &Error) -> bool {
    matches!(e, Error::Duplicate { .. })
}
fn transition(e: &Error) -> bool {
    matches!(e, Error::InvalidTransition { .. })
}
fn url(e: &Error) -> bool {
    matches!(e, Error::InvalidUrl { .. } | Error::Connection { .. })
}
fn import(e: &Error) -> bool {
    matches!(e, Error::Import { .. } | Error::Io { .. })
}

/// What a call's outcome was, in a form both backends must agree on: the
/// error variant (with the field, for invalid input), or "ok".
fn outcome(result: &Result<()>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(Error::InvalidInput { field, .. }) => format!("InvalidInput({field})"),
        Err(e) => {
            let debug = format!("{e:?}");
            debug
                .split([' ', '(', '{'])
                .next()
                .unwrap_or_default()
                .to_string()
        }
    }
}

backend_tests! {
    fn corpus(db) {
        run_corpus(db)?;
        Ok(())
    }
}

/// The same inputs give the same outcome on SQLite and PostgreSQL.
#[test]
fn backends_agree_on_every_input() -> Result<()> {
    let sqlite = run_corpus(&TestDatabase::sqlite()?)?;
    let postgres = run_corpus(&TestDatabase::postgres()?)?;
    assert_eq!(sqlite.len(), postgres.len());
    let differ: Vec<String> = sqlite
        .iter()
        .zip(&postgres)
        .filter(|(a, b)| a != b)
        .map(|((name, a), (_, b))| format!("{name}: sqlite {a}, postgres {b}"))
        .collect();
    assert!(
        differ.is_empty(),
        "backends disagree:\n{}",
        differ.join("\n")
    );
    Ok(())
}

/// Runs every case; returns each case's name and outcome.
fn run_corpus(db: &TestDatabase) -> Result<Vec<(String, String)>> {
    let svc = service(db);
    let exp = svc.create_experiment(NewExperiment::new("exp").id(ExperimentId::new("exp-1")?))?;
    let run = running_sim(&svc, 2)?;
    let r = run.id.clone();
    svc.record_agent_state(&r, 0, 0, 1.0, &json!({"a": 1}))?;
    svc.record_step(&r, 0, &json!({}))?;
    svc.record_metric(&r, 0, None, "m", 1.0)?;
    let pending = svc
        .create_simulation(NewSimulation::new(json!({})).experiment(&exp.id))?
        .id;
    let done = running_sim(&svc, 1)?.id;
    svc.complete_simulation(&done, json!({}))?;
    let failed = running_sim(&svc, 1)?.id;
    svc.fail_simulation(&failed, "x")?;
    let cancelled = svc.create_simulation(NewSimulation::new(json!({})))?.id;
    svc.cancel_simulation(&cancelled)?;
    let ghost = SimulationId::new("ghost")?;
    let a = svc.analytics();

    let long65 = "x".repeat(65);
    let long257 = "n".repeat(257);
    let uni65 = "ü".repeat(65);
    let bad_ids: Vec<&str> = vec![
        "",
        " lead",
        "trail ",
        "\t",
        "a\nb",
        "nul\0",
        &long65,
        &uni65,
        "del\u{7f}",
        "\u{1b}[31mred",
    ];
    let nul_json = [
        json!({"k": "a\u{0}b"}),
        json!({"k\u{0}": 1}),
        json!({"a": [{"b": ["\u{0}"]}]}),
    ];

    let dir = std::env::temp_dir().join(format!(
        "simdb-bad-{}-{}",
        std::process::id(),
        db.url().len()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        path: "dir".into(),
        source: e,
    })?;
    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, "plain text, not a database ".repeat(100)).map_err(|e| {
        Error::Io {
            path: "x".into(),
            source: e,
        }
    })?;
    // Import files, each wrong in one way.
    let mut good = Vec::new();
    svc.export_jsonl(&r, &mut good)?;
    let good = String::from_utf8(good).map_err(|_| Error::RecorderClosed)?;
    let lines: Vec<String> = good.lines().map(str::to_string).collect();
    let end = lines.len() - 1;
    let with = |i: usize, line: &str| {
        let mut l = lines.clone();
        l[i] = line.to_string();
        l.join("\n")
    };
    let without = |i: usize| {
        let mut l = lines.clone();
        l.remove(i);
        l.join("\n")
    };
    let state_at = lines
        .iter()
        .position(|l| l.starts_with("{\"state\""))
        .unwrap_or(end);
    let agent_at = lines
        .iter()
        .position(|l| l.starts_with("{\"agent\""))
        .unwrap_or(end);
    let import_files: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("garbage", "\u{0}\u{1}binary".into()),
        ("not json", "hello world".into()),
        ("no header", without(0)),
        ("no end", without(end)),
        ("wrong count", with(end, "{\"end\":{\"lines\":1}}")),
        (
            "bad version",
            with(0, &lines[0].replace("\"version\":1", "\"version\":99")),
        ),
        ("unknown agent", with(state_at, "{\"state\":[42,0,1.0,{}]}")),
        ("negative step", with(state_at, "{\"state\":[0,-5,1.0,{}]}")),
        (
            "string reward",
            with(state_at, "{\"state\":[0,0,\"1\",{}]}"),
        ),
        (
            "nul in state",
            with(state_at, "{\"state\":[0,0,1.0,{\"k\":\"\\u0000\"}]}"),
        ),
        ("second header", with(agent_at, &lines[0])),
        ("blank line", with(state_at, "")),
        ("truncated line", with(end, "{\"end\":{\"li")),
        ("unknown kind", with(state_at, "{\"teleport\":[1]}")),
    ];

    let mut cases: Vec<(String, Result<()>, Check)> = Vec::new();
    macro_rules! case {
        ($name:expr, $call:expr, $check:expr) => {{
            let before = fingerprint(db)?;
            let result: Result<()> = (|| {
                $call;
                #[allow(unreachable_code)]
                Ok(())
            })();
            let after = fingerprint(db)?;
            assert_eq!(before, after, "case `{}` changed the database", $name);
            cases.push(($name.to_string(), result, $check));
        }};
    }

    for bad in &bad_ids {
        case!(
            format!("simulation id {bad:?}"),
            {
                SimulationId::new(*bad)?;
            },
            invalid
        );
        case!(
            format!("experiment id {bad:?}"),
            {
                ExperimentId::new(*bad)?;
            },
            invalid
        );
        case!(
            format!("json id {bad:?}"),
            {
                serde_json::from_value::<SimulationId>(json!(bad)).map_err(simdb::Error::from)?;
            },
            |e| matches!(e, Error::Json(_))
        );
    }
    for name in ["", " x", "x\n", long257.as_str(), "a\u{0}b", "exp"] {
        case!(
            format!("experiment name {name:?}"),
            {
                svc.create_experiment(NewExperiment::new(name))?;
            },
            |e| invalid(e) || duplicate(e)
        );
    }
    case!(
        "experiment id taken",
        {
            svc.create_experiment(NewExperiment::new("other").id(exp.id.clone()))?;
        },
        duplicate
    );
    case!(
        "external ref with newline",
        {
            svc.create_experiment(NewExperiment::new("e2").external_ref("a\nb"))?;
        },
        invalid
    );
    for j in &nul_json {
        case!(
            format!("experiment metadata {j}"),
            {
                svc.create_experiment(NewExperiment::new("e3").metadata(j.clone()))?;
            },
            invalid
        );
        case!(
            format!("parameters {j}"),
            {
                svc.create_simulation(NewSimulation::new(j.clone()))?;
            },
            invalid
        );
        case!(
            format!("agent metadata {j}"),
            {
                svc.register_agents(&r, &[NewAgent::new(9).metadata(j.clone())])?;
            },
            invalid
        );
        case!(
            format!("state {j}"),
            {
                svc.record_agent_state(&r, 1, 0, 1.0, j)?;
            },
            invalid
        );
        case!(
            format!("step metrics {j}"),
            {
                svc.record_step(&r, 1, j)?;
            },
            invalid
        );
    }
    for p in [
        json!(null),
        json!([]),
        json!("s"),
        json!(1),
        json!(true),
        json!([{"a": 1}]),
    ] {
        case!(
            format!("parameters {p}"),
            {
                svc.create_simulation(NewSimulation::new(p.clone()))?;
            },
            invalid
        );
    }
    for (what, new) in [
        ("name", NewSimulation::new(json!({})).name("")),
        ("name newline", NewSimulation::new(json!({})).name("a\nb")),
        (
            "data uri",
            NewSimulation::new(json!({})).data_uri(long257.clone()),
        ),
        ("tag empty", NewSimulation::new(json!({})).tag("")),
        (
            "tag long",
            NewSimulation::new(json!({})).tag(long257.clone()),
        ),
        ("tag control", NewSimulation::new(json!({})).tag("\u{7}")),
        (
            "unknown experiment",
            NewSimulation::new(json!({})).experiment(&ExperimentId::new("nope")?),
        ),
        ("duplicate id", NewSimulation::new(json!({})).id(r.clone())),
    ] {
        case!(
            format!("simulation {what}"),
            {
                svc.create_simulation(new.clone())?;
            },
            |e| invalid(e) || not_found(e) || duplicate(e)
        );
    }
    for (what, agents) in [
        ("negative", vec![NewAgent::new(-1)]),
        ("min", vec![NewAgent::new(i32::MIN)]),
        ("registered", vec![NewAgent::new(0)]),
        (
            "partly registered",
            vec![NewAgent::new(5), NewAgent::new(1)],
        ),
        ("repeated", vec![NewAgent::new(7), NewAgent::new(7)]),
        ("empty kind", vec![NewAgent::new(8).kind("")]),
        ("bad name", vec![NewAgent::new(8).name("a\rb")]),
        ("bad policy", vec![NewAgent::new(8).policy("", 1)]),
        (
            "bad checkpoint",
            vec![NewAgent::new(8).checkpoint(long257.clone())],
        ),
    ] {
        case!(
            format!("agents {what}"),
            {
                svc.register_agents(&r, &agents)?;
            },
            |e| invalid(e) || duplicate(e)
        );
    }
    case!(
        "agents of unknown simulation",
        {
            svc.register_agents(&ghost, &[NewAgent::new(0)])?;
        },
        not_found
    );

    case!(
        "complete pending",
        {
            svc.complete_simulation(&pending, json!({}))?;
        },
        transition
    );
    case!(
        "complete completed",
        {
            svc.complete_simulation(&done, json!({}))?;
        },
        transition
    );
    case!(
        "start completed",
        {
            svc.start_simulation(&done)?;
        },
        transition
    );
    case!(
        "start running",
        {
            svc.start_simulation(&r)?;
        },
        transition
    );
    case!(
        "fail cancelled",
        {
            svc.fail_simulation(&cancelled, "x")?;
        },
        transition
    );
    case!(
        "cancel failed",
        {
            svc.cancel_simulation(&failed)?;
        },
        transition
    );
    case!(
        "interrupt pending",
        {
            svc.interrupt_simulation(&pending, "x")?;
        },
        transition
    );
    case!(
        "interrupt completed",
        {
            svc.interrupt_simulation(&done, "x")?;
        },
        transition
    );
    case!(
        "resume running",
        {
            svc.resume(&r)?;
        },
        transition
    );
    case!(
        "resume completed",
        {
            svc.resume(&done)?;
        },
        transition
    );
    case!(
        "heartbeat completed",
        {
            svc.heartbeat(&done)?;
        },
        invalid
    );
    // Text neither backend can store alike is refused by both.
    case!(
        "summary with NUL",
        {
            svc.complete_simulation(&r, json!({"k": "a\u{0}b"}))?;
        },
        invalid
    );
    case!(
        "failure message with NUL",
        {
            svc.fail_simulation(&r, "bad\0")?;
        },
        invalid
    );
    case!(
        "interrupt reason with NUL",
        {
            svc.interrupt_simulation(&r, "\0")?;
        },
        invalid
    );
    case!(
        "description with NUL",
        {
            svc.create_experiment(NewExperiment::new("e4").description("a\0"))?;
        },
        invalid
    );
    case!(
        "negative limit",
        {
            svc.list_simulations(&SimulationFilter::new().limit(-1))?;
        },
        invalid
    );
    case!(
        "negative search limit",
        {
            a.find_simulations(&ParameterQuery::new(SimulationFilter::new().limit(-5)))?;
        },
        invalid
    );
    case!(
        "end of a negative step",
        {
            svc.end_step(&r, -1)?;
        },
        invalid
    );
    case!(
        "end of a step of a pending run",
        {
            svc.end_step(&pending, 0)?;
        },
        invalid
    );
    case!(
        "heartbeat unknown",
        {
            svc.heartbeat(&ghost)?;
        },
        not_found
    );
    case!(
        "start unknown",
        {
            svc.start_simulation(&ghost)?;
        },
        not_found
    );
    case!(
        "delete unknown",
        {
            svc.delete_simulation(&ghost)?;
        },
        not_found
    );

    let st = json!({"a": 2});
    for (what, step, agent, reward) in [
        ("negative step", -1i64, 0i32, 1.0f64),
        ("min step", i64::MIN, 0, 1.0),
        ("negative agent", 1, -1, 1.0),
        ("NaN reward", 1, 0, f64::NAN),
        ("+inf reward", 1, 0, f64::INFINITY),
        ("-inf reward", 1, 0, f64::NEG_INFINITY),
        ("unregistered agent", 1, 9, 1.0),
        ("duplicate agent-step", 0, 0, 1.0),
    ] {
        case!(
            format!("agent state {what}"),
            {
                svc.record_agent_state(&r, step, agent, reward, &st)?;
            },
            |e| invalid(e) || not_found(e) || duplicate(e)
        );
    }
    case!(
        "agent state unknown sim",
        {
            svc.record_agent_state(&ghost, 1, 0, 1.0, &st)?;
        },
        not_found
    );
    case!(
        "agent state pending sim",
        {
            svc.record_agent_state(&pending, 1, 0, 1.0, &st)?;
        },
        invalid
    );
    case!(
        "agent state completed sim",
        {
            svc.record_agent_state(&done, 1, 0, 1.0, &st)?;
        },
        invalid
    );
    for m in [json!(null), json!([1]), json!("s"), json!(2.5)] {
        case!(
            format!("step metrics {m}"),
            {
                svc.record_step(&r, 1, &m)?;
            },
            invalid
        );
    }
    case!(
        "step negative",
        {
            svc.record_step(&r, -3, &json!({}))?;
        },
        invalid
    );
    case!(
        "step duplicate",
        {
            svc.record_step(&r, 0, &json!({}))?;
        },
        duplicate
    );
    for (what, name, step, agent, value) in [
        ("empty name", "", 0i64, None, 1.0f64),
        ("long name", long257.as_str(), 0, None, 1.0),
        ("control name", "a\u{8}", 0, None, 1.0),
        ("NaN", "m", 1, None, f64::NAN),
        ("inf", "m", 1, None, f64::INFINITY),
        ("negative step", "m", -1, None, 1.0),
        ("negative agent", "m", 1, Some(AgentIndex(-2)), 1.0),
        ("unregistered agent", "m", 1, Some(AgentIndex(9)), 1.0),
        ("duplicate", "m", 0, None, 2.0),
    ] {
        case!(
            format!("metric {what}"),
            {
                svc.record_metric(&r, step, agent, name, value)?;
            },
            |e| invalid(e) || not_found(e) || duplicate(e)
        );
    }
    for (what, mem, agent) in [
        (
            "short data",
            NewAgentMemory::new("f32", vec![2], vec![0; 7]),
            0,
        ),
        (
            "long data",
            NewAgentMemory::new("f64", vec![1], vec![0; 9]),
            0,
        ),
        (
            "overflowing shape",
            NewAgentMemory::new("f32", vec![u64::MAX, 2], vec![]),
            0,
        ),
        ("empty dtype", NewAgentMemory::new("", vec![1], vec![0]), 0),
        (
            "unregistered agent",
            NewAgentMemory::from_f32(vec![1], &[1.0]),
            9,
        ),
    ] {
        case!(
            format!("memory {what}"),
            {
                svc.record_memory(&r, 1, agent, &mem)?;
            },
            |e| invalid(e) || not_found(e)
        );
    }
    {
        let mut rec = svc.recorder_with(&r, RecorderOptions::default())?;
        case!(
            "recorder negative step",
            {
                rec.agent_state(-1, 0, 1.0, &st)?;
            },
            invalid
        );
        case!(
            "recorder negative agent",
            {
                rec.agent_state(1, -1, 1.0, &st)?;
            },
            invalid
        );
        case!(
            "recorder NaN",
            {
                rec.agent_state(1, 0, f64::NAN, &st)?;
            },
            invalid
        );
        case!(
            "recorder unregistered",
            {
                rec.agent_state(1, 9, 1.0, &st)?;
            },
            not_found
        );
        case!(
            "recorder NUL",
            {
                rec.agent_state(1, 0, 1.0, &json!({"k": "\u{0}"}))?;
            },
            invalid
        );
        case!(
            "recorder array step",
            {
                rec.step(1, &json!([1]))?;
            },
            invalid
        );
        case!(
            "recorder empty metric",
            {
                rec.metric(1, "", 1.0)?;
            },
            invalid
        );
        case!(
            "recorder inf metric",
            {
                rec.agent_metric(1, 0, "m", f64::INFINITY)?;
            },
            invalid
        );
        case!(
            "recorder bad memory",
            {
                rec.memory(1, 0, NewAgentMemory::new("i32", vec![3], vec![0; 5]))?;
            },
            invalid
        );
        case!(
            "second recorder while one lives",
            {
                svc.recorder(&r)?;
            },
            |e| matches!(e, Error::LeaseHeld { .. })
        );
        case!(
            "resume while its recorder lives",
            {
                svc.resume(&r)?;
            },
            transition
        );
        rec.end_step(3)?;
        case!(
            "row of an ended step",
            {
                rec.agent_state(2, 0, 1.0, &st)?;
            },
            invalid
        );
        case!(
            "ending steps out of order",
            {
                rec.end_step(1)?;
            },
            invalid
        );
        rec.close()?;
    }
    case!(
        "row over the batch limit",
        {
            let mut small = svc.recorder_with(&r, RecorderOptions::default().batch_bytes(4096))?;
            small.agent_state(5, 0, 1.0, &json!({"k": "x".repeat(10_000)}))?;
        },
        |e| matches!(e, Error::RowTooLarge { .. })
    );
    case!(
        "recorder for pending",
        {
            svc.recorder(&pending)?;
        },
        invalid
    );
    case!(
        "recorder for unknown",
        {
            svc.recorder(&ghost)?;
        },
        not_found
    );

    for u in [
        "",
        "   ",
        "mysql://u:p@h/db",
        "sqlite://",
        "ftp://host/x",
        "postgres://u:p@127.0.0.1:1/x",
        "bad\0url",
    ] {
        case!(
            format!("url {u:?}"),
            {
                Database::open(u)?;
            },
            url
        );
    }
    let dir_url = dir.display().to_string();
    case!(
        "url of a directory",
        {
            Database::open(&dir_url)?;
        },
        url
    );
    let text_url = text_file.display().to_string();
    case!(
        "url of a text file",
        {
            Database::open(&text_url)?;
        },
        |e| matches!(
            e,
            Error::Connection { .. } | Error::Database(_) | Error::Migration(_)
        )
    );

    for (what, content) in &import_files {
        let path = dir.join(format!("{}.jsonl", what.replace(' ', "_")));
        std::fs::write(&path, content).map_err(|e| Error::Io {
            path: "x".into(),
            source: e,
        })?;
        // Delete-free: the simulation exists, so use Replace to reach the
        // validation; a bad file must leave the existing run untouched.
        case!(
            format!("import {what}"),
            {
                svc.import_jsonl(&path, OnConflict::Replace)?;
            },
            import
        );
    }
    case!(
        "import missing file",
        {
            svc.import_jsonl(&dir.join("missing.jsonl"), OnConflict::Error)?;
        },
        import
    );

    case!(
        "find with empty path",
        {
            a.find_simulations(&ParameterQuery::default().equals("", json!(1)))?;
        },
        invalid
    );
    case!(
        "summary unknown",
        {
            a.summary(&ghost)?;
        },
        not_found
    );
    case!(
        "aggregates unknown",
        {
            a.step_aggregates(&ghost, "reward", 10)?;
        },
        not_found
    );
    case!(
        "compare unknown experiment",
        {
            a.compare(&ExperimentId::new("nope")?, &["reward"])?;
        },
        not_found
    );
    case!(
        "leaderboard unknown experiment",
        {
            a.leaderboard(&ExperimentId::new("nope")?, simdb::GroupBy::Kind)?;
        },
        not_found
    );
    case!(
        "progress unknown",
        {
            a.progress(&ghost, None)?;
        },
        not_found
    );
    case!(
        "export unknown",
        {
            svc.export_jsonl(&ghost, std::io::sink())?;
        },
        not_found
    );

    let _ = std::fs::remove_dir_all(&dir);
    let total = cases.len();
    let mut wrong = Vec::new();
    for (name, result, check) in &cases {
        match result {
            Ok(()) => wrong.push(format!("{name}: accepted")),
            Err(e) if !check(e) => wrong.push(format!("{name}: unexpected error {e:?}")),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(total >= 100, "only {total} cases");
    eprintln!(
        "bad-input corpus: {total} cases, all refused with their typed error, database unchanged"
    );
    Ok(cases
        .iter()
        .map(|(name, result, _)| (name.clone(), outcome(result)))
        .collect())
}
