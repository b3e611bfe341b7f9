//! From command-line text to a database and its ids.

use simdb::{Database, Error, ExperimentId, Result, SimulationId, SimulationService};

/// Opens the database given by `--database-url` / `SIMDB_DATABASE_URL`.
pub fn open(url: &Option<String>) -> Result<SimulationService> {
    let url = url.as_deref().ok_or_else(|| Error::InvalidUrl {
        url: String::new(),
        reason: "no database: pass --database-url or set SIMDB_DATABASE_URL".into(),
    })?;
    Ok(SimulationService::new(Database::open(url)?))
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
