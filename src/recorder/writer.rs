//! The writer thread: takes batches off the queue in order, writes each in
//! one transaction that first proves the run is still this recorder's,
//! retries transient failures (settling a COMMIT whose reply was lost by
//! the stored batch sequence number), commits what waited `flush_interval`
//! and heartbeats on a timer, and holds what it could not write.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::sync::TryLockError;
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::bulk::{write_batch, Written};
use super::metric_names::MetricCache;
use super::shared::{Msg, Shared};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::store::known_chunks::KnownChunks;
use crate::store::prelude::*;
use crate::with_connection;

/// The writer thread's side.
pub(crate) struct Writer {
    pub(crate) db: Database,
    pub(crate) sim_key: i32,
    pub(crate) sim: SimulationId,
    /// This recorder's lease.
    pub(crate) token: i64,
    pub(crate) shared: Arc<Shared>,
    /// Metric names and, once committed, their database ids.
    pub(crate) metrics: MetricCache,
    pub(crate) max_attempts: u32,
    pub(crate) flush_interval: Duration,
    pub(crate) tick: Duration,
    /// Batches not written because of the error, oldest first.
    pub(crate) held: VecDeque<Batch>,
    /// The last batch sequence number handed out (never reused).
    pub(crate) last_seq: i64,
    /// The watermark last committed.
    pub(crate) committed: Option<i64>,
    /// After rows were discarded, the watermark may never pass the step
    /// before the first of them.
    pub(crate) cap: Option<i64>,
    /// What this writer's commits left in the state chunks.
    pub(crate) known: KnownChunks,
    pub(crate) last_commit: Instant,
    pub(crate) last_beat: Instant,
}

impl Writer {
    pub(crate) fn run(mut self, receiver: Receiver<Msg>) {
        loop {
            let wait = self.tick.saturating_sub(self.last_beat.elapsed());
            match receiver.recv_timeout(wait) {
                Ok(Msg::Close(ack)) => {
                    self.release();
                    let _ = ack.send(());
                    return;
                }
                Ok(Msg::Abandon(ack)) => {
                    let _ = ack.send(());
                    return;
                }
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.release();
                    return;
                }
            }
            if self.last_beat.elapsed() >= self.tick {
                match self.on_timer(&receiver) {
                    Some(Msg::Close(ack)) => {
                        self.release();
                        let _ = ack.send(());
                        return;
                    }
                    Some(Msg::Abandon(ack)) => {
                        let _ = ack.send(());
                        return;
                    }
                    _ => {}
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Batch(batch) => self.take(batch),
            Msg::Flush(ack) => {
                let _ = ack.send(());
            }
            Msg::Retry(ack) => {
                self.retry();
                let _ = ack.send(());
            }
            Msg::Discard(ack) => {
                let _ = ack.send(self.discard());
            }
            Msg::Close(ack) | Msg::Abandon(ack) => {
                // Only reached from the timer's look at the queue, which
                // hands Close back; Abandon never goes through it.
                let _ = ack.send(());
            }
        }
    }

    /// The timer: commits the batch being filled once it waited
    /// `flush_interval`, else heartbeats. Returns a `Close` it met.
    fn on_timer(&mut self, receiver: &Receiver<Msg>) -> Option<Msg> {
        let due = self.last_commit.elapsed() >= self.flush_interval;
        let taken = if due {
            let mut current = match self.shared.current.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                // The recorder is recording or handing off right now.
                Err(TryLockError::WouldBlock) => return None,
            };
            // Under the lock nothing new can be queued: whatever is queued
            // is older than the current batch and goes first.
            match receiver.try_recv() {
                Ok(msg) => {
                    drop(current);
                    return match msg {
                        Msg::Close(_) | Msg::Abandon(_) => Some(msg),
                        other => {
                            self.handle(other);
                            None
                        }
                    };
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return None,
            }
            (!current.is_empty()).then(|| std::mem::take(&mut *current))
        } else {
            None
        };
        match taken {
            Some(batch) => self.take(batch),
            None => self.heartbeat(),
        }
        None
    }

    fn heartbeat(&mut self) {
        self.last_beat = Instant::now();
        let beat = self.db.writer().and_then(|conn| {
            with_connection!(conn, |c| c.heartbeat_lease(
                self.sim_key,
                &self.sim,
                self.token
            ))
        });
        match beat {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                tracing::warn!(simulation = %self.sim, error = %e, "simdb heartbeat failed, will retry");
            }
            Err(e) => {
                tracing::error!(simulation = %self.sim, error = %e, "simdb recorder lost its run");
                self.fail(e);
            }
        }
    }

    fn fail(&mut self, e: Error) {
        let mut state = self.shared.lock();
        if state.error.is_none() {
            state.error = Some(Arc::new(e));
        }
        self.shared.failed.store(true, Ordering::Release);
    }

    fn publish_held(&self) {
        self.shared.lock().held_rows = self.held.iter().map(|b| b.rows() as u64).sum();
    }

