//! The batched, background recorder: the hot path of a simulation loop.
//!
//! Recording calls append to an in-memory [`batch::Batch`] (one JSON
//! serialization into a shared text buffer, no I/O); full batches go through
//! a bounded channel to the [`writer`] thread, which stores each batch in one
//! transaction through [`bulk`].

mod batch;
mod bulk;
mod metric_names;
mod options;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::Utc;
use serde::Serialize;

pub(crate) use batch::Batch;
pub(crate) use bulk::{write_batch, Bulk};
pub(crate) use metric_names::MetricCache;
pub use options::RecorderOptions;
use writer::{Msg, Shared, Writer};

use crate::error::{Error, Result};
use crate::ids::{validate_text, AgentIndex, SimulationId};
use crate::models::NewAgentMemory;
use crate::service::SimulationService;
use crate::validate::{check_running, check_step, finite};

/// Records a running simulation in batches on a background writer thread.
///
/// Created by [`SimulationService::recorder`]. Recording calls do no I/O;
/// when the writer falls `max_pending_batches` behind they block until it
/// catches up, so memory stays bounded and no row is ever dropped.
///
/// A duplicate `(agent, step)` (or step, or metric at a step) is an error, not
/// an overwrite: the batch holding it is rolled back as a whole, the recorder
/// reports [`Error::Recorder`](crate::Error::Recorder) (its source is [`Error::Duplicate`](crate::Error::Duplicate) or
/// [`Error::Database`](crate::Error::Database)) from then on, and keeps the unwritten rows.
///
/// Dropping a recorder flushes it best-effort and logs failures through
/// `tracing`; call [`Recorder::close`] to see them.
#[derive(Debug)]
pub struct Recorder {
    sim: SimulationId,
    options: RecorderOptions,
    batch: Batch,
    metric_ids: HashMap<String, u32>,
    known_agents: Vec<bool>,
    service: SimulationService,
    shared: Arc<Shared>,
    sender: Option<SyncSender<Msg>>,
    writer: Option<JoinHandle<()>>,
    rows_recorded: u64,
}

