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
        let mut child = Command::new(env!("CARGO_BIN_EXE_simdb"))
            .arg("serve")
            .args(args)
            .env("SIMDB_DATABASE_URL", db.url())
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
