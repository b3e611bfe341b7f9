//! `SimulationService`: the facade over everything simdb stores. The
//! methods are grouped by file: entities here, then [`lifecycle`],
//! [`recording`] and [`reading`].

mod deleting;
mod lifecycle;
mod reading;
mod recording;

use crate::database::Database;
use crate::error::{Error, Result};
use crate::ids::{validate_text, ExperimentId, SimulationId};
use crate::models::*;
use crate::store::prelude::*;
use crate::store::SimulationFilter;
use crate::validate::*;
use crate::with_connection;

/// The facade over a [`Database`]: experiments, simulations and their
/// lifecycle, agents, and the simple one-row-per-call recording path.
///
/// Cheap to clone (it shares the database's pools); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct SimulationService {
    db: Database,
}

impl SimulationService {
    /// A service over `db`.
    pub fn new(db: Database) -> Self {
        SimulationService { db }
    }

    /// The underlying database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    // ----- experiments -------------------------------------------------

    /// Creates an experiment.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty, over-long or control-character
    /// name; [`Error::Duplicate`](crate::Error::Duplicate) if its id or name is taken.
    pub fn create_experiment(&self, new: NewExperiment) -> Result<Experiment> {
        validate_text("experiment name", &new.name, MAX_NAME_LEN)?;
        check_free_text("experiment description", &new.description)?;
        check_optional("external ref", &new.external_ref)?;
        check_json("experiment metadata", &new.metadata)?;
        with_connection!(self.db.writer()?, |c| c.insert_experiment(&new))
    }

    /// The experiment with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is none.
    pub fn experiment(&self, id: &ExperimentId) -> Result<Experiment> {
        with_connection!(self.db.connection()?, |c| c.find_experiment(id))
    }

    /// The experiment with this name.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is none.
    pub fn experiment_by_name(&self, name: &str) -> Result<Experiment> {
        with_connection!(self.db.connection()?, |c| c.experiment_named(name))
    }

    /// Every experiment, oldest first.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) on a database failure.
    pub fn list_experiments(&self) -> Result<Vec<Experiment>> {
        with_connection!(self.db.connection()?, |c| c.list_experiments())
    }

    // ----- simulations -------------------------------------------------

    /// Creates a `pending` simulation (and its `created` event).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) if the parameters are not a JSON object or a
    /// name or tag is invalid; [`Error::NotFound`](crate::Error::NotFound) for an unknown experiment;
    /// [`Error::Duplicate`](crate::Error::Duplicate) if the id is taken.
    pub fn create_simulation(&self, new: NewSimulation) -> Result<Simulation> {
        if !new.parameters.is_object() {
            return Err(Error::invalid(
                "parameters",
                format!("must be a JSON object, got {}", json_kind(&new.parameters)),
            ));
        }
        check_json("parameters", &new.parameters)?;
        check_optional("simulation name", &new.name)?;
        check_optional("data uri", &new.data_uri)?;
        for tag in &new.tags {
            validate_text("tag", tag, MAX_NAME_LEN)?;
        }
        with_connection!(self.db.writer()?, |c| c.insert_simulation(&new))
    }

    /// The simulation with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if there is none.
    pub fn simulation(&self, id: &SimulationId) -> Result<Simulation> {
        with_connection!(self.db.connection()?, |c| c.find_simulation(id))
    }

    /// Simulations matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) on a database failure.
    pub fn list_simulations(&self, filter: &SimulationFilter) -> Result<Vec<Simulation>> {
        with_connection!(self.db.connection()?, |c| c.list_simulations(filter))
    }

    /// The tags of a simulation, sorted.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn simulation_tags(&self, id: &SimulationId) -> Result<Vec<String>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(id)?;
            c.tags(sim.sim_key)
        })
    }

    /// The tags of many simulations at once, in their order (one statement
    /// per 10,000 simulations).
    ///
    /// # Errors
    /// [`Error::Database`](crate::Error::Database) if the statement fails.
    pub fn tags_of(&self, sims: &[Simulation]) -> Result<Vec<Vec<String>>> {
        let keys: Vec<i32> = sims.iter().map(|s| s.sim_key).collect();
        let mut by_key: std::collections::HashMap<i32, Vec<String>> =
            std::collections::HashMap::new();
        // In chunks that stay under SQLite's bind limit.
        let tags = with_connection!(self.db.connection()?, |c| {
            let mut tags = Vec::new();
            for chunk in keys.chunks(crate::store::prelude::AGENT_CHUNK) {
                tags.extend(c.tags_of(chunk)?);
            }
            tags
        });
        for (key, tag) in tags {
            by_key.entry(key).or_default().push(tag);
        }
        Ok(sims
            .iter()
            .map(|s| by_key.remove(&s.sim_key).unwrap_or_default())
            .collect())
    }

    /// Deletes a simulation and every row that belongs to it (agents,
    /// states, steps, metrics, memories, events, tags): the run is gone at
    /// once, then its rows go in bounded transactions (`deleting.rs`).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn delete_simulation(&self, id: &SimulationId) -> Result<()> {
        self.delete_cut_after(id, None)
    }

    /// As [`SimulationService::delete_simulation`], stopped after
    /// `transactions` of the bounded transactions that remove the run's
    /// chunks, memories and rollups, as a crash would stop it: the run is
    /// gone, some of its rows are left for the next delete to remove.
    ///
    /// # Errors
    /// As [`SimulationService::delete_simulation`].
    #[cfg(feature = "test-support")]
    pub fn delete_simulation_cut_short_for_tests(
        &self,
        id: &SimulationId,
        transactions: usize,
    ) -> Result<()> {
        self.delete_cut_after(id, Some(transactions))
    }

    // ----- agents ------------------------------------------------------

    /// Registers agents (all or none).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a negative index or invalid name/kind/policy;
    /// [`Error::Duplicate`](crate::Error::Duplicate) if an index is already registered (or repeated);
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn register_agents(&self, sim: &SimulationId, agents: &[NewAgent]) -> Result<Vec<Agent>> {
        let mut seen = std::collections::HashSet::new();
        for agent in agents {
            agent.agent_index.checked()?;
            if !seen.insert(agent.agent_index) {
                return Err(Error::Duplicate {
                    entity: "agent",
                    id: format!("{} of {sim} (repeated in the list)", agent.agent_index),
                });
            }
            check_optional("agent name", &agent.name)?;
            check_optional("agent kind", &agent.kind)?;
            check_optional("policy name", &agent.policy_name)?;
            check_optional("checkpoint uri", &agent.checkpoint_uri)?;
            check_json("agent metadata", &agent.metadata)?;
        }
        with_connection!(self.db.writer()?, |c| c.write(|c| {
            let sim = c.find_simulation(sim)?;
            c.insert_agents(&sim, agents)
        }))
    }

    /// The agents of a simulation, by index.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown simulation.
    pub fn agents(&self, sim: &SimulationId) -> Result<Vec<Agent>> {
        with_connection!(self.db.connection()?, |c| {
            let sim = c.find_simulation(sim)?;
            c.agents(sim.sim_key)
        })
    }
}
