//! Opening each kind of target: pools, per-connection settings, and the
//! migrations applied before the database is handed out.

use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool};
use diesel::Connection;

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::sqlite::SqliteConnection;

#[cfg(feature = "sqlite")]
use super::checkpointer::Checkpointer;
#[cfg(feature = "postgres")]
use super::migrate::{check_schema_postgres, migrate_postgres};
#[cfg(feature = "sqlite")]
use super::migrate::{check_schema_sqlite, migrate_sqlite};
use super::options::DatabaseBuilder;
#[cfg(feature = "postgres")]
use super::options::Durability;
#[cfg(feature = "sqlite")]
use super::sqlite::{configure_sqlite, enable_wal, MemoryKeeper, SqliteSettings};
use super::url::{parse_url, redact, scrub, Target};
use super::{Database, Inner, Pools};
use crate::error::{Error, Result};

pub(super) fn open(options: DatabaseBuilder) -> Result<Database> {
    let url = options.url.as_str();
    let target = parse_url(url)?;
    #[cfg(feature = "postgres")]
    let postgres = matches!(target, Target::Postgres(_));
    #[cfg(not(feature = "postgres"))]
    let postgres = false;
    if !options.read_replicas.is_empty() && !postgres {
        return Err(Error::invalid(
            "read replica",
            "read replicas are PostgreSQL standbys of a PostgreSQL primary",
        ));
    }
    let redacted = redact(url);
    let connection_error = |message: String| Error::Connection {
        url: redacted.clone(),
        message: scrub(&message, url),
    };
    #[cfg(feature = "sqlite")]
    let settings = SqliteSettings {
        busy_timeout_ms: options.busy_timeout_ms(),
        durability: options.durability,
        read_only: options.read_only,
        writer: false,
    };
    let inner = match target {
        #[cfg(feature = "sqlite")]
        Target::SqliteMemory => {
            let uri = MemoryKeeper::fresh_uri();
            let mut keeper =
                SqliteConnection::establish(&uri).map_err(|e| connection_error(e.to_string()))?;
            configure_sqlite(&mut keeper, settings).map_err(|e| connection_error(e.to_string()))?;
            migrate_sqlite(&mut keeper)?;
            // One connection at a time: shared-cache locks are table locks
            // that do not wait, so the pool serializes access instead.
            let pool = Pool::builder()
                .max_size(1)
                .min_idle(Some(0))
                .test_on_check_out(false)
                .connection_timeout(Duration::from_secs(60))
                .connection_customizer(Box::new(settings))
                .build_unchecked(ConnectionManager::<SqliteConnection>::new(uri));
            Inner {
                replicas: Default::default(),
                schema: None,
                pools: Pools::Sqlite {
                    writer: pool.clone(),
                    reader: pool,
                },
                url: redacted,
                path: None,
                read_only: options.read_only,
                _keeper: Some(MemoryKeeper::new(keeper)),
                checkpointer: None,
            }
        }
        #[cfg(feature = "sqlite")]
        Target::SqliteFile(path) => {
            let path_str = path
                .to_str()
                .ok_or_else(|| connection_error("path is not valid UTF-8".into()))?
                .to_string();
            if path.is_dir() {
                return Err(connection_error("path is a directory".into()));
            }
            // A read-only open never creates a file either.
            if (!options.create_if_missing || options.read_only) && !path.exists() {
                return Err(connection_error(format!(
                    "no database file at {} (nothing was created)",
                    path.display()
                )));
            }
            let prepare = |target: &str| -> Result<()> {
                let mut conn = SqliteConnection::establish(target)
                    .map_err(|e| connection_error(e.to_string()))?;
                configure_sqlite(&mut conn, settings)
                    .map_err(|e| connection_error(e.to_string()))?;
                if options.read_only {
                    check_schema_sqlite(&mut conn, &redacted)
                } else {
                    // After the migration lock is taken and the schema is
                    // known not to be newer: a refused open leaves the file
                    // as it was.
                    migrate_sqlite(&mut conn)?;
                    enable_wal(&mut conn).map_err(|e| connection_error(e.to_string()))
                }
            };
            let target = match prepare(&path_str) {
                Ok(()) => path_str.clone(),
                // A WAL file in a directory this process cannot write, with
                // no writer running (no `-shm` to share): SQLite can read it
                // only as immutable, as it is now.
                Err(e) if options.read_only && cannot_share_wal(&e) => {
                    let immutable = immutable_uri(&path_str);
                    prepare(&immutable)?;
                    tracing::info!(
                        path = %path.display(),
                        "read-only open of a WAL file in a directory simdb cannot write: read as immutable"
                    );
                    immutable
                }
                Err(e) => return Err(e),
            };
            let manager = || ConnectionManager::<SqliteConnection>::new(target.clone());
            // A recorder's commits leave checkpoints to a thread of their
            // own (`checkpointer.rs`).
            let checkpointer = if options.read_only {
                None
            } else {
                Checkpointer::start(&target, settings)
            };
            // One writer connection: SQLite serializes writers anyway, and
            // queueing in the pool is cheaper than busy-waiting.
            let writer = Pool::builder()
                .max_size(1)
                .min_idle(Some(0))
                .test_on_check_out(false)
                .connection_timeout(Duration::from_secs(60))
                .connection_customizer(Box::new(SqliteSettings {
                    writer: true,
                    ..settings
                }))
                .build_unchecked(manager());
            let reader = Pool::builder()
                .max_size(options.pool_size.min(4))
                .min_idle(Some(0))
                .test_on_check_out(false)
                .connection_customizer(Box::new(settings))
                .build_unchecked(manager());
            Inner {
                replicas: Default::default(),
                schema: None,
                pools: Pools::Sqlite { writer, reader },
                url: redacted,
                path: Some(path),
                read_only: options.read_only,
                #[cfg(feature = "sqlite")]
                _keeper: None,
                #[cfg(feature = "sqlite")]
                checkpointer,
            }
        }
        #[cfg(feature = "postgres")]
        Target::Postgres(url) => {
            // Parsed once; libpq gets the parsed keyword/value pairs.
            let mut info = super::conninfo::ConnInfo::parse(&url)?;
            with_connect_timeout(&mut info, options.connect_timeout_secs());
            if let Some(name) = &options.application_name {
                let plain = !name.is_empty()
                    && name.len() <= 63
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !plain {
                    return Err(Error::invalid(
                        "application name",
                        "use 1 to 63 ASCII letters, digits, '-', '_' or '.'",
                    ));
                }
                info.set_default("application_name", name);
            }
            let url = info.to_libpq();
            let schema = options.schema.clone();
            let identifier = !schema.is_empty()
                && schema.len() <= 63
                && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !identifier {
                return Err(Error::invalid(
                    "schema",
                    "use a lower-case identifier: letters, digits and '_', not starting with a digit",
                ));
            }
            {
                use diesel::connection::SimpleConnection;
                let mut conn =
                    PgConnection::establish(&url).map_err(|e| connection_error(e.to_string()))?;
                conn.batch_execute(&search_path(&schema))?;
                if options.read_only {
                    check_schema_postgres(&mut conn, &redacted, &schema)?;
                } else {
                    migrate_postgres(&mut conn, &schema)?;
                }
            }
            let pool = Pool::builder()
                .max_size(options.pool_size)
                .min_idle(Some(0))
                .test_on_check_out(false)
                .connection_timeout(Duration::from_secs(30))
                .connection_customizer(Box::new(PgSettings {
                    durability: options.durability,
                    read_only: options.read_only,
                    schema: schema.clone(),
                }))
                .build_unchecked(ConnectionManager::<PgConnection>::new(url));
            let replicas = options
                .read_replicas
                .iter()
                .map(|r| replica(&options, r, &schema))
                .collect::<Result<Vec<_>>>()?;
            Inner {
                replicas: super::replicas::Replicas::new(replicas, options.replica_fallback),
                schema: Some(schema),
                pools: Pools::Postgres(pool),
                url: redacted,
                path: None,
                read_only: options.read_only,
                #[cfg(feature = "sqlite")]
                _keeper: None,
                #[cfg(feature = "sqlite")]
                checkpointer: None,
            }
        }
        #[allow(unreachable_patterns)]
        _ => {
            return Err(Error::InvalidUrl {
                url: redacted,
                reason: "this build of simdb lacks the feature for this backend".into(),
            })
        }
    };
    Ok(Database {
        inner: std::sync::Arc::new(inner),
        replica_reads: false,
    })
}

