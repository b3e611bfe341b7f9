//! The sender thread (PostgreSQL): sends a group's one-statement write
//! ([`AtOnce`]) and waits for the server's answer, while the writer thread
//! encodes the next group. Before it, the writer encoded a group and then
//! waited for the server's answer to it, and the server waited for the
//! writer's next statement: on the engine bench the two took turns, each
//! about half of a core, the other half idle. At most one statement is
//! on the server at a time, in the writer's order: the writer sends the
//! next only once the last one is answered, and a group it encoded while a
//! failure was coming back is never sent (it is written the usual way).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use super::bulk::AtOnce;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::store::batch_statement::BatchLease;
use crate::with_connection;

/// One statement to send, under its lease's sequence number and watermark.
struct Job {
    at_once: AtOnce,
    seq: i64,
    mark: Option<i64>,
}

/// The answer to a [`Job`], with its rows back (the writer learns the
/// chunks it wrote from them).
pub(crate) type Answer = (Result<()>, AtOnce);

/// The sender thread of one recorder; stopped and joined when dropped.
pub(crate) struct Sender {
    jobs: Option<SyncSender<Job>>,
    answers: Receiver<Answer>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    /// Starts the thread; it takes a pooled connection of `db` per
    /// statement, as the writer does.
    pub(crate) fn start(
        db: Database,
        sim_key: i32,
        sim: SimulationId,
        token: i64,
    ) -> Result<Sender> {
        let (jobs, queued) = sync_channel::<Job>(1);
        let (answer, answers) = sync_channel::<Answer>(1);
        let thread = std::thread::Builder::new()
            .name(format!("simdb-send-{sim_key}"))
            .spawn(move || {
                for job in queued {
                    let lease = BatchLease {
                        sim_key,
                        sim: &sim,
                        token,
                        seq: job.seq,
                        mark: job.mark,
                    };
                    let sent = db
                        .writer()
                        .and_then(|conn| with_connection!(conn, |c| job.at_once.send(c, &lease)));
                    if answer.send((sent, job.at_once)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::invalid("recorder", format!("cannot spawn sender thread: {e}")))?;
        Ok(Sender {
            jobs: Some(jobs),
            answers,
            thread: Some(thread),
        })
    }

    /// Hands a statement to the thread; false if the thread is gone (the
    /// statement is dropped unsent).
    pub(crate) fn send(&self, at_once: AtOnce, seq: i64, mark: Option<i64>) -> bool {
        let job = Job { at_once, seq, mark };
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok())
    }

    /// Waits for the answer to the statement handed over last; `None` if
    /// the thread is gone.
    pub(crate) fn answer(&self) -> Option<Answer> {
        self.answers.recv().ok()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // Dropping the job channel ends the thread's loop.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("simdb's sender thread panicked");
            }
        }
    }
}
