//! Read-back speed on the canonical data of the ingest bench (100 agents x
//! 10,000 steps = 1M agent states per simulation):
//! - one agent's 10,000-step reward series (target <= 20 ms), and with
//!   `SIMDB_BENCH_ROWS=10000000` the same query once the table holds 10M rows
//!   (9 more such simulations; target within 1.5x of the 1M figure);
//! - all agents' states at one step (target <= 2 ms, also at 10M rows),
//!   and the plans of both reads checked with EXPLAIN right after the load
//!   (no ANALYZE has run): each must read the state chunks by their primary
//!   key;
//! - a numeric state field (`state.hp`, decoded from the chunks in Rust):
//!   one agent's series, and its aggregates over all 1M states into 500
//!   buckets (target <= 1 s);
//! - step aggregates of the 1M rows into 500 buckets, read from the rollups
//!   written at ingest (target <= 20 ms, and <= 1.5x that at 10M rows);
//! - parameter search over 100,000 simulations with two conditions
//!   (target <= 50 ms), all matches and the first page of 50.
//!
//! `cargo bench --bench queries`; `SIMDB_BENCH_BACKENDS=sqlite` skips PostgreSQL.

use serde_json::json;
use simdb::test_support::TestDatabase;
use simdb::{
    Backend, NewAgent, NewSimulation, ParameterQuery, Simulation, SimulationFilter,
    SimulationService,
};

const AGENTS: i32 = 100;
const STEPS: i64 = 10_000;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

mod common;
use common::{bench_rows, median, selected_backends};

fn load(svc: &SimulationService) -> BenchResult<Simulation> {
    let sim = svc.create_simulation(NewSimulation::new(json!({"agents": AGENTS})))?;
    let agents: Vec<NewAgent> = (0..AGENTS)
        .map(|i| NewAgent::new(i).kind("bench"))
        .collect();
    svc.register_agents(&sim.id, &agents)?;
    let sim = svc.start_simulation(&sim.id)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..STEPS {
        common::canonical_step(&mut rec, step, AGENTS)?;
        rec.step(step, &json!({"alive": AGENTS}))?;
    }
    rec.close()?;
    Ok(sim)
}

/// Median time of all agents' states at one step (a different step each run).
fn at_step_ms(svc: &SimulationService, sim: &Simulation) -> BenchResult<f64> {
    let mut step = 0;
    let t = median(31, || {
        step = (step + 3_331) % STEPS;
        let states = svc.states_at_step(&sim.id, step)?;
        if states.len() != AGENTS as usize {
            return Err(format!("{} states at step {step}", states.len()).into());
        }
        Ok(())
    })?;
    Ok(t.as_secs_f64() * 1e3)
}

/// EXPLAIN of the two hot reads as simdb issues them (literals for binds):
/// errors unless both read the state chunks through their primary key.
fn check_plans(db: &TestDatabase, sim: &Simulation) -> BenchResult<String> {
    let k = sim.sim_key;
    let sqlite = db.backend() == Backend::Sqlite;
    let at_step = if sqlite {
        format!("SELECT s.* FROM simdb_agents a CROSS JOIN simdb_agent_state_chunks s ON s.sim_key = a.sim_key \
            AND s.agent_index = a.agent_index AND s.chunk = 78 WHERE a.sim_key = {k} ORDER BY a.agent_index")
    } else {
        format!("SELECT s.* FROM simdb_agents a CROSS JOIN LATERAL (SELECT * FROM simdb_agent_state_chunks x \
            WHERE x.sim_key = a.sim_key AND x.agent_index = a.agent_index AND x.chunk = 78 LIMIT 1) s \
            WHERE a.sim_key = {k} ORDER BY a.agent_index")
    };
    let reads = [
        at_step,
        format!("SELECT chunk, present, rewards FROM simdb_agent_state_chunks WHERE sim_key = {k} AND agent_index = 42 AND chunk BETWEEN 0 AND 156 ORDER BY chunk"),
    ];
    let mut summary = Vec::new();
    for sql in reads {
        let plan = db
            .plan(&sql)?
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join("; ");
        let by_key = if sqlite {
            plan.contains(
                "INDEX sqlite_autoindex_simdb_agent_state_chunks_1 (sim_key=? AND agent_index=?",
            ) && !plan.contains("SCAN ")
        } else {
            plan.contains("agent_state_chunks_pkey")
                && !plan.contains("Seq Scan")
                && plan
                    .split("; ")
                    .filter(|l| l.contains("Cond:") && l.contains("chunk"))
                    .all(|l| l.contains("agent_index"))
        };
        if !by_key {
            return Err(format!("not a primary-key read: {sql}\n{plan}").into());
        }
        summary.push(plan.split("; ").next().unwrap_or("").to_string());
    }
    Ok(summary.join(" | "))
}

