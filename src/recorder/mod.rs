//! The batched, background recorder: the hot path of a simulation loop.
//!
//! Recording calls append to an in-memory [`batch::Batch`] (one JSON
//! serialization into a shared text buffer, no I/O); full batches go through
//! a bounded channel to the [`writer`] thread, which stores each batch in one
//! transaction through [`bulk`], and commits what waited `flush_interval` on
//! its own timer.

mod batch;
mod bulk;
mod metric_names;
mod options;
mod writer;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

pub(crate) use batch::Batch;
pub(crate) use bulk::{write_batch, Bulk};
pub(crate) use metric_names::MetricCache;
pub use options::RecorderOptions;
use writer::{Msg, Shared, Writer};

use crate::store::prelude::*;
use crate::with_connection;

use crate::error::{Error, Result};
use crate::ids::{validate_text, AgentIndex, SimulationId};
use crate::models::NewAgentMemory;
use crate::service::SimulationService;
use crate::validate::{check_running, check_step, finite};

/// Records a running simulation in batches on a background writer thread.
///
/// Created by [`SimulationService::recorder`], which takes the run's lease:
/// one live recorder per run. Recording calls do no I/O; the writer commits
/// a batch when it is full (`batch_rows` or `batch_bytes`) and, however
/// slowly the simulation records, within `flush_interval` of a row being
/// recorded, heartbeating at least every `lease_timeout / 4`. When the
/// writer falls `max_pending_batches` behind, recording calls block until it
/// catches up, so memory stays bounded and no row is ever dropped.
///
/// # Steps and the commit watermark
/// Call [`Recorder::end_step`] once every row of a step is recorded. Each
/// batch's transaction stores the highest step W such that every row of every
/// step up to W is committed; [`Recorder::flush`] returns it and
/// [`SimulationService::resume`] cuts exactly the rows above it after a
/// crash. Rows of a step at or below an ended step are refused.
/// [`Recorder::close`] ends every step recorded.
///
/// # Failures
/// Every batch's transaction first proves that its simulation still exists,
/// is running and is held by this recorder; otherwise nothing of it is
/// written and the recorder reports [`Error::SimulationDeleted`](crate::Error::SimulationDeleted),
/// [`Error::SimulationNotRunning`](crate::Error::SimulationNotRunning) or [`Error::LeaseLost`](crate::Error::LeaseLost)
/// inside [`Error::Recorder`](crate::Error::Recorder). A duplicate `(agent, step)` (or step, or
/// metric at a step) fails its batch as a whole ([`Error::Duplicate`](crate::Error::Duplicate)).
/// After a failure the batch and every later one are held in memory:
/// [`Recorder::retry`] writes them again in order, [`Recorder::discard_unpersisted`]
/// drops them. A COMMIT whose reply was lost is settled by the batch sequence
/// number stored with it, never written twice.
///
/// Dropping a recorder without [`Recorder::close`] waits at most
/// `drop_timeout` for its rows and logs what it could not write through
/// `tracing`; `close` waits for all of them and reports any failure.
#[derive(Debug)]
pub struct Recorder {
    sim: SimulationId,
    options: RecorderOptions,
    metric_ids: HashMap<String, u32>,
    known_agents: HashSet<i32>,
    service: SimulationService,
    shared: Arc<Shared>,
    sender: Option<SyncSender<Msg>>,
    writer: Option<JoinHandle<()>>,
    rows_recorded: u64,
    /// The highest step ended by `end_step`.
    ended: Option<i64>,
    /// The highest step of any row recorded.
    max_step: Option<i64>,
}

/// A lease token no other recorder draws: std's per-process random hasher
/// keys, mixed with the time and the process id.
fn new_token() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish() as i64
}

impl SimulationService {
    /// A recorder for a running simulation, with default options.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation; [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// if it is not running; [`Error::LeaseHeld`](crate::Error::LeaseHeld) while another live recorder
    /// holds it.
    pub fn recorder(&self, sim: &SimulationId) -> Result<Recorder> {
        self.recorder_with(sim, RecorderOptions::default())
    }

