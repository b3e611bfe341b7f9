//! The batched, background recorder: the hot path of a simulation loop.
//!
//! Recording calls append to an in-memory batch (one JSON serialization into
//! a shared text buffer, no I/O); full batches go through a bounded channel
//! to a writer thread that stores each batch in one transaction — multi-row
//! prepared inserts on SQLite, binary `COPY` on PostgreSQL.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::database::Database;
use crate::error::{Error, Result};
use crate::ids::{validate_text, AgentIndex, SimulationId};
use crate::models::{AgentMemory, AgentMetric, NewAgentMemory, StepMetric};
use crate::store::prelude::*;
use crate::schema::{agent_metrics, agent_states, simulation_steps, step_metrics};
use crate::service::{check_json_text, check_running, check_step, finite, SimulationService};
use crate::sql_types::{RawJson, TimeParam};
use crate::with_connection;

/// Tuning of a [`Recorder`].
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

/// A span of a batch's JSON text buffer.
#[derive(Debug, Clone, Copy)]
struct Span(u32, u32);

#[derive(Debug)]
struct StateRec {
    agent: i32,
    step: i64,
    reward: f64,
    state: Span,
}

#[derive(Debug)]
struct StepRec {
    step: i64,
    at: DateTime<Utc>,
    metrics: Span,
}

#[derive(Debug)]
struct MetricRec {
    agent: Option<i32>,
    metric: u32,
    step: i64,
    value: f64,
}

#[derive(Debug)]
struct MemoryRec {
    agent: i32,
    step: i64,
    memory: NewAgentMemory,
    at: DateTime<Utc>,
}

/// Rows recorded since the last hand-off to the writer.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// JSON text of every state and step of the batch, back to back.
    json: Vec<u8>,
    states: Vec<StateRec>,
    steps: Vec<StepRec>,
    metrics: Vec<MetricRec>,
    memories: Vec<MemoryRec>,
    /// Metric names first used in this batch: (recorder-local id, name).
    new_metric_names: Vec<(u32, String)>,
}

impl Batch {
    /// Appends an agent state (validated by the caller).
    pub(crate) fn push_state<S: Serialize + ?Sized>(
        &mut self,
        agent: i32,
        step: i64,
        reward: f64,
        state: &S,
    ) -> Result<()> {
        let state = self.push_json("state", state)?;
        self.states.push(StateRec {
            agent,
            step,
            reward,
            state,
        });
        Ok(())
    }

    /// Appends a step; its metrics must serialize to a JSON object.
    pub(crate) fn push_step<S: Serialize + ?Sized>(
        &mut self,
        step: i64,
        at: DateTime<Utc>,
        metrics: &S,
    ) -> Result<()> {
        let span = self.push_json("step metrics", metrics)?;
        if self.json.get(span.0 as usize) != Some(&b'{') {
            self.json.truncate(span.0 as usize);
            return Err(Error::invalid(
                "step metrics",
                "must serialize to a JSON object",
            ));
        }
        self.steps.push(StepRec {
            step,
            at,
            metrics: span,
        });
        Ok(())
    }

    /// Appends a metric value of a batch-local metric id.
    pub(crate) fn push_metric(&mut self, agent: Option<i32>, metric: u32, step: i64, value: f64) {
        self.metrics.push(MetricRec {
            agent,
            metric,
            step,
            value,
        });
    }

    /// Appends a memory snapshot.
    pub(crate) fn push_memory(
        &mut self,
        agent: i32,
        step: i64,
        memory: NewAgentMemory,
        at: DateTime<Utc>,
    ) {
        self.memories.push(MemoryRec {
            agent,
            step,
            memory,
            at,
        });
    }

    pub(crate) fn rows(&self) -> usize {
        self.states.len() + self.steps.len() + self.metrics.len() + self.memories.len()
    }

    /// Serializes `value` onto the text buffer.
    fn push_json<S: Serialize + ?Sized>(&mut self, field: &'static str, value: &S) -> Result<Span> {
        let start = self.json.len();
        if let Err(e) = serde_json::to_writer(&mut self.json, value) {
            self.json.truncate(start);
            return Err(e.into());
        }
        if let Err(e) = check_json_text(field, &self.json[start..]) {
            self.json.truncate(start);
            return Err(e);
        }
        match (u32::try_from(start), u32::try_from(self.json.len())) {
            (Ok(s), Ok(e)) => Ok(Span(s, e)),
            _ => {
                self.json.truncate(start);
                Err(Error::invalid("state", "batch text buffer exceeds 4 GiB"))
            }
        }
    }
}

