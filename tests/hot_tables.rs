//! The hot-table design (issue 13): `agent_state_chunks`, `agent_metric_chunks` and
//! `agent_memories` keep only their primary key. What the dropped foreign
//! keys guaranteed is kept by simdb itself — no row of an unregistered agent
//! can be written through the API, and deleting a simulation leaves nothing
//! behind, even while its recorder is writing — and the reads that the
//! by-step index served still take the primary key, right after a bulk load
//! (checked with EXPLAIN). Every test on both backends.

mod common;
use common::*;

use std::time::Duration;

use simdb::diesel::prelude::*;
use simdb::{Backend, NewAgentMemory, RecorderOptions};

/// Rows with this simulation's key in every table that has one.
fn rows_left(db: &TestDatabase, sim_key: i32) -> Result<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = simdb::diesel::sql_types::BigInt)]
        n: i64,
    }
    let tables = [
        "simdb_agent_memories",
        "simdb_simulation_steps",
        "simdb_step_metrics",
        "simdb_agents",
        "simdb_events",
        "simdb_simulation_tags",
        "simdb_simulations",
        "simdb_step_rollups",
        "simdb_block_rollups",
        "simdb_agent_totals",
        "simdb_pending_deletes",
    ];
    // Agent states and agent metric values are counted inside their chunks.
    let (states, metrics) = chunked_counts(db, Some(sim_key))?;
    let mut total = states + metrics;
    for table in tables {
        let sql = format!("SELECT count(*) AS n FROM {table} WHERE sim_key = {sim_key}");
        let n: N = simdb::with_connection!(db.database().connection()?, |c| {
            simdb::diesel::sql_query(&sql).get_result(c)?
        });
        total += n.n;
    }
    Ok(total)
}

fn is_not_found(r: Result<()>) -> bool {
    matches!(
        r,
        Err(Error::NotFound {
            entity: "agent",
            ..
        })
    )
}

/// The plan of `sql`, one node per line.
fn plan(db: &TestDatabase, sql: &str) -> Result<String> {
    Ok(db.plan(sql)?.join("\n"))
}

/// Asserts a plan reads `table` through its primary key and never scans it.
fn assert_primary_key(db: &TestDatabase, table: &str, plan: &str) {
    match db.backend() {
        Backend::Sqlite => {
            // The hot table (maybe under an alias) is searched by a key
            // prefix that reaches the agent; nothing is scanned. (A rowid
            // table's primary key is its autoindex: the state chunks.)
            let autoindex = format!("INDEX sqlite_autoindex_simdb_{table}_1 (sim_key=? AND");
            assert!(
                plan.lines()
                    .any(|l| (l.contains("USING PRIMARY KEY (sim_key=? AND")
                        || l.contains(&autoindex))
                        && l.contains("agent_index=?")),
                "{table} not searched by its primary key:\n{plan}"
            );
            assert!(!plan.lines().any(|l| l.starts_with("SCAN")), "{plan}");
        }
        Backend::Postgres => {
            assert!(
                plan.contains(&format!("{table}_pkey")),
                "{table} not read through {table}_pkey:\n{plan}"
            );
            assert!(
                !plan.contains(&format!("Seq Scan on simdb_{table}")),
                "{plan}"
            );
            // A key range that skips the agent (sim_key and step only) is a
            // scan of the whole simulation in disguise.
            for line in plan
                .lines()
                .filter(|l| l.contains("Cond:") && l.contains("step"))
            {
                assert!(
                    line.contains("agent_index"),
                    "the probe skips the agent:\n{plan}"
                );
            }
        }
    }
}

