//! Hot standbys for reading: PostgreSQL streaming replicas that a
//! [`Database`](super::Database)'s reading view
//! ([`Database::for_reading`](super::Database::for_reading)) takes its
//! connections from, while every write goes to the primary. A replica that
//! does not answer is skipped for a few seconds; with none left, reads go
//! to the primary or fail with [`Error::ReplicaUnavailable`], as
//! [`ReplicaFallback`] says. Reads on a replica are consistent by
//! construction: a batch's rows and the commit watermark that covers them
//! commit in one transaction, and a standby replays whole transactions in
//! commit order, so what a reader sees below the watermark is complete,
//! however far behind it is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
#[cfg(feature = "postgres")]
use diesel::r2d2::{ConnectionManager, Pool};

use super::DbConnection;
use crate::error::{Error, Result};

/// What reads do when no replica answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplicaFallback {
    /// Read from the primary instead (logged once per outage). The default.
    #[default]
    Primary,
    /// Fail with [`Error::ReplicaUnavailable`].
    Fail,
}

/// How long a replica that did not answer is left out.
const REST: Duration = Duration::from_secs(5);

/// How long a read waits for a replica's connection before trying the next.
#[cfg(feature = "postgres")]
pub(super) const WAIT: Duration = Duration::from_secs(2);

/// One replica: its pool and when it last failed.
#[derive(Debug)]
pub(super) struct Replica {
    /// The URL, password replaced by `***`.
    pub(super) url: String,
    #[cfg(feature = "postgres")]
    pub(super) pool: Pool<ConnectionManager<PgConnection>>,
    /// Left out until then.
    pub(super) down_until: Mutex<Option<Instant>>,
}

/// Every replica of a database, and what to do without them.
#[derive(Debug, Default)]
pub(super) struct Replicas {
    pub(super) list: Vec<Replica>,
    pub(super) fallback: ReplicaFallback,
    /// Where the next read starts looking (reads spread over replicas).
    next: AtomicUsize,
}

/// How far behind its primary a replica is, as [`Database::replica_status`](super::Database::replica_status)
/// reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplicaStatus {
    /// The replica's URL, password replaced by `***`.
    pub url: String,
    /// Bytes of write-ahead log the primary has written and the replica has
    /// not replayed yet (`None` if unknown).
    pub lag_bytes: Option<u64>,
    /// Seconds since the last transaction the replica replayed was
    /// committed on the primary, or 0 when it has replayed everything.
    pub lag_seconds: Option<f64>,
    /// Why the replica could not be read, if it could not.
    pub error: Option<String>,
}

impl Replicas {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) fn new(list: Vec<Replica>, fallback: ReplicaFallback) -> Self {
        Replicas {
            list,
            fallback,
            next: AtomicUsize::new(0),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A connection to a replica that answers, starting from the next in
    /// turn; `Ok(None)` when none does and reads fall back to the primary.
    pub(super) fn connection(&self) -> Result<Option<DbConnection>> {
        if self.list.is_empty() {
            return Ok(None);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last: Option<(String, String)> = None;
        for i in 0..self.list.len() {
            let replica = &self.list[(start + i) % self.list.len()];
            let resting = lock(&replica.down_until).is_some_and(|t| Instant::now() < t);
            if resting {
                last.get_or_insert_with(|| (replica.url.clone(), "did not answer lately".into()));
                continue;
            }
            match replica.get() {
                Ok(conn) => {
                    let mut down = lock(&replica.down_until);
                    if down.take().is_some() {
                        tracing::info!(replica = %replica.url, "simdb read replica answers again");
                    }
                    return Ok(Some(conn));
                }
                Err(message) => {
                    tracing::warn!(replica = %replica.url, %message, "simdb read replica does not answer");
                    *lock(&replica.down_until) = Some(Instant::now() + REST);
                    last = Some((replica.url.clone(), message));
                }
            }
        }
        match self.fallback {
            ReplicaFallback::Primary => Ok(None),
            ReplicaFallback::Fail => {
                let (url, message) = last.unwrap_or_default();
                Err(Error::ReplicaUnavailable { url, message })
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Replica {
    /// A pooled connection, or the pool's error text.
    fn get(&self) -> std::result::Result<DbConnection, String> {
        #[cfg(feature = "postgres")]
        {
            self.pool
                .get_timeout(WAIT)
                .map(DbConnection::Postgres)
                .map_err(|e| e.to_string())
        }
        #[cfg(not(feature = "postgres"))]
        {
            Err(format!("{}: this build has no PostgreSQL", self.url))
        }
    }

    /// How far behind `primary_lsn` (the primary's current WAL position,
    /// as text) this replica is.
    pub(super) fn status(&self, primary_lsn: Option<&str>) -> ReplicaStatus {
        let mut status = ReplicaStatus {
            url: self.url.clone(),
            lag_bytes: None,
            lag_seconds: None,
            error: None,
        };
        match self.lag(primary_lsn) {
            Ok((bytes, secs)) => {
                status.lag_bytes = bytes;
                status.lag_seconds = secs;
            }
            Err(e) => status.error = Some(e),
        }
        status
    }

    #[cfg(feature = "postgres")]
    fn lag(
        &self,
        primary_lsn: Option<&str>,
    ) -> std::result::Result<(Option<u64>, Option<f64>), String> {
        use diesel::sql_types::{Double, Nullable, Text};
        use diesel::RunQueryDsl;

        #[derive(diesel::QueryableByName)]
        struct Lag {
            #[diesel(sql_type = Nullable<Double>)]
            bytes: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)]
            secs: Option<f64>,
            #[diesel(sql_type = diesel::sql_types::Bool)]
            standby: bool,
        }
        let mut conn = self.pool.get_timeout(WAIT).map_err(|e| e.to_string())?;
        let lag: Lag = diesel::sql_query(
            "SELECT pg_wal_lsn_diff(CAST($1 AS pg_lsn), pg_last_wal_replay_lsn())::float8 AS bytes, \
             EXTRACT(EPOCH FROM (statement_timestamp() - pg_last_xact_replay_timestamp()))::float8 AS secs, \
             pg_is_in_recovery() AS standby",
        )
        .bind::<Nullable<Text>, _>(primary_lsn)
        .get_result(&mut *conn)
        .map_err(|e| e.to_string())?;
        if !lag.standby {
            return Err("not a standby: it replays nothing from a primary".into());
        }
        let bytes = lag.bytes.map(|b| b.max(0.0) as u64);
        // Fully replayed: the age of its last transaction is no lag.
        let secs = match bytes {
            Some(0) => Some(0.0),
            _ => lag.secs.map(|s| s.max(0.0)),
        };
        Ok((bytes, secs))
    }

    #[cfg(not(feature = "postgres"))]
    fn lag(&self, _: Option<&str>) -> std::result::Result<(Option<u64>, Option<f64>), String> {
        Err(format!("{}: this build has no PostgreSQL", self.url))
    }
}
