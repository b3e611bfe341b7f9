//! From command-line text to a database and its ids.

use simdb::{Database, Error, ExperimentId, Result, SimulationId, SimulationService};

fn given(url: &Option<String>) -> Result<&str> {
    url.as_deref()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| Error::InvalidUrl {
            url: String::new(),
            reason: "pass -d URL (--database-url: a file path, sqlite://PATH or \
                     postgres://user@host/db) or set SIMDB_DATABASE_URL"
                .into(),
        })
}

/// Opens the database given by `--database-url` / `SIMDB_DATABASE_URL` for
/// writing: creates and migrates it if needed.
pub fn open(url: &Option<String>) -> Result<SimulationService> {
    Ok(SimulationService::new(Database::open(given(url)?)?))
}

/// Opens it for reading: never creates a file, never migrates, and refuses
/// a database without simdb's schema.
pub fn open_read(url: &Option<String>) -> Result<SimulationService> {
    read_only(given(url)?)
}

/// The read replicas given by `--read-replica`, for every read-only open.
static REPLICAS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Keeps `--read-replica`'s URLs for the reading opens of this run.
pub fn read_replicas(urls: Vec<String>) {
    let _ = REPLICAS.set(urls.into_iter().filter(|u| !u.trim().is_empty()).collect());
}

/// Opens `url` for reading (see [`open_read`]), its reads from the read
/// replicas when `--read-replica` gave any.
pub fn read_only(url: &str) -> Result<SimulationService> {
    let mut builder = Database::builder(url)
        .create_if_missing(false)
        .read_only(true);
    for replica in REPLICAS.get().into_iter().flatten() {
        builder = builder.read_replica(replica);
    }
    Ok(SimulationService::new(builder.open()?.for_reading()))
}

/// A simulation id from text.
pub fn sim_id(text: &str) -> Result<SimulationId> {
    SimulationId::new(text)
}

/// An experiment by id, else by name.
pub fn experiment(svc: &SimulationService, text: &str) -> Result<ExperimentId> {
    if let Ok(id) = ExperimentId::new(text) {
        if let Ok(exp) = svc.experiment(&id) {
            return Ok(exp.id);
        }
    }
    Ok(svc.experiment_by_name(text)?.id)
}
