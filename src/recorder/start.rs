//! Starting a recorder: taking the run's lease and spawning its writer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::bulk::RowBuffers;
use super::metric_names::MetricCache;
use super::shared::{Msg, Shared};
use super::syncer::Syncer;
use super::writer::Writer;
use super::{Recorder, RecorderOptions};
use crate::error::{Error, Result};
use crate::ids::SimulationId;
use crate::service::SimulationService;
use crate::store::known_chunks::KnownChunks;
use crate::store::known_rollups::KnownRollups;
use crate::store::prelude::*;
use crate::validate::check_running;
use crate::with_connection;

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
            // Read by the writer before its first batch.
            known: KnownChunks::unknown(),
            rollups: KnownRollups::default(),
            last_commit: now,
            last_beat: now,
            stash: None,
            at_once: false,
            sender: None,
            in_flight: None,
            buffers: RowBuffers::default(),
            syncer: self
                .database()
                .wal_synced_apart()
                .and_then(|wal| Syncer::start(wal, Arc::clone(&shared), simulation.sim_key)),
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
            metric_ids: Mutex::new(foldhash::HashMap::default()),
            recent_metrics: Vec::new(),
            known_agents: Arc::default(),
            service: self.clone(),
            shared,
            sender: Some(sender),
            writer: Some(handle),
            rows_recorded: AtomicU64::new(0),
            ended: None,
            max_step: AtomicI64::new(-1),
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
