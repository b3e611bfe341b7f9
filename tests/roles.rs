//! Least privilege on a shared PostgreSQL, with real roles and real grants:
//! the owner migrates; a recorder (USAGE on the schema, SELECT, INSERT,
//! UPDATE, DELETE on simdb's tables) records, resumes and deletes without
//! any DDL or CREATE right; a reader (USAGE, SELECT) reads with
//! `read_only(true)`; what a role cannot do is refused at open with
//! `Error::Privilege` naming the missing privilege. And an open is all or
//! nothing: a schema name taken by the host is refused untouched.

mod common;
use common::fixtures::Host;
use common::*;

use std::time::Duration;

use simdb::diesel::prelude::*;
use simdb::diesel::sql_types::Text;

/// Login roles made for one test, dropped with it.
struct Roles {
    admin: String,
    database: String,
    names: Vec<String>,
}

impl Roles {
    fn new(db: &TestDatabase) -> Roles {
        let database = db.url().rsplit('/').next().unwrap_or_default().to_string();
        Roles {
            admin: db.url().to_string(),
            database,
            names: Vec::new(),
        }
    }

    /// A new login role with `grants` (`{role}` stands for its name), and a
    /// URL of the test database as that role.
    fn create(&mut self, label: &str, grants: &str) -> Result<String> {
        let name = format!("simdb_{label}_{}", self.database.replace('-', "_"));
        let name: String = name.chars().take(63).collect();
        let mut host = Host::open(&self.admin)?;
        host.run(&format!(
            "DROP ROLE IF EXISTS \"{name}\"; CREATE ROLE \"{name}\" LOGIN PASSWORD 'pw'; {}",
            grants.replace("{role}", &format!("\"{name}\""))
        ))?;
        self.names.push(name.clone());
        let (scheme, rest) = self.admin.split_once("://").unwrap_or(("postgres", ""));
        let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        Ok(format!("{scheme}://{name}:pw@{host_part}"))
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        if let Ok(mut host) = Host::open(&self.admin) {
            for name in &self.names {
                // Every session of the role first (pools linger), then its
                // grants in this database, then the role.
                let _ = host.run(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}';
                     DROP OWNED BY \"{name}\"; DROP ROLE IF EXISTS \"{name}\""
                ));
            }
        }
    }
}

const RECORDER: &str = "GRANT USAGE ON SCHEMA simdb TO {role};
     GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA simdb TO {role};
     GRANT USAGE ON ALL SEQUENCES IN SCHEMA simdb TO {role};";
const READER: &str = "GRANT USAGE ON SCHEMA simdb TO {role};
     GRANT SELECT ON ALL TABLES IN SCHEMA simdb TO {role};";

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Relation {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Every relation outside the system schemas, as `schema.name`.
/// A connection to `url`.
fn connect(url: &str) -> Result<PgConnection> {
    <PgConnection as Connection>::establish(url).map_err(|e| Error::Connection {
        url: "test".into(),
        message: e.to_string(),
    })
}

fn relations(url: &str) -> Result<Vec<Relation>> {
    let mut c = connect(url)?;
    Ok(simdb::diesel::sql_query(
        "SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1",
    )
    .load(&mut c)?)
}

fn privilege(result: Result<Database>) -> String {
    match result {
        Err(Error::Privilege { privilege, .. }) => privilege,
        Err(e) => panic!("expected Error::Privilege, got {e:?}"),
        Ok(_) => panic!("expected Error::Privilege, the open succeeded"),
    }
}

#[test]
fn a_recorder_role_records_resumes_and_deletes_without_ddl() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let mut roles = Roles::new(&db);
    // The case: even CREATE on the schema, and none on the database.
    let url = roles.create(
        "rec",
        &format!("{RECORDER} GRANT CREATE ON SCHEMA simdb TO {{role}};"),
    )?;
    let before = relations(db.url())?;
    let svc = SimulationService::new(Database::open(&url)?);
    let sim = running_sim(&svc, 2)?;
    let options = simdb::RecorderOptions::default().lease_timeout(Duration::from_secs(1));
    let mut rec = svc.recorder_with(&sim.id, options)?;
    for step in 0..30 {
        rec.agent_state(step, 0, 1.0, &state(step, 0))?;
        rec.agent_metric(step, 1, "energy", 2.0)?;
        rec.end_step(step)?;
    }
    rec.flush()?;
    rec.crash_for_tests();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        svc.recover_stale(Duration::from_secs(1))?,
        vec![sim.id.clone()]
    );
    let point = svc.resume_with(&sim.id, Duration::from_secs(1))?;
    assert_eq!(point.last_complete_step, Some(29));
    svc.complete_simulation(&sim.id, json!({"ok": true}))?;
    assert_eq!(svc.analytics().summary(&sim.id)?.agent_state_rows, 30);
    svc.delete_simulation(&sim.id)?;
    // A second open of a current schema: still no DDL.
    drop(Database::open(&url)?);
    assert_eq!(
        relations(db.url())?,
        before,
        "a recorder's open changed the schema"
    );
    Ok(())
}