    /// Writes a batch, or holds it behind an earlier failure.
    fn take(&mut self, batch: Batch) {
        for (id, name) in &batch.new_metric_names {
            self.metrics.register(*id, name);
        }
        if self.shared.failed.load(Ordering::Acquire) {
            self.held.push_back(batch);
            self.publish_held();
            return;
        }
        let mut batch = batch;
        if let Err(e) = self.write_with_retries(&mut batch) {
            tracing::error!(simulation = %self.sim, error = %e, rows = batch.rows(), "simdb batch failed");
            self.held.push_back(batch);
            self.publish_held();
            self.fail(e);
        }
    }

    /// The watermark this batch carries, never above the cap.
    fn watermark(&self, batch: &Batch) -> Option<i64> {
        let w = batch.ended.max(self.committed)?;
        match self.cap {
            Some(cap) if w > cap => (cap > self.committed.unwrap_or(-1)).then_some(cap),
            _ => Some(w),
        }
    }

    fn write_with_retries(&mut self, batch: &mut Batch) -> Result<()> {
        // A batch that was tried before may have committed although its
        // COMMIT's reply never arrived: that is settled before it is sent
        // again, as after every transient failure below.
        let mut outcome_unknown = batch.seq.is_some();
        let seq = match batch.seq {
            Some(seq) => seq,
            None => {
                self.last_seq += 1;
                batch.seq = Some(self.last_seq);
                self.last_seq
            }
        };
        let mark = self.watermark(batch);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = if outcome_unknown {
                // Whatever happened, the chunks are read back from now on.
                self.known.forget();
                self.committed_already(seq).and_then(|done| {
                    if done {
                        Ok((Vec::new(), Vec::new(), Vec::new()))
                    } else {
                        self.write(batch, seq, mark)
                    }
                })
            } else {
                self.write(batch, seq, mark)
            };
            match result {
                Ok((interned, states, metrics)) => {
                    self.metrics.learned(interned);
                    self.known.learn(states, metrics);
                    self.committed = mark.or(self.committed);
                    let now = Instant::now();
                    self.last_commit = now;
                    self.last_beat = now;
                    let mut state = self.shared.lock();
                    state.rows_written += batch.rows() as u64;
                    state.committed_step = self.committed;
                    return Ok(());
                }
                Err(e) if attempt < self.max_attempts && e.is_transient() => {
                    self.known.forget();
                    outcome_unknown = true;
                    self.shared.lock().transient_retries += 1;
                    let backoff = Duration::from_millis(50 << attempt.min(7));
                    tracing::warn!(simulation = %self.sim, error = %e, attempt, ?backoff, "simdb batch failed, retrying");
                    std::thread::sleep(backoff);
                }
                Err(e) => {
                    self.known.forget();
                    return Err(e);
                }
            }
        }
    }

    /// True if batch `seq` of this lease is already in the database.
    fn committed_already(&self, seq: i64) -> Result<bool> {
        let stored = with_connection!(self.db.writer()?, |c| c
            .committed_batch(self.sim_key, self.token))?;
        match stored {
            Some(stored) => Ok(stored >= seq),
            None => Err(with_connection!(self.db.writer()?, |c| c
                .ownership_error(self.sim_key, &self.sim))),
        }
    }

    /// Writes one batch in one transaction; returns what it learned.
    fn write(&self, batch: &Batch, seq: i64, mark: Option<i64>) -> Result<Written> {
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            // First: the run exists, runs and is ours. Its row stays locked
            // (PostgreSQL) or the database stays locked (SQLite) until COMMIT.
            c.mark_batch(self.sim_key, &self.sim, self.token, seq, mark)?;
            write_batch(c, self.sim_key, batch, &self.metrics, Some(&self.known))
        }))
    }

    fn retry(&mut self) {
        {
            let mut state = self.shared.lock();
            state.error = None;
        }
        self.shared.failed.store(false, Ordering::Release);
        while let Some(mut batch) = self.held.pop_front() {
            if let Err(e) = self.write_with_retries(&mut batch) {
                self.held.push_front(batch);
                self.publish_held();
                self.fail(e);
                return;
            }
            self.publish_held();
        }
    }

    fn discard(&mut self) -> u64 {
        let mut rows = 0;
        for batch in self.held.drain(..) {
            rows += batch.rows() as u64;
            if let Some(first) = batch.min_step {
                let below = first.saturating_sub(1);
                self.cap = Some(self.cap.map_or(below, |c| c.min(below)));
            }
        }
        self.publish_held();
        self.shared.lock().error = None;
        self.shared.failed.store(false, Ordering::Release);
        rows
    }

    fn release(&mut self) {
        let released = self
            .db
            .writer()
            .and_then(|conn| with_connection!(conn, |c| c.release_lease(self.sim_key, self.token)));
        if let Err(e) = released {
            tracing::warn!(simulation = %self.sim, error = %e, "simdb could not release the recorder's lease");
        }
    }
}
