//! The `simdb` binary driven as a subprocess on both backends: inspection,
//! comparison, plots, export/import/copy across backends, watch, and clear
//! errors with non-zero exit codes for bad input.

mod common;
use common::*;

use std::process::{Command, Output};

fn simdb(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simdb"))
        .args(args)
        .env("SIMDB_DATABASE_URL", url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run simdb: {e}"))
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = simdb(url, args);
    assert!(
        out.status.success(),
        "simdb {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(url: &str, args: &[&str]) -> String {
    let out = simdb(url, args);
    assert!(
        !out.status.success(),
        "simdb {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Two simulations of an experiment, different strategies and parameters.
fn populate(svc: &SimulationService) -> Result<Vec<Simulation>> {
    let exp = svc.create_experiment(NewExperiment::new("cli-exp"))?;
    let mut sims = Vec::new();
    for seed in [1, 2] {
        let sim = svc.create_simulation(
            NewSimulation::new(json!({"seed": seed, "opt": {"lr": 0.1 / seed as f64}}))
                .experiment(&exp.id)
                .tag("t"),
        )?;
        svc.register_agents(
            &sim.id,
            &[
                NewAgent::new(0).kind("greedy"),
                NewAgent::new(1).kind("random"),
            ],
        )?;
        svc.start_simulation(&sim.id)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..50 {
            rec.agent_state(step, 0, 1.0 * seed as f64, &json!({"x": step}))?;
            rec.agent_state(step, 1, -0.5, &json!({"x": -step}))?;
            rec.step(step, &json!({"food": 50 - step}))?;
            rec.metric(step, "food", (50 - step) as f64)?;
        }
        rec.close()?;
        sims.push(svc.complete_simulation(&sim.id, json!({"done": true}))?);
    }
    Ok(sims)
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "simdb-cli-{}-{}-{name}",
        std::process::id(),
        std::thread::current()
            .name()
            .unwrap_or("t")
            .replace("::", "_")
    ))
}

backend_tests! {
    fn inspect_compare_plot(db) {
        let svc = service(db);
        let sims = populate(&svc)?;
        let url = db.url();
        let sims_out = ok(url, &["sims"]);
        assert!(sims_out.contains(sims[0].id.as_str()) && sims_out.contains(sims[1].id.as_str()));
        let listed: Value = serde_json::from_str(&ok(url, &["--json", "sims", "--param", "seed=2"]))?;
        assert_eq!(listed.as_array().map(|a| a.len()), Some(1));
        assert_eq!(listed[0]["id"], json!(sims[1].id.as_str()));
        let ranged: Value = serde_json::from_str(&ok(url, &["sims", "--json", "--param-range", "opt.lr=0.06..", "--experiment", "cli-exp", "--status", "completed", "--tag", "t"]))?;
        assert_eq!(ranged[0]["id"], json!(sims[0].id.as_str()));
        assert!(ok(url, &["experiments"]).contains("cli-exp"));
        let show = ok(url, &["show", sims[0].id.as_str()]);
        for needle in ["completed", "greedy", "random", "rows         100", "{\"food\":1}"] {
            assert!(show.contains(needle), "show lacks {needle}: {show}");
        }
        let shown: Value = serde_json::from_str(&ok(url, &["show", "--json", sims[0].id.as_str()]))?;
        assert_eq!(shown["summary"]["agent_state_rows"], json!(100));
        let csv = ok(url, &["compare", "cli-exp", "--field", "reward", "--field", "food", "--csv"]);
        assert!(csv.starts_with("simulation,status,opt.lr,seed,final_reward,mean_reward,final_food,mean_food\n"), "{csv}");
        assert_eq!(csv.lines().count(), 3);
        let board: Value = serde_json::from_str(&ok(url, &["leaderboard", "cli-exp", "--by", "kind", "--json"]))?;
        assert_eq!(board[0]["group"], json!("greedy"));
        assert_eq!(board[0]["mean_reward"], json!(1.5));
        assert!(ok(url, &["leaderboard", "cli-exp"]).contains("greedy"));
        let svg = temp("reward.svg");
        ok(url, &["plot", sims[0].id.as_str(), "--field", "reward", "--out", svg.to_str().unwrap_or_default()]);
        let text = std::fs::read_to_string(&svg).map_err(|e| Error::Io { path: "svg".into(), source: e })?;
        assert!(text.starts_with("<svg") && text.contains("<polygon") && text.contains("mean"));
        let _ = std::fs::remove_file(&svg);
        assert!(ok(url, &["migrate"]).contains("applied"));
        assert!(ok(url, &["recover", "--max-age", "3600"]).contains("no stale"));
        Ok(())
    }

    fn export_import_and_conflicts(db) {
        let svc = service(db);
        let sims = populate(&svc)?;
        let url = db.url();
        let id = sims[0].id.as_str();
        let file = temp("export.jsonl");
        let f = file.to_str().unwrap_or_default();
        ok(url, &["export", id, "--format", "jsonl", "--out", f]);
        let stdout_copy = ok(url, &["export", id]);
        let text = std::fs::read_to_string(&file).map_err(|e| Error::Io { path: "x".into(), source: e })?;
        assert_eq!(text, stdout_copy);
        let err = fails(url, &["import", f]);
        assert!(err.contains("already exists"), "{err}");
        assert!(ok(url, &["import", f, "--on-conflict", "skip"]).contains("skipped"));
        assert!(ok(url, &["import", f, "--on-conflict", "replace"]).contains("imported"));
        let csv = ok(url, &["export", id, "--format", "csv"]);
        assert!(csv.starts_with("step,agent,kind,reward,state\n"));
        assert_eq!(csv.lines().count(), 101);

        // A truncated file: the error names the line; nothing is imported.
        svc.delete_simulation(&sims[0].id)?;
        let lines: Vec<&str> = text.lines().collect();
        let bad = temp("bad.jsonl");
        std::fs::write(&bad, format!("{}\n{}", lines[..40].join("\n"), &lines[40][..10])).map_err(|e| Error::Io { path: "x".into(), source: e })?;
        let err = fails(url, &["import", bad.to_str().unwrap_or_default()]);
        assert!(err.contains("line 41: column "), "{err}");
        // One line number: the file's, not the JSON parser's own "line 1".
        assert_eq!(err.matches("line").count(), 2, "{err}");
        assert!(!err.contains(" at line "), "{err}");
        assert!(matches!(svc.simulation(&sims[0].id), Err(Error::NotFound { .. })));
        for f in [file, bad] {
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    }

    fn bad_input_exits_non_zero(db) {
        let svc = service(db);
        populate(&svc)?;
        let url = db.url();
        assert!(fails(url, &["show", "no-such-sim"]).contains("not found"));
        assert!(fails(url, &["show", ""]).contains("invalid simulation id"));
        assert!(fails(url, &["compare", "no-such-exp"]).contains("not found"));
        assert!(fails(url, &["sims", "--status", "bogus"]).contains("unknown status"));
        assert!(fails(url, &["sims", "--param", "noequals"]).contains("PATH=VALUE"));
        assert!(fails(url, &["sims", "--param-range", "x=a..b"]).contains("PATH=LO..HI"));
        assert!(fails(url, &["import", "/nonexistent/file.jsonl"]).contains("/nonexistent/file.jsonl"));
        let err = fails("postgres://me:hunter2secret@127.0.0.1:1/x", &["sims"]);
        assert!(!err.contains("hunter2secret") && err.contains("***"), "{err}");
        assert!(fails("mysql://x/y", &["sims"]).contains("unsupported database url"));
        // Neither --help (which shows the environment) nor an error shows a
        // password, even one with reserved characters left unencoded.
        let help = simdb("postgres://me:hunter2secret@127.0.0.1:1/x", &["--help"]);
        assert!(!String::from_utf8_lossy(&help.stdout).contains("hunter2secret"));
        let err = fails("postgres://me:hunt/er?2@127.0.0.1:1/x", &["sims"]);
        assert!(!err.contains("hunt/er?2") && !err.contains("er?2"), "{err}");
        let out = simdb(url, &["no-such-command"]);
        assert_eq!(out.status.code(), Some(2));
        Ok(())
    }

    fn watch_follows_a_run_to_its_end(db) {
        let url = db.url();
        let mut child = Command::new(env!("CARGO_BIN_EXE_simdb"))
            .args(["synth", "--agents", "3", "--steps", "40", "--step-delay-ms", "20", "--flush-every", "5"])
            .env("SIMDB_DATABASE_URL", url)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::Io { path: "simdb".into(), source: e })?;
        let stdout = child.stdout.take().ok_or(Error::RecorderClosed)?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let id = lines.next().ok_or(Error::RecorderClosed)?.map_err(|e| Error::Io { path: "stdout".into(), source: e })?;
        let watched = ok(url, &["watch", &id, "--interval", "0.1", "--timeout", "60"]);
        assert!(watched.lines().count() >= 2, "{watched}");
        assert!(watched.lines().last().is_some_and(|l| l.contains("completed") && l.contains("step 39") && l.contains("rows 120")), "{watched}");
        for _ in lines {}
        let status = child.wait().map_err(|e| Error::Io { path: "simdb".into(), source: e })?;
        assert!(status.success());
        Ok(())
    }

    fn reading_commands_never_create_or_write(db) {
        let svc = service(db);
        let sims = populate(&svc)?;
        // A mistyped SQLite path: an error naming it, and no file created.
        let typo = temp("typo.db");
        let typo_url = typo.display().to_string();
        let err = fails(&typo_url, &["sims"]);
        assert!(err.contains(&typo_url), "{err}");
        assert!(!typo.exists(), "a reading command created {typo_url}");
        let err = fails(db.url(), &["copy", "--from", &typo_url, "--to", db.url()]);
        assert!(err.contains(&typo_url) && !typo.exists(), "{err}");
        // A database without simdb's schema is refused, and left empty.
        let empty = TestDatabase::empty(db.backend())?;
        if db.backend() == simdb::Backend::Sqlite {
            std::fs::write(empty.url().trim_start_matches("sqlite://"), b"").map_err(|e| Error::Io { path: "x".into(), source: e })?;
        }
        assert!(fails(empty.url(), &["sims"]).contains("no simdb schema"));
        assert!(fails(empty.url(), &["experiments"]).contains("no simdb schema"));
        // A PostgreSQL role that may only SELECT can read.
        if db.backend() == simdb::Backend::Postgres {
            let role = format!("simdb_ro_{}", std::process::id());
            simdb::with_connection!(db.database().writer()?, |c| {
                use simdb::diesel::connection::SimpleConnection;
                c.batch_execute(&format!(
                    "CREATE ROLE {role} LOGIN PASSWORD 'ro'; GRANT USAGE ON SCHEMA simdb TO {role};
                     GRANT SELECT ON ALL TABLES IN SCHEMA simdb TO {role};"
                ))?;
            });
            let url = db.url();
            let rest = &url[url.find('@').map_or(0, |i| i + 1)..];
            let ro_url = format!("postgres://{role}:ro@{rest}");
            let listed = simdb(&ro_url, &["sims", "--json"]);
            let show = simdb(&ro_url, &["show", sims[0].id.as_str()]);
            simdb::with_connection!(db.database().writer()?, |c| {
                use simdb::diesel::connection::SimpleConnection;
                c.batch_execute(&format!("REVOKE ALL ON ALL TABLES IN SCHEMA simdb FROM {role}; REVOKE USAGE ON SCHEMA simdb FROM {role}; DROP ROLE {role};"))?;
            });
            assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
            assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
        }
        // An export that fails leaves an existing target untouched.
        let target = temp("keep.jsonl");
        std::fs::write(&target, b"precious").map_err(|e| Error::Io { path: "x".into(), source: e })?;
        fails(db.url(), &["export", "no-such-sim", "--out", &target.display().to_string()]);
        assert_eq!(std::fs::read(&target).map_err(|e| Error::Io { path: "x".into(), source: e })?, b"precious");
        ok(db.url(), &["export", sims[0].id.as_str(), "--out", &target.display().to_string()]);
        assert!(std::fs::read_to_string(&target).map_err(|e| Error::Io { path: "x".into(), source: e })?.starts_with("{\"header\""));
        let _ = std::fs::remove_file(&target);
        Ok(())
    }

    fn flags_and_outputs_are_checked(db) {
        let svc = service(db);
        let sims = populate(&svc)?;
        let id = sims[0].id.as_str();
        for bad in ["inf", "nan", "-1", "0"] {
            let out = simdb(db.url(), &["watch", id, "--interval", bad]);
            assert_eq!(out.status.code(), Some(2), "--interval {bad} accepted");
        }
        assert_eq!(simdb(db.url(), &["watch", id, "--timeout", "inf"]).status.code(), Some(2));
        // A simulation-level metric plots; a missing directory is named.
        let svg = temp("food.svg");
        ok(db.url(), &["plot", id, "--field", "food", "--out", &svg.display().to_string()]);
        assert!(svg.exists());
        let _ = std::fs::remove_file(&svg);
        let err = fails(db.url(), &["plot", id, "--field", "food", "--out", "/no/such/dir/x.svg"]);
        assert!(err.contains("/no/such/dir"), "{err}");
        assert!(fails(db.url(), &["plot", id, "--field", "nope", "--out", &svg.display().to_string()]).contains("field"));
        // --limit applies after the parameter conditions.
        let found = ok(db.url(), &["sims", "--json", "--limit", "1", "--param", "seed=1"]);
        let found: Value = serde_json::from_str(&found).map_err(Error::from)?;
        assert_eq!(found.as_array().map(|a| a.len()), Some(1));
        assert_eq!(found[0]["parameters"]["seed"], json!(1));
        Ok(())
    }

    fn backup_while_a_recorder_writes(db) {
        let url = db.url();
        let target = temp("backup.db");
        if db.backend() == simdb::Backend::Postgres {
            assert!(fails(url, &["backup", "--to", &target.display().to_string()]).contains("pg_dump"));
            return Ok(());
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_simdb"))
            .args(["synth", "--agents", "3", "--steps", "100000", "--flush-every", "7", "--no-complete"])
            .env("SIMDB_DATABASE_URL", url)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::Io { path: "simdb".into(), source: e })?;
        let stdout = child.stdout.take().ok_or(Error::RecorderClosed)?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let id = SimulationId::new(lines.next().ok_or(Error::RecorderClosed)?.map_err(|e| Error::Io { path: "stdout".into(), source: e })?)?;
        for line in lines.by_ref().take(30) {
            line.map_err(|e| Error::Io { path: "stdout".into(), source: e })?;
        }
        let out = ok(url, &["backup", "--to", &target.display().to_string()]);
        assert!(out.contains("integrity ok"), "{out}");
        assert!(fails(url, &["backup", "--to", &target.display().to_string()]).contains("exists"));
        let _ = child.kill();
        let _ = child.wait();
        // The copy holds whole steps up to its watermark, in every table.
        let copy = SimulationService::new(Database::builder(target.display().to_string()).read_only(true).open()?);
        let w = copy.simulation(&id)?.committed_step.ok_or(Error::RecorderClosed)?;
        assert!(w >= 200, "watermark {w}");
        assert_eq!(copy.steps(&id, ..=w)?.len() as i64, w + 1);
        for agent in 0..3 {
            assert_eq!(copy.agent_states(&id, agent, ..=w)?.len() as i64, w + 1);
        }
        let _ = std::fs::remove_file(&target);
        Ok(())
    }

    fn closed_stdout_exits_quietly(db) {
        let svc = service(db);
        let sims = populate(&svc)?;
        let id = sims[0].id.to_string();
        for args in [vec!["sims", "--json"], vec!["leaderboard", "cli-exp"], vec!["export", id.as_str()], vec!["show", id.as_str()]] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_simdb"))
                .args(&args)
                .env("SIMDB_DATABASE_URL", db.url())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| Error::Io { path: "simdb".into(), source: e })?;
            drop(child.stdout.take());
            let out = child.wait_with_output().map_err(|e| Error::Io { path: "simdb".into(), source: e })?;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        }
        Ok(())
    }
}