#[test]
fn a_reader_role_reads_and_is_told_what_it_lacks_to_record() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let svc = service(&db);
    let sim = running_sim(&svc, 2)?;
    svc.record_agent_state(&sim.id, 0, 0, 1.5, &json!({}))?;
    let mut roles = Roles::new(&db);
    let url = roles.create("read", READER)?;
    let reader = SimulationService::new(Database::builder(&url).read_only(true).open()?);
    assert_eq!(reader.analytics().summary(&sim.id)?.agent_state_rows, 1);
    assert_eq!(reader.agent_states(&sim.id, 0, ..)?.len(), 1);
    let missing = privilege(Database::open(&url));
    assert!(
        missing.starts_with("DELETE on simdb.simdb_")
            || missing.starts_with("INSERT on simdb.simdb_"),
        "{missing}"
    );
    // Writes through a read-only open are refused, and change nothing.
    assert!(reader.complete_simulation(&sim.id, json!({})).is_err());
    assert_eq!(svc.simulation(&sim.id)?.status, SimulationStatus::Running);
    Ok(())
}

/// `simdb_agent_metric_chunks` as the release before
/// `2026-12-09-000001_metric_chunks_int8_first` left it (its columns in
/// their first order, its rows kept), that migration not yet applied.
const PREVIOUS_METRIC_CHUNKS: &str =
    "CREATE TEMP TABLE kept AS SELECT * FROM simdb.simdb_agent_metric_chunks;
     DROP TABLE simdb.simdb_agent_metric_chunks;
     CREATE TABLE simdb.simdb_agent_metric_chunks (
         sim_key INTEGER NOT NULL, metric_id INTEGER NOT NULL, agent_index INTEGER NOT NULL,
         chunk BIGINT NOT NULL CHECK (chunk >= 0), present BIGINT NOT NULL CHECK (present <> 0),
         vals BYTEA NOT NULL, PRIMARY KEY (sim_key, metric_id, agent_index, chunk));
     INSERT INTO simdb.simdb_agent_metric_chunks (sim_key, metric_id, agent_index, chunk, present, vals)
         SELECT sim_key, metric_id, agent_index, chunk, present, vals FROM kept;
     DELETE FROM simdb.simdb_migrations WHERE version = '20261209000001';";

