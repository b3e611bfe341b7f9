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
use super::bulk::{
    intern_missing, prepare_at_once, write_batch, write_batch_at_once, AtOnce, Bulk, RowBuffers,
    Written,
};
use super::metric_names::MetricCache;
use super::sender::Sender;
use super::shared::{Msg, Shared};
use super::syncer::Syncer;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::store::batch_statement::{BatchLease, BatchStatement};
use crate::store::known_chunks::KnownChunks;
use crate::store::known_rollups::KnownRollups;
use crate::store::prelude::*;
use crate::with_connection;

/// The most batches written together: the one taken and one queued behind
/// it. Each one taken off the queue lets the recorder fill another, so a
/// group adds a batch to what is in memory; it is only formed while batches
/// go to the server as one statement (PostgreSQL, where a write's round
/// trip is what grouping saves), never on SQLite.
const MAX_GROUP: usize = 2;

/// Why a write failed, and whether it is known that nothing of it is
/// stored (`settled`) or it may have committed.
#[derive(Debug)]
struct Failure {
    error: Error,
    settled: bool,
}

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
    /// What this writer's commits left in the chunks.
    pub(crate) known: KnownChunks,
    /// What is stored of the rollups.
    pub(crate) rollups: KnownRollups,
    pub(crate) last_commit: Instant,
    pub(crate) last_beat: Instant,
    /// A message taken off the queue while gathering batches, handled next.
    pub(crate) stash: Option<Msg>,
    /// The last write went to the server as one statement: queued batches
    /// are written together.
    pub(crate) at_once: bool,
    /// SQLite under `PowerLoss`: the thread that syncs the WAL after the
    /// batches' commits and then publishes them (`syncer.rs`).
    pub(crate) syncer: Option<Syncer>,
    /// PostgreSQL: the thread that sends one-statement writes while this
    /// one encodes the next (`sender.rs`); started at the first.
    pub(crate) sender: Option<Sender>,
    /// The group whose statement the sender has, not yet answered.
    pub(crate) in_flight: Option<InFlight>,
    /// The row vectors of the last batch, for the next.
    pub(crate) buffers: RowBuffers,
}

/// A group sent as one statement by the sender thread, not yet answered:
/// its rows are neither published nor learned until it is.
pub(crate) struct InFlight {
    group: Vec<Batch>,
    /// The watermark it carries.
    mark: Option<i64>,
}