fn series_ms(svc: &SimulationService, sim: &Simulation) -> BenchResult<f64> {
    let analytics = svc.analytics();
    let mut agent = 0;
    let t = median(31, || {
        agent = (agent + 37) % AGENTS;
        let series = analytics.agent_series(&sim.id, agent, "reward", ..)?;
        if series.len() != STEPS as usize {
            return Err(format!("series has {} points", series.len()).into());
        }
        Ok(())
    })?;
    Ok(t.as_secs_f64() * 1e3)
}

/// 100,000 simulations with `{"opt": {"name", "lr"}, "seed"}` parameters,
/// inserted in bulk; returns the median time of a two-condition search
/// returning every match, and of its first page of 50.
fn search_ms(backend: Backend) -> BenchResult<(f64, f64, f64, usize)> {
    let db = TestDatabase::new(backend)?;
    let bulk = match backend {
        Backend::Sqlite => "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
            INSERT INTO simdb_simulations (sim_key, id, status, parameters, created_at)
            SELECT i, 'search-' || i, 'completed',
                   json_object('opt', json_object('name', CASE WHEN i % 2 = 0 THEN 'adam' ELSE 'sgd' END,
                                                  'lr', (i % 1000) / 10000.0), 'seed', i),
                   '2026-01-01 00:00:00.000000+00:00' FROM n",
        _ => "INSERT INTO simdb_simulations (sim_key, id, status, parameters, created_at)
            SELECT i, 'search-' || i, 'completed',
                   jsonb_build_object('opt', jsonb_build_object('name', CASE WHEN i % 2 = 0 THEN 'adam' ELSE 'sgd' END,
                                                                'lr', (i % 1000) / 10000.0), 'seed', i),
                   now() FROM generate_series(1, 100000) AS i; ANALYZE simdb_simulations",
    };
    simdb::with_connection!(db.database().writer()?, |c| {
        use simdb::diesel::connection::SimpleConnection;
        c.batch_execute(bulk)?;
    });
    let analytics = SimulationService::new(db.database().clone()).analytics();
    let query = ParameterQuery::default()
        .equals("opt.name", json!("adam"))
        .range("opt.lr", Some(1e-4), Some(1e-2));
    let mut found = 0;
    let all = median(7, || {
        found = analytics.find_simulations(&query)?.len();
        Ok(())
    })?;
    let mut page_query = query.clone();
    page_query.filter = SimulationFilter::new().limit(50);
    let page = median(7, || {
        let n = analytics.find_simulations(&page_query)?.len();
        if n != 50 {
            return Err(format!("page of {n}").into());
        }
        Ok(())
    })?;
    // The database's own floor for "every match": one hand-written scan
    // counting the matches, no rows returned.
    let raw = match backend {
        Backend::Sqlite => {
            "SELECT count(*) AS n FROM simdb_simulations
            WHERE json_extract(parameters, '$.opt.name') = 'adam'
              AND json_extract(parameters, '$.opt.lr') BETWEEN 0.0001 AND 0.01"
        }
        _ => {
            "SELECT count(*) AS n FROM simdb_simulations
            WHERE parameters #>> '{opt,name}' = 'adam'
              AND (parameters #>> '{opt,lr}')::float8 BETWEEN 0.0001 AND 0.01"
        }
    };
    #[derive(simdb::diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = simdb::diesel::sql_types::BigInt)]
        n: i64,
    }
    let scan = median(7, || {
        simdb::with_connection!(db.database().connection()?, |c| {
            use simdb::diesel::RunQueryDsl;
            let counted: Count = simdb::diesel::sql_query(raw).get_result(c)?;
            if counted.n != found as i64 {
                return Err(format!("raw scan counted {} of {found}", counted.n).into());
            }
        });
        Ok(())
    })?;
    Ok((
        all.as_secs_f64() * 1e3,
        page.as_secs_f64() * 1e3,
        scan.as_secs_f64() * 1e3,
        found,
    ))
}

