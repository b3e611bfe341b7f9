//! `simdb serve` (issue 14): the dashboard escapes every user-provided
//! string, answers JSON on every API route, is read-only, and — driven in
//! headless Chromium through chromedriver while a recorder writes — shows a
//! new simulation without a reload, gains chart points as steps commit, and
//! sorts the compare page. Every test on both backends.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use simdb::RecorderOptions;

const XSS: &str = "<script>alert(1)</script>";

/// `simdb serve` on a free port, read-only over the test database.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(db: &TestDatabase) -> Result<Server> {
        Ok(Server::start_with(db, &["--bind", "127.0.0.1:0"], Stdio::inherit())?.0)
    }

    /// `simdb serve ARGS`, and the first line it printed. The server is
    /// reached on loopback whatever address it bound.
    fn start_with(db: &TestDatabase, args: &[&str], stderr: Stdio) -> Result<(Server, String)> {
        Server::start_on(db.url(), args, stderr)
    }

    /// `simdb serve ARGS` over the database at `url`.
    fn start_on(url: &str, args: &[&str], stderr: Stdio) -> Result<(Server, String)> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_simdb"))
            .arg("serve")
            .args(args)
            .env("SIMDB_DATABASE_URL", url)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| io("simdb serve", e))?;
        let stdout = child.stdout.take().ok_or(Error::RecorderClosed)?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| io("simdb serve stdout", e))?;
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("simdb dashboard on http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| invalid(format!("unexpected first line: {line:?}")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], addr.port()));
        Ok((Server { child, addr }, line))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str) -> Result<(u16, String)> {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => {
                let status = r.status();
                Ok((status, r.into_string().map_err(|e| io(path, e))?))
            }
            Err(ureq::Error::Status(status, r)) => {
                Ok((status, r.into_string().map_err(|e| io(path, e))?))
            }
            Err(e) => Err(invalid(format!("GET {path}: {e}"))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::Io {
        path: what.to_string(),
        source: e,
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidInput {
        field: "dashboard test",
        reason,
    }
}

/// `simdb serve --read-replica` (issue 24): the pages are read from a hot
/// standby, the list page and `/api/replicas` say how far behind it is, and
/// with the standby stopped the dashboard reads the primary and says so.
#[test]
fn a_dashboard_on_a_replica_shows_its_lag() -> Result<()> {
    let (primary, replica, db) = common::cluster::primary_and_replica()?;
    let svc = SimulationService::new(db.clone());
    let sim = running_sim(&svc, 2)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..10 {
        for agent in 0..2 {
            rec.agent_state(step, agent, 1.0, &json!({"x": step}))?;
        }
        rec.end_step(step)?;
    }
    rec.close()?;
    common::cluster::wait_until_replayed(&db)?;
    let (server, _) = Server::start_on(
        &primary.url("postgres"),
        &[
            "--bind",
            "127.0.0.1:0",
            "--read-replica",
            &replica.url("postgres"),
        ],
        Stdio::inherit(),
    )?;
    let (status, page) = server.get("/")?;
    assert_eq!(status, 200);
    assert!(page.contains("is up to date"), "{page}");
    assert!(page.contains(sim.id.as_str()));
    // The primary's own background records (a standby snapshot every 15 s)
    // may land between the replay and the request: asked again until the
    // standby has replayed them too (or for 5 s), the lag is nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (api, statuses) = loop {
        let (_, api) = server.get("/api/replicas")?;
        let statuses: Value = serde_json::from_str(&api).map_err(|e| invalid(e.to_string()))?;
        if statuses[0]["lag_bytes"] == json!(0) || std::time::Instant::now() > deadline {
            break (api, statuses);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(statuses[0]["lag_bytes"], json!(0), "{api}");
    assert_eq!(statuses[0]["error"], Value::Null, "{api}");
    // The standby stops: the pages come from the primary, and say why.
    replica.stop()?;
    let (status, page) = server.get("/")?;
    assert_eq!(status, 200);
    assert!(page.contains("does not answer"), "{page}");
    assert!(page.contains(sim.id.as_str()));
    Ok(())
}

/// An experiment and a finished simulation with `XSS` in every string a
/// user controls.
fn hostile(svc: &SimulationService) -> Result<(ExperimentId, SimulationId)> {
    let exp = svc.create_experiment(NewExperiment::new(XSS).description(XSS))?;
    let sim = svc.create_simulation(
        NewSimulation::new(json!({ XSS: XSS, "lr": 0.1 }))
            .experiment(&exp.id)
            .name(XSS)
            .tag(XSS),
    )?;
    svc.register_agents(&sim.id, &[NewAgent::new(0).kind(XSS).policy(XSS, 1)])?;
    svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..5 {
        rec.agent_state(step, 0, 1.0, &json!({ XSS: XSS }))?;
        rec.agent_metric(step, 0, XSS, 2.0)?;
        rec.metric(step, "food<b>", 3.0)?;
    }
    rec.close()?;
    svc.fail_simulation(&sim.id, XSS)?;
    Ok((exp.id, sim.id))
}

backend_tests! {
    fn every_user_string_is_escaped(db) {
        let svc = service(db);
        let (exp, sim) = hostile(&svc)?;
        let server = Server::start(db)?;
        for path in [
            "/".to_string(),
            format!("/simulations/{sim}"),
            format!("/experiments/{exp}"),
            format!("/experiments/{exp}?by=policy"),
            format!("/?tag={}", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        ] {
            let (status, page) = server.get(&path)?;
            assert_eq!(status, 200, "{path}: {page}");
            assert!(!page.contains(XSS), "{path} holds a raw <script>");
            assert!(!page.contains("<b>"), "{path} holds a raw <b>");
            // The only script is simdb's own.
            assert_eq!(page.matches("<script").count(), 1, "{path}");
            assert!(page.contains("&lt;script&gt;"), "{path} lost the text");
            assert!(!page.contains("simdb_test"), "{path} shows a password");
        }
        // Pages may load simdb's own script, images and API only.
        let page = ureq::get(&server.url("/")).call().map_err(|e| invalid(e.to_string()))?;
        let policy = page.header("content-security-policy").unwrap_or_default().to_string();
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
        // A chart says how many points it drew (the live page's count).
        let chart = ureq::get(&server.url(&format!("/charts/{sim}/reward?buckets=3")))
            .call()
            .map_err(|e| invalid(e.to_string()))?;
        assert_eq!(chart.header("x-simdb-points"), Some("3"));
        // The chart draws the hostile metric name as escaped text.
        let (status, svg) = server.get(&format!("/charts/{sim}/{}", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"))?;
        assert_eq!(status, 200, "{svg}");
        assert!(!svg.contains(XSS) && svg.contains("&lt;script&gt;"));
        Ok(())
    }

    fn every_api_route_answers_one_json_document(db) {
        let svc = service(db);
        let (exp, sim) = hostile(&svc)?;
        let server = Server::start(db)?;
        for path in [
            "/api/experiments".to_string(),
            "/api/simulations".to_string(),
            "/api/simulations?status=failed&param=lr=0.1".to_string(),
            format!("/api/simulations/{sim}"),
            format!("/api/simulations/{sim}/progress"),
            format!("/api/simulations/{sim}/aggregates?field=reward&buckets=3"),
            format!("/api/simulations/{sim}/agents"),
            format!("/api/simulations/{sim}/events"),
            format!("/api/experiments/{exp}/compare"),
            format!("/api/experiments/{exp}/leaderboard?by=agent"),
        ] {
            let (status, body) = server.get(&path)?;
            assert_eq!(status, 200, "{path}: {body}");
            let doc: Value = serde_json::from_str(&body)
                .map_err(|e| invalid(format!("{path}: not JSON ({e}): {body}")))?;
            assert!(doc.is_array() || doc.is_object(), "{path}");
        }
        // Strings come back as data, exactly as stored.
        let (_, detail) = server.get(&format!("/api/simulations/{sim}"))?;
        let detail: Value = serde_json::from_str(&detail).map_err(|e| invalid(e.to_string()))?;
        assert_eq!(detail["summary"]["simulation"]["name"], json!(XSS));
        assert_eq!(detail["tags"], json!([XSS]));
        let (_, filtered) = server.get("/api/simulations?status=failed&param=lr=0.1")?;
        let filtered: Vec<Value> = serde_json::from_str(&filtered).map_err(|e| invalid(e.to_string()))?;
        assert_eq!(filtered.len(), 1);
        let (_, none) = server.get("/api/simulations?param=lr=0.2")?;
        assert_eq!(none.trim(), "[]");
        let (_, series) = server.get(&format!("/api/simulations/{sim}/aggregates?field=reward&buckets=3"))?;
        let series: Value = serde_json::from_str(&series).map_err(|e| invalid(e.to_string()))?;
        assert_eq!(series["all"].as_array().map(Vec::len), Some(3));
        // Unknown things are 404, bad input 400, never 200 or 500.
        assert_eq!(server.get("/api/simulations/sim-nope")?.0, 404);
        assert_eq!(server.get(&format!("/api/simulations/{sim}/aggregates?field=nope"))?.0, 404);
        assert_eq!(server.get("/api/simulations?status=sleeping")?.0, 400);
        assert_eq!(server.get(&format!("/api/experiments/{exp}/leaderboard?by=team"))?.0, 400);
        Ok(())
    }

    /// Issue 23: ids with reserved characters got unencoded hrefs, so the
    /// browser asked for another path (or a query) and got 404. Every link
    /// built from an id now percent-encodes it as one path segment, and
    /// following it reaches that id's page.
    fn links_to_ids_with_reserved_characters_reach_their_pages(db) {
        let svc = service(db);
        let reserved = ["a/b", "q?x=1", "h#frag", "p%41", "amp&plus+", "with space", "énergie-Ω", "sim-<script>alert(1)</script>"];
        let mut expected = Vec::new();
        for (i, text) in reserved.iter().enumerate() {
            let exp = svc.create_experiment(NewExperiment::new(format!("exp {i}")).id(ExperimentId::new(format!("exp-{text}"))?))?;
            let sim = svc.create_simulation(
                NewSimulation::new(json!({"i": i})).id(SimulationId::new(format!("sim-{text}"))?).experiment(&exp.id).name(format!("run {i}")),
            )?;
            expected.push((exp, sim, i));
        }
        let server = Server::start(db)?;
        let encode = |id: &str| percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string();
        let (_, index) = server.get("/")?;
        for (exp, sim, i) in &expected {
            let sim_href = format!("/simulations/{}", encode(sim.id.as_str()));
            let exp_href = format!("/experiments/{}", encode(exp.id.as_str()));
            // Hrefs are attribute text: maud escapes `&` as `&amp;`, which
            // percent-encoding never leaves in a path.
            assert!(index.contains(&format!("href=\"{sim_href}\"")), "no link {sim_href} on /");
            assert!(index.contains(&format!("href=\"{exp_href}\"")), "no link {exp_href} on /");
            let (status, page) = server.get(&sim_href)?;
            assert_eq!(status, 200, "{sim_href}: {page}");
            assert!(page.contains(&format!("run {i}")), "{sim_href} is not run {i}");
            // The simulation page links its experiment the same way, by
            // the experiment's name.
            assert!(page.contains(&format!("href=\"{exp_href}\">exp {i}</a>")), "{sim_href} lacks {exp_href} named exp {i}");
            let (status, page) = server.get(&exp_href)?;
            assert_eq!(status, 200, "{exp_href}: {page}");
            assert!(page.contains(&format!("exp {i}")), "{exp_href} is not exp {i}");
            assert!(page.contains(&format!("href=\"{sim_href}\"")), "{exp_href} lacks {sim_href}");
        }
        Ok(())
    }

    /// Issue 23: error responses carried no security headers. Every answer
    /// — a page, JSON, a 404 of simdb's, a 400, a path no route matches —
    /// says `nosniff` and carries the pages' Content-Security-Policy.
    fn every_response_carries_the_security_headers(db) {
        let svc = service(db);
        let (_, sim) = hostile(&svc)?;
        let server = Server::start(db)?;
        for (path, status) in [
            ("/".to_string(), 200),
            (format!("/api/simulations/{sim}"), 200),
            ("/simulations/sim-nope".to_string(), 404),
            ("/api/simulations/sim-nope".to_string(), 404),
            ("/api/simulations?status=sleeping".to_string(), 400),
            ("/no/such/route".to_string(), 404),
        ] {
            let answer = match ureq::get(&server.url(&path)).call() {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(e) => return Err(invalid(format!("GET {path}: {e}"))),
            };
            assert_eq!(answer.status(), status, "{path}");
            assert_eq!(answer.header("x-content-type-options"), Some("nosniff"), "{path}");
            let policy = answer.header("content-security-policy").unwrap_or_default();
            assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"), "{path}: {policy:?}");
        }
        Ok(())
    }

    /// Issue 23: a simulation-level metric's chart spoke of agents ("mean,
    /// all agents") though none are behind it, and axes around zero showed
    /// `-0.0`.
    fn charts_say_what_is_behind_them_and_show_no_negative_zero(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 3)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..40i64 {
            for agent in 0..3 {
                let reward = if (step + i64::from(agent)) % 2 == 0 { -0.5 } else { 0.5 };
                rec.agent_state(step, agent, reward, &json!({}))?;
            }
            rec.metric(step, "food", (step as f64 - 20.0) / 40.0)?;
            rec.end_step(step)?;
        }
        rec.close()?;
        let server = Server::start(db)?;
        let (status, reward) = server.get(&format!("/charts/{}/reward", sim.id))?;
        assert_eq!(status, 200, "{reward}");
        assert!(reward.contains("mean, all agents"), "{reward}");
        let (status, food) = server.get(&format!("/charts/{}/food", sim.id))?;
        assert_eq!(status, 200, "{food}");
        assert!(!food.contains("agents"), "a simulation metric's chart names agents");
        assert!(food.contains("min–max of the bucket"), "{food}");
        for svg in [&reward, &food] {
            // Every text element's content: none is a negative zero.
            for text in svg.split("</text>").filter_map(|t| t.rsplit('>').next()) {
                let t = text.trim();
                let negative_zero = t.starts_with('-') && t.len() > 1 && t[1..].chars().all(|c| c == '0' || c == '.');
                assert!(!negative_zero, "axis label {t:?}");
            }
        }
        Ok(())
    }

    /// Issue 23: "heartbeat age" kept counting for runs that had ended;
    /// they show when they ended, and only a run that may still record
    /// shows a heartbeat's age.
    fn ended_runs_show_when_they_ended(db) {
        let svc = service(db);
        let (_, ended) = hostile(&svc)?;
        let running = running_sim(&svc, 1)?;
        svc.heartbeat(&running.id)?;
        let server = Server::start(db)?;
        let (_, progress) = server.get(&format!("/api/simulations/{ended}/progress"))?;
        let progress: Value = serde_json::from_str(&progress).map_err(|e| invalid(e.to_string()))?;
        assert!(progress["heartbeat_age_secs"].is_null(), "{progress}");
        let at = svc.simulation(&ended)?.ended_at.ok_or(Error::RecorderClosed)?;
        assert_eq!(progress["ended_at"], json!(at));
        let (_, page) = server.get(&format!("/simulations/{ended}"))?;
        let shown = format!("ended {}", at.format("%Y-%m-%d %H:%M:%S UTC"));
        assert!(page.contains(&shown), "no {shown:?} on the page");
        let (_, list) = server.get("/")?;
        assert!(list.contains(&shown), "no {shown:?} in the list");
        let (_, live) = server.get(&format!("/api/simulations/{}/progress", running.id))?;
        let live: Value = serde_json::from_str(&live).map_err(|e| invalid(e.to_string()))?;
        assert!(live["heartbeat_age_secs"].as_f64().is_some_and(|a| a >= 0.0), "{live}");
        assert!(live["ended_at"].is_null(), "{live}");
        Ok(())
    }

    /// Issue 23, safe to share: bound to an address others can reach, the
    /// dashboard requires a token — generated and printed once with the
    /// address, or read from --token-file. Without it or with a wrong one:
    /// 401 that reveals nothing; with it: the page, then a session cookie
    /// (HttpOnly, SameSite=Strict) and the address without the token. The
    /// token never reaches the log.
    fn a_dashboard_others_can_reach_requires_its_token(db) {
        let svc = service(db);
        let (_, sim) = hostile(&svc)?;
        let log = std::env::temp_dir().join(format!("simdb-serve-log-{}-{}", std::process::id(), sim));
        let stderr = std::fs::File::create(&log).map_err(|e| io("log", e))?;
        let (server, line) = Server::start_with(db, &["--bind", "0.0.0.0:0"], Stdio::from(stderr))?;
        let token = line.trim().rsplit_once("?token=").map(|(_, t)| t.to_string()).ok_or_else(|| invalid(format!("no token in {line:?}")))?;
        assert_eq!(token.len(), 64, "{line}");
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let call = |path: &str, header: Option<(&str, String)>| -> Result<ureq::Response> {
            let mut request = agent.get(&server.url(path));
            if let Some((name, value)) = &header {
                request = request.set(name, value);
            }
            match request.call() {
                Ok(r) | Err(ureq::Error::Status(_, r)) => Ok(r),
                Err(e) => Err(invalid(format!("GET {path}: {e}"))),
            }
        };
        let wrong = "0".repeat(64);
        for (path, header) in [
            ("/".to_string(), None),
            (format!("/simulations/{sim}"), None),
            ("/api/simulations".to_string(), None),
            (format!("/?token={wrong}"), None),
            ("/api/simulations".to_string(), Some(("Authorization", format!("Bearer {wrong}")))),
            ("/".to_string(), Some(("Cookie", format!("simdb_token={wrong}")))),
        ] {
            let answer = call(&path, header)?;
            assert_eq!(answer.status(), 401, "{path}");
            assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
            let body = answer.into_string().map_err(|e| io(&path, e))?;
            assert!(!body.contains(sim.as_str()) && !body.contains("&lt;") && !body.contains(&token), "{path}: {body}");
        }
        // The token in the address: a session cookie, and the same address without it.
        let answer = call(&format!("/experiments?x=1&token={token}"), None)?;
        assert_eq!(answer.status(), 303);
        assert_eq!(answer.header("location"), Some("/experiments?x=1"));
        let cookie = answer.header("set-cookie").unwrap_or_default().to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let session = cookie.split(';').next().unwrap_or_default().to_string();
        let page = call("/", Some(("Cookie", session.clone())))?;
        assert_eq!(page.status(), 200);
        let page = page.into_string().map_err(|e| io("/", e))?;
        assert!(page.contains("&lt;script&gt;"), "the list is not there");
        let chart = call(&format!("/charts/{sim}/reward"), Some(("Cookie", session)))?;
        assert_eq!(chart.status(), 200);
        let api = call("/api/simulations", Some(("Authorization", format!("Bearer {token}"))))?;
        assert_eq!(api.status(), 200);
        drop(server);
        let logged = std::fs::read_to_string(&log).map_err(|e| io("log", e))?;
        let _ = std::fs::remove_file(&log);
        assert!(!logged.contains(&token), "the token reached the log");

        // A token of the user's: required on loopback too, never printed.
        let file = std::env::temp_dir().join(format!("simdb-token-{}-{}", std::process::id(), sim));
        std::fs::write(&file, "my-own-token-0123456789\n").map_err(|e| io("token file", e))?;
        let path = file.display().to_string();
        let (server, line) = Server::start_with(db, &["--bind", "127.0.0.1:0", "--token-file", &path], Stdio::inherit())?;
        let _ = std::fs::remove_file(&file);
        assert!(!line.contains("token"), "{line}");
        assert_eq!(server.get("/")?.0, 401);
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let answer = agent.get(&server.url("/?token=my-own-token-0123456789")).call().map_err(|e| invalid(e.to_string()))?;
        assert_eq!(answer.status(), 303);
        let page = ureq::get(&server.url("/")).set("Authorization", "Bearer my-own-token-0123456789").call();
        assert!(matches!(page, Ok(ref r) if r.status() == 200), "{page:?}");
        // A token file that cannot be read is an error, never an open door.
        let refused = Command::new(env!("CARGO_BIN_EXE_simdb"))
            .args(["serve", "--bind", "0.0.0.0:0", "--token-file", "/nonexistent/simdb-token"])
            .env("SIMDB_DATABASE_URL", db.url())
            .output()
            .map_err(|e| io("simdb serve", e))?;
        assert!(!refused.status.success());
        // The library serves an address others can reach only with a token.
        let open = simdb::serve::serve_with(svc.clone(), "0.0.0.0:0".parse().map_err(|_| invalid("addr".into()))?, None, |_| {});
        assert!(matches!(open, Err(Error::InvalidInput { field: "bind", .. })), "{open:?}");
        Ok(())
    }

    fn the_dashboard_cannot_write(db) {
        let svc = service(db);
        let (_, sim) = hostile(&svc)?;
        let server = Server::start(db)?;
        let answer = ureq::post(&server.url(&format!("/api/simulations/{sim}"))).call();
        assert!(matches!(answer, Err(ureq::Error::Status(405, _))), "{answer:?}");
        // It opened the database read-only: it never migrated or wrote.
        assert_eq!(svc.simulation(&sim)?.status, SimulationStatus::Failed);
        Ok(())
    }

    /// Issue 23: the comparison view, its charts' data, the view's options
    /// and the agent and step pages escape every user string too.
    fn the_new_pages_escape_every_user_string(db) {
        let svc = service(db);
        let (exp, sim) = hostile(&svc)?;
        let server = Server::start(db)?;
        let xss = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
        for path in [
            format!("/compare?sim={sim}"),
            format!("/compare?sim={sim}&group={xss}"),
            format!("/compare?experiment={exp}&group={xss}"),
            format!("/simulations/{sim}/agents/0"),
            format!("/simulations/{sim}/agents/0?step=3&from={xss}"),
            format!("/simulations/{sim}/steps?step=3"),
            format!("/simulations/{sim}/steps?step=3&sort={xss}"),
        ] {
            let answer = match ureq::get(&server.url(&path)).call() {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(e) => return Err(invalid(format!("GET {path}: {e}"))),
            };
            let (status, kind) = (answer.status(), answer.content_type().to_string());
            let page = answer.into_string().map_err(|e| io(&path, e))?;
            if status == 200 {
                assert!(!page.contains(XSS), "{path} holds a raw <script>");
                assert!(!page.contains("<b>"), "{path} holds a raw <b>");
                assert_eq!(page.matches("<script").count(), 1, "{path}");
            } else {
                // A bad view is a plain-text 400 (never read as HTML: nosniff).
                assert_eq!((status, kind.as_str()), (400, "text/plain"), "{path}: {page}");
            }
        }
        for path in [
            format!("/compare/charts/reward?sim={sim}"),
            format!("/compare/charts/reward?sim={sim}&group={xss}"),
            format!("/charts/{sim}/agents/0/{xss}"),
            format!("/charts/{sim}/steps/3/scatter?x={xss}&y={xss}"),
        ] {
            let (status, svg) = server.get(&path)?;
            assert_eq!(status, 200, "{path}: {svg}");
            assert!(!svg.contains(XSS), "{path} holds a raw <script>");
        }
        Ok(())
    }

    /// Issue 23: runs side by side. Four runs of a sweep (lr 0.1 twice,
    /// 0.2, 0.3): a line per selected run in the run's own colour whatever
    /// else is selected, named by the parameters that differ; grouped by
    /// `lr`, a line per value with the mean of its runs and their spread.
    fn the_comparison_view_overlays_runs_and_groups_them_by_a_parameter(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("sweep"))?;
        let mut ids = Vec::new();
        for (lr, seed) in [(0.1, 1), (0.1, 2), (0.2, 3), (0.3, 4)] {
            let sim = svc.create_simulation(NewSimulation::new(json!({"lr": lr, "seed": seed, "agents": 2})).experiment(&exp.id))?;
            svc.register_agents(&sim.id, &[NewAgent::new(0), NewAgent::new(1)])?;
            svc.start_simulation(&sim.id)?;
            let mut rec = svc.recorder(&sim.id)?;
            for step in 0..30i64 {
                for agent in 0..2 {
                    // The run's mean at a step: lr * step + seed / 100.
                    let reward = lr * step as f64 + f64::from(seed) / 100.0 + if agent == 0 { -1.0 } else { 1.0 };
                    rec.agent_state(step, agent, reward, &json!({}))?;
                }
                rec.metric(step, "loss", 1.0 / (step as f64 + 1.0))?;
                rec.end_step(step)?;
            }
            rec.close()?;
            svc.complete_simulation(&sim.id, json!({}))?;
            ids.push(sim.id);
        }
        let server = Server::start(db)?;
        let get_json = |path: &str| -> Result<Value> {
            let (status, body) = server.get(path)?;
            assert_eq!(status, 200, "{path}: {body}");
            serde_json::from_str(&body).map_err(|e| invalid(format!("{path}: {e}")))
        };
        let three = format!("sim={}&sim={}&sim={}", ids[0], ids[2], ids[3]);
        let (status, page) = server.get(&format!("/compare?{three}"))?;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page.matches("<tr data-id=").count(), 3, "{page}");
        for field in ["reward", "loss"] {
            assert!(page.contains(&format!("data-field=\"{field}\"")), "no {field} chart");
        }
        // One line per run, per step (30 buckets for 30 steps).
        let data = get_json(&format!("/compare/charts/reward?{three}&buckets=30&format=json"))?;
        let lines = data["figure"]["lines"].as_array().cloned().unwrap_or_default();
        let labels: Vec<&str> = lines.iter().filter_map(|l| l["label"].as_str()).collect();
        assert_eq!(labels, vec!["lr=0.1, seed=1", "lr=0.2, seed=3", "lr=0.3, seed=4"]);
        for (line, (lr, seed)) in lines.iter().zip([(0.1, 1.0), (0.2, 3.0), (0.3, 4.0)]) {
            let points = line["points"].as_array().cloned().unwrap_or_default();
            assert_eq!(points.len(), 30);
            for p in &points {
                let (step, mean) = (p[0].as_f64().unwrap_or(-1.0), p[1].as_f64().unwrap_or(f64::NAN));
                assert!((mean - (lr * step + seed / 100.0)).abs() < 1e-9, "{line}");
            }
        }
        // A run keeps its colour in another selection.
        let colour = |data: &Value, label: &str| {
            data["figure"]["lines"].as_array().and_then(|ls| ls.iter().find(|l| l["label"] == label)).map(|l| l["color"].clone())
        };
        let two = get_json(&format!("/compare/charts/reward?sim={}&sim={}&format=json", ids[3], ids[0]))?;
        assert_eq!(colour(&two, "lr=0.3, seed=4"), colour(&data, "lr=0.3, seed=4"));
        assert_ne!(colour(&data, "lr=0.3, seed=4"), colour(&data, "lr=0.2, seed=3"));
        // Grouped by lr: three groups over the four runs, the mean of the
        // runs' means and their spread (the lr=0.1 runs differ by seed).
        let all = format!("sim={}&sim={}&sim={}&sim={}", ids[0], ids[1], ids[2], ids[3]);
        let grouped = get_json(&format!("/compare/charts/reward?{all}&group=lr&buckets=30&format=json"))?;
        let lines = grouped["figure"]["lines"].as_array().cloned().unwrap_or_default();
        let labels: Vec<&str> = lines.iter().filter_map(|l| l["label"].as_str()).collect();
        assert_eq!(labels, vec!["lr=0.1 (2 runs)", "lr=0.2 (1 run)", "lr=0.3 (1 run)"]);
        // A spread where a group has more than one run.
        let bands = grouped["figure"]["bands"].as_array().cloned().unwrap_or_default();
        assert_eq!(bands.len(), 1);
        assert_eq!(bands[0]["label"], "lr=0.1 (2 runs) spread");
        let step10 = |points: &Value| points.as_array().and_then(|ps| ps.iter().find(|p| p[0] == 10.0)).cloned();
        let mean = step10(&lines[0]["points"]).ok_or_else(|| invalid("no step 10".into()))?;
        assert!((mean[1].as_f64().unwrap_or(0.0) - (1.0 + 0.015)).abs() < 1e-9, "{mean}");
        let spread = step10(&bands[0]["points"]).ok_or_else(|| invalid("no step 10".into()))?;
        assert!((spread[1].as_f64().unwrap_or(0.0) - 1.01).abs() < 1e-9, "{spread}");
        assert!((spread[2].as_f64().unwrap_or(0.0) - 1.02).abs() < 1e-9, "{spread}");
        // The page offers the parameters to group by, and a filter selects
        // the runs as ticking them does.
        let (_, page) = server.get(&format!("/compare?experiment={}&group=lr", exp.id))?;
        assert_eq!(page.matches("<tr data-id=").count(), 4, "{page}");
        assert!(page.contains("<option value=\"lr\" selected>lr (differs)</option>"), "{page}");
        // Bad selections are 400 or 404, never a chart of something else.
        for (path, want) in [
            ("/compare/charts/reward".to_string(), 400),
            (format!("/compare/charts/reward?sim={}&sim={}", ids[0], "sim-nope"), 404),
            (format!("/compare/charts/reward?{three}&smooth=2"), 400),
            (format!("/compare/charts/reward?{three}&from=9&to=3"), 400),
        ] {
            let (status, body) = server.get(&path)?;
            assert_eq!(status, want, "{path}: {body}");
        }
        Ok(())
    }

    /// Issue 23: every chart's view — a step range, smoothing, a log scale
    /// — and its data as CSV and JSON, as drawn.
    fn charts_zoom_smooth_and_download_their_data(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..100i64 {
            for agent in 0..2 {
                rec.agent_state(step, agent, step as f64 - 10.0, &json!({}))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        let server = Server::start(db)?;
        let points = |body: &str| -> Result<Vec<(f64, f64)>> {
            let v: Value = serde_json::from_str(body).map_err(|e| invalid(e.to_string()))?;
            Ok(v["figure"]["lines"][0]["points"].as_array().cloned().unwrap_or_default().iter()
                .map(|p| (p[0].as_f64().unwrap_or(f64::NAN), p[1].as_f64().unwrap_or(f64::NAN))).collect())
        };
        let base = format!("/charts/{}/reward", sim.id);
        // Zoom: steps 20..=39 only, one bucket per step.
        let (status, body) = server.get(&format!("{base}?from=20&to=39&buckets=100&format=json"))?;
        assert_eq!(status, 200, "{body}");
        let zoomed = points(&body)?;
        assert_eq!(zoomed.iter().map(|p| p.0).collect::<Vec<_>>(), (20..40).map(f64::from).collect::<Vec<_>>());
        let frame: Value = serde_json::from_str::<Value>(&body).map_err(|e| invalid(e.to_string()))?["frame"].clone();
        assert!(frame["left"].as_i64() < frame["right"].as_i64() && frame["x0"] == 20.0 && frame["x1"] == 39.0, "{frame}");
        // Smoothing: an exponential moving average of the means.
        let (_, body) = server.get(&format!("{base}?from=20&to=39&buckets=100&smooth=0.5&format=json"))?;
        let smoothed = points(&body)?;
        let mut expected = zoomed[0].1;
        for (i, p) in smoothed.iter().enumerate() {
            if i > 0 {
                expected = 0.5 * expected + 0.5 * zoomed[i].1;
            }
            assert!((p.1 - expected).abs() < 1e-9, "{p:?} against {expected}");
        }
        // Log scale: drawn, values <= 0 left out of the drawing.
        let (status, svg) = server.get(&format!("{base}?log=1"))?;
        assert_eq!(status, 200, "{svg}");
        // CSV: a header and one row per point of each line and band.
        let (status, csv) = server.get(&format!("{base}?from=20&to=39&buckets=100&format=csv"))?;
        assert_eq!(status, 200, "{csv}");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("series,step,value,low,high"));
        assert!(csv.contains("\"mean, all agents\",20,10,,"), "{csv}");
        // Three lines of 20 points: all agents and each of the two kinds (no
        // band beside kind lines unless asked for).
        assert_eq!(csv.lines().count(), 1 + 20 * 3);
        // The page carries the view into its charts and download links.
        let (_, page) = server.get(&format!("/simulations/{}?from=20&to=39&smooth=0.5", sim.id))?;
        assert!(page.contains("/reward?from=20&amp;to=39&amp;smooth=0%2E5&amp;format=csv"), "{page}");
        for bad in ["?from=x", "?smooth=1.5", "?log=maybe", "?format=xml"] {
            let (status, _) = server.get(&format!("{base}{bad}"))?;
            assert_eq!(status, 400, "{bad}");
        }
        Ok(())
    }

    /// Issue 23: an agent up close: kind and policy, its state at a chosen
    /// step, its memory snapshots, and every field of it over steps.
    fn the_agent_page_shows_one_agent_up_close(db) {
        let svc = service(db);
        let sim = svc.create_simulation(NewSimulation::new(json!({})))?;
        svc.register_agents(&sim.id, &[NewAgent::new(0).kind("greedy").policy("ppo", 3), NewAgent::new(1).kind("random")])?;
        svc.start_simulation(&sim.id)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..20i64 {
            for agent in 0..2 {
                rec.agent_state(step, agent, step as f64 * 0.5 + f64::from(agent), &state(step, agent))?;
                rec.agent_metric(step, agent, "speed", f64::from(agent) + 2.0)?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        svc.record_memory(&sim.id, 7, 1, &simdb::NewAgentMemory { dtype: "f32".into(), shape: vec![2, 3], data: vec![0; 24] })?;
        let server = Server::start(db)?;
        let (status, page) = server.get(&format!("/simulations/{}/agents/1?step=7", sim.id))?;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<b id=\"kind\">random</b>"), "{page}");
        assert!(page.contains("&quot;energy&quot;: 2.75"), "state at step 7 as formatted JSON: {page}");
        assert!(page.contains("<td>7</td><td>f32</td><td><code>[2,3]</code></td><td>24</td>"), "{page}");
        for field in ["reward", "speed", "state.energy", "state.inventory.ore"] {
            assert!(page.contains(&format!("data-field=\"{field}\"")), "no chart of {field}");
        }
        let (_, page) = server.get(&format!("/simulations/{}/agents/0", sim.id))?;
        assert!(page.contains("ppo v3") && page.contains("State at step 19"), "default step is the watermark: {page}");
        // The agent's chart is its own values.
        let (status, body) = server.get(&format!("/charts/{}/agents/1/reward?format=json", sim.id))?;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).map_err(|e| invalid(e.to_string()))?;
        let got: Vec<f64> = v["figure"]["lines"][0]["points"].as_array().cloned().unwrap_or_default().iter().filter_map(|p| p[1].as_f64()).collect();
        assert_eq!(got, (0..20).map(|s| f64::from(s) * 0.5 + 1.0).collect::<Vec<_>>());
        for (path, want) in [
            (format!("/simulations/{}/agents/9", sim.id), 404),
            (format!("/simulations/{}/agents/1?step=-2", sim.id), 400),
            (format!("/charts/{}/agents/9/reward", sim.id), 404),
        ] {
            let (status, body) = server.get(&path)?;
            assert_eq!(status, want, "{path}: {body}");
        }
        Ok(())
    }

    /// Issue 23: the step inspector: every agent at one step (by default the
    /// watermark), sortable by any numeric state field, and a scatter of two
    /// of them with one dot per agent.
    fn the_step_inspector_shows_every_agent_at_a_step(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 5)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..12i64 {
            for agent in 0..5 {
                rec.agent_state(step, agent, f64::from(4 - agent), &json!({"pos": [agent, step], "energy": f64::from(agent * 7 % 5)}))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        let server = Server::start(db)?;
        let (status, page) = server.get(&format!("/simulations/{}/steps", sim.id))?;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<h1>Step 11 of"), "default is the watermark: {page}");
        assert_eq!(page.matches("<tr data-agent=").count(), 5);
        // Sorted by energy (0, 7%5=2, 14%5=4, 21%5=1, 28%5=3): agents 0 3 1 4 2.
        let (_, page) = server.get(&format!("/simulations/{}/steps?step=4&sort=energy", sim.id))?;
        let order: Vec<&str> = page.split("<tr data-agent=\"").skip(1).filter_map(|t| t.split('"').next()).collect();
        assert_eq!(order, vec!["0", "3", "1", "4", "2"]);
        let (_, page) = server.get(&format!("/simulations/{}/steps?step=4&sort=energy&desc=1", sim.id))?;
        let order: Vec<&str> = page.split("<tr data-agent=\"").skip(1).filter_map(|t| t.split('"').next()).collect();
        assert_eq!(order, vec!["2", "4", "1", "3", "0"]);
        assert!(page.contains("scatter?x=energy&amp;y=pos%2E0"), "{page}");
        // The scatter: a dot per agent, and one per kind in the legend.
        let (status, svg) = server.get(&format!("/charts/{}/steps/4/scatter?x=pos.0&y=pos.1", sim.id))?;
        assert_eq!(status, 200, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 5 + 2, "{svg}");
        let (_, page) = server.get(&format!("/simulations/{}/steps?step=50", sim.id))?;
        assert!(page.contains("No agent has a state at step 50"), "{page}");
        let (status, _) = server.get(&format!("/simulations/{}/steps?step=x", sim.id))?;
        assert_eq!(status, 400);
        Ok(())
    }

    fn live_in_a_real_browser(db) {
        let svc = service(db);
        let server = Server::start(db)?;
        let browser = Browser::start()?;

        // 1. The list page is open; a simulation created now appears.
        browser.go(&server.url("/"))?;
        let sim = running_sim(&svc, 4)?;
        browser.wait_for(&format!("!!document.querySelector('tr[data-id=\"{}\"]')", sim.id))?;

        // 2. Its page gains chart points (and agent rows) while the
        //    recorder commits steps.
        browser.go(&server.url(&format!("/simulations/{}", sim.id)))?;
        let options = RecorderOptions::default().flush_interval(Duration::from_millis(50));
        let mut rec = svc.recorder_with(&sim.id, options)?;
        let writer = std::thread::spawn(move || -> Result<()> {
            for step in 0..60 {
                for agent in 0..4 {
                    rec.agent_state(step, agent, (step + i64::from(agent)) as f64, &state(step, agent))?;
                }
                rec.end_step(step)?;
                std::thread::sleep(Duration::from_millis(40));
            }
            rec.close()
        });
        let points = "Number(document.querySelector('figure[data-field=\"reward\"]').dataset.points || 0)";
        browser.wait_for(&format!("{points} >= 5"))?;
        let first = browser.number(points)?;
        browser.wait_for(&format!("{points} > {first}"))?;
        writer.join().map_err(|_| Error::RecorderClosed)??;
        browser.wait_for(&format!("{points} >= 60"))?;
        // The agents table follows too: 60 rows for each agent.
        browser.wait_for(
            "Array.from(document.querySelectorAll('#agents tr td:nth-child(3)')).map(td => td.textContent).join(' ') === '60 60 60 60'",
        )?;
        let backend = match db.backend() {
            simdb::Backend::Sqlite => "sqlite",
            simdb::Backend::Postgres => "postgres",
        };
        browser.screenshot(&format!("dashboard-{backend}.png"))?;

        // 3. The compare page sorts by a parameter, both ways.
        let exp = svc.create_experiment(NewExperiment::new("sweep"))?;
        for lr in [0.3, 0.1, 0.2] {
            let s = svc.create_simulation(NewSimulation::new(json!({"lr": lr})).experiment(&exp.id))?;
            svc.register_agents(&s.id, &[NewAgent::new(0)])?;
        }
        browser.go(&server.url(&format!("/experiments/{}", exp.id)))?;
        let column = "Array.from(document.querySelectorAll('td[data-column=\"param:lr\"]')).map(td => td.textContent).join(' ')";
        browser.click("a[href*=\"sort=param%3Alr\"]")?;
        browser.wait_for(&format!("{column} === '0.1000 0.2000 0.3000'"))?;
        browser.click("a[href*=\"sort=param%3Alr\"]")?;
        browser.wait_for(&format!("{column} === '0.3000 0.2000 0.1000'"))?;
        Ok(())
    }
}

backend_tests! {
    /// Issue 23, in a real browser while a recorder writes: tick three runs
    /// (one with reserved characters in its id) on the list, open the
    /// comparison, group it by a parameter, read values under the mouse,
    /// zoom by dragging; open an agent page and the step inspector of the
    /// running simulation; click through ids with reserved characters.
    /// Screenshots under `target/`.
    fn compare_and_inspect_in_a_real_browser(db) {
        let svc = service(db);
        let exp = svc.create_experiment(NewExperiment::new("sweep"))?;
        let ids = ["sim-a/b?c#d é", "sim-lr-2", "sim-lr-3", "sim-100% & +"];
        for (i, (id, lr)) in ids.iter().zip([0.1, 0.2, 0.3, 0.1]).enumerate() {
            let sim = svc.create_simulation(
                NewSimulation::new(json!({"lr": lr, "seed": i})).id(SimulationId::new(*id)?).experiment(&exp.id).name(format!("run {i}")),
            )?;
            svc.register_agents(&sim.id, &[NewAgent::new(0).kind("a"), NewAgent::new(1).kind("b")])?;
            svc.start_simulation(&sim.id)?;
            let mut rec = svc.recorder(&sim.id)?;
            for step in 0..200i64 {
                for agent in 0..2 {
                    let reward = lr * (step as f64).sqrt() + f64::from(agent) * 0.1 + i as f64 * 0.01;
                    rec.agent_state(step, agent, reward, &state(step, agent))?;
                }
                rec.metric(step, "food", 100.0 / (1.0 + step as f64 * lr))?;
                rec.end_step(step)?;
            }
            rec.close()?;
            svc.complete_simulation(&sim.id, json!({}))?;
        }
        // A run that records while the browser looks.
        let live = running_sim(&svc, 4)?;
        let options = RecorderOptions::default().flush_interval(Duration::from_millis(50));
        let mut rec = svc.recorder_with(&live.id, options)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let writer = std::thread::spawn(move || -> Result<i64> {
            let mut step = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) && step < 2000 {
                for agent in 0..4 {
                    rec.agent_state(step, agent, (step + i64::from(agent)) as f64, &state(step, agent))?;
                }
                rec.end_step(step)?;
                step += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            rec.close()?;
            Ok(step)
        });
        let server = Server::start(db)?;
        let browser = Browser::start()?;
        let backend = match db.backend() {
            simdb::Backend::Sqlite => "sqlite",
            simdb::Backend::Postgres => "postgres",
        };
        let images_loaded = "Array.from(document.images).length > 0 && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)";

        // 1. Tick three runs on the list (the live refresh keeps them
        //    ticked) and compare them.
        browser.go(&server.url("/"))?;
        let chosen = [ids[0], ids[1], ids[2]];
        let list = serde_json::to_string(&chosen).map_err(|e| invalid(e.to_string()))?;
        browser.wait_for("document.querySelectorAll('input[name=sim]').length >= 5")?;
        browser.eval(&format!("Array.from(document.querySelectorAll('input[name=sim]')).filter(i => {list}.includes(i.value)).forEach(i => i.click()) || true"))?;
        // Survives a refresh of the list.
        std::thread::sleep(Duration::from_millis(1500));
        browser.wait_for("document.querySelectorAll('input[name=sim]:checked').length === 3")?;
        browser.click("#compare-form button")?;
        browser.wait_for("location.pathname === '/compare' && document.querySelectorAll('#runs tbody tr').length === 3")?;
        let shown = browser.eval("Array.from(document.querySelectorAll('#runs tbody tr')).map(tr => tr.dataset.id).sort()")?;
        let mut sorted = chosen;
        sorted.sort_unstable();
        assert_eq!(shown, json!(sorted));
        browser.wait_for(images_loaded)?;
        browser.screenshot(&format!("compare-{backend}.png"))?;

        // 2. Group by lr: a line per value.
        browser.eval("(document.querySelector('select[name=group]').value = 'lr', document.getElementById('group').submit(), true)")?;
        browser.wait_for("location.search.includes('group=lr')")?;
        browser.wait_for(images_loaded)?;
        let src = browser.eval("document.querySelector('figure[data-field=reward]').dataset.src")?;
        let (status, body) = server.get(&format!("{}&format=json", src.as_str().unwrap_or_default()))?;
        assert_eq!(status, 200, "{body}");
        let grouped: Value = serde_json::from_str(&body).map_err(|e| invalid(e.to_string()))?;
        let labels: Vec<&str> = grouped["figure"]["lines"].as_array().into_iter().flatten().filter_map(|l| l["label"].as_str()).collect();
        assert_eq!(labels, vec!["lr=0.1 (1 run)", "lr=0.2 (1 run)", "lr=0.3 (1 run)"]);
        browser.screenshot(&format!("compare-grouped-{backend}.png"))?;

        // 3. Values under the mouse, then a drag that zooms.
        let chart = browser.find("figure[data-field=reward] img")?;
        browser.pointer(&chart, &[("move", 100), ("pause", 0)])?;
        browser.wait_for("(document.querySelector('figure[data-field=reward] .hover').textContent || '').startsWith('step ')")?;
        let hover = browser.eval("document.querySelector('figure[data-field=reward] .hover').textContent")?;
        assert!(hover.as_str().unwrap_or_default().contains("lr=0.2 (1 run)"), "{hover}");
        browser.pointer(&chart, &[("move", -250), ("down", 0), ("move", -50), ("up", 0)])?;
        browser.wait_for("location.search.includes('from=') && location.search.includes('group=lr')")?;
        let from = browser.number("Number(new URLSearchParams(location.search).get('from'))")?;
        let to = browser.number("Number(new URLSearchParams(location.search).get('to'))")?;
        assert!(0.0 < from && from < to && to < 199.0, "zoomed to {from}..{to}");
        browser.wait_for(images_loaded)?;

        // 4. The running simulation's agent page and step inspector.
        browser.go(&server.url(&format!("/simulations/{}/agents/1", live.id)))?;
        browser.wait_for("document.getElementById('kind').textContent === 'b' && document.getElementById('state').textContent.includes('energy')")?;
        browser.wait_for(images_loaded)?;
        browser.screenshot(&format!("agent-{backend}.png"))?;
        browser.go(&server.url(&format!("/simulations/{}/steps", live.id)))?;
        browser.wait_for("document.querySelectorAll('#agents-at-step tbody tr').length === 4")?;
        let step = browser.number("Number(document.getElementById('step-box').value)")?;
        let watermark = browser.number("Number(document.getElementById('watermark').textContent)")?;
        assert_eq!(step, watermark, "the inspector opens at the watermark");
        browser.click("a[href*='sort=energy']")?;
        browser.wait_for("location.search.includes('sort=energy')")?;
        browser.wait_for(images_loaded)?;
        browser.screenshot(&format!("step-{backend}.png"))?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().map_err(|_| Error::RecorderClosed)??;

        // 5. Ids with reserved characters: click through from the list.
        for (i, id) in [(0, ids[0]), (3, ids[3])] {
            browser.go(&server.url("/"))?;
            browser.wait_for(&format!("!!Array.from(document.querySelectorAll('#simulations a')).find(a => a.textContent === 'run {i}')"))?;
            browser.eval(&format!("Array.from(document.querySelectorAll('#simulations a')).find(a => a.textContent === 'run {i}').click() || true"))?;
            browser.wait_for(&format!("document.querySelector('h1').textContent === 'run {i}'"))?;
            let code = browser.eval("document.querySelector('p code').textContent")?;
            assert_eq!(code, json!(id));
        }
        Ok(())
    }
}

/// Headless Chromium through chromedriver's W3C WebDriver API.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

fn chromedriver() -> Result<String> {
    [
        "chromedriver",
        "/usr/bin/chromedriver",
        "/usr/lib/chromium/chromedriver",
    ]
    .into_iter()
    .find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .map(str::to_string)
    .ok_or_else(|| {
        invalid(
            "chromedriver not found: apt-get install chromium chromium-driver (scripts/test does)"
                .into(),
        )
    })
}

impl Browser {
    fn start() -> Result<Browser> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| io("free port", e))?
            .port();
        let driver = Command::new(chromedriver()?)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io("chromedriver", e))?;
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"]}
        }}});
        let started = Instant::now();
        let session = loop {
            match ureq::post(&format!("{base}/session")).send_json(capabilities.clone()) {
                Ok(r) => {
                    let v: Value = r.into_json().map_err(|e| io("session", e))?;
                    break v["value"]["sessionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(invalid(format!("no WebDriver session: {e}"))),
            }
        };
        Ok(Browser {
            driver,
            base,
            session,
        })
    }

    fn command(&self, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let answer = ureq::post(&url)
            .send_json(body)
            .map_err(|e| invalid(format!("{path}: {e}")))?;
        let v: Value = answer.into_json().map_err(|e| io(path, e))?;
        Ok(v["value"].clone())
    }

    fn go(&self, url: &str) -> Result<()> {
        self.command("url", json!({ "url": url }))?;
        Ok(())
    }

    fn eval(&self, expression: &str) -> Result<Value> {
        self.command(
            "execute/sync",
            json!({ "script": format!("return ({expression});"), "args": [] }),
        )
    }

    fn number(&self, expression: &str) -> Result<f64> {
        self.eval(expression)?
            .as_f64()
            .ok_or_else(|| invalid(format!("not a number: {expression}")))
    }

    /// Polls `expression` until it is true (15 s at most).
    fn wait_for(&self, expression: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.eval(expression)? == Value::Bool(true) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(15) {
                let body = self.eval("document.body.innerText.slice(0, 2000)")?;
                return Err(invalid(format!(
                    "timed out waiting for {expression}; page: {body}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, selector: &str) -> Result<()> {
        let found = self.command(
            "element",
            json!({"using": "css selector", "value": selector}),
        )?;
        let element = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("no element {selector}")))?
            .to_string();
        self.command(&format!("element/{element}/click"), json!({}))?;
        Ok(())
    }

    /// The WebDriver reference of the first element `selector` finds.
    fn find(&self, selector: &str) -> Result<Value> {
        let found = self.command(
            "element",
            json!({"using": "css selector", "value": selector}),
        )?;
        if found
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k.starts_with("element-")))
        {
            Ok(found)
        } else {
            Err(invalid(format!("no element {selector}: {found}")))
        }
    }

    /// Mouse actions over `element`: ("move", x offset from its centre),
    /// ("down", _), ("up", _), ("pause", _).
    fn pointer(&self, element: &Value, steps: &[(&str, i64)]) -> Result<()> {
        let actions: Vec<Value> = steps
            .iter()
            .map(|(kind, x)| match *kind {
                "move" => json!({"type": "pointerMove", "duration": 50, "origin": element, "x": x, "y": 0}),
                "down" => json!({"type": "pointerDown", "button": 0}),
                "up" => json!({"type": "pointerUp", "button": 0}),
                _ => json!({"type": "pause", "duration": 100}),
            })
            .collect();
        self.command(
            "actions",
            json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": actions}]}),
        )?;
        Ok(())
    }

    /// Saves a PNG screenshot under `target/`.
    fn screenshot(&self, name: &str) -> Result<()> {
        use base64::Engine;
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let v: Value = ureq::get(&url)
            .call()
            .map_err(|e| invalid(format!("screenshot: {e}")))?
            .into_json()
            .map_err(|e| io("screenshot", e))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap_or_default())
            .map_err(|e| invalid(format!("screenshot: {e}")))?;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).map_err(|e| io("target", e))?;
        std::fs::write(dir.join(name), png).map_err(|e| io(name, e))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