    /// A recorder with explicit options.
    ///
    /// # Errors
    /// As for [`SimulationService::recorder`].
    pub fn recorder_with(&self, sim: &SimulationId, options: RecorderOptions) -> Result<Recorder> {
        let simulation = self.simulation(sim)?;
        check_running(&simulation)?;
        let options = options.normalized();
        let token = new_token();
        with_connection!(self.database().writer()?, |c| c.acquire_lease(
            &simulation,
            token,
            options.lease_timeout
        ))?;
        let (sender, receiver) = sync_channel(options.max_pending_batches);
        let shared = Arc::new(Shared::default());
        shared.lock().committed_step = simulation.committed_step;
        let now = Instant::now();
        let writer = Writer {
            db: self.database().clone(),
            sim_key: simulation.sim_key,
            sim: simulation.id.clone(),
            token,
            shared: Arc::clone(&shared),
            metrics: MetricCache::default(),
            max_attempts: options.max_attempts,
            flush_interval: options.flush_interval,
            tick: options.tick(),
            held: VecDeque::new(),
            last_seq: 0,
            committed: simulation.committed_step,
            cap: None,
            last_commit: now,
            last_beat: now,
        };
        let spawned = spawn_writer(writer, receiver, simulation.sim_key);
        let handle = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                let _ = with_connection!(self.database().writer()?, |c| c
                    .release_lease(simulation.sim_key, token));
                return Err(e);
            }
        };
        let mut recorder = Recorder {
            sim: simulation.id,
            options,
            metric_ids: HashMap::new(),
            known_agents: HashSet::new(),
            service: self.clone(),
            shared,
            sender: Some(sender),
            writer: Some(handle),
            rows_recorded: 0,
            ended: None,
            max_step: None,
        };
        recorder.reload_agents()?;
        Ok(recorder)
    }
}