/// A read replica's pool: read-only connections with the primary's
/// settings, opened lazily (a replica down at open is used once it answers).
#[cfg(feature = "postgres")]
fn replica(options: &DatabaseBuilder, url: &str, schema: &str) -> Result<super::replicas::Replica> {
    let redacted = redact(url);
    let Target::Postgres(url) = parse_url(url)? else {
        return Err(Error::InvalidUrl {
            url: redacted,
            reason: "a read replica is a postgres:// URL".into(),
        });
    };
    let mut info = super::conninfo::ConnInfo::parse(&url)?;
    with_connect_timeout(&mut info, options.connect_timeout_secs());
    if let Some(name) = &options.application_name {
        info.set_default("application_name", name);
    }
    // Checked on check-out (one `SELECT 1`): a replica that went away
    // must fail here, where reads can still go elsewhere.
    let pool = Pool::builder()
        .max_size(options.pool_size)
        .min_idle(Some(0))
        .test_on_check_out(true)
        .connection_timeout(super::replicas::WAIT)
        .connection_customizer(Box::new(PgSettings {
            durability: options.durability,
            read_only: true,
            schema: schema.to_string(),
        }))
        .build_unchecked(ConnectionManager::<PgConnection>::new(info.to_libpq()));
    Ok(super::replicas::Replica {
        url: redacted,
        pool,
        down_until: std::sync::Mutex::new(None),
    })
}

