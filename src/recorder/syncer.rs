//! A recorder's commits made durable off its writer's path (a SQLite file
//! under `Durability::PowerLoss`). With `synchronous = FULL` every commit
//! waits for the WAL's fsync, and the writer encodes nothing meanwhile.
//! Instead the writer commits its batches with the WAL unsynced
//! (`synchronous = NORMAL`, `store/transaction.rs`) and goes on with the
//! next batch, while this thread fsyncs the WAL file (`fdatasync`: one for
//! every commit that arrived while the last one ran) and only then
//! publishes those commits' rows and watermark. What a recorder
//! acknowledges (its watermark, `flush`, `close`) is therefore on disk, as
//! before; what a power cut can take is only what was never acknowledged,
//! and SQLite's WAL, whose frames carry checksums, comes back as a prefix
//! of the commits: the stored watermark and its rows always together.
//!
//! The file is the one SQLite writes (the database's resolved path plus
//! `-wal`), checked by its magic number when opened; SQLite takes no lock
//! on it, so holding and closing a descriptor of it is harmless. A
//! recorder whose WAL cannot be opened so commits with the WAL synced, as
//! before. An fsync that fails is reported as the recorder's error, and the
//! watermark stops at the last commit synced: Linux may have dropped the
//! pages that failed, so no later fsync can vouch for them.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::shared::Shared;
use crate::error::Error;

/// The first four bytes of a WAL file (big-endian; the last bit says the
/// checksums' byte order).
const WAL_MAGIC: [u32; 2] = [0x377f_0682, 0x377f_0683];

enum SyncMsg {
    /// A commit of `rows` rows, after which the writer's watermark was
    /// `committed`.
    Committed { rows: u64, committed: Option<i64> },
    /// Answer once every commit sent before is synced and published.
    Barrier(SyncSender<()>),
}

/// The syncing thread of one recorder; stopped and joined when dropped,
/// once every commit sent to it is synced.
pub(crate) struct Syncer {
    sender: Option<Sender<SyncMsg>>,
    thread: Option<JoinHandle<()>>,
}

/// The WAL file at `path`, if it is one.
fn open_wal(path: &Path) -> std::io::Result<File> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)?;
    if !WAL_MAGIC.contains(&u32::from_be_bytes(magic)) {
        return Err(std::io::Error::other("not a SQLite WAL file"));
    }
    // Its name in the directory is on disk too.
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(file)
}

impl Syncer {
    /// Starts the thread for the WAL at `wal`; `None` (the writer's
    /// commits then sync the WAL themselves) if it is not a WAL file or the
    /// thread cannot be had.
    pub(crate) fn start(wal: PathBuf, shared: Arc<Shared>, sim_key: i32) -> Option<Syncer> {
        let file = match open_wal(&wal) {
            Ok(file) => file,
            Err(e) => {
                tracing::debug!(path = %wal.display(), error = %e, "no WAL syncer: commits sync the WAL");
                return None;
            }
        };
        let (sender, receiver) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("simdb-sync-{sim_key}"))
            .spawn(move || run(file, wal, receiver, shared))
            .map_err(|e| tracing::debug!(error = %e, "no WAL syncer thread"))
            .ok()?;
        Some(Syncer {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// The writer committed `rows` rows; its watermark is now `committed`.
    pub(crate) fn committed(&self, rows: u64, committed: Option<i64>) {
        if let Some(sender) = &self.sender {
            // The thread only ends when this sender is dropped.
            let _ = sender.send(SyncMsg::Committed { rows, committed });
        }
    }

    /// Waits until every commit sent so far is synced and published.
    pub(crate) fn barrier(&self) {
        let Some(sender) = &self.sender else {
            return;
        };
        let (ack, done) = sync_channel(1);
        if sender.send(SyncMsg::Barrier(ack)).is_ok() {
            let _ = done.recv();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Dropping the sender ends the thread once it has synced the rest.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("simdb's WAL syncing thread panicked");
            }
        }
    }
}

fn run(file: File, path: PathBuf, receiver: Receiver<SyncMsg>, shared: Arc<Shared>) {
    let mut broken = false;
    while let Ok(first) = receiver.recv() {
        // Everything queued meanwhile is covered by one fsync.
        let (mut rows, mut mark, mut commits) = (0u64, None, 0usize);
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                SyncMsg::Committed { rows: r, committed } => {
                    rows += r;
                    // The writer's watermark only rises: the last is highest.
                    mark = committed;
                    commits += 1;
                }
                SyncMsg::Barrier(ack) => acks.push(ack),
            }
            next = receiver.try_recv().ok();
        }
        if commits > 0 {
            #[cfg(feature = "test-support")]
            crate::test_support::wal_sync_gate(&path);
            // Once an fsync failed, none vouches for those pages again.
            let synced = if broken {
                Err(std::io::Error::other("an earlier sync of the WAL failed"))
            } else {
                sync(&file)
            };
            match synced {
                Ok(()) => {
                    let mut state = shared.lock();
                    state.rows_written += rows;
                    if mark.is_some() {
                        state.committed_step = mark;
                    }
                }
                Err(e) => {
                    broken = true;
                    tracing::error!(path = %path.display(), error = %e, "simdb could not sync the WAL");
                    let mut state = shared.lock();
                    if state.error.is_none() {
                        state.error = Some(Arc::new(Error::Io {
                            path: path.display().to_string(),
                            source: std::io::Error::new(
                                e.kind(),
                                format!(
                                    "syncing the WAL failed ({e}): {rows} rows committed since the last sync may not survive a power cut"
                                ),
                            ),
                        }));
                    }
                    shared.failed.store(true, Ordering::Release);
                }
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// The WAL's data on disk; an error if the file was removed meanwhile
/// (its commits would be in a WAL this descriptor does not reach).
fn sync(file: &File) -> std::io::Result<()> {
    file.sync_data()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if file.metadata()?.nlink() == 0 {
            return Err(std::io::Error::other("the WAL file was removed"));
        }
    }
    Ok(())
}
