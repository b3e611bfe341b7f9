//! Tuning of a recorder.

/// Tuning of a [`Recorder`](super::Recorder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderOptions {
    /// Rows per batch (one transaction). Default 10,000.
    pub batch_rows: usize,
    /// Full batches that may wait for the writer before recording calls
    /// block (backpressure). Default 2. At most
    /// `batch_rows * (max_pending_batches + 2)` rows are in memory.
    pub max_pending_batches: usize,
    /// Attempts per batch on a transient failure (lost connection, busy
    /// database) before the recorder reports an error. Default 6.
    pub max_attempts: u32,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            batch_rows: 10_000,
            max_pending_batches: 2,
            max_attempts: 6,
        }
    }
}

impl RecorderOptions {
    /// Sets the rows per batch (at least 1).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
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
}
