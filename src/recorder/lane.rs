//! Lanes: recording one simulation from several threads at once.
//!
//! A parallel engine (rayon, its own pool) steps its agents on several
//! threads. Each thread takes a [`RecorderLane`] from the recorder
//! (`&Recorder`: the recorder is `Sync`) and records into it without any
//! lock: rows gather in the lane's own batch and move into the recorder's
//! current batch, under its lock, once per `LANE_ROWS` rows and when the
//! lane is dropped or finished. [`Recorder::end_step`] takes `&mut self`, so
//! the borrow checker sees to it that every lane of a step is gone — its
//! rows handed over — before the step is ended: the watermark stays exact.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::{Batch, Recorder};
use crate::error::{Error, Result};
use crate::ids::{validate_text, AgentIndex};
use crate::validate::finite;

/// Rows a lane gathers before it hands them to the recorder's batch.
const LANE_ROWS: usize = 1024;

/// One thread's way into a [`Recorder`]: `Send`, lock-free on the hot path.
/// Taken with [`Recorder::lane`]; its rows reach the recorder when it is
/// dropped (or [`RecorderLane::finish`]ed), and every lane must be gone
/// before [`Recorder::end_step`] — which the borrow checker enforces.
#[derive(Debug)]
pub struct RecorderLane<'r> {
    rec: &'r Recorder,
    local: Batch,
    agents: Arc<super::known_agents::KnownAgents>,
    /// Agents found registered after the recorder's snapshot was taken.
    late_agents: HashSet<i32>,
    rows: u64,
    max_step: i64,
}

impl Recorder {
    /// A lane for one thread of a parallel engine (see [`RecorderLane`]).
    ///
    /// ```no_run
    /// # fn main() -> simdb::Result<()> {
    /// # let svc = simdb::SimulationService::new(simdb::Database::open("sqlite::memory:")?);
    /// # let sim = svc.create_simulation(simdb::NewSimulation::new(serde_json::json!({})))?;
    /// # svc.start_simulation(&sim.id)?;
    /// let mut rec = svc.recorder(&sim.id)?;
    /// let agents: Vec<i32> = (0..64).collect();
    /// for step in 0..100 {
    ///     std::thread::scope(|s| {
    ///         for chunk in agents.chunks(16) {
    ///             let rec = &rec;
    ///             s.spawn(move || -> simdb::Result<()> {
    ///                 let mut lane = rec.lane();
    ///                 for &agent in chunk {
    ///                     lane.agent_state(step, agent, 0.5, &serde_json::json!({"e": agent}))?;
    ///                 }
    ///                 lane.finish()
    ///             });
    ///         }
    ///     });
    ///     rec.end_step(step)?; // every lane of the step is gone by now
    /// }
    /// rec.close()?;
    /// # Ok(()) }
    /// ```
    pub fn lane(&self) -> RecorderLane<'_> {
        RecorderLane {
            rec: self,
            local: Batch::default(),
            agents: Arc::clone(&self.known_agents),
            late_agents: HashSet::new(),
            rows: 0,
            max_step: -1,
        }
    }

    /// A lane's rows, into the current batch; handed to the writer if full.
    fn take_lane(&self, local: &mut Batch, rows: u64, max_step: i64) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let full = {
            let mut current = self.shared.current();
            if let Some(first) = local.min_step {
                if self.ends_before(&current, first) {
                    self.send(&mut current)?;
                }
            }
            current.append(local);
            self.is_full(&current)
        };
        self.rows_recorded.fetch_add(rows, Ordering::Relaxed);
        self.max_step.fetch_max(max_step, Ordering::Relaxed);
        if full {
            self.hand_off()?;
        }
        Ok(())
    }
}

impl RecorderLane<'_> {
    fn check_agent(&mut self, agent: AgentIndex) -> Result<i32> {
        let i = agent.checked()?;
        if self.agents.contains(i) || self.late_agents.contains(&i) {
            return Ok(i);
        }
        // Registered while the recorder records: one query, then known.
        let registered = self.rec.service.agents(&self.rec.sim)?;
        if registered.iter().any(|a| a.agent_index.0 == i) {
            self.late_agents.insert(i);
            return Ok(i);
        }
        Err(Error::unregistered_agent(i, &self.rec.sim))
    }

    fn counted(&mut self, step: i64) -> Result<()> {
        self.rows += 1;
        self.max_step = self.max_step.max(step);
        if self.local.rows() >= LANE_ROWS {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> Result<()> {
        let (rows, max_step) = (self.rows, self.max_step);
        self.rows = 0;
        self.rec.take_lane(&mut self.local, rows, max_step)
    }

    /// As [`Recorder::agent_state`], from this lane's thread.
    ///
    /// # Errors
    /// As for [`Recorder::agent_state`].
    pub fn agent_state<S: Serialize + ?Sized>(
        &mut self,
        step: i64,
        agent: impl Into<AgentIndex>,
        reward: f64,
        state: &S,
    ) -> Result<()> {
        self.rec.check_writer()?;
        self.rec.check_open_step(step)?;
        let reward = finite("reward", reward)?;
        let agent = self.check_agent(agent.into())?;
        self.local
            .push_state(agent, step, reward, state, self.rec.options.batch_bytes)?;
        self.counted(step)
    }

    /// As [`Recorder::agent_metric`], from this lane's thread.
    ///
    /// # Errors
    /// As for [`Recorder::agent_metric`].
    pub fn agent_metric(
        &mut self,
        step: i64,
        agent: impl Into<AgentIndex>,
        name: &str,
        value: f64,
    ) -> Result<()> {
        self.rec.check_writer()?;
        self.rec.check_open_step(step)?;
        let value = finite("metric value", value)?;
        let agent = self.check_agent(agent.into())?;
        let metric = self.metric_id(name)?;
        self.local.push_metric(Some(agent), metric, step, value);
        self.counted(step)
    }

    /// The recorder's id of a metric name. A new name goes into the
    /// recorder's current batch at once, before any lane can use its id,
    /// so the writer always learns a name before its first value.
    fn metric_id(&self, name: &str) -> Result<u32> {
        let mut ids = self
            .rec
            .metric_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(&id) = ids.get(name) {
            return Ok(id);
        }
        validate_text("metric name", name, 256)?;
        let id = ids.len() as u32;
        self.rec
            .shared
            .current()
            .new_metric_names
            .push((id, name.to_string()));
        ids.insert(name.to_string(), id);
        Ok(id)
    }

    /// Hands this lane's rows to the recorder now and reports a writer
    /// failure (dropping the lane hands them over too; a failure then shows
    /// at the recorder's next call).
    ///
    /// # Errors
    /// [`Error::Recorder`](crate::Error::Recorder) if the writer has failed (the rows are kept).
    pub fn finish(mut self) -> Result<()> {
        self.hand_over()
    }
}

impl Drop for RecorderLane<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.hand_over() {
            tracing::warn!(simulation = %self.rec.sim, error = %e, "simdb lane handed its rows to a failed recorder");
        }
    }
}