enum Msg {
    Batch(Batch),
    Flush(SyncSender<()>),
}

/// What the writer thread shares with the recording thread.
#[derive(Debug, Default)]
struct Shared {
    failed: AtomicBool,
    state: Mutex<WriterState>,
}

#[derive(Debug, Default)]
struct WriterState {
    error: Option<Arc<Error>>,
    /// Batches not written because of `error`, oldest first.
    held: VecDeque<Batch>,
    rows_written: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, WriterState> {
        // A panic while holding the lock cannot leave WriterState invalid
        // (every update is a single assignment), so a poisoned lock is safe.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer's failure, counting as unpersisted the held batches plus
    /// `pending` rows still on the recording side.
    fn error(&self, pending: usize) -> Option<Error> {
        let state = self.lock();
        state.error.as_ref().map(|e| Error::Recorder {
            unpersisted_rows: state.held.iter().map(|b| b.rows() as u64).sum::<u64>()
                + pending as u64,
            source: Arc::clone(e),
        })
    }
}

/// Records a running simulation in batches on a background writer thread.
///
/// Created by [`SimulationService::recorder`]. Recording calls do no I/O;
/// when the writer falls `max_pending_batches` behind they block until it
/// catches up, so memory stays bounded and no row is ever dropped.
///
/// A duplicate `(agent, step)` (or step, or metric at a step) is an error, not
/// an overwrite: the batch holding it is rolled back as a whole, the recorder
/// reports [`Error::Recorder`] (its source is [`Error::Duplicate`] or
/// [`Error::Database`]) from then on, and keeps the unwritten rows.
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
    /// [`Error::NotFound`] for an unknown simulation; [`Error::InvalidInput`]
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
    /// [`Error::InvalidInput`] for a negative step or agent or a non-finite
    /// reward; [`Error::NotFound`] for an unregistered agent;
    /// [`Error::Recorder`] if the writer has failed.
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
    /// [`Error::InvalidInput`] for a negative step or metrics that are not
    /// a JSON object; [`Error::Recorder`] if the writer has failed.
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
    /// [`Error::InvalidInput`] for a bad name or step or a non-finite value;
    /// [`Error::Recorder`] if the writer has failed.
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
    /// As for [`Recorder::metric`], plus [`Error::NotFound`] for an
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
    /// [`Error::InvalidInput`] if the bytes do not fit dtype and shape;
    /// [`Error::NotFound`] for an unregistered agent; [`Error::Recorder`].
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
    /// [`Error::Recorder`] if any batch failed: it and every later one are
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
    /// [`Error::Recorder`] if writing fails again.
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
    /// [`Error::Recorder`] if rows could not be written.
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

/// The writer thread's side.
struct Writer {
    db: Database,
    sim_key: i32,
    shared: Arc<Shared>,
    /// Metric names and, once committed, their database ids.
    metrics: MetricCache,
    max_attempts: u32,
}

fn is_transient(e: &Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error as D};
    match e {
        Error::Connection { .. } => true,
        Error::Database(D::DatabaseError(Kind::ClosedConnection, _)) => true,
        Error::Database(D::BrokenTransactionManager) => true,
        Error::Database(D::DatabaseError(_, info)) => {
            let m = info.message().to_ascii_lowercase();
            m.contains("database is locked")
                || m.contains("terminating connection")
                || m.contains("server closed the connection")
                || m.contains("connection to server")
                || m.contains("no connection to the server")
                || m.contains("could not receive data")
        }
        _ => false,
    }
}

impl Writer {
    fn run(mut self, receiver: Receiver<Msg>) {
        for msg in receiver {
            match msg {
                Msg::Batch(batch) => self.handle(batch),
                Msg::Flush(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }

    fn handle(&mut self, batch: Batch) {
        for (id, name) in &batch.new_metric_names {
            self.metrics.register(*id, name);
        }
        if self.shared.failed.load(Ordering::Acquire) {
            self.shared.lock().held.push_back(batch);
            return;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write(&batch) {
                Ok(ids) => {
                    self.metrics.learned(ids);
                    self.shared.lock().rows_written += batch.rows() as u64;
                    return;
                }
                Err(e) if attempt < self.max_attempts && is_transient(&e) => {
                    let backoff = Duration::from_millis(50 << attempt.min(7));
                    tracing::warn!(error = %e, attempt, ?backoff, "simdb batch failed, retrying");
                    std::thread::sleep(backoff);
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = batch.rows(), "simdb batch failed");
                    let mut state = self.shared.lock();
                    state.error = Some(Arc::new(e));
                    state.held.push_back(batch);
                    self.shared.failed.store(true, Ordering::Release);
                    return;
                }
            }
        }
    }

    /// Writes one batch in one transaction; returns metric ids it interned.
    fn write(&self, batch: &Batch) -> Result<Vec<(usize, i32)>> {
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let interned = write_batch(c, self.sim_key, batch, &self.metrics)?;
            c.touch(self.sim_key)?;
            Ok(interned)
        }))
    }
}

