//! Tuning of a recorder.

use std::time::Duration;

/// Tuning of a [`Recorder`](super::Recorder). Start from
/// `RecorderOptions::default()` and change what you need:
///
/// ```
/// use std::time::Duration;
/// let options = simdb::RecorderOptions::default()
///     .batch_rows(2_000)
///     .flush_interval(Duration::from_millis(250));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderOptions {
    /// The most rows per batch (one transaction). Default 65,536. A batch
    /// holding half as many or more goes to the writer as soon as the first
    /// row of the next 64-step chunk arrives, so that batches end on chunk
    /// boundaries and every chunk is written whole, once (a batch that ends
    /// inside an agent's chunk leaves its tail to be read, merged and
    /// written again by the next).
    pub batch_rows: usize,
    /// Bytes per batch (JSON text, memory snapshots and a small overhead
    /// per row): a batch is handed to the writer when it reaches this
    /// limit, and a single row larger than this is refused with
    /// [`Error::RowTooLarge`](crate::Error::RowTooLarge). Default 16 MiB.
    pub batch_bytes: usize,
    /// Full batches that may wait for the writer before recording calls
    /// block (backpressure). Default 2. At most `max_pending_batches + 2`
    /// batches are in memory, and on PostgreSQL up to two more while the
    /// writer encodes the next batches beside a statement on the server.
    pub max_pending_batches: usize,
    /// Attempts per batch on a transient failure (lost connection, busy
    /// database) before the recorder reports an error. Default 6.
    pub max_attempts: u32,
    /// The longest time a recorded row waits before the writer commits it,
    /// however slowly the simulation records. Default 1 s.
    pub flush_interval: Duration,
    /// A recorder that has not heartbeated for this long (by the database's
    /// clock) no longer holds its run: another may resume it. The writer
    /// heartbeats at least every `lease_timeout / 4`. Default 30 s.
    pub lease_timeout: Duration,
    /// The longest time dropping a recorder without [`close`](super::Recorder::close)
    /// waits for its rows to be written; what is not written by then is
    /// logged through `tracing`. Default 10 s.
    pub drop_timeout: Duration,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            batch_rows: 65_536,
            batch_bytes: 16 << 20,
            max_pending_batches: 2,
            max_attempts: 6,
            flush_interval: Duration::from_secs(1),
            lease_timeout: Duration::from_secs(30),
            drop_timeout: Duration::from_secs(10),
        }
    }
}

/// The smallest interval the writer wakes up for (a shorter one would only
/// burn the database with empty heartbeats).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl RecorderOptions {
    /// Sets the rows per batch (at least 1).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }
    /// Sets the bytes per batch (at least 4 KiB).
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(4096);
        self
    }
    /// Sets how many full batches may queue (at least 1).
    pub fn max_pending_batches(mut self, batches: usize) -> Self {
        self.max_pending_batches = batches.max(1);
        self
    }
    /// Sets the attempts per batch (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
    /// Sets the longest wait before a recorded row is committed (at least
    /// 10 ms).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(MIN_INTERVAL);
        self
    }
    /// Sets how long without a heartbeat a recorder keeps its run (at least
    /// 40 ms, so that four heartbeats fit in it).
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.lease_timeout = timeout.max(MIN_INTERVAL * 4);
        self
    }
    /// Sets how long dropping an unclosed recorder may wait for its rows.
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// The options with every value in its allowed range (fields are public,
    /// so they may have been set around the setters).
    pub(crate) fn normalized(self) -> Self {
        RecorderOptions::default()
            .batch_rows(self.batch_rows)
            .batch_bytes(self.batch_bytes)
            .max_pending_batches(self.max_pending_batches)
            .max_attempts(self.max_attempts)
            .flush_interval(self.flush_interval)
            .lease_timeout(self.lease_timeout)
            .drop_timeout(self.drop_timeout)
    }

    /// How often the writer wakes: to commit what waited `flush_interval`,
    /// and to heartbeat four times per lease timeout.
    pub(crate) fn tick(&self) -> Duration {
        self.flush_interval
            .min(self.lease_timeout / 4)
            .max(MIN_INTERVAL)
    }
}