fn copy_between(from: &TestDatabase, to: &TestDatabase) -> Result<()> {
    let sims = populate(&service(from))?;
    let out = ok(
        from.url(),
        &["copy", "--from", from.url(), "--to", to.url()],
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("imported")).count(),
        2,
        "{out}"
    );
    for sim in &sims {
        let a = ok(from.url(), &["export", sim.id.as_str()]);
        let b = ok(to.url(), &["export", sim.id.as_str()]);
        assert_eq!(a, b, "copy of {} differs", sim.id);
    }
    // With --json, one document whatever the number of simulations.
    let again = TestDatabase::new(to.backend())?;
    let json_out = ok(
        from.url(),
        &["copy", "--json", "--from", from.url(), "--to", again.url()],
    );
    let doc: Value = serde_json::from_str(&json_out).map_err(Error::from)?;
    assert_eq!(doc.as_array().map(|a| a.len()), Some(2), "{json_out}");
    // Copying again is refused (ids kept), and a typo copies nothing.
    assert!(fails(
        from.url(),
        &[
            "copy",
            "--from",
            from.url(),
            "--to",
            to.url(),
            sims[0].id.as_str()
        ]
    )
    .contains("already exists"));
    assert!(fails(
        from.url(),
        &["copy", "--from", from.url(), "--to", to.url(), "nope"]
    )
    .contains("not found"));
    Ok(())
}

