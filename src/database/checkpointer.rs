//! SQLite WAL checkpoints off a recorder's path. By default SQLite's
//! committing connection copies the WAL back into the database file itself
//! once the WAL holds 1,000 pages, and fsyncs the file: inside the commit
//! of whichever batch crossed the mark, a sixth of a recorder's writer
//! time. A recorder's batches are instead committed with that turned off
//! (`wal_autocheckpoint = 0`, `store/transaction.rs::DeferCheckpoints`;
//! every other write keeps SQLite's default), and a thread of the
//! database, on its own connection, checkpoints in `PASSIVE` mode (never
//! waiting for, nor blocking, a reader or the writer) once a recorder's
//! commits add up to about 4 MiB, and every few seconds. Durability is unchanged: a commit is
//! durable by the WAL's fsync (`Durability`; for a recorder's batches made
//! by `recorder/syncer.rs`); a checkpoint only moves committed pages.
//!
//! SQLite starts the WAL over from its beginning only at a write that
//! follows a checkpoint of all of it; a `PASSIVE` checkpoint beside a
//! writer that never pauses never copies all of it (the writer commits
//! more meanwhile), so the WAL grew by every page every commit wrote (2
//! GiB over the engine bench's 80,000 steps, each new page an allocation
//! for the file system too). Once a checkpoint finds the WAL longer than
//! [`RESTART_FRAMES`], the thread asks the writer to finish it (the frames
//! it reports copied are those it found at its start, so it cannot tell
//! whether the writer committed more meanwhile):
//! before its next batch the writer checkpoints the few frames committed
//! since, on its own connection (`Database::take_checkpoint_to_finish`),
//! and its next commit starts the WAL over.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel::Connection;

use super::sqlite::{configure_sqlite, SqliteSettings};

/// Bytes of recorder commits after which a checkpoint is asked for: about
/// SQLite's own mark (1,000 pages of 4 KiB). Checkpointing after every
/// batch instead cost a recorder of compressible states a tenth of its
/// rate under `PowerLoss` (each checkpoint fsyncs the database file).
const THRESHOLD: u64 = 4 << 20;

/// WAL frames (of about 4 KiB) past which the writer finishes the
/// checkpoint thread's checkpoints: about the WAL's size between restarts
/// (64 MiB).
const RESTART_FRAMES: i32 = 16_384;

/// The longest the WAL goes unchecked while no recorder nudges.
const TICK: Duration = Duration::from_secs(5);

/// The checkpointing thread of one SQLite file database; stopped and
/// joined when dropped (with the last handle of the database).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    /// What the database's commits survive.
    pub(crate) durability: super::options::Durability,
    /// Bytes committed since the last nudge.
    pending: AtomicU64,
    nudge: Mutex<Option<SyncSender<()>>>,
    /// Set when a checkpoint found a WAL of more than `restart_frames`.
    unfinished: Arc<AtomicBool>,
    /// [`RESTART_FRAMES`], or what a test set (`test_support`).
    #[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
    restart_frames: Arc<AtomicI32>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `target`; `None` (and
    /// the writer keeps checkpointing on commit) if that cannot be had.
    pub(crate) fn start(target: &str, settings: SqliteSettings) -> Option<Checkpointer> {
        let mut conn = match SqliteConnection::establish(target) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "no checkpointer: the writer checkpoints on commit");
                return None;
            }
        };
        if let Err(e) = configure_sqlite(&mut conn, settings) {
            tracing::debug!(error = %e, "no checkpointer: the writer checkpoints on commit");
            return None;
        }
        let (nudge, nudged) = sync_channel(1);
        let unfinished = Arc::new(AtomicBool::new(false));
        let restart_frames = Arc::new(AtomicI32::new(RESTART_FRAMES));
        let (flag, frames) = (Arc::clone(&unfinished), Arc::clone(&restart_frames));
        let thread = std::thread::Builder::new()
            .name("simdb-checkpoint".into())
            .spawn(move || run(conn, nudged, &flag, &frames))
            .map_err(|e| tracing::debug!(error = %e, "no checkpointer thread"))
            .ok()?;
        Some(Checkpointer {
            durability: settings.durability,
            pending: AtomicU64::new(0),
            nudge: Mutex::new(Some(nudge)),
            unfinished,
            restart_frames,
            thread: Some(thread),
        })
    }

    /// True (once) if a checkpoint found a WAL of more than
    /// [`RESTART_FRAMES`]: the writer should finish it before its next
    /// batch.
    pub(crate) fn take_unfinished(&self) -> bool {
        self.unfinished.swap(false, Ordering::Relaxed)
    }

    /// Sets the WAL frames past which the writer finishes checkpoints.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn restart_after(&self, frames: i32) {
        self.restart_frames.store(frames, Ordering::Relaxed);
    }

    /// A recorder committed about `bytes` to the WAL: once such commits
    /// add up to [`THRESHOLD`], asks for a checkpoint; never blocks.
    pub(crate) fn wrote(&self, bytes: u64) {
        let before = self.pending.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) < THRESHOLD {
            return;
        }
        self.pending.store(0, Ordering::Relaxed);
        let guard = self.nudge.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(nudge) = guard.as_ref() {
            // Full: a checkpoint is already asked for; disconnected: the
            // thread is stopping. Neither needs more.
            let _ = nudge.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Dropping the sender ends the thread's wait.
        self.nudge.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("simdb's checkpoint thread panicked");
            }
        }
    }
}

/// What `PRAGMA wal_checkpoint` reports of the WAL: its frames when the
/// checkpoint began (-1 if the database is not in WAL mode).
#[derive(diesel::QueryableByName)]
struct Checkpointed {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
}

fn run(
    mut conn: SqliteConnection,
    nudged: Receiver<()>,
    unfinished: &AtomicBool,
    restart_frames: &AtomicI32,
) {
    use diesel::RunQueryDsl;
    loop {
        match nudged.recv_timeout(TICK) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Busy (another process checkpointing) or a full disk: the next
        // round tries again; the WAL keeps every committed page meanwhile.
        let checkpoint = |conn: &mut SqliteConnection| {
            diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Checkpointed>(conn)
        };
        match checkpoint(&mut conn) {
            Ok(done) => {
                if done.log > restart_frames.load(Ordering::Relaxed) {
                    // Again at once: the frames the writer committed during
                    // that checkpoint, fewer, so that what the writer is
                    // left to copy is a short round's worth.
                    if let Err(e) = checkpoint(&mut conn) {
                        tracing::debug!(error = %e, "simdb checkpoint deferred");
                    }
                    unfinished.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::debug!(error = %e, "simdb checkpoint deferred"),
        }
    }
}