backend_tests! {
    fn no_row_of_an_unregistered_agent_can_be_written(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 2)?;
        // The one-row facade: states, agent metrics, memories.
        assert!(is_not_found(svc.record_agent_state(&sim.id, 0, 7, 1.0, &json!({}))));
        assert!(is_not_found(svc.record_metric(&sim.id, 0, Some(AgentIndex(7)), "m", 1.0)));
        let memory = NewAgentMemory::from_f32(vec![2], &[1.0, 2.0]);
        assert!(is_not_found(svc.record_memory(&sim.id, 0, 7, &memory)));
        // The recorder refuses before anything is queued.
        let mut rec = svc.recorder(&sim.id)?;
        assert!(matches!(
            rec.agent_state(0, 7, 1.0, &json!({})),
            Err(Error::NotFound { entity: "agent", .. })
        ));
        assert!(matches!(
            rec.agent_metric(0, 7, "m", 1.0),
            Err(Error::NotFound { entity: "agent", .. })
        ));
        // A registered agent still records through every path.
        rec.agent_state(0, 1, 1.0, &json!({}))?;
        rec.agent_metric(0, 1, "m", 1.0)?;
        rec.close()?;
        svc.record_agent_state(&sim.id, 1, 1, 1.0, &json!({}))?;
        svc.record_memory(&sim.id, 1, 1, &memory)?;
        assert_eq!(table_counts(db, sim.sim_key)?, (2, 0, 0, 1, 1));
        // And nothing of agent 7 exists anywhere.
        let orphans = simdb::with_connection!(db.database().connection()?, |c| {
            use simdb::schema::*;
            agent_state_chunks::table.filter(agent_state_chunks::agent_index.eq(7)).count().get_result::<i64>(c)?
                + agent_metric_chunks::table.filter(agent_metric_chunks::agent_index.eq(7)).count().get_result::<i64>(c)?
                + agent_memories::table.filter(agent_memories::agent_index.eq(7)).count().get_result::<i64>(c)?
        });
        assert_eq!(orphans, 0);
        Ok(())
    }

    fn delete_simulation_leaves_nothing_behind(db) {
        let svc = service(db);
        let keep = running_sim(&svc, 2)?;
        let sim = running_sim(&svc, 3)?;
        for s in [&keep, &sim] {
            let mut rec = svc.recorder(&s.id)?;
            for step in 0..50 {
                for agent in 0..2 {
                    rec.agent_state(step, agent, 0.5, &state(step, agent))?;
                    rec.agent_metric(step, agent, "energy", 1.0)?;
                }
                rec.metric(step, "food", 3.0)?;
                rec.step(step, &json!({"alive": 2}))?;
            }
            rec.memory(10, 1, NewAgentMemory::from_f32(vec![1], &[1.0]))?;
            rec.close()?;
        }
        let kept = table_counts(db, keep.sim_key)?;
        assert!(rows_left(db, sim.sim_key)? > 300);
        svc.delete_simulation(&sim.id)?;
        assert_eq!(rows_left(db, sim.sim_key)?, 0, "rows of the deleted run remain");
        assert_eq!(table_counts(db, keep.sim_key)?, kept, "another run lost rows");
        Ok(())
    }

    /// Issue 24: a delete removes a run's chunks, memories and rollups in
    /// bounded transactions (other writers go on between them). Cut short
    /// after two of them, as a crash would: the run is gone at once, its
    /// key waits in `pending_deletes` with some rows, and the next delete
    /// (of another run) removes them; no other run loses a row.
    fn a_delete_cut_short_is_finished_by_the_next_one(db) {
        let svc = service(db);
        let keep = running_sim(&svc, 2)?;
        let big = running_sim(&svc, 50)?;
        let other = running_sim(&svc, 2)?;
        // 50 agents x 4,000 steps: 3,150 state chunk rows and 12,000 step
        // rollups, more than one transaction's worth of each.
        let mut rec = svc.recorder(&big.id)?;
        for step in 0..4000 {
            for agent in 0..50 {
                rec.agent_state(step, agent, 0.25, &json!({"e": step}))?;
            }
            if step == 10 {
                rec.memory(10, 1, NewAgentMemory::from_f32(vec![1], &[1.0]))?;
            }
            rec.end_step(step)?;
        }
        rec.close()?;
        for s in [&keep, &other] {
            let mut rec = svc.recorder(&s.id)?;
            for step in 0..20 {
                for agent in 0..2 {
                    rec.agent_state(step, agent, 0.5, &state(step, agent))?;
                    rec.agent_metric(step, agent, "energy", 1.0)?;
                }
            }
            rec.close()?;
        }
        let kept = table_counts(db, keep.sim_key)?;
        let before = rows_left(db, big.sim_key)?;
        svc.delete_simulation_cut_short_for_tests(&big.id, 2)?;
        assert!(matches!(svc.simulation(&big.id), Err(Error::NotFound { entity: "simulation", .. })), "the run is gone at once");
        let left = rows_left(db, big.sim_key)?;
        assert!(left > 0 && left < before, "{left} of {before} rows left");
        // The next delete finishes it first.
        svc.delete_simulation(&other.id)?;
        assert_eq!(rows_left(db, big.sim_key)?, 0, "rows of the deleted run remain");
        assert_eq!(rows_left(db, other.sim_key)?, 0);
        assert_eq!(table_counts(db, keep.sim_key)?, kept, "another run lost rows");
        Ok(())
    }

    fn delete_while_recording_leaves_nothing_behind(db) {
        // The recorder commits batch after batch from its writer thread
        // while the run is deleted: whichever batch raced the delete either
        // committed first (and is deleted with the run) or finds the run
        // gone; no row survives.
        let svc = service(db);
        let sim = running_sim(&svc, 4)?;
        let options = RecorderOptions::default().batch_rows(40);
        let mut rec = svc.recorder_with(&sim.id, options)?;
        let writer = std::thread::spawn(move || -> Result<i64> {
            let mut step = 0;
            loop {
                for agent in 0..4 {
                    if rec.agent_state(step, agent, 1.0, &state(step, agent)).is_err() {
                        return Ok(step);
                    }
                    if rec.agent_metric(step, agent, "m", 1.0).is_err() {
                        return Ok(step);
                    }
                }
                if rec.end_step(step).is_err() {
                    return Ok(step);
                }
                step += 1;
                if step > 200_000 {
                    return Ok(step);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        svc.delete_simulation(&sim.id)?;
        let reached = writer.join().map_err(|_| Error::RecorderClosed)??;
        assert!(reached > 0 && reached < 200_000, "the recorder never noticed: {reached}");
        assert_eq!(rows_left(db, sim.sim_key)?, 0, "rows outlived their run");
        Ok(())
    }

    fn hot_reads_take_the_primary_key_after_a_bulk_load(db) {
        // 100 agents x 1,000 steps, queried at once: no ANALYZE has run.
        let svc = service(db);
        let sim = running_sim(&svc, 100)?;
        let mut rec = svc.recorder(&sim.id)?;
        for step in 0..1000 {
            for agent in 0..100 {
                rec.agent_state(step, agent, 1.0, &state(step, agent))?;
                rec.agent_metric(step, agent, "energy", 1.0)?;
            }
        }
        rec.close()?;
        assert_eq!(svc.states_at_step(&sim.id, 500)?.len(), 100);
        let k = sim.sim_key;
        // The statements simdb issues (see store/agent_keys.rs, analytics/series.rs),
        // with literals for binds.
        let at_step = match db.backend() {
            Backend::Sqlite => "SELECT s.sim_key, s.agent_index, s.chunk, s.present, s.rewards, s.states \
                FROM simdb_agents a CROSS JOIN simdb_agent_state_chunks s ON s.sim_key = a.sim_key \
                AND s.agent_index = a.agent_index AND s.chunk = ?2 WHERE a.sim_key = ?1 ORDER BY a.agent_index",
            Backend::Postgres => "SELECT s.sim_key, s.agent_index, s.chunk, s.present, s.rewards, s.states \
                FROM simdb_agents a CROSS JOIN LATERAL (SELECT * FROM simdb_agent_state_chunks x \
                WHERE x.sim_key = a.sim_key AND x.agent_index = a.agent_index AND x.chunk = $2 LIMIT 1) s \
                WHERE a.sim_key = $1 ORDER BY a.agent_index",
        };
        let at_step = at_step.replace("?1", &k.to_string()).replace("$1", &k.to_string())
            .replace("?2", "7").replace("$2", "7");
        let cases = [
            ("agent_state_chunks", at_step),
            ("agent_state_chunks", format!(
                "SELECT chunk, present, rewards FROM simdb_agent_state_chunks \
                 WHERE sim_key = {k} AND agent_index = 42 AND chunk BETWEEN 0 AND 15 ORDER BY chunk"
            )),
            ("agent_metric_chunks", format!(
                "SELECT chunk, present, vals FROM simdb_agent_metric_chunks WHERE sim_key = {k} AND metric_id = 1 \
                 AND agent_index = 42 AND chunk BETWEEN 0 AND 15 ORDER BY chunk"
            )),
            ("agent_state_chunks", format!(
                "SELECT (SELECT MAX(s.chunk) FROM simdb_agent_state_chunks s WHERE s.sim_key = a.sim_key \
                 AND s.agent_index = a.agent_index) FROM simdb_agents a WHERE a.sim_key = {k}"
            )),
        ];
        for (table, sql) in cases {
            let p = plan(db, &sql)?;
            assert_primary_key(db, table, &p);
        }
        Ok(())
    }
}
