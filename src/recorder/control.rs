//! Flushing, retrying, discarding and closing: the calls that wait for the
//! writer, each travelling through its queue in order.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::shared::Msg;
use super::Recorder;
use crate::error::{Error, Result};

/// Sends `msg`, waiting for room in the queue at most until `deadline`.
fn send_until(sender: &SyncSender<Msg>, msg: Msg, deadline: Option<Instant>) -> bool {
    let Some(deadline) = deadline else {
        return sender.send(msg).is_ok();
    };
    let mut msg = msg;
    loop {
        match sender.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                msg = back;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

impl Recorder {
    /// Writes everything recorded so far, waits until it is committed and
    /// returns the commit watermark (see [`Recorder::committed_step`]).
    ///
    /// What a successful flush promises depends on the database's
    /// [`Durability`](crate::Durability): with the default `PowerLoss` the rows survive a
    /// power cut; with `ProcessCrash`, a crash of the recording process.
    ///
    /// # Errors
    /// [`Error::Recorder`](crate::Error::Recorder) if any batch failed: it and every later one are
    /// kept in memory, see [`Recorder::retry`].
    pub fn flush(&mut self) -> Result<Option<i64>> {
        self.check_writer()?;
        self.hand_off()?;
        self.wait(Msg::Flush)?;
        match self.shared.error(self.pending_rows()) {
            Some(e) => Err(e),
            None => Ok(self.committed_step()),
        }
    }

    /// Sends a message that carries an acknowledgement and waits for it.
    fn wait<T>(&self, msg: impl FnOnce(SyncSender<T>) -> Msg) -> Result<T> {
        let sender = self.sender.as_ref().ok_or(Error::RecorderClosed)?;
        let (ack, done) = sync_channel(1);
        sender.send(msg(ack)).map_err(|_| self.writer_gone())?;
        done.recv().map_err(|_| self.writer_gone())
    }

    /// After a failure, writes the held rows again (oldest batch first, in
    /// the writer's queue order) and waits; returns the watermark. Useful once
    /// a transient cause (a database restart) is gone.
    ///
    /// # Errors
    /// [`Error::Recorder`](crate::Error::Recorder) if writing fails again.
    pub fn retry(&mut self) -> Result<Option<i64>> {
        if self.sender.is_none() {
            return Err(Error::RecorderClosed);
        }
        self.wait(Msg::Retry)?;
        self.flush()
    }

    /// After a failure, drops the batches the writer refused or did not
    /// reach and returns how many rows they held, so that recording can go
    /// on. Rows recorded since the last hand-off stay queued and are written
    /// by the next flush. The watermark never passes the step before the
    /// first dropped row: a resume after a crash cuts from there.
    pub fn discard_unpersisted(&mut self) -> u64 {
        match self.wait(Msg::Discard) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(simulation = %self.sim, error = %e, "simdb could not discard held rows");
                0
            }
        }
    }

    /// Ends every recorded step, writes everything, gives the run's lease up,
    /// stops the writer thread and reports any failure.
    ///
    /// # Errors
    /// [`Error::Recorder`](crate::Error::Recorder) if rows could not be written.
    pub fn close(mut self) -> Result<()> {
        if let Some(last) = self.max_step() {
            if self.ended.is_none_or(|e| e < last) && self.sender.is_some() {
                self.shared.current().ended = Some(last);
                self.ended = Some(last);
            }
        }
        self.shutdown(None)
    }

    /// Hands everything to the writer, asks it to release the lease and
    /// stop, and waits (until `deadline`, if given).
    fn shutdown(&mut self, bound: Option<Duration>) -> Result<()> {
        let Some(sender) = self.sender.take() else {
            return Ok(());
        };
        let deadline = bound.map(|b| Instant::now() + b);
        let last = {
            let mut current = self.shared.current();
            (!current.is_empty()).then(|| std::mem::take(&mut *current))
        };
        let pending = last.as_ref().map_or(0, Batch::rows);
        let (ack, done) = sync_channel(1);
        let sent = last.is_none_or(|b| send_until(&sender, Msg::Batch(b), deadline))
            && send_until(&sender, Msg::Close(ack), deadline);
        drop(sender);
        let finished = sent
            && match deadline {
                None => done.recv().is_ok(),
                Some(d) => done
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                    .is_ok(),
            };
        if finished {
            if let Some(handle) = self.writer.take() {
                if handle.join().is_err() {
                    tracing::error!(simulation = %self.sim, "simdb writer thread panicked");
                }
            }
        } else {
            // Still writing after the bound: left to finish on its own.
            self.writer = None;
            let unwritten = self.rows_recorded().saturating_sub(self.rows_written());
            tracing::error!(
                simulation = %self.sim,
                rows = unwritten.max(pending as u64),
                "simdb recorder dropped before its writer finished; these rows may not be written"
            );
            return Err(Error::Recorder {
                unpersisted_rows: unwritten.max(pending as u64),
                source: Arc::new(Error::invalid(
                    "recorder",
                    "the writer did not finish within drop_timeout",
                )),
            });
        }
        match self.shared.error(0) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(feature = "test-support")]
impl Recorder {
    /// For crash tests: stops the way a killed process does. The batches
    /// already handed to the writer are written; the batch being filled is
    /// lost; the lease is kept and simply stops heartbeating.
    #[doc(hidden)]
    pub fn crash_for_tests(mut self) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        drop(std::mem::take(&mut *self.shared.current()));
        let (ack, done) = sync_channel(1);
        if sender.send(Msg::Abandon(ack)).is_ok() {
            let _ = done.recv();
        }
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(Some(self.options.drop_timeout)) {
            tracing::error!(simulation = %self.sim, error = %e, "simdb recorder dropped with unwritten rows");
        }
    }
}