/// Two laptops ran the same experiment into their own files; both copies
/// land in one shared experiment of the same name.
#[test]
fn copies_of_one_experiment_merge_by_name() -> Result<()> {
    let shared = TestDatabase::postgres()?;
    let mut ids = Vec::new();
    for laptop in 0..2 {
        let file = TestDatabase::sqlite()?;
        let svc = service(&file);
        let exp = svc.create_experiment(NewExperiment::new("foraging"))?;
        let sim = svc
            .create_simulation(NewSimulation::new(json!({"laptop": laptop})).experiment(&exp.id))?;
        ids.push(sim.id);
        ok(
            file.url(),
            &["copy", "--from", file.url(), "--to", shared.url()],
        );
    }
    let svc = service(&shared);
    assert_eq!(svc.list_experiments()?.len(), 1);
    let exp = svc.experiment_by_name("foraging")?;
    let mut found: Vec<SimulationId> = svc
        .list_simulations(&SimulationFilter::new().experiment(&exp.id))?
        .into_iter()
        .map(|s| s.id)
        .collect();
    found.sort();
    ids.sort();
    assert_eq!(found, ids);
    Ok(())
}

#[test]
fn copy_sqlite_to_postgres() -> Result<()> {
    copy_between(&TestDatabase::sqlite()?, &TestDatabase::postgres()?)
}