/// The rebuild meets writers of the previous release: a chunk inserted in
/// a transaction still open when the upgrade starts is copied (the upgrade
/// waits for it), and a chunk inserted while the upgrade waits lands in the
/// new table once it is done. Nothing is lost.
#[test]
fn an_upgrade_that_rebuilds_a_table_loses_no_concurrent_write() -> Result<()> {
    use simdb::diesel::connection::SimpleConnection;
    let db = TestDatabase::postgres()?;
    let svc = service(&db);
    let sim = running_sim(&svc, 2)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..64 {
        rec.agent_metric(step, 1, "energy", step as f64)?;
        rec.end_step(step)?;
    }
    rec.close()?;
    common::fixtures::host(db.url(), PREVIOUS_METRIC_CHUNKS)?;
    let copy_chunk = |chunk: i64| {
        format!(
            "INSERT INTO simdb.simdb_agent_metric_chunks (sim_key, metric_id, agent_index, chunk, present, vals) \
             SELECT sim_key, metric_id, agent_index, {chunk}, present, vals FROM simdb.simdb_agent_metric_chunks \
             WHERE chunk = 0"
        )
    };
    // The first writer's transaction is open when the upgrade starts.
    let mut first = connect(db.url())?;
    first.batch_execute(&format!("BEGIN; {}", copy_chunk(5)))?;
    let url = db.url().to_string();
    let upgrade =
        std::thread::spawn(move || Database::open(&url).and_then(|d| d.applied_migrations()));
    let mut watch = connect(db.url())?;
    let waiting = |watch: &mut PgConnection, n: i64| -> Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r: Relation = simdb::diesel::sql_query(
                "SELECT count(*)::text AS name FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .get_result(watch)?;
            if r.name.parse::<i64>().unwrap_or(0) >= n {
                return Ok(());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{n} sessions never waited"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // The upgrade waits for the first writer...
    waiting(&mut watch, 1)?;
    // ...and a second writer, arriving now, waits behind the upgrade.
    let url = db.url().to_string();
    let second_sql = copy_chunk(6);
    let second = std::thread::spawn(move || -> Result<()> {
        let mut c = connect(&url)?;
        c.batch_execute(&second_sql)?;
        Ok(())
    });
    waiting(&mut watch, 2)?;
    first.batch_execute("COMMIT")?;
    let Ok(applied) = upgrade.join() else {
        panic!("the upgrade panicked");
    };
    let applied = applied?;
    assert!(applied.iter().any(|v| v == "20261209000001"), "{applied:?}");
    let Ok(second) = second.join() else {
        panic!("the second writer panicked");
    };
    second?;
    let chunks: Relation = simdb::diesel::sql_query(
        "SELECT string_agg(chunk::text, ',' ORDER BY chunk) AS name FROM simdb.simdb_agent_metric_chunks",
    )
    .get_result(&mut watch)?;
    assert_eq!(chunks.name, "0,5,6");
    // The table the writers wrote to is the rebuilt one.
    let first_column: Relation = simdb::diesel::sql_query(
        "SELECT attname::text AS name FROM pg_attribute \
         WHERE attrelid = 'simdb.simdb_agent_metric_chunks'::regclass AND attnum = 1",
    )
    .get_result(&mut watch)?;
    assert_eq!(first_column.name, "chunk");
    Ok(())
}

/// An upgrade that rebuilds a table (the agent metric chunks, int8
/// columns first) keeps the grants made on it: a reader granted SELECT
/// before the owner's upgrade reads the same values after it.
#[test]
fn an_upgrade_that_rebuilds_a_table_keeps_its_grants() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let svc = service(&db);
    let sim = running_sim(&svc, 2)?;
    let mut rec = svc.recorder(&sim.id)?;
    for step in 0..100 {
        rec.agent_metric(step, 1, "energy", step as f64 * 0.25 - 7.0)?;
        rec.end_step(step)?;
    }
    rec.close()?;
    let before = svc.analytics().agent_series(&sim.id, 1, "energy", ..)?;
    assert_eq!(before.len(), 100);
    // Every stored chunk row, key, presence and bytes.
    let digest = || -> Result<Vec<Relation>> {
        let mut c = connect(db.url())?;
        Ok(simdb::diesel::sql_query(
            "SELECT count(*) || ':' || md5(string_agg(concat_ws(',', sim_key, metric_id, agent_index, chunk, present, encode(vals, 'hex')), ';' \
             ORDER BY sim_key, metric_id, agent_index, chunk)) AS name FROM simdb.simdb_agent_metric_chunks",
        )
        .load(&mut c)?)
    };
    let rows = digest()?;
    // The table as the release before the rebuild left it (its columns in
    // their first order), that migration not yet applied.
    common::fixtures::host(db.url(), PREVIOUS_METRIC_CHUNKS)?;
    // Granted on the table as it is before the upgrade.
    let mut roles = Roles::new(&db);
    let url = roles.create("keep", READER)?;
    let owner = Database::open(db.url())?;
    assert_eq!(owner.applied_migrations()?, owner.embedded_migrations()?);
    assert_eq!(digest()?, rows);
    let reader = SimulationService::new(Database::builder(&url).read_only(true).open()?);
    assert_eq!(
        reader.analytics().agent_series(&sim.id, 1, "energy", ..)?,
        before
    );
    Ok(())
}

#[test]
fn a_role_without_usage_is_told_so() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let mut roles = Roles::new(&db);
    let url = roles.create(
        "nousage",
        "GRANT SELECT ON ALL TABLES IN SCHEMA simdb TO {role};",
    )?;
    assert_eq!(
        privilege(Database::builder(&url).read_only(true).open()),
        "USAGE on schema simdb"
    );
    assert_eq!(privilege(Database::open(&url)), "USAGE on schema simdb");
    // USAGE but no SELECT: the table is named.
    let url = roles.create("noselect", "GRANT USAGE ON SCHEMA simdb TO {role};")?;
    assert!(privilege(Database::builder(&url).read_only(true).open())
        .starts_with("SELECT on simdb.simdb_"));
    Ok(())
}