/// Metric names by batch-local id, and their database ids once known.
#[derive(Debug, Default, Clone)]
pub(crate) struct MetricCache {
    pub(crate) names: Vec<String>,
    pub(crate) ids: Vec<Option<i32>>,
}

impl MetricCache {
    /// Records the name of a recorder-local id.
    fn register(&mut self, id: u32, name: &str) {
        let i = id as usize;
        if self.names.len() <= i {
            self.names.resize(i + 1, String::new());
            self.ids.resize(i + 1, None);
        }
        self.names[i] = name.to_string();
    }

    /// Keeps database ids that a committed batch interned.
    pub(crate) fn learned(&mut self, ids: Vec<(usize, i32)>) {
        for (i, id) in ids {
            if let Some(slot) = self.ids.get_mut(i) {
                *slot = Some(id);
            }
        }
    }

    /// The local id of `name`, registering it if new.
    pub(crate) fn local(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                self.names.push(name.to_string());
                self.ids.push(None);
                (self.names.len() - 1) as u32
            }
        }
    }
}

/// Inserts every row of `batch` for simulation `sim_key` (inside the
/// caller's transaction); returns the metric ids it had to intern.
pub(crate) fn write_batch<C: Store + Bulk>(
    c: &mut C,
    sim_key: i32,
    batch: &Batch,
    cache: &MetricCache,
) -> Result<Vec<(usize, i32)>> {
    // One UTF-8 check and copy per batch; rows share the text by Arc.
    let text: Arc<str> = std::str::from_utf8(&batch.json)
        .map_err(|_| Error::invalid("state", "recorder buffer holds invalid UTF-8"))?
        .into();
    let raw = |span: Span| {
        RawJson::new(&text, span.0 as usize, span.1 as usize)
            .ok_or_else(|| Error::invalid("state", "recorder span out of bounds"))
    };
    let mut states: Vec<StateRow> = batch
        .states
        .iter()
        .map(|r| {
            Ok(StateRow {
                sim_key,
                agent_index: r.agent,
                step: r.step,
                reward: r.reward,
                state: raw(r.state)?,
            })
        })
        .collect::<Result<_>>()?;
    // Primary-key order: on PostgreSQL each agent's rows of the batch land
    // on neighbouring heap pages (a series read touches ~50x fewer pages
    // than in step-major order); on SQLite the B-tree inserts become
    // sequential runs.
    states.sort_unstable_by_key(|r| (r.agent_index, r.step));
    let steps: Vec<StepRow> = batch
        .steps
        .iter()
        .map(|r| {
            Ok(StepRow {
                sim_key,
                step: r.step,
                recorded_at: TimeParam(r.at),
                metrics: raw(r.metrics)?,
            })
        })
        .collect::<Result<_>>()?;
    let mut interned = Vec::new();
    let mut ids = cache.ids.clone();
    for rec in &batch.metrics {
        let i = rec.metric as usize;
        if ids.get(i).copied().flatten().is_none() {
            let name = cache.names.get(i).map(String::as_str).unwrap_or("");
            let id = c.metric_id(name)?;
            if ids.len() <= i {
                ids.resize(i + 1, None);
            }
            ids[i] = Some(id);
            interned.push((i, id));
        }
    }
    let id_of = |m: u32| ids.get(m as usize).copied().flatten().unwrap_or(-1);
    let step_metrics: Vec<StepMetric> = batch
        .metrics
        .iter()
        .filter(|m| m.agent.is_none())
        .map(|m| StepMetric {
            sim_key,
            metric_id: id_of(m.metric),
            step: m.step,
            value: m.value,
        })
        .collect();
    let agent_metrics: Vec<AgentMetric> = batch
        .metrics
        .iter()
        .filter_map(|m| {
            m.agent.map(|a| AgentMetric {
                sim_key,
                agent_index: AgentIndex(a),
                metric_id: id_of(m.metric),
                step: m.step,
                value: m.value,
            })
        })
        .collect();
    let written = (|| -> Result<()> {
        c.copy_states(&states)?;
        c.copy_steps(&steps)?;
        c.copy_step_metrics(&step_metrics)?;
        c.copy_agent_metrics(&agent_metrics)?;
        for m in &batch.memories {
            c.insert_memory(&AgentMemory {
                sim_key,
                agent_index: AgentIndex(m.agent),
                step: m.step,
                dtype: m.memory.dtype.clone(),
                shape: Value::from(m.memory.shape.clone()),
                data: m.memory.data.clone(),
                recorded_at: m.at,
            })?;
        }
        Ok(())
    })();
    written.map_err(|e| match e {
        Error::Database(err) => Error::from_write(
            err,
            "row in batch",
            "(simulation, agent, step) already recorded",
            Some(("simulation or agent", format!("sim_key {sim_key}"))),
        ),
        other => other,
    })?;
    Ok(interned)
}

