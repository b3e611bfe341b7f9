//! Migrations: up -> down -> up, refusal of a schema from the future,
//! concurrent first opens applying them exactly once, URL handling.

mod common;
use common::*;

use simdb::Backend;

fn count_migration_rows(db: &Database) -> Result<i64> {
    use simdb::diesel::prelude::*;
    use simdb::diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let q = format!(
        "SELECT COUNT(*) AS n FROM {}",
        migration_table(db.backend())
    );
    let row: Count = simdb::with_connection!(db.connection()?, |c| simdb::diesel::sql_query(&q)
        .get_result(c)?);
    Ok(row.n)
}

backend_tests! {
    fn up_down_up(db) {
        let database = db.database();
        let svc = service(db);
        running_sim(&svc, 2)?;
        assert_eq!(database.applied_migrations()?, database.embedded_migrations()?);
        database.revert_all_migrations()?;
        assert!(database.applied_migrations()?.is_empty());
        assert!(svc.list_experiments().is_err(), "tables should be gone");
        database.run_pending_migrations()?;
        assert_eq!(database.applied_migrations()?, database.embedded_migrations()?);
        assert!(svc.list_simulations(&SimulationFilter::new())?.is_empty());
        running_sim(&svc, 3)?;
        // Reopening applies nothing twice.
        let again = Database::open(db.url())?;
        assert_eq!(count_migration_rows(&again)?, database.embedded_migrations()?.len() as i64);
        Ok(())
    }

    fn refuses_schema_from_the_future(db) {
        let svc = service(db);
        let sim = running_sim(&svc, 1)?;
        use simdb::diesel::connection::SimpleConnection;
        // What a newer simdb leaves: its version in simdb's own bookkeeping.
        let future = format!(
            "INSERT INTO {} (version) VALUES ('29991231000000')",
            migration_table(db.backend())
        );
        simdb::with_connection!(db.database().writer()?, |c| c.batch_execute(&future)?);
        match Database::open(db.url()) {
            Err(Error::SchemaTooNew { database_version, library_version }) => {
                assert_eq!(database_version, "29991231000000");
                assert!(library_version < database_version);
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        // Left untouched: the data and the foreign version are still there.
        assert_eq!(svc.simulation(&sim.id)?.status, SimulationStatus::Running);
        assert!(db.database().applied_migrations()?.contains(&"29991231000000".to_string()));
        Ok(())
    }

    fn a_hosts_own_migrations_are_not_a_newer_simdb(db) {
        // The host ran Diesel migrations of its own in the same database
        // (on SQLite: the same Diesel table): simdb opens, and leaves them.
        use simdb::diesel::connection::SimpleConnection;
        let host = match db.backend() {
            Backend::Sqlite => "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL,
                                     run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
                               INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000');
                               CREATE TABLE policies (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
            Backend::Postgres => "CREATE TABLE public.__diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL,
                                     run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
                                 INSERT INTO public.__diesel_schema_migrations (version) VALUES ('20240101000000');
                                 CREATE TABLE public.policies (id SERIAL PRIMARY KEY, name TEXT NOT NULL);",
        };
        simdb::with_connection!(db.database().writer()?, |c| c.batch_execute(host)?);
        let again = Database::open(db.url())?;
        assert_eq!(again.applied_migrations()?, again.embedded_migrations()?);
        // A read-only open judges by simdb's own bookkeeping too.
        let reader = Database::builder(db.url()).read_only(true).open()?;
        assert_eq!(reader.applied_migrations()?, again.embedded_migrations()?);
        running_sim(&SimulationService::new(again.clone()), 1)?;
        // simdb's migrations go down and up again around the host's.
        again.revert_all_migrations()?;
        again.run_pending_migrations()?;
        assert_eq!(again.applied_migrations()?, again.embedded_migrations()?);
        let kept: i64 = simdb::with_connection!(again.connection()?, |c| {
            use simdb::diesel::prelude::*;
            #[derive(QueryableByName)]
            struct N {
                #[diesel(sql_type = simdb::diesel::sql_types::BigInt)]
                n: i64,
            }
            simdb::diesel::sql_query("SELECT COUNT(*) AS n FROM policies").get_result::<N>(c)?.n
        });
        assert_eq!(kept, 0);
        // The host's bookkeeping holds its own version, and only that.
        let host_versions: Vec<String> = simdb::with_connection!(again.connection()?, |c| {
            use simdb::diesel::prelude::*;
            #[derive(QueryableByName)]
            struct V {
                #[diesel(sql_type = simdb::diesel::sql_types::Text)]
                v: String,
            }
            let table = match db.backend() {
                Backend::Sqlite => "__diesel_schema_migrations",
                Backend::Postgres => "public.__diesel_schema_migrations",
            };
            simdb::diesel::sql_query(format!("SELECT CAST(version AS TEXT) AS v FROM {table}"))
                .load::<V>(c)?
                .into_iter()
                .map(|v| v.v)
                .collect()
        });
        assert_eq!(host_versions, ["20240101000000"]);
        Ok(())
    }
}

fn concurrent_first_open(backend: Backend) -> Result<()> {
    let empty = TestDatabase::empty(backend)?;
    let url = empty.url().to_string();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Result<usize> {
                barrier.wait();
                let db = Database::open(&url)?;
                Ok(db.applied_migrations()?.len())
            })
        })
        .collect();
    for h in handles {
        let applied = h.join().map_err(|_| Error::RecorderClosed)??;
        assert!(applied > 0);
    }
    let db = Database::open(&url)?;
    assert_eq!(
        count_migration_rows(&db)?,
        db.embedded_migrations()?.len() as i64
    );
    Ok(())
}

