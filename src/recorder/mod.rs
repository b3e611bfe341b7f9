//! The batched, background recorder: the hot path of a simulation loop.
//!
//! Recording calls append to an in-memory [`batch::Batch`] (one JSON
//! serialization into a shared text buffer, no I/O); full batches go through
//! a bounded channel to the [`writer`] thread, which stores each batch in one
//! transaction through [`bulk`], and commits what waited `flush_interval` on
//! its own timer.

mod batch;
mod bulk;
mod control;
mod known_agents;
mod lane;
mod metric_names;
mod options;
mod sender;
mod shared;
mod start;
mod syncer;
mod writer;

/// How many recently used metric names a recorder compares a name with
/// before hashing it.
const RECENT_METRICS: usize = 4;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::Utc;
use serde::Serialize;

pub(crate) use batch::Batch;
pub(crate) use bulk::{write_batch, Bulk, RowBuffers, StepRow};
pub use lane::RecorderLane;
pub(crate) use metric_names::MetricCache;
pub use options::RecorderOptions;
use shared::{Msg, Shared};

use crate::error::{Error, Result};
use crate::ids::{validate_text, AgentIndex, SimulationId};
use crate::models::NewAgentMemory;
use crate::service::SimulationService;
use crate::validate::{check_step, finite};

/// Records a running simulation in batches on a background writer thread.
///
/// Created by [`SimulationService::recorder`], which takes the run's lease:
/// one live recorder per run. Recording calls do no I/O; the writer commits
/// a batch when it is full (`batch_rows` or `batch_bytes`; from half of
/// `batch_rows` on, at the next 64-step chunk boundary) and, however
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
    /// Recorder-local metric ids by name (locked only by lanes; the
    /// recorder's own calls hold `&mut self`).
    metric_ids: Mutex<foldhash::HashMap<String, u32>>,
    /// The last few names the recorder's own calls looked up, and their
    /// ids: a loop records the same few names over and over, and comparing
    /// a short name with them costs less than hashing it.
    recent_metrics: Vec<(Box<str>, u32)>,
    /// The registered agents, as last read (lanes share the snapshot).
    known_agents: Arc<known_agents::KnownAgents>,
    service: SimulationService,
    shared: Arc<Shared>,
    sender: Option<SyncSender<Msg>>,
    writer: Option<JoinHandle<()>>,
    rows_recorded: AtomicU64,
    /// The highest step ended by `end_step`.
    ended: Option<i64>,
    /// The highest step of any row recorded (-1: none yet).
    max_step: AtomicI64,
}

impl Recorder {
    /// The simulation being recorded.
    pub fn simulation(&self) -> &SimulationId {
        &self.sim
    }

    /// Rows accepted by this recorder so far.
    pub fn rows_recorded(&self) -> u64 {
        self.rows_recorded.load(Ordering::Relaxed)
    }

    /// The highest step of any row recorded, if any.
    fn max_step(&self) -> Option<i64> {
        let s = self.max_step.load(Ordering::Relaxed);
        (s >= 0).then_some(s)
    }

    /// Counts `rows` recorded rows of `step`.
    fn count_rows(&mut self, step: i64, rows: u64) {
        *self.rows_recorded.get_mut() += rows;
        let max = self.max_step.get_mut();
        *max = (*max).max(step);
    }

    /// Rows the writer has committed so far.
    pub fn rows_written(&self) -> u64 {
        self.shared.lock().rows_written
    }

    /// Transient failures (lost connections, deadlocks, serialization
    /// failures, a busy SQLite file; [`crate::Error::is_transient`]) that the
    /// writer has retried so far, each settled by its batch's sequence number.
    pub fn transient_retries(&self) -> u64 {
        self.shared.lock().transient_retries
    }

    /// The commit watermark: every row of every step up to it is committed
    /// (`None`: no step yet). What a crash cannot take back, and where
    /// [`SimulationService::resume`] would cut.
    pub fn committed_step(&self) -> Option<i64> {
        self.shared.lock().committed_step
    }

    fn reload_agents(&mut self) -> Result<()> {
        let agents = self.service.agents(&self.sim)?;
        self.known_agents = Arc::new(agents.into_iter().map(|a| a.agent_index.0).collect());
        Ok(())
    }

    /// Checks the agent is registered; only an unknown index costs a query.
    fn check_agent(&mut self, agent: AgentIndex) -> Result<i32> {
        let i = agent.checked()?;
        if self.known_agents.contains(i) {
            return Ok(i);
        }
        self.reload_agents()?;
        if self.known_agents.contains(i) {
            Ok(i)
        } else {
            Err(Error::unregistered_agent(i, &self.sim))
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
            if self.ends_before(&current, step) {
                self.send(&mut current)?;
            }
            row(&mut current, self.options.batch_bytes)?;
            self.is_full(&current)
        };
        self.count_rows(step, 1);
        if full {
            self.hand_off()?;
        }
        Ok(())
    }

    /// Queues the current batch for the writer.
    fn hand_off(&self) -> Result<()> {
        let mut current = self.shared.current();
        self.send(&mut current)
    }

    /// Queues `current`, the batch being filled (its lock held by the
    /// caller), for the writer and leaves an empty one in its place.
    fn send(&self, current: &mut Batch) -> Result<()> {
        let sender = self.sender.as_ref().ok_or(Error::RecorderClosed)?;
        if current.is_empty() {
            return Ok(());
        }
        let empty = self.shared.empty_batch(current);
        let batch = std::mem::replace(current, empty);
        // Sent while the caller holds the lock, so that the writer's timer
        // cannot take a newer batch first. Blocks while the queue is full:
        // that is the backpressure (the timer only ever try-locks).
        sender
            .send(Msg::Batch(batch))
            .map_err(|_| self.writer_gone())
    }