#[derive(Debug, Insertable)]
#[diesel(table_name = agent_states, treat_none_as_default_value = false)]
pub(crate) struct StateRow {
    sim_key: i32,
    agent_index: i32,
    step: i64,
    reward: f64,
    state: RawJson,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = simulation_steps, treat_none_as_default_value = false)]
pub(crate) struct StepRow {
    sim_key: i32,
    step: i64,
    recorded_at: TimeParam,
    metrics: RawJson,
}

/// Bulk inserts of the recorder's four row kinds, per backend.
pub(crate) trait Bulk {
    fn copy_states(&mut self, rows: &[StateRow]) -> Result<()>;
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()>;
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()>;
    fn copy_agent_metrics(&mut self, rows: &[AgentMetric]) -> Result<()>;
}

/// Rows per multi-row INSERT on SQLite: a fixed-size array gives Diesel a
/// static query id, so the statement is prepared once per connection and
/// reused (a slice of rows would be re-prepared on every call). 5 columns x
/// 128 rows stays far below SQLite's 32766 bind parameters.
#[cfg(feature = "sqlite")]
const SQLITE_CHUNK: usize = 128;

/// Multi-row INSERTs of `SQLITE_CHUNK` rows, then one for the remainder.
#[cfg(feature = "sqlite")]
macro_rules! sqlite_insert {
    ($conn:expr, $table:expr, $rows:expr, $row:ty) => {{
        let mut chunks = $rows.chunks_exact(SQLITE_CHUNK);
        for chunk in &mut chunks {
            if let Ok(array) = <&[$row; SQLITE_CHUNK]>::try_from(chunk) {
                diesel::insert_into($table).values(array).execute($conn)?;
            }
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            diesel::insert_into($table).values(rest).execute($conn)?;
        }
        Ok(())
    }};
}

#[cfg(feature = "sqlite")]
impl Bulk for diesel::sqlite::SqliteConnection {
    fn copy_states(&mut self, rows: &[StateRow]) -> Result<()> {
        sqlite_insert!(self, agent_states::table, rows, StateRow)
    }
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()> {
        sqlite_insert!(self, simulation_steps::table, rows, StepRow)
    }
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()> {
        sqlite_insert!(self, step_metrics::table, rows, StepMetric)
    }
    fn copy_agent_metrics(&mut self, rows: &[AgentMetric]) -> Result<()> {
        sqlite_insert!(self, agent_metrics::table, rows, AgentMetric)
    }
}

/// Binary `COPY ... FROM STDIN`: PostgreSQL's fastest ingest path.
#[cfg(feature = "postgres")]
macro_rules! pg_copy {
    ($conn:expr, $table:expr, $rows:expr) => {{
        if !$rows.is_empty() {
            diesel::copy_from($table)
                .from_insertable($rows)
                .execute($conn)?;
        }
        Ok(())
    }};
}

#[cfg(feature = "postgres")]
impl Bulk for diesel::pg::PgConnection {
    fn copy_states(&mut self, rows: &[StateRow]) -> Result<()> {
        pg_copy!(self, agent_states::table, rows)
    }
    fn copy_steps(&mut self, rows: &[StepRow]) -> Result<()> {
        pg_copy!(self, simulation_steps::table, rows)
    }
    fn copy_step_metrics(&mut self, rows: &[StepMetric]) -> Result<()> {
        pg_copy!(self, step_metrics::table, rows)
    }
    fn copy_agent_metrics(&mut self, rows: &[AgentMetric]) -> Result<()> {
        pg_copy!(self, agent_metrics::table, rows)
    }
}
