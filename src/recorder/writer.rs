//! The writer thread: takes batches off the queue, writes each in one
//! transaction, retries transient failures with backoff and holds what it
//! could not write.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::batch::Batch;
use super::bulk::write_batch;
use super::metric_names::MetricCache;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::store::prelude::*;
use crate::with_connection;

pub(crate) enum Msg {
    Batch(Batch),
    Flush(SyncSender<()>),
}

/// What the writer thread shares with the recording thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) failed: AtomicBool,
    pub(crate) state: Mutex<WriterState>,
}

#[derive(Debug, Default)]
pub(crate) struct WriterState {
    pub(crate) error: Option<Arc<Error>>,
    /// Batches not written because of `error`, oldest first.
    pub(crate) held: VecDeque<Batch>,
    pub(crate) rows_written: u64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, WriterState> {
        // A panic while holding the lock cannot leave WriterState invalid
        // (every update is a single assignment), so a poisoned lock is safe.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer's failure, counting as unpersisted the held batches plus
    /// `pending` rows still on the recording side.
    pub(crate) fn error(&self, pending: usize) -> Option<Error> {
        let state = self.lock();
        state.error.as_ref().map(|e| Error::Recorder {
            unpersisted_rows: state.held.iter().map(|b| b.rows() as u64).sum::<u64>()
                + pending as u64,
            source: Arc::clone(e),
        })
    }
}

/// The writer thread's side.
pub(crate) struct Writer {
    pub(crate) db: Database,
    pub(crate) sim_key: i32,
    pub(crate) shared: Arc<Shared>,
    /// Metric names and, once committed, their database ids.
    pub(crate) metrics: MetricCache,
    pub(crate) max_attempts: u32,
}

fn is_transient(e: &Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error as D};
    match e {
        Error::Connection { .. } => true,
        Error::Database(D::DatabaseError(Kind::ClosedConnection, _)) => true,
        Error::Database(D::BrokenTransactionManager) => true,
        Error::Database(D::DatabaseError(_, info)) => {
            let m = info.message().to_ascii_lowercase();
            m.contains("database is locked")
                || m.contains("terminating connection")
                || m.contains("server closed the connection")
                || m.contains("connection to server")
                || m.contains("no connection to the server")
                || m.contains("could not receive data")
        }
        _ => false,
    }
}

impl Writer {
    pub(crate) fn run(mut self, receiver: Receiver<Msg>) {
        for msg in receiver {
            match msg {
                Msg::Batch(batch) => self.handle(batch),
                Msg::Flush(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }

    fn handle(&mut self, batch: Batch) {
        for (id, name) in &batch.new_metric_names {
            self.metrics.register(*id, name);
        }
        if self.shared.failed.load(Ordering::Acquire) {
            self.shared.lock().held.push_back(batch);
            return;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write(&batch) {
                Ok(ids) => {
                    self.metrics.learned(ids);
                    self.shared.lock().rows_written += batch.rows() as u64;
                    return;
                }
                Err(e) if attempt < self.max_attempts && is_transient(&e) => {
                    let backoff = Duration::from_millis(50 << attempt.min(7));
                    tracing::warn!(error = %e, attempt, ?backoff, "simdb batch failed, retrying");
                    std::thread::sleep(backoff);
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = batch.rows(), "simdb batch failed");
                    let mut state = self.shared.lock();
                    state.error = Some(Arc::new(e));
                    state.held.push_back(batch);
                    self.shared.failed.store(true, Ordering::Release);
                    return;
                }
            }
        }
    }

    /// Writes one batch in one transaction; returns metric ids it interned.
    fn write(&self, batch: &Batch) -> Result<Vec<(usize, i32)>> {
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let interned = write_batch(c, self.sim_key, batch, &self.metrics)?;
            c.touch(self.sim_key)?;
            Ok(interned)
        }))
    }
}