impl SimulationService {
    /// A recorder for a running simulation, with default options.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation; [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// if it is not running.
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
        let options = RecorderOptions::default()
            .batch_rows(options.batch_rows)
            .max_pending_batches(options.max_pending_batches)
            .max_attempts(options.max_attempts);
        let (sender, receiver) = sync_channel(options.max_pending_batches);
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            db: self.database().clone(),
            sim_key: simulation.sim_key,
            shared: Arc::clone(&shared),
            metrics: MetricCache::default(),
            max_attempts: options.max_attempts,
        };
        let handle = std::thread::Builder::new()
            .name(format!("simdb-writer-{}", simulation.sim_key))
            .spawn(move || writer.run(receiver))
            .map_err(|e| Error::invalid("recorder", format!("cannot spawn writer thread: {e}")))?;
        let mut recorder = Recorder {
            sim: simulation.id,
            options,
            batch: Batch::default(),
            metric_ids: HashMap::new(),
            known_agents: Vec::new(),
            service: self.clone(),
            shared,
            sender: Some(sender),
            writer: Some(handle),
            rows_recorded: 0,
        };
        recorder.reload_agents()?;
        Ok(recorder)
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

    fn reload_agents(&mut self) -> Result<()> {
        let agents = self.service.agents(&self.sim)?;
        for agent in agents {
            let i = agent.agent_index.0 as usize;
            if self.known_agents.len() <= i {
                self.known_agents.resize(i + 1, false);
            }
            self.known_agents[i] = true;
        }
        Ok(())
    }

    /// Checks the agent is registered; only an unknown index costs a query.
    fn check_agent(&mut self, agent: AgentIndex) -> Result<i32> {
        let i = agent.checked()?;
        if self.known_agents.get(i as usize).copied().unwrap_or(false) {
            return Ok(i);
        }
        self.reload_agents()?;
        if self.known_agents.get(i as usize).copied().unwrap_or(false) {
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
            if let Some(e) = self.shared.error(self.batch.rows()) {
                return Err(e);
            }
        }
        Ok(())
    }

    fn accepted(&mut self) -> Result<()> {
        self.rows_recorded += 1;
        if self.batch.rows() >= self.options.batch_rows {
            self.send_batch()?;
        }
        Ok(())
    }

    fn send_batch(&mut self) -> Result<()> {
        if self.batch.rows() == 0 && self.batch.new_metric_names.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch.json.reserve(batch.json.capacity());
        self.batch.states.reserve(batch.states.capacity());
        let sender = self.sender.as_ref().ok_or(Error::RecorderClosed)?;
        // Blocks while the queue is full: that is the backpressure.
        sender
            .send(Msg::Batch(batch))
            .map_err(|_| self.writer_gone())
    }

    fn writer_gone(&self) -> Error {
        self.shared
            .error(self.batch.rows())
            .unwrap_or(Error::RecorderClosed)
    }

    /// Records one agent's reward and state at a step. `state` is anything
    /// serde can serialize to JSON (a `serde_json::Value`, a struct, ...).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative step or agent or a non-finite
    /// reward; [`Error::NotFound`](crate::Error::NotFound) for an unregistered agent;
    /// [`Error::Recorder`](crate::Error::Recorder) if the writer has failed.
    pub fn agent_state<S: Serialize + ?Sized>(
        &mut self,
        step: i64,
        agent: impl Into<AgentIndex>,
        reward: f64,
        state: &S,
    ) -> Result<()> {
        self.check_writer()?;
        check_step(step)?;
        let reward = finite("reward", reward)?;
        let agent = self.check_agent(agent.into())?;
        self.batch.push_state(agent, step, reward, state)?;
        self.accepted()
    }

    /// Records a step with its metrics (serialized to a JSON object).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative step or metrics that are not
    /// a JSON object; [`Error::Recorder`](crate::Error::Recorder) if the writer has failed.
    pub fn step<S: Serialize + ?Sized>(&mut self, step: i64, metrics: &S) -> Result<()> {
        self.check_writer()?;
        check_step(step)?;
        self.batch.push_step(step, Utc::now(), metrics)?;
        self.accepted()
    }

    fn metric_index(&mut self, name: &str) -> Result<u32> {
        if let Some(&id) = self.metric_ids.get(name) {
            return Ok(id);
        }
        validate_text("metric name", name, 256)?;
        let id = self.metric_ids.len() as u32;
        self.metric_ids.insert(name.to_string(), id);
        self.batch.new_metric_names.push((id, name.to_string()));
        Ok(id)
    }

    /// Records a numeric metric of the whole simulation at a step.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad name or step or a non-finite value;
    /// [`Error::Recorder`](crate::Error::Recorder) if the writer has failed.
    pub fn metric(&mut self, step: i64, name: &str, value: f64) -> Result<()> {
        self.check_writer()?;
        check_step(step)?;
        let value = finite("metric value", value)?;
        let metric = self.metric_index(name)?;
        self.batch.push_metric(None, metric, step, value);
        self.accepted()
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
        check_step(step)?;
        let value = finite("metric value", value)?;
        let agent = self.check_agent(agent.into())?;
        let metric = self.metric_index(name)?;
        self.batch.push_metric(Some(agent), metric, step, value);
        self.accepted()
    }

    /// Records a snapshot of an agent's memory at a step.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) if the bytes do not fit dtype and shape;
    /// [`Error::NotFound`](crate::Error::NotFound) for an unregistered agent; [`Error::Recorder`](crate::Error::Recorder).
    pub fn memory(
        &mut self,
        step: i64,
        agent: impl Into<AgentIndex>,
        memory: NewAgentMemory,
    ) -> Result<()> {
        self.check_writer()?;
        check_step(step)?;
        memory.validate()?;
        let agent = self.check_agent(agent.into())?;
        self.batch.push_memory(agent, step, memory, Utc::now());
        self.accepted()
    }

    /// Writes everything recorded so far and waits until it is committed.
    ///
    /// # Errors
    /// [`Error::Recorder`](crate::Error::Recorder) if any batch failed: it and every later one are
    /// kept in memory, see [`Recorder::retry`].
    pub fn flush(&mut self) -> Result<()> {
        self.check_writer()?;
        self.send_batch()?;
        let (ack, done) = sync_channel(1);
        let sender = self.sender.as_ref().ok_or(Error::RecorderClosed)?;
        sender
            .send(Msg::Flush(ack))
            .map_err(|_| self.writer_gone())?;
        done.recv().map_err(|_| self.writer_gone())?;
        match self.shared.error(self.batch.rows()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// After a failure, writes the held rows again (oldest batch first) and
    /// waits. Useful once a transient cause (a database restart) is gone.
    ///
    /// # Errors
    /// [`Error::Recorder`](crate::Error::Recorder) if writing fails again.
    pub fn retry(&mut self) -> Result<()> {
        let held: Vec<Batch> = {
            let mut state = self.shared.lock();
            state.error = None;
            self.shared.failed.store(false, Ordering::Release);
            state.held.drain(..).collect()
        };
        let sender = self.sender.as_ref().ok_or(Error::RecorderClosed)?;
        for batch in held {
            sender
                .send(Msg::Batch(batch))
                .map_err(|_| self.writer_gone())?;
        }
        self.flush()
    }

    /// After a failure, drops the batches the writer refused or did not
    /// reach and returns how many rows they held, so that recording can go
    /// on. Rows recorded since the last hand-off stay queued and are written
    /// by the next flush.
    pub fn discard_unpersisted(&mut self) -> u64 {
        let mut state = self.shared.lock();
        let rows = state.held.drain(..).map(|b| b.rows() as u64).sum();
        state.error = None;
        self.shared.failed.store(false, Ordering::Release);
        rows
    }

    /// Flushes, stops the writer thread and reports any failure.
    ///
    /// # Errors
    /// [`Error::Recorder`](crate::Error::Recorder) if rows could not be written.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.sender.is_none() {
            return Ok(());
        }
        let flushed = self.flush();
        self.sender = None;
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                tracing::error!(simulation = %self.sim, "simdb writer thread panicked");
            }
        }
        flushed
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(simulation = %self.sim, error = %e, "simdb recorder dropped with unwritten rows");
        }
    }
}