#[test]
fn concurrent_first_open_sqlite() -> Result<()> {
    concurrent_first_open(Backend::Sqlite)
}

#[test]
fn concurrent_first_open_postgres() -> Result<()> {
    concurrent_first_open(Backend::Postgres)
}

#[test]
fn sqlite_settings_and_url_forms() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("simdb-url-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Migration(e.to_string()))?;
    let path = dir.join("runs.db");
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
        path.display().to_string(),
    ] {
        let db = Database::open(&url)?;
        assert_eq!(db.backend(), Backend::Sqlite);
        use simdb::diesel::prelude::*;
        use simdb::diesel::sql_types::{BigInt, Text};
        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = Text)]
            journal_mode: String,
        }
        #[derive(QueryableByName)]
        struct Num {
            #[diesel(sql_type = BigInt)]
            v: i64,
        }
        let (mode, fk, sync, busy) = simdb::with_connection!(db.connection()?, |c| {
            let m: Mode = simdb::diesel::sql_query("PRAGMA journal_mode").get_result(c)?;
            let fk: Num =
                simdb::diesel::sql_query("SELECT foreign_keys AS v FROM pragma_foreign_keys")
                    .get_result(c)?;
            let sync: Num =
                simdb::diesel::sql_query("SELECT synchronous AS v FROM pragma_synchronous")
                    .get_result(c)?;
            let busy: Num =
                simdb::diesel::sql_query("SELECT timeout AS v FROM pragma_busy_timeout")
                    .get_result(c)?;
            (m.journal_mode, fk.v, sync.v, busy.v)
        });
        // synchronous = FULL (2): the default durability survives power loss.
        assert_eq!((mode.as_str(), fk, sync), ("wal", 1, 2), "{url}");
        assert!(busy >= 1000);
    }
    // Durability::ProcessCrash: synchronous = NORMAL (1).
    let fast = Database::builder(dir.join("fast.db").to_string_lossy().to_string())
        .durability(simdb::Durability::ProcessCrash)
        .open()?;
    let sync: i64 = simdb::with_connection!(fast.writer()?, |c| {
        use simdb::diesel::prelude::*;
        use simdb::diesel::sql_types::BigInt;
        #[derive(QueryableByName)]
        struct Num {
            #[diesel(sql_type = BigInt)]
            v: i64,
        }
        let n: Num = simdb::diesel::sql_query("SELECT synchronous AS v FROM pragma_synchronous")
            .get_result(c)?;
        n.v
    });
    assert_eq!(sync, 1);
    let mem = Database::open("sqlite::memory:")?;
    let svc = SimulationService::new(mem.clone());
    running_sim(&svc, 2)?;
    assert_eq!(
        svc.list_simulations(&SimulationFilter::new())?.len(),
        1,
        "memory database persists across calls"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A read-only open of a path with no file creates nothing (even with
/// `create_if_missing` left at its default).
#[test]
fn a_read_only_open_creates_no_file() {
    let path = std::env::temp_dir().join(format!("simdb-ro-missing-{}.db", std::process::id()));
    let opened = Database::builder(format!("sqlite://{}", path.display()))
        .read_only(true)
        .open();
    assert!(
        matches!(opened, Err(Error::Connection { .. })),
        "{:?}",
        opened.err()
    );
    assert!(
        !path.exists(),
        "a read-only open created {}",
        path.display()
    );
}

#[test]
fn bad_urls_are_typed_and_redacted() {
    for url in ["", "mysql://u:pw@h/db", "sqlite://"] {
        assert!(
            matches!(Database::open(url), Err(Error::InvalidUrl { .. })),
            "{url:?}"
        );
    }
    let err = Database::open("postgres://alice:s3cr3t-pw@127.0.0.1:1/nowhere");
    match err {
        Err(e @ Error::Connection { .. }) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains("s3cr3t-pw"), "{text}");
            assert!(text.contains("***"), "{text}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    let dir = std::env::temp_dir();
    assert!(matches!(
        Database::open(&dir.display().to_string()),
        Err(Error::Connection { .. })
    ));
    let not_db = dir.join(format!("simdb-not-a-db-{}.txt", std::process::id()));
    let _ = std::fs::write(
        &not_db,
        "this is not a database, just text that is long enough to be a header".repeat(20),
    );
    let res = Database::open(&not_db.display().to_string());
    assert!(res.is_err(), "a text file must not open as a database");
    let _ = std::fs::remove_file(&not_db);
}

/// The builder's pool size and application name reach the connections.
#[test]
fn pool_size_and_application_name() -> Result<()> {
    use simdb::diesel::prelude::*;
    use simdb::diesel::sql_types::Text;
    let db = TestDatabase::postgres()?;
    let named = Database::builder(db.url())
        .application_name("simdb-test.run_1")
        .pool_size(2)
        .open()?;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let got: Name = simdb::with_connection!(named.connection()?, |c| simdb::diesel::sql_query(
        "SELECT current_setting('application_name') AS name"
    )
    .get_result(c)?);
    assert_eq!(got.name, "simdb-test.run_1");
    // Two connections may be held at once.
    let (a, b) = (named.connection()?, named.connection()?);
    drop((a, b));
    assert!(matches!(
        Database::builder(db.url())
            .application_name("bad name; --")
            .open(),
        Err(Error::InvalidInput { .. })
    ));
    Ok(())
}

/// Every object of the database, as `kind name` (SQLite's master table;
/// PostgreSQL's relations outside the system schemas).
fn objects(db: &TestDatabase) -> Result<Vec<String>> {
    use simdb::diesel::prelude::*;
    use simdb::diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let sql = match db.backend() {
        Backend::Sqlite => "SELECT type || ' ' || name AS name FROM sqlite_master ORDER BY 1",
        Backend::Postgres => {
            "SELECT c.relkind::text || ' ' || n.nspname || '.' || c.relname AS name FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1"
        }
    };
    let mut host = common::fixtures::Host::open(db.url())?;
    let rows: Vec<Name> = match &mut host {
        common::fixtures::Host::Sqlite(c) => simdb::diesel::sql_query(sql).load(c)?,
        common::fixtures::Host::Postgres(c) => simdb::diesel::sql_query(sql).load(c)?,
    };
    Ok(rows.into_iter().map(|r| r.name).collect())
}

backend_tests! {
    /// A database at migration k-1 in which migration k meets a conflicting
    /// object (the objects of k and later already there): the open fails
    /// and changes nothing, neither the ledger nor any object, for every k.
    fn a_failed_open_changes_nothing(db) {
        let embedded = db.database().embedded_migrations()?;
        for (k, version) in embedded.iter().enumerate() {
            let fresh = TestDatabase::empty(db.backend())?;
            drop(Database::open(fresh.url())?);
            let table = match db.backend() {
                Backend::Sqlite => "simdb_migrations",
                Backend::Postgres => "simdb.simdb_migrations",
            };
            common::fixtures::host(fresh.url(), &format!("DELETE FROM {table} WHERE version >= '{version}'"))?;
            let before = objects(&fresh)?;
            let opened = Database::open(fresh.url());
            assert!(opened.is_err(), "migration {k} ({version}) met its own objects and succeeded");
            assert_eq!(objects(&fresh)?, before, "migration {k}: a failed open left objects behind");
            let read = Database::builder(fresh.url()).read_only(true).open();
            match read {
                Err(Error::SchemaTooOld { missing_version, .. }) => assert_eq!(&missing_version, version),
                // An empty ledger is no simdb schema yet.
                Err(Error::NoSchema { .. }) if k == 0 => {}
                other => panic!("migration {k}: the ledger changed: {other:?}"),
            }
        }
        Ok(())
    }
}