fn main() -> BenchResult<()> {
    let rows = bench_rows();
    for (backend, name) in selected_backends("sqlite,postgres") {
        let db = TestDatabase::new(backend)?;
        let svc = SimulationService::new(db.database().clone());
        let sim = load(&svc)?;
        // Right after the load, before anything has analyzed the tables.
        let plans = check_plans(&db, &sim)?;
        println!("{name}: plans right after the load: {plans}");
        let at_step_1m = at_step_ms(&svc, &sim)?;
        let series_1m = series_ms(&svc, &sim)?;
        let analytics = svc.analytics();
        let agg = median(5, || {
            let buckets = analytics.step_aggregates(&sim.id, "reward", 500)?;
            if buckets.len() != 500 {
                return Err(format!("{} buckets", buckets.len()).into());
            }
            Ok(())
        })?;
        println!(
            "{name}: agent series (10,000 steps) from 1M rows: {series_1m:.2} ms (ceiling 20 ms)"
        );
        println!("{name}: all {AGENTS} agents at one step from 1M rows: {at_step_1m:.2} ms (ceiling 2 ms)");
        println!(
            "{name}: step aggregates of 1M rows into 500 buckets: {:.1} ms",
            agg.as_secs_f64() * 1e3
        );
        let state_series = median(11, || {
            let series = analytics.agent_series(&sim.id, 7, "state.hp", ..)?;
            if series.len() != STEPS as usize {
                return Err(format!("state series has {} points", series.len()).into());
            }
            Ok(())
        })?
        .as_secs_f64()
            * 1e3;
        let state_agg = median(3, || {
            let buckets = analytics.step_aggregates(&sim.id, "state.hp", 500)?;
            if buckets.len() != 500
                || buckets.iter().map(|b| b.count).sum::<i64>() != STEPS * AGENTS as i64
            {
                return Err(format!("{} state buckets", buckets.len()).into());
            }
            Ok(())
        })?
        .as_secs_f64()
            * 1e3;
        println!("{name}: state.hp, decoded from the chunks: one agent's series {state_series:.1} ms, aggregates of all 1M states into 500 buckets {state_agg:.0} ms (ceiling 1000 ms)");
        let (search_all, search_page, search_scan, found) = search_ms(backend)?;
        println!("{name}: search of 100,000 simulations, two conditions: {search_all:.1} ms for all {found} matches (the database's own counting scan: {search_scan:.1} ms), {search_page:.1} ms for the first 50 (ceiling 50 ms)");
        let mut line = format!("RESULT backend={name} series_1m_ms={series_1m:.2} ceiling_ms=20 aggregates_1m_500_ms={:.1} search_100k_ms={search_all:.1} search_100k_page_ms={search_page:.1} search_100k_raw_scan_ms={search_scan:.1} search_ceiling_ms=50 at_step_1m_ms={at_step_1m:.2} at_step_ceiling_ms=2 state_series_1m_ms={state_series:.1} state_aggregates_1m_500_ms={state_agg:.0} state_ceiling_ms=1000", agg.as_secs_f64() * 1e3);
        if rows >= 10_000_000 {
            for _ in 1..rows / 1_000_000 {
                load(&svc)?;
            }
            check_plans(&db, &sim)?;
            let at_step_10m = at_step_ms(&svc, &sim)?;
            println!("{name}: all {AGENTS} agents at one step with {rows} rows in the table: {at_step_10m:.2} ms (ceiling 2 ms)");
            line.push_str(&format!(" at_step_10m_ms={at_step_10m:.2}"));
            let agg_10m = median(5, || {
                let buckets = analytics.step_aggregates(&sim.id, "reward", 500)?;
                if buckets.len() != 500 {
                    return Err(format!("{} buckets", buckets.len()).into());
                }
                Ok(())
            })?
            .as_secs_f64()
                * 1e3;
            println!("{name}: step aggregates into 500 buckets with {rows} rows in the table: {agg_10m:.1} ms ({:.2}x the 1M figure, ceiling 1.5x)", agg_10m / (agg.as_secs_f64() * 1e3));
            line.push_str(&format!(" aggregates_10m_500_ms={agg_10m:.1}"));
            let series_10m = series_ms(&svc, &sim)?;
            println!("{name}: agent series (10,000 steps) with {rows} rows in the table: {series_10m:.2} ms ({:.2}x the 1M figure, ceiling 1.5x)", series_10m / series_1m);
            line.push_str(&format!(
                " series_10m_ms={series_10m:.2} ratio_10m={:.2}",
                series_10m / series_1m
            ));
        }
        println!("{line}");
    }
    Ok(())
}