#[test]
fn copy_postgres_to_sqlite() -> Result<()> {
    copy_between(&TestDatabase::postgres()?, &TestDatabase::sqlite()?)
}

/// Runs `binary` (a copy of `simdb`) as a user who cannot write where the
/// database lies: as `nobody` when the tests run as root, whom permissions
/// do not stop.
fn simdb_as_another_user(binary: &std::path::Path, url: &str, args: &[&str]) -> Output {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(binary);
        c
    } else {
        Command::new(binary)
    };
    command
        .args(args)
        .env("SIMDB_DATABASE_URL", url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run simdb (runuser is needed as root): {e}"))
}

/// A recorded SQLite file, then made read-only in a read-only directory
/// (an archive, a read-only mount): the reading commands still read it, and
/// nothing is created beside it. SQLite cannot share a WAL file's memory
/// there, so simdb opens it immutable.
#[test]
fn a_read_only_sqlite_file_in_a_read_only_directory() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| Error::Migration(e.to_string());
    let dir = temp("read-only-dir");
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let path = dir.join("runs.db");
    let url = format!("sqlite://{}", path.display());
    // Recorded, then every connection closed (the WAL checkpointed away).
    let sims = populate(&SimulationService::new(Database::open(&url)?))?;
    let binary = dir.join("simdb");
    std::fs::copy(env!("CARGO_BIN_EXE_simdb"), &binary).map_err(fail)?;
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(fail)
    };
    chmod(&path, 0o444)?;
    chmod(&dir, 0o555)?;
    let list = simdb_as_another_user(&binary, &url, &["sims"]);
    let show = simdb_as_another_user(&binary, &url, &["show", sims[0].id.as_str()]);
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .map_err(fail)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    entries.sort();
    chmod(&dir, 0o755)?;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains(sims[1].id.as_str()));
    assert!(String::from_utf8_lossy(&show.stdout).contains("greedy"));
    assert_eq!(
        entries,
        ["runs.db", "simdb"],
        "nothing created beside the file"
    );
    Ok(())
}

