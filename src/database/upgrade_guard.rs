//! An upgrade that renames simdb's tables must not pull them from under a
//! recorder of an earlier release that is still writing: that recorder's
//! next batch would fail on a missing table. So the renaming upgrade waits
//! for every lease of the earlier release to lapse, and until then refuses
//! with an error that names the run, changing nothing.

use diesel::RunQueryDsl;

use crate::error::{Error, Result};

/// The version that added recorders' leases (and their heartbeats).
const LEASES_VERSION: &str = "20261127000001";
/// The version that gave simdb's tables their `simdb_` prefix.
pub(crate) const PREFIX_VERSION: &str = "20261127000004";
/// The lease timeout of the earlier release's recorders (their default).
const LEASE_SECS: u32 = 30;

#[derive(diesel::QueryableByName)]
struct Held {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    age: f64,
}

/// True if `applied` (simdb's own versions) is a schema with leases whose
/// tables the prefix migration is about to rename.
fn renames_under_leases(applied: &[String]) -> bool {
    applied.iter().any(|v| v == LEASES_VERSION) && !applied.iter().any(|v| v == PREFIX_VERSION)
}

fn refuse(held: &[Held]) -> Result<()> {
    match held.first() {
        None => Ok(()),
        Some(h) => Err(Error::Migration(format!(
            "simulation `{}` is held by a live recorder of an earlier simdb (last heartbeat \
             {:.1}s ago): this upgrade renames the tables it writes. Stop it, or open again \
             once its lease lapses ({LEASE_SECS}s without a heartbeat); nothing was changed",
            h.id, h.age
        ))),
    }
}

/// SQLite: refuses while a recorder of the earlier release heartbeats.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite(
    conn: &mut diesel::sqlite::SqliteConnection,
    applied: &[String],
) -> Result<()> {
    if !renames_under_leases(applied) {
        return Ok(());
    }
    // Timestamps are stored as text of one shape (clock.rs): comparing the
    // text compares the instants.
    let held: Vec<Held> = diesel::sql_query(format!(
        "SELECT id, (julianday('now') - julianday(heartbeat_at)) * 86400.0 AS age \
         FROM simulations WHERE status = 'running' AND lease_token IS NOT NULL \
         AND heartbeat_at >= (strftime('%Y-%m-%d %H:%M:%f', 'now', '-{LEASE_SECS} seconds') || '000+00:00') \
         ORDER BY age"
    ))
    .load(conn)?;
    refuse(&held)
}

/// PostgreSQL: refuses while a recorder of the earlier release heartbeats.
#[cfg(feature = "postgres")]
pub(crate) fn postgres(conn: &mut diesel::pg::PgConnection, applied: &[String]) -> Result<()> {
    if !renames_under_leases(applied) {
        return Ok(());
    }
    let held: Vec<Held> = diesel::sql_query(format!(
        "SELECT id, EXTRACT(EPOCH FROM statement_timestamp() - heartbeat_at)::float8 AS age \
         FROM simulations WHERE status = 'running' AND lease_token IS NOT NULL \
         AND heartbeat_at >= statement_timestamp() - interval '{LEASE_SECS} seconds' \
         ORDER BY age"
    ))
    .load(conn)?;
    refuse(&held)
}