#[test]
fn only_a_role_that_may_create_migrates_a_fresh_database() -> Result<()> {
    let db = TestDatabase::empty(simdb::Backend::Postgres)?;
    let mut roles = Roles::new(&db);
    let url = roles.create("fresh", "")?;
    let before = relations(db.url())?;
    assert_eq!(privilege(Database::open(&url)), "CREATE on the database");
    assert_eq!(relations(db.url())?, before);
    // Granted CREATE on the database, it migrates (it is then the owner).
    let database = roles.database.clone();
    let url = roles.create(
        "owner",
        &format!("GRANT CREATE ON DATABASE \"{database}\" TO {{role}};"),
    )?;
    let owner = Database::open(&url)?;
    assert_eq!(owner.applied_migrations()?, owner.embedded_migrations()?);
    Ok(())
}

#[test]
fn a_hosts_schema_named_simdb_is_refused_untouched() -> Result<()> {
    let db = TestDatabase::empty(simdb::Backend::Postgres)?;
    let mut host = Host::open(db.url())?;
    host.run("CREATE SCHEMA simdb; CREATE TABLE simdb.simdb_simulations (id INTEGER PRIMARY KEY, title TEXT)")?;
    let before = relations(db.url())?;
    let refused = Database::open(db.url());
    assert!(
        matches!(&refused, Err(Error::SchemaInUse { schema }) if schema == "simdb"),
        "{refused:?}"
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(".schema("), "{message}");
    assert_eq!(
        relations(db.url())?,
        before,
        "a refused open changed the database"
    );
    assert!(matches!(
        Database::builder(db.url()).read_only(true).open(),
        Err(Error::NoSchema { .. })
    ));
    // Its own schema works beside it.
    let svc = SimulationService::new(Database::builder(db.url()).schema("sims").open()?);
    running_sim(&svc, 1)?;
    // An empty schema of that name (made for simdb by an administrator) is used.
    host.run("DROP SCHEMA simdb CASCADE; CREATE SCHEMA simdb")?;
    let svc = SimulationService::new(Database::open(db.url())?);
    running_sim(&svc, 1)?;
    Ok(())
}

#[test]
fn an_upgrade_is_the_owners_work() -> Result<()> {
    let db = TestDatabase::postgres()?;
    let mut roles = Roles::new(&db);
    let recorder = roles.create("upg", RECORDER)?;
    let with_create = roles.create(
        "upgc",
        &format!("{RECORDER} GRANT CREATE ON SCHEMA simdb TO {{role}};"),
    )?;
    // A pending migration, as after installing a newer simdb.
    let last = db
        .database()
        .embedded_migrations()?
        .pop()
        .unwrap_or_default();
    common::fixtures::host(
        db.url(),
        &format!("DELETE FROM simdb.simdb_migrations WHERE version = '{last}'"),
    )?;
    let before = relations(db.url())?;
    assert_eq!(
        privilege(Database::open(&recorder)),
        "CREATE on schema simdb"
    );
    assert!(privilege(Database::open(&with_create)).starts_with("ownership of simdb."));
    assert!(matches!(
        Database::builder(&recorder).read_only(true).open(),
        Err(Error::SchemaTooOld { .. })
    ));
    assert_eq!(relations(db.url())?, before);
    Ok(())
}