/// Every reserved character in a password, percent-encoded and not: what
/// libpq reads is what simdb parsed (the encoded forms reach the right
/// database), a form simdb cannot read one way only is refused, and no
/// piece of four or more characters of the password ever reaches the
/// terminal or an error.
#[test]
fn passwords_with_reserved_characters_never_leak() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let svc = service(&db);
    let sim = running_sim(&svc, 1)?;
    let (user, host_db) = {
        let rest = db.url().split_once("://").map_or("", |(_, r)| r);
        let (userinfo, host_db) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
        (
            userinfo.split(':').next().unwrap_or("postgres").to_string(),
            host_db.to_string(),
        )
    };
    let encode = |pw: &str| -> String {
        pw.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let leaks = |pw: &str, text: &str| -> Option<String> {
        let chars: Vec<char> = pw.chars().collect();
        chars
            .windows(4)
            .map(|w| w.iter().collect::<String>())
            .find(|piece| text.contains(piece.as_str()))
    };
    let reserved = ["/", "?", "#", "@", ":", "%", "[", "]", "&", "=", "+", " "];
    let mut passwords: Vec<String> = reserved
        .iter()
        .map(|c| format!("Alpha{c}Bravo{c}Charlie"))
        .collect();
    passwords.push(format!("Zulu{}Yankee", reserved.concat()));
    for pw in &passwords {
        let encoded = format!("postgres://{user}:{}@{host_db}", encode(pw));
        let out = simdb(&encoded, &["sims"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{pw:?} encoded: {text}");
        assert!(
            text.contains(sim.id.as_str()),
            "{pw:?} encoded reached another database: {text}"
        );
        assert_eq!(leaks(pw, &text), None, "{pw:?} encoded leaked: {text}");
        let raw = format!("postgres://{user}:{pw}@{host_db}");
        for url in [&encoded, &raw] {
            let out = simdb(url, &["sims"]);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(leaks(pw, &text), None, "{url:?} leaked: {text}");
            if out.status.success() {
                // Read one way only, and that way is the right database.
                assert!(
                    text.contains(sim.id.as_str()),
                    "{url:?} reached another database: {text}"
                );
            }
            let opened = Database::builder(url.as_str()).read_only(true).open();
            if let Err(e) = &opened {
                let message = format!("{e} {e:?}");
                assert_eq!(leaks(pw, &message), None, "{url:?} leaked: {message}");
            }
        }
    }
    Ok(())
}

/// With no database at all, the message says so and how to give one.
#[test]
fn no_database_says_how_to_give_one() {
    for url in ["", "  "] {
        let err = fails(url, &["sims"]);
        assert!(err.contains("no database was given"), "{err}");
        assert!(
            err.contains("-d") && err.contains("SIMDB_DATABASE_URL"),
            "{err}"
        );
        assert!(!err.contains("``"), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_simdb"))
        .arg("sims")
        .env_remove("SIMDB_DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run simdb: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no database was given"),
        "{err}"
    );
}
