//! Databases written by earlier releases (`tests/fixtures/`), and SQL run
//! on a host application's own connection.

use simdb::diesel::connection::SimpleConnection;
use simdb::test_support::TestDatabase;
use simdb::{Backend, Error, Result};

/// A copy of fixture `version`, as an unopened database of `backend`.
pub fn fixture(backend: Backend, version: &str) -> Result<TestDatabase> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let io = |e: std::io::Error| Error::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let empty = TestDatabase::empty(backend)?;
    match backend {
        Backend::Sqlite => {
            let target = empty.url().trim_start_matches("sqlite://").to_string();
            std::fs::copy(dir.join(format!("{version}.sqlite")), &target).map_err(io)?;
        }
        Backend::Postgres => {
            let sql =
                std::fs::read_to_string(dir.join(format!("{version}.postgres.sql"))).map_err(io)?;
            host(empty.url(), &sql)?;
        }
    }
    Ok(empty)
}

/// A host application's own connection (not simdb's), as the host opens it.
pub enum Host {
    Sqlite(simdb::diesel::SqliteConnection),
    Postgres(simdb::diesel::PgConnection),
}

impl Host {
    pub fn open(url: &str) -> Result<Host> {
        use simdb::diesel::Connection;
        let fail = |e: simdb::diesel::ConnectionError| Error::Connection {
            url: "host".into(),
            message: e.to_string(),
        };
        Ok(if url.starts_with("postgres") {
            Host::Postgres(simdb::diesel::PgConnection::establish(url).map_err(fail)?)
        } else {
            Host::Sqlite(
                simdb::diesel::SqliteConnection::establish(url.trim_start_matches("sqlite://"))
                    .map_err(fail)?,
            )
        })
    }

    pub fn run(&mut self, sql: &str) -> Result<()> {
        match self {
            Host::Sqlite(c) => c.batch_execute(sql)?,
            Host::Postgres(c) => c.batch_execute(sql)?,
        }
        Ok(())
    }
}

/// Runs `sql` on a connection of the host's own (not simdb's).
pub fn host(url: &str, sql: &str) -> Result<()> {
    Host::open(url)?.run(sql)
}