/// True for SQLite's refusal to read a WAL file whose shared-memory file it
/// cannot create (`SQLITE_READONLY` or `SQLITE_CANTOPEN` on first use).
#[cfg(feature = "sqlite")]
fn cannot_share_wal(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("attempt to write a readonly database") || text.contains("unable to open")
}

/// `file:PATH?immutable=1`, the path encoded as a SQLite URI needs.
#[cfg(feature = "sqlite")]
fn immutable_uri(path: &str) -> String {
    const URI: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
    format!(
        "file:{}?immutable=1",
        percent_encoding::utf8_percent_encode(path, URI)
    )
}

/// libpq's `connect_timeout` (seconds) and TCP keepalives, each unless the
/// URL sets it: without them, a server that accepts the connection and never
/// answers would hang the open forever, and a server that vanishes (no
/// reset) would hang a recorder's writer.
#[cfg(feature = "postgres")]
fn with_connect_timeout(info: &mut super::conninfo::ConnInfo, secs: u64) {
    for (key, value) in [
        ("connect_timeout", secs.to_string()),
        ("keepalives", "1".into()),
        ("keepalives_idle", "10".into()),
        ("keepalives_interval", "5".into()),
        ("keepalives_count", "3".into()),
    ] {
        info.set_default(key, &value);
    }
}

/// Applies the durability to every PostgreSQL connection a pool opens.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
struct PgSettings {
    durability: Durability,
    read_only: bool,
    schema: String,
}

/// simdb's schema first, then the host's `public`: simdb's statements find
/// simdb's tables, and a host's query on the same connection can join its
/// own tables (qualify a host table whose name simdb also uses).
#[cfg(feature = "postgres")]
fn search_path(schema: &str) -> String {
    format!("SET search_path TO \"{schema}\", public")
}

#[cfg(feature = "postgres")]
impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for PgSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        let setting = match self.durability {
            Durability::ProcessCrash => "off",
            Durability::PowerLoss => "on",
        };
        let read_only = if self.read_only { "on" } else { "off" };
        conn.batch_execute(&format!(
            "SET synchronous_commit = {setting}; SET default_transaction_read_only = {read_only}; {}",
            search_path(&self.schema)
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::super::conninfo::ConnInfo;
    use super::with_connect_timeout;

    #[test]
    fn adds_a_connect_timeout_once() -> crate::Result<()> {
        let keep =
            "keepalives='1' keepalives_idle='10' keepalives_interval='5' keepalives_count='3'";
        let with = |url: &str, secs| -> crate::Result<String> {
            let mut info = ConnInfo::parse(url)?;
            with_connect_timeout(&mut info, secs);
            Ok(info.to_libpq())
        };
        assert_eq!(
            with("postgres://u@h/db", 10)?,
            format!("user='u' host='h' dbname='db' connect_timeout='10' {keep}")
        );
        assert_eq!(
            with("postgres://u@h/db?sslmode=disable", 3)?,
            format!("user='u' host='h' dbname='db' sslmode='disable' connect_timeout='3' {keep}")
        );
        assert_eq!(
            with("postgres://u@h/db?connect_timeout=1&keepalives=0", 10)?,
            "user='u' host='h' dbname='db' connect_timeout='1' keepalives='0' keepalives_idle='10' keepalives_interval='5' keepalives_count='3'"
        );
        Ok(())
    }
}