    /// A batch must go to the writer now: it holds `batch_rows` rows or
    /// `batch_bytes` bytes. (From half of `batch_rows` on it goes at the
    /// next chunk boundary, [`Batch::ends_before`].)
    fn is_full(&self, batch: &Batch) -> bool {
        batch.rows() >= self.options.batch_rows || batch.bytes() >= self.options.batch_bytes
    }

    /// A batch must go to the writer before rows of `step` join it: it
    /// holds half of `batch_rows` or more and `step` opens the next chunk
    /// ([`Batch::ends_before`]).
    fn ends_before(&self, batch: &Batch, step: i64) -> bool {
        batch.ends_before(step, self.options.batch_rows / 2)
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

    /// Checks that agents `0..n` are all registered (one query at most).
    fn check_agents(&mut self, n: usize) -> Result<()> {
        let all = |known: &known_agents::KnownAgents| {
            (0..n).all(|i| i32::try_from(i).is_ok_and(|i| known.contains(i)))
        };
        if all(&self.known_agents) {
            return Ok(());
        }
        self.reload_agents()?;
        match (0..n).find(|&i| !i32::try_from(i).is_ok_and(|i| self.known_agents.contains(i))) {
            None => Ok(()),
            Some(i) => Err(Error::unregistered_agent(i, &self.sim)),
        }
    }

    /// Appends the rows of one call under one lock, all or none: on an
    /// error nothing of the call stays in the batch. The batch is handed off
    /// once the call's rows are in (a call may overfill it by its own rows).
    fn push_all(
        &mut self,
        step: i64,
        n: usize,
        mut row: impl FnMut(&mut Batch, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let full = {
            let mut current = self.shared.current();
            if n > 0 && self.ends_before(&current, step) {
                self.send(&mut current)?;
            }
            let mark = current.mark();
            for i in 0..n {
                if let Err(e) = row(&mut current, i, self.options.batch_bytes) {
                    current.rollback(mark);
                    return Err(e);
                }
            }
            self.is_full(&current)
        };
        if n > 0 {
            self.count_rows(step, n as u64);
        }
        if full {
            self.hand_off()?;
        }
        Ok(())
    }

    /// Records a whole step of agents `0..n` at once, for vectorised
    /// engines: `rewards[i]` and `states[i]` are agent `i`'s. The checks are
    /// done once per call (the step, the writer, that agents `0..n` are
    /// registered); every reward must be finite. All or nothing: on an error
    /// no row of the call is recorded.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for slices of different lengths, a
    /// non-finite reward (naming its agent) or a negative or ended step;
    /// [`Error::NotFound`](crate::Error::NotFound) for an unregistered agent; as for
    /// [`Recorder::agent_state`] otherwise.
    pub fn agent_states<S: Serialize>(
        &mut self,
        step: i64,
        rewards: &[f64],
        states: &[S],
    ) -> Result<()> {
        self.check_writer()?;
        self.check_open_step(step)?;
        if rewards.len() != states.len() {
            return Err(Error::invalid(
                "agent states",
                format!("{} rewards for {} states", rewards.len(), states.len()),
            ));
        }
        if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
            return Err(Error::invalid(
                "reward",
                format!("agent {i}'s reward {} is not finite", rewards[i]),
            ));
        }
        self.check_agents(rewards.len())?;
        self.push_all(step, rewards.len(), |b, i, limit| {
            b.push_state(i as i32, step, rewards[i], &states[i], limit)
        })
    }

    /// Records one metric of agents `0..n` at a step from a slice
    /// (`values[i]` is agent `i`'s), checked once per call; all or nothing.
    ///
    /// # Errors
    /// As for [`Recorder::agent_metric`]; a non-finite value names its agent.
    pub fn agent_metric_slice(&mut self, step: i64, name: &str, values: &[f64]) -> Result<()> {
        self.check_writer()?;
        self.check_open_step(step)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "metric value",
                format!("agent {i}'s {name} {} is not finite", values[i]),
            ));
        }
        self.check_agents(values.len())?;
        if values.is_empty() {
            // Nothing to record; the name is not learned either (a name is
            // sent to the writer with its first value).
            return validate_text("metric name", name, 256);
        }
        let (metric, new_name) = self.metric_index(name)?;
        self.push_all(step, values.len(), |b, i, _| {
            if i == 0 {
                if let Some(name) = new_name.clone() {
                    b.new_metric_names.push((metric, name));
                }
            }
            b.push_metric(Some(i as i32), metric, step, values[i]);
            Ok(())
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
        if let Some(&(_, id)) = self.recent_metrics.iter().find(|(n, _)| **n == *name) {
            return Ok((id, None));
        }
        let ids = self.metric_ids.get_mut().unwrap_or_else(|p| p.into_inner());
        let (id, new) = match ids.get(name) {
            Some(&id) => (id, None),
            None => {
                validate_text("metric name", name, 256)?;
                let id = ids.len() as u32;
                ids.insert(name.to_string(), id);
                (id, Some(name.to_string()))
            }
        };
        if self.recent_metrics.len() == RECENT_METRICS {
            self.recent_metrics.remove(0);
        }
        self.recent_metrics.push((name.into(), id));
        Ok((id, new))
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
}