impl Writer {
    pub(crate) fn run(mut self, receiver: Receiver<Msg>) {
        loop {
            let wait = self.tick.saturating_sub(self.last_beat.elapsed());
            let next = match self.stash.take() {
                Some(msg) => Ok(msg),
                // A statement on the server: the next batch is encoded
                // meanwhile if it is there, else its answer is awaited
                // before anything else.
                None if self.in_flight.is_some() => match receiver.try_recv() {
                    Ok(msg) => Ok(msg),
                    Err(TryRecvError::Empty) => {
                        self.settle_in_flight();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                },
                None => receiver.recv_timeout(wait),
            };
            match next {
                Ok(Msg::Close(ack)) => {
                    self.release();
                    let _ = ack.send(());
                    return;
                }
                Ok(Msg::Abandon(ack)) => {
                    self.settle_in_flight();
                    let _ = ack.send(());
                    return;
                }
                Ok(msg) => self.handle(msg, &receiver),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.release();
                    return;
                }
            }
            if self.last_beat.elapsed() >= self.tick {
                self.settle_in_flight();
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

    fn handle(&mut self, msg: Msg, receiver: &Receiver<Msg>) {
        if !matches!(msg, Msg::Batch(_)) {
            self.settle_in_flight();
        }
        match msg {
            Msg::Batch(batch) => self.take(batch, receiver),
            Msg::Flush(ack) => {
                self.settle_syncs();
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
            let queued = match self.stash.take() {
                Some(msg) => Ok(msg),
                None => receiver.try_recv(),
            };
            match queued {
                Ok(msg) => {
                    drop(current);
                    return match msg {
                        Msg::Close(_) | Msg::Abandon(_) => Some(msg),
                        other => {
                            self.handle(other, receiver);
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
            Some(batch) => self.take(batch, receiver),
            None => self.heartbeat(),
        }
        None
    }

    /// Waits until every commit is synced and published (a flush's, a
    /// failure's and a release's promise).
    fn settle_syncs(&self) {
        if let Some(syncer) = &self.syncer {
            syncer.barrier();
        }
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
        // What committed before the failure is published first: the error
        // is seen with the watermark of every batch before it.
        self.settle_syncs();
        let mut state = self.shared.lock();
        if state.error.is_none() {
            state.error = Some(Arc::new(e));
        }
        self.shared.failed.store(true, Ordering::Release);
    }

    fn publish_held(&self) {
        self.shared.lock().held_rows = self.held.iter().map(|b| b.rows() as u64).sum();
    }

    /// Writes a batch together with the batches queued behind it, or
    /// holds them behind an earlier failure. Written together, queued
    /// batches cost one write: a writer slower than its recorder (one far
    /// from its server) writes bigger batches in as many round trips.
    fn take(&mut self, batch: Batch, receiver: &Receiver<Msg>) {
        let mut group = vec![batch];
        while self.at_once
            && group.len() < MAX_GROUP
            && !self.shared.failed.load(Ordering::Acquire)
            && self.stash.is_none()
        {
            match receiver.try_recv() {
                Ok(Msg::Batch(next)) => group.push(next),
                Ok(other) => self.stash = Some(other),
                Err(_) => break,
            }
        }
        for batch in &group {
            for (id, name) in &batch.new_metric_names {
                self.metrics.register(*id, name);
            }
        }
        // PostgreSQL, the last write one statement: this group is encoded
        // while the last one is on the server, and sent once it is
        // answered.
        if self.at_once && !self.shared.failed.load(Ordering::Acquire) {
            if let Some(at_once) = self.prepare_pipelined(&group) {
                if self.settle_in_flight() {
                    return self.dispatch(group, at_once);
                }
                // The last one failed: what was encoded after it assumed it
                // committed, and is written the usual way.
            }
        }
        self.settle_in_flight();
        self.write_group(group);
    }

    /// Encodes `group` as one statement without reading anything (the
    /// last statement may still be on the server); what it writes is then
    /// known as being written. `None` where it must go the usual way.
    fn prepare_pipelined(&mut self, group: &[Batch]) -> Option<AtOnce> {
        if !self.known.is_known() || !self.rollups.is_known() {
            return None;
        }
        let conn = self.db.writer().ok()?;
        let prepared = with_connection!(conn, |c| prepare_at_once(
            c,
            self.sim_key,
            group,
            &self.metrics,
            &self.known,
            &self.rollups,
            &mut self.buffers,
            false
        ));
        let at_once = prepared.ok().flatten()?;
        let (highest, totals) = at_once.rollups_after();
        self.rollups.learn(highest, totals);
        let (states, metrics) = at_once.highest_chunks();
        self.known.states.reserve(states);
        self.known.metrics.reserve(metrics);
        Some(at_once)
    }

    /// Hands `group`, encoded, to the sender thread (started here the first
    /// time); written the usual way if that thread cannot be had.
    fn dispatch(&mut self, mut group: Vec<Batch>, at_once: AtOnce) {
        self.last_seq += 1;
        let seq = self.last_seq;
        if let Some(first) = group.first_mut() {
            first.seq = Some(seq);
        }
        let mark = self.watermark(&group);
        if self.sender.is_none() {
            match Sender::start(self.db.clone(), self.sim_key, self.sim.clone(), self.token) {
                Ok(sender) => self.sender = Some(sender),
                Err(e) => {
                    tracing::warn!(simulation = %self.sim, error = %e, "simdb writes its batches itself")
                }
            }
        }
        let sent = match &self.sender {
            Some(sender) => sender.send(at_once, seq, mark),
            None => false,
        };
        if sent {
            self.in_flight = Some(InFlight { group, mark });
        } else {
            // Never sent: what it would write is not known, and the sequence
            // number it took is settled as any other before it is written.
            self.sender = None;
            self.known.forget();
            self.rollups.forget();
            self.write_group(group);
        }
    }

    /// Waits for the answer to the statement on the server, if any: on
    /// success publishes its rows and watermark and learns its chunks; on
    /// failure writes its group the usual way (settled first by its
    /// sequence number, as any retry). True if there was none or it
    /// committed at once.
    fn settle_in_flight(&mut self) -> bool {
        let Some(flight) = self.in_flight.take() else {
            return true;
        };
        let answer = self.sender.as_ref().and_then(Sender::answer);
        match answer {
            Some((Ok(()), at_once)) => {
                let written = at_once.into_written(&mut self.buffers);
                // Its rollups were learned when it was encoded.
                self.known.learn(written.states, written.metrics);
                self.publish_commit(&flight.group, flight.mark);
                flight
                    .group
                    .into_iter()
                    .for_each(|b| self.shared.recycle(b));
                true
            }
            failed => {
                self.known.forget();
                self.rollups.forget();
                let error = match failed {
                    Some((Err(e), _)) => e,
                    _ => {
                        self.sender = None;
                        Error::invalid("recorder", "the sender thread stopped")
                    }
                };
                // The connection it failed on is checked before the
                // writer's next statement, as if it had failed here.
                crate::database::note_connection_error();
                if error.is_transient() {
                    self.shared.lock().transient_retries += 1;
                    tracing::warn!(simulation = %self.sim, error = %error, "simdb batch failed, retrying");
                    std::thread::sleep(Duration::from_millis(100));
                } else {
                    tracing::warn!(simulation = %self.sim, error = %error, "simdb batch failed, writing it again");
                }
                self.write_group(flight.group);
                false
            }
        }
    }

    /// Writes `group` (consecutive batches) in one write, else each on its
    /// own, or holds them behind an earlier failure.
    fn write_group(&mut self, mut group: Vec<Batch>) {
        if self.shared.failed.load(Ordering::Acquire) {
            self.held.extend(group);
            self.publish_held();
            return;
        }
        if group.len() > 1 {
            match self.write_with_retries(&mut group) {
                Ok(()) => {
                    group.into_iter().for_each(|b| self.shared.recycle(b));
                    return;
                }
                Err(failure) if failure.settled => {
                    // Nothing of them is stored: each goes on its own, so
                    // that a bad row holds back only its own batch.
                    for batch in &mut group {
                        batch.seq = None;
                    }
                }
                Err(failure) => {
                    // They may have committed: held as one batch, settled
                    // by its sequence number when retried.
                    let mut merged = group.remove(0);
                    for batch in group {
                        merged.absorb(batch);
                    }
                    self.hold(merged, failure.error);
                    return;
                }
            }
        }
        let mut rest = group.into_iter();
        while let Some(batch) = rest.next() {
            let mut one = [batch];
            let written = self.write_with_retries(&mut one);
            let [batch] = one;
            if let Err(failure) = written {
                self.hold(batch, failure.error);
                self.held.extend(rest);
                self.publish_held();
                return;
            }
            self.shared.recycle(batch);
        }
    }

    /// Holds a batch that failed, and the error for the recorder's next call.
    fn hold(&mut self, batch: Batch, e: Error) {
        tracing::error!(simulation = %self.sim, error = %e, rows = batch.rows(), "simdb batch failed");
        self.held.push_back(batch);
        self.publish_held();
        self.fail(e);
    }

    /// The watermark these batches carry, never above the cap.
    fn watermark(&self, group: &[Batch]) -> Option<i64> {
        let ended = group.iter().filter_map(|b| b.ended).max();
        let w = ended.max(self.committed)?;
        match self.cap {
            Some(cap) if w > cap => (cap > self.committed.unwrap_or(-1)).then_some(cap),
            _ => Some(w),
        }
    }

    /// Writes `group` (consecutive batches) in one write, under the first
    /// one's sequence number, retrying transient failures.
    fn write_with_retries(&mut self, group: &mut [Batch]) -> std::result::Result<(), Failure> {
        let Some(first) = group.first_mut() else {
            return Ok(());
        };
        // A batch that was tried before may have committed although its
        // COMMIT's reply never arrived: that is settled before it is sent
        // again, as after every transient failure below.
        let mut outcome_unknown = first.seq.is_some();
        let seq = match first.seq {
            Some(seq) => seq,
            None => {
                self.last_seq += 1;
                first.seq = Some(self.last_seq);
                self.last_seq
            }
        };
        let mark = self.watermark(group);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut settling = false;
            let result = if outcome_unknown {
                // Whatever happened, what is stored is read again.
                self.known.forget();
                self.rollups.forget();
                match self.committed_already(seq) {
                    Ok(true) => Ok(Written::default()),
                    Ok(false) => self.write(group, seq, mark),
                    Err(e) => {
                        settling = true;
                        Err(e)
                    }
                }
            } else {
                self.write(group, seq, mark)
            };
            match result {
                Ok(written) => {
                    if self.db.checkpoints_in_background() {
                        let rows = group.iter().map(Batch::rows).sum();
                        self.db.committed(written.wal_bytes(rows));
                    }
                    if let Some(kinds) = written.kinds {
                        self.rollups.set_kinds(kinds);
                    }
                    self.metrics.learned(written.interned);
                    self.known.learn(written.states, written.metrics);
                    self.rollups.learn(written.highest, &written.totals);
                    self.publish_commit(group, mark);
                    return Ok(());
                }
                Err(e) if attempt < self.max_attempts && e.is_transient() => {
                    self.known.forget();
                    self.rollups.forget();
                    outcome_unknown = true;
                    self.shared.lock().transient_retries += 1;
                    let backoff = Duration::from_millis(50 << attempt.min(7));
                    tracing::warn!(simulation = %self.sim, error = %e, attempt, ?backoff, "simdb batch failed, retrying");
                    std::thread::sleep(backoff);
                }
                Err(e) => {
                    self.known.forget();
                    self.rollups.forget();
                    // A write that failed for good rolled back; one whose
                    // outcome is still unknown may have committed.
                    let settled = !settling && !e.is_transient();
                    return Err(Failure { error: e, settled });
                }
            }
        }
    }

    /// After `group` committed with watermark `mark`: the watermark and
    /// its rows are published (on a SQLite file under `PowerLoss`, by the
    /// syncer once the WAL is synced) and the timers start again.
    fn publish_commit(&mut self, group: &[Batch], mark: Option<i64>) {
        self.committed = mark.or(self.committed);
        let now = Instant::now();
        self.last_commit = now;
        self.last_beat = now;
        let rows = group.iter().map(|b| b.rows() as u64).sum::<u64>();
        match &self.syncer {
            // Published once the WAL is synced.
            Some(syncer) => syncer.committed(rows, self.committed),
            None => {
                let mut state = self.shared.lock();
                state.rows_written += rows;
                state.committed_step = self.committed;
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

    /// Writes consecutive batches: as one statement where the backend has
    /// it and the writer knows all they meet, else in one transaction;
    /// returns what it learned.
    fn write(&mut self, group: &[Batch], seq: i64, mark: Option<i64>) -> Result<Written> {
        let conn = self.db.writer()?;
        if self.db.checkpoints_in_background() {
            // The commit does not stop to copy the WAL back: the database's
            // checkpoint thread does, nudged once it returns.
            let unsynced = self.syncer.is_some();
            let finish = self.db.take_checkpoint_to_finish();
            with_connection!(conn, |c| c
                .deferring_checkpoints(unsynced, finish, |c| self
                    .write_on(c, group, seq, mark)))
        } else {
            with_connection!(conn, |c| self.write_on(c, group, seq, mark))
        }
    }

    fn write_on<C: Store + Bulk + BatchStatement>(
        &mut self,
        c: &mut C,
        group: &[Batch],
        seq: i64,
        mark: Option<i64>,
    ) -> Result<Written> {
        // Held by this lease: no one else writes rows of this run, so what
        // is stored now plus what this writer commits is all there is.
        if !self.known.is_known() || !self.rollups.is_known() {
            let stored = c.stored_frontier(self.sim_key)?;
            self.known = KnownChunks::starting_at(stored.state_chunk, stored.metric_chunk);
            self.rollups.read(stored);
        }
        if self.rollups.kinds().is_none() {
            self.rollups.set_kinds(c.agent_kinds(self.sim_key)?);
        }
        let lease = BatchLease {
            sim_key: self.sim_key,
            sim: &self.sim,
            token: self.token,
            seq,
            mark,
        };
        if let Some(written) = write_batch_at_once(
            c,
            &lease,
            group,
            &self.metrics,
            &self.known,
            &self.rollups,
            &mut self.buffers,
        )? {
            self.at_once = true;
            return Ok(written);
        }
        self.at_once = false;
        let kinds = self.rollups.kinds();
        c.write(|c| {
            // First: the run exists, runs and is ours. Its row stays locked
            // (PostgreSQL) or the database stays locked (SQLite) until COMMIT.
            c.mark_batch(self.sim_key, &self.sim, self.token, seq, mark)?;
            // Every new name of every batch first, in one name order.
            let interned = intern_missing(c, group, &self.metrics)?;
            let names = self.metrics.with_learned(&interned);
            let mut all = Written {
                interned,
                ..Written::default()
            };
            for (i, batch) in group.iter().enumerate() {
                // What is known holds for the first batch only: the others
                // read what the ones before them wrote in this transaction.
                let known = (i == 0).then_some(&self.known);
                all.absorb(write_batch(
                    c,
                    self.sim_key,
                    batch,
                    &names,
                    known,
                    kinds,
                    &mut self.buffers,
                )?);
            }
            Ok(all)
        })
    }

    fn retry(&mut self) {
        {
            let mut state = self.shared.lock();
            state.error = None;
        }
        self.shared.failed.store(false, Ordering::Release);
        while let Some(batch) = self.held.pop_front() {
            let mut one = [batch];
            if let Err(failure) = self.write_with_retries(&mut one) {
                let [batch] = one;
                self.held.push_front(batch);
                self.publish_held();
                self.fail(failure.error);
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

    /// Gives the lease up, once every commit is synced and published.
    fn release(&mut self) {
        self.settle_in_flight();
        self.settle_syncs();
        let released = self
            .db
            .writer()
            .and_then(|conn| with_connection!(conn, |c| c.release_lease(self.sim_key, self.token)));
        if let Err(e) = released {
            tracing::warn!(simulation = %self.sim, error = %e, "simdb could not release the recorder's lease");
        }
    }
}