fn spawn_writer(writer: Writer, receiver: Receiver<Msg>, sim_key: i32) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("simdb-writer-{sim_key}"))
        .spawn(move || writer.run(receiver))
        .map_err(|e| Error::invalid("recorder", format!("cannot spawn writer thread: {e}")))
}

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
    /// The simulation being recorded.
    pub fn simulation(&self) -> &SimulationId {
        &self.sim
    }

    /// Rows accepted by this recorder so far.
    pub fn rows_recorded(&self) -> u64 {
        self.rows_recorded
    }

    /// Rows the writer has committed so far.
    pub fn rows_written(&self) -> u64 {
        self.shared.lock().rows_written
    }

    /// The commit watermark: every row of every step up to it is committed
    /// (`None`: no step yet). What a crash cannot take back, and where
    /// [`SimulationService::resume`] would cut.
    pub fn committed_step(&self) -> Option<i64> {
        self.shared.lock().committed_step
    }

    fn reload_agents(&mut self) -> Result<()> {
        let agents = self.service.agents(&self.sim)?;
        self.known_agents = agents.into_iter().map(|a| a.agent_index.0).collect();
        Ok(())
    }

    /// Checks the agent is registered; only an unknown index costs a query.
    fn check_agent(&mut self, agent: AgentIndex) -> Result<i32> {
        let i = agent.checked()?;
        if self.known_agents.contains(&i) {
            return Ok(i);
        }
        self.reload_agents()?;
        if self.known_agents.contains(&i) {
            Ok(i)
        } else {
            Err(Error::NotFound {
                entity: "agent",
                id: format!("{i} of simulation {} (register it first)", self.sim),
            })
        }
    }

    fn check_writer(&self) -> Result<()> {
        if self.sender.is_none() {
            return Err(Error::RecorderClosed);
        }
        if self.shared.failed.load(Ordering::Acquire) {
            if let Some(e) = self.shared.error(self.pending_rows()) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Checks a row's step: not negative, and not of an ended step.
    fn check_open_step(&self, step: i64) -> Result<()> {
        check_step(step)?;
        match self.ended {
            Some(ended) if step <= ended => Err(Error::invalid(
                "step",
                format!("step {step} is already ended (end_step({ended})): its rows are complete"),
            )),
            _ => Ok(()),
        }
    }

    fn pending_rows(&self) -> usize {
        self.shared.current().rows()
    }

    /// Appends one row to the current batch and hands the batch off when
    /// it is full.
    fn push(&mut self, step: i64, row: impl FnOnce(&mut Batch, usize) -> Result<()>) -> Result<()> {
        let full = {
            let mut current = self.shared.current();
            row(&mut current, self.options.batch_bytes)?;
            current.rows() >= self.options.batch_rows || current.bytes() >= self.options.batch_bytes
        };
        self.rows_recorded += 1;
        self.max_step = Some(self.max_step.map_or(step, |s| s.max(step)));
        if full {
            self.hand_off()?;
        }
        Ok(())
    }

    /// Queues the current batch for the writer.
    fn hand_off(&mut self) -> Result<()> {
        let sender = self.sender.as_ref().ok_or(Error::RecorderClosed)?;
        let mut current = self.shared.current();
        if current.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut *current);
        current.json.reserve(batch.json.capacity());
        current.states.reserve(batch.states.capacity());
        // Sent while holding the lock, so that the writer's timer cannot
        // take a newer batch first. Blocks while the queue is full: that is
        // the backpressure (the timer only ever try-locks).
        let sent = sender.send(Msg::Batch(batch));
        drop(current);
        sent.map_err(|_| self.writer_gone())
    }

    fn writer_gone(&self) -> Error {
        self.shared
            .error(self.pending_rows())
            .unwrap_or(Error::RecorderClosed)
    }

    /// Records one agent's reward and state at a step. `state` is anything
    /// serde can serialize to JSON (a `serde_json::Value`, a struct, ...).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative or ended step, a negative
    /// agent or a non-finite reward; [`Error::NotFound`](crate::Error::NotFound) for an unregistered
    /// agent; [`Error::RowTooLarge`](crate::Error::RowTooLarge); [`Error::Recorder`](crate::Error::Recorder) if the writer has
    /// failed.
    pub fn agent_state<S: Serialize + ?Sized>(
        &mut self,
        step: i64,
        agent: impl Into<AgentIndex>,
        reward: f64,
        state: &S,
    ) -> Result<()> {
        self.check_writer()?;
        self.check_open_step(step)?;
        let reward = finite("reward", reward)?;
        let agent = self.check_agent(agent.into())?;
        self.push(step, |b, limit| {
            b.push_state(agent, step, reward, state, limit)
        })
    }

    /// Records a step with its metrics (serialized to a JSON object).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative or ended step or metrics
    /// that are not a JSON object; [`Error::RowTooLarge`](crate::Error::RowTooLarge); [`Error::Recorder`](crate::Error::Recorder)
    /// if the writer has failed.
    pub fn step<S: Serialize + ?Sized>(&mut self, step: i64, metrics: &S) -> Result<()> {
        self.check_writer()?;
        self.check_open_step(step)?;
        let at = Utc::now();
        self.push(step, |b, limit| b.push_step(step, at, metrics, limit))
    }

    /// The recorder-local id of a metric name, and the name if it is new.
    fn metric_index(&mut self, name: &str) -> Result<(u32, Option<String>)> {
        if let Some(&id) = self.metric_ids.get(name) {
            return Ok((id, None));
        }
        validate_text("metric name", name, 256)?;
        let id = self.metric_ids.len() as u32;
        self.metric_ids.insert(name.to_string(), id);
        Ok((id, Some(name.to_string())))
    }

    fn push_metric(&mut self, step: i64, agent: Option<i32>, name: &str, value: f64) -> Result<()> {
        let (metric, new_name) = self.metric_index(name)?;
        self.push(step, |b, _| {
            if let Some(name) = new_name {
                b.new_metric_names.push((metric, name));
            }
            b.push_metric(agent, metric, step, value);
            Ok(())
        })
    }

    /// Records a numeric metric of the whole simulation at a step.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad name, a negative or ended step
    /// or a non-finite value; [`Error::Recorder`](crate::Error::Recorder) if the writer has failed.
    pub fn metric(&mut self, step: i64, name: &str, value: f64) -> Result<()> {
        self.check_writer()?;
        self.check_open_step(step)?;
        let value = finite("metric value", value)?;
        self.push_metric(step, None, name, value)
    }

    /// Records a numeric metric of one agent at a step.
    ///
    /// # Errors
    /// As for [`Recorder::metric`], plus [`Error::NotFound`](crate::Error::NotFound) for an
    /// unregistered agent.
    pub fn agent_metric(
        &mut self,
        step: i64,
        agent: impl Into<AgentIndex>,
        name: &str,
        value: f64,
    ) -> Result<()> {
        self.check_writer()?;
        self.check_open_step(step)?;
        let value = finite("metric value", value)?;
        let agent = self.check_agent(agent.into())?;
        self.push_metric(step, Some(agent), name, value)
    }

    /// Records a snapshot of an agent's memory at a step.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) if the bytes do not fit dtype and shape or
    /// the step is negative or ended; [`Error::NotFound`](crate::Error::NotFound) for an unregistered
    /// agent; [`Error::RowTooLarge`](crate::Error::RowTooLarge); [`Error::Recorder`](crate::Error::Recorder).
    pub fn memory(
        &mut self,
        step: i64,
        agent: impl Into<AgentIndex>,
        memory: NewAgentMemory,
    ) -> Result<()> {
        self.check_writer()?;
        self.check_open_step(step)?;
        memory.validate()?;
        let agent = self.check_agent(agent.into())?;
        let at = Utc::now();
        self.push(step, |b, limit| {
            b.push_memory(agent, step, memory, at, limit)
        })
    }

    /// Declares every row of every step up to `step` recorded: once the
    /// batch holding this mark commits, the watermark moves to `step`, and
    /// rows of those steps are refused from now on. Ending the step already
    /// ended again does nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative step or one below the last
    /// ended step; [`Error::Recorder`](crate::Error::Recorder) if the writer has failed.
    pub fn end_step(&mut self, step: i64) -> Result<()> {
        self.check_writer()?;
        check_step(step)?;
        match self.ended {
            Some(ended) if step == ended => return Ok(()),
            Some(ended) if step < ended => {
                return Err(Error::invalid(
                    "step",
                    format!("steps end in order: {step} is below the ended step {ended}"),
                ))
            }
            _ => {}
        }
        self.shared.current().ended = Some(step);
        self.ended = Some(step);
        Ok(())
    }

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
        if let Some(last) = self.max_step {
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
            let unwritten = self.rows_recorded.saturating_sub(self.rows_written());
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
