//! What the recording thread and the writer thread share: the messages on
//! the queue between them, the batch being filled, and the writer's state
//! (its error, the rows it holds and wrote, the commit watermark).

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};

use super::batch::Batch;
use crate::error::Error;

/// What the recording side asks of the writer, in queue order. A batch
/// travels by value: one message per thousands of rows, where a box would
/// cost an allocation per batch for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// Write this batch.
    Batch(Batch),
    /// Answer once everything queued before is settled.
    Flush(SyncSender<()>),
    /// Clear the error and write the held batches again, oldest first.
    Retry(SyncSender<()>),
    /// Drop the held batches; answer with how many rows they had.
    Discard(SyncSender<u64>),
    /// Give the lease up and stop.
    Close(SyncSender<()>),
    /// Stop as if the process died: keep the lease (tests of crash recovery).
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    Abandon(SyncSender<()>),
}

/// What the writer thread shares with the recording thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The batch being filled. The recorder hands it off while holding this
    /// lock, and the writer takes it on its timer only while holding it and
    /// seeing the queue empty: batches reach the database in recording order.
    pub(crate) current: Mutex<Batch>,
    pub(crate) failed: AtomicBool,
    pub(crate) state: Mutex<WriterState>,
    /// A batch the writer wrote, emptied, for the recorder's next one
    /// ([`Batch::emptied`]).
    pub(crate) spare: Mutex<Option<Batch>>,
}

#[derive(Debug, Default)]
pub(crate) struct WriterState {
    pub(crate) error: Option<Arc<Error>>,
    /// Rows of the batches held because of `error`.
    pub(crate) held_rows: u64,
    pub(crate) rows_written: u64,
    /// Transient failures the writer retried (see [`Error::is_transient`]).
    pub(crate) transient_retries: u64,
    /// The commit watermark: every row of every step up to it is committed.
    pub(crate) committed_step: Option<i64>,
}

/// Locks a mutex even if a thread panicked while holding it: every update
/// under these locks leaves the data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, WriterState> {
        lock(&self.state)
    }

    pub(crate) fn current(&self) -> MutexGuard<'_, Batch> {
        lock(&self.current)
    }

    /// Offers a written batch's room to the recorder (one is kept).
    pub(crate) fn recycle(&self, batch: Batch) {
        let mut spare = lock(&self.spare);
        if spare.is_none() {
            *spare = Some(batch.emptied());
        }
    }

    /// An empty batch for the recorder: the spare, or a new one with the
    /// room `like` had.
    pub(crate) fn empty_batch(&self, like: &Batch) -> Batch {
        if let Some(batch) = lock(&self.spare).take() {
            return batch;
        }
        let mut batch = Batch::default();
        batch.json.reserve(like.json.capacity());
        batch.states.reserve(like.states.capacity());
        batch.metrics.reserve(like.metrics.capacity());
        batch
    }

    /// The writer's failure, counting as unpersisted the held batches plus
    /// `pending` rows still on the recording side.
    pub(crate) fn error(&self, pending: usize) -> Option<Error> {
        let state = self.lock();
        state.error.as_ref().map(|e| Error::Recorder {
            unpersisted_rows: state.held_rows + pending as u64,
            source: Arc::clone(e),
        })
    }
}
