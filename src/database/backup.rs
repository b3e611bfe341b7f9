//! A consistent copy of a SQLite database taken while recorders write.

use std::path::Path;

use super::{Backend, Database, DbConnection};
use crate::error::{Error, Result};

impl Database {
    /// Writes a consistent copy of this SQLite database to `to` (SQLite's
    /// `VACUUM INTO`, one read transaction: recorders keep writing
    /// meanwhile, and the copy holds exactly the batches committed when it
    /// began), then checks the copy with `PRAGMA integrity_check`. Returns
    /// the copy's size in bytes.
    ///
    /// For PostgreSQL use `pg_dump` (see the README). An in-memory database
    /// is copied to the file too.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) on PostgreSQL or if `to` exists;
    /// [`Error::Database`](crate::Error::Database) if the copy fails or does not check out.
    pub fn backup_to(&self, to: &Path) -> Result<u64> {
        if self.backend() != Backend::Sqlite {
            return Err(Error::invalid(
                "backup",
                "only SQLite databases are copied by simdb; for PostgreSQL use pg_dump",
            ));
        }
        if to.exists() {
            return Err(Error::invalid(
                "backup target",
                format!("{} exists; simdb does not overwrite it", to.display()),
            ));
        }
        let target = to
            .to_str()
            .ok_or_else(|| Error::invalid("backup target", "path is not valid UTF-8"))?
            .to_string();
        match self.connection()? {
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(mut c) => {
                use diesel::connection::SimpleConnection;
                use diesel::RunQueryDsl;
                // A read-only open refuses writes with `query_only`, which
                // also refuses `VACUUM INTO`; the copy writes only the new
                // file, so this one statement runs without it.
                c.batch_execute("PRAGMA query_only = OFF")?;
                let copied = diesel::sql_query("VACUUM INTO ?")
                    .bind::<diesel::sql_types::Text, _>(&target)
                    .execute(&mut *c);
                c.batch_execute(&format!(
                    "PRAGMA query_only = {}",
                    if self.read_only() { "ON" } else { "OFF" }
                ))?;
                copied?;
            }
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(_) => {}
        }
        check_integrity(&target)?;
        std::fs::metadata(to)
            .map(|m| m.len())
            .map_err(|source| Error::Io {
                path: to.display().to_string(),
                source,
            })
    }
}

/// `PRAGMA integrity_check` of a SQLite file must answer `ok`.
#[cfg(feature = "sqlite")]
fn check_integrity(path: &str) -> Result<()> {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let mut conn =
        diesel::sqlite::SqliteConnection::establish(path).map_err(|e| Error::Connection {
            url: path.to_string(),
            message: e.to_string(),
        })?;
    let rows: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(&mut conn)?;
    match rows.first().map(|r| r.integrity_check.as_str()) {
        Some("ok") => Ok(()),
        other => Err(Error::invalid(
            "backup",
            format!("the copy failed its integrity check: {other:?}"),
        )),
    }
}

#[cfg(not(feature = "sqlite"))]
fn check_integrity(_path: &str) -> Result<()> {
    Ok(())
}
