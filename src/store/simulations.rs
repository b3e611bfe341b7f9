//! Statements on simulations: creation, lookup, listing, tags, status
//! transitions, heartbeats and deletion.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use super::clock::Clock;
use super::keys::KeyAllocator;
use super::prelude::*;
use super::{event, SimulationFilter};
use crate::error::{Error, Result};
use crate::ids::{ExperimentId, SimulationId};
use crate::models::{NewSimulation, Simulation, SimulationStatus};
use crate::schema::{pending_deletes, simulation_tags, simulations};
use crate::sql_types::{JsonParam, TimeParam};

/// A simulation row with every column, for imports.
#[derive(Debug, Insertable)]
#[diesel(table_name = simulations, treat_none_as_default_value = false)]
pub(crate) struct FullSimulation {
    pub id: SimulationId,
    pub experiment_id: Option<ExperimentId>,
    pub name: Option<String>,
    pub status: SimulationStatus,
    pub parameters: JsonParam,
    pub results_summary: Option<JsonParam>,
    pub data_uri: Option<String>,
    pub error_message: Option<String>,
    pub created_at: TimeParam,
    pub started_at: Option<TimeParam>,
    pub ended_at: Option<TimeParam>,
    pub heartbeat_at: Option<TimeParam>,
    pub committed_step: Option<i64>,
}

/// Columns a status transition sets; `None` leaves a column as it is.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = simulations)]
pub(crate) struct StatusChange {
    pub status: SimulationStatus,
    pub started_at: Option<TimeParam>,
    pub ended_at: Option<TimeParam>,
    pub results_summary: Option<JsonParam>,
    pub error_message: Option<String>,
}

pub(crate) trait SimulationStore: RunDeletion {
    fn find_simulation(&mut self, id: &SimulationId) -> Result<Simulation>;
    fn insert_simulation(&mut self, new: &NewSimulation) -> Result<Simulation>;
    fn list_simulations(&mut self, filter: &SimulationFilter) -> Result<Vec<Simulation>>;
    fn tags(&mut self, sim_key: i32) -> Result<Vec<String>>;
    /// `(sim_key, tag)` of many simulations, by key then tag.
    fn tags_of(&mut self, sim_keys: &[i32]) -> Result<Vec<(i32, String)>>;
    /// Deletes a run's row and what cascades from it, and records its key
    /// in `pending_deletes` (its other rows go in bounded transactions:
    /// `RunDeletion`); the key.
    fn begin_delete(&mut self, id: &SimulationId) -> Result<i32>;
    /// Deletes a run and every row of it on this connection (inside a
    /// caller's transaction: an import's replace), after any delete cut
    /// short.
    fn delete_simulation(&mut self, id: &SimulationId) -> Result<()> {
        self.finish_deletes()?;
        let sim_key = self.begin_delete(id)?;
        self.clear_run(sim_key)
    }
    fn transition(
        &mut self,
        id: &SimulationId,
        to: SimulationStatus,
        summary: Option<Value>,
        message: Option<String>,
    ) -> Result<Simulation>;
    /// Sets heartbeat_at of a running simulation to the database's now.
    fn heartbeat(&mut self, id: &SimulationId) -> Result<DateTime<Utc>>;
    /// Under the run's row lock: `running` -> `interrupted` if the run is
    /// still running and its last sign of life is older than `max_age_secs`;
    /// `None` (nothing changed) otherwise.
    fn interrupt_if_stale(
        &mut self,
        id: &SimulationId,
        max_age_secs: f64,
    ) -> Result<Option<Simulation>>;
    /// Running simulations whose last sign of life is older than
    /// `max_age_secs` by the database's clock.
    fn stale_running(&mut self, max_age_secs: f64) -> Result<Vec<Simulation>>;
    /// Inserts a complete simulation row and its tags; returns its key.
    fn insert_full_simulation(&mut self, row: FullSimulation, tags: &[String]) -> Result<i32>;
}

/// The run's last sign of life (its heartbeat, or its start if it never
/// heartbeated) is older than `secs` by the database's clock.
macro_rules! silent_for {
    ($conn:ty, $secs:expr) => {
        simulations::heartbeat_at
            .lt(<$conn>::db_ago($secs))
            .or(simulations::heartbeat_at
                .is_null()
                .and(simulations::started_at.lt(<$conn>::db_ago($secs))))
    };
}

/// Inserts a simulation row with the next never-reused key where the
/// backend needs one allocated (`next_sim_key`; PostgreSQL's identity
/// gives its own): the Diesel result, for the caller to map.
macro_rules! insert_row {
    ($conn:expr, $values:expr) => {
        match $conn.next_sim_key()? {
            Some(key) => diesel::insert_into(simulations::table)
                .values((simulations::sim_key.eq(key), $values))
                .execute($conn),
            None => diesel::insert_into(simulations::table)
                .values($values)
                .execute($conn),
        }
    };
}

for_each_backend! {
    impl SimulationStore {
        fn find_simulation(&mut self, id: &SimulationId) -> Result<Simulation> {
            simulations::table
                .filter(simulations::id.eq(id))
                .select(Simulation::as_select())
                .first(self)
                .optional()?
                .ok_or_else(|| Error::not_found("simulation", id))
        }

        fn insert_simulation(&mut self, new: &NewSimulation) -> Result<Simulation> {
            self.write(|c| {
                if let Some(exp) = &new.experiment_id {
                    c.find_experiment(exp)?;
                }
                insert_row!(c, new.clone()).map_err(|e| Error::from_write(e, "simulation", &new.id, None))?;
                let sim = c.find_simulation(&new.id)?;
                let mut tags: Vec<&String> = new.tags.iter().collect();
                tags.sort();
                tags.dedup();
                for tag in tags {
                    diesel::insert_into(simulation_tags::table)
                        .values((
                            simulation_tags::sim_key.eq(sim.sim_key),
                            simulation_tags::tag.eq(tag),
                        ))
                        .execute(c)?;
                }
                c.record_event(&event(
                    sim.sim_key,
                    "created",
                    None,
                    Some(SimulationStatus::Pending),
                    None,
                ))?;
                Ok(sim)
            })
        }

        fn list_simulations(&mut self, filter: &SimulationFilter) -> Result<Vec<Simulation>> {
            filter.check()?;
            let mut query = simulations::table
                .select(Simulation::as_select())
                .order(simulations::sim_key.desc())
                .into_boxed();
            if let Some(exp) = &filter.experiment {
                query = query.filter(simulations::experiment_id.eq(exp));
            }
            if let Some(status) = filter.status {
                query = query.filter(simulations::status.eq(status));
            }
            if let Some(tag) = &filter.tag {
                query = query.filter(
                    simulations::sim_key.eq_any(
                        simulation_tags::table
                            .filter(simulation_tags::tag.eq(tag))
                            .select(simulation_tags::sim_key),
                    ),
                );
            }
            if let Some(limit) = filter.limit {
                query = query.limit(limit);
            }
            Ok(query.load(self)?)
        }

        fn tags(&mut self, sim_key: i32) -> Result<Vec<String>> {
            Ok(simulation_tags::table
                .filter(simulation_tags::sim_key.eq(sim_key))
                .select(simulation_tags::tag)
                .order(simulation_tags::tag)
                .load(self)?)
        }

        fn tags_of(&mut self, sim_keys: &[i32]) -> Result<Vec<(i32, String)>> {
            Ok(simulation_tags::table
                .filter(simulation_tags::sim_key.eq_any(sim_keys))
                .select((simulation_tags::sim_key, simulation_tags::tag))
                .order((simulation_tags::sim_key, simulation_tags::tag))
                .load(self)?)
        }

        fn begin_delete(&mut self, id: &SimulationId) -> Result<i32> {
            let refused = |e: &diesel::result::Error| {
                // A row of the host application points at this run.
                let table = match e {
                    diesel::result::Error::DatabaseError(_, info) => info.table_name(),
                    _ => None,
                };
                Error::invalid(
                    "simulation",
                    format!(
                        "`{id}` is referenced by another table ({}); delete or unlink those rows first",
                        table.unwrap_or("a table outside simdb")
                    ),
                )
            };
            let outcome = self.write(|c| {
                // The simulation's row goes first: deleting it locks it, so
                // a recorder's batch (whose ownership check updates that
                // row) or a one-row write (which holds it) either commits
                // before and is deleted below, or waits and then finds the
                // run gone. What has a foreign key to it follows by cascade
                // in this transaction; its key is recorded as being deleted.
                let deleted = diesel::delete(simulations::table.filter(simulations::id.eq(id)))
                    .returning(simulations::sim_key)
                    .get_results::<i32>(c)
                    .map_err(|e| {
                        if crate::error::is_foreign_key_violation(&e) {
                            refused(&e)
                        } else {
                            Error::from(e)
                        }
                    })?;
                let Some(&sim_key) = deleted.first() else {
                    return Err(Error::not_found("simulation", id));
                };
                diesel::insert_into(pending_deletes::table)
                    .values(pending_deletes::sim_key.eq(sim_key))
                    .execute(c)?;
                Ok(sim_key)
            });
            match outcome {
                // A deferred foreign key of the host's is checked at COMMIT.
                Err(Error::Database(e)) if crate::error::is_foreign_key_violation(&e) => {
                    Err(refused(&e))
                }
                other => other,
            }
        }

        fn transition(
            &mut self,
            id: &SimulationId,
            to: SimulationStatus,
            summary: Option<Value>,
            message: Option<String>,
        ) -> Result<Simulation> {
            self.write(|c| {
                // Locked before its status is read: of two conflicting
                // calls, the second reads what the first committed.
                let sim = c.lock_simulation(id)?;
                if !sim.status.can_become(to) {
                    return Err(Error::InvalidTransition {
                        id: id.to_string(),
                        from: sim.status,
                        to,
                    });
                }
                // One clock, the database's, for transitions as for
                // heartbeats and staleness.
                let now = TimeParam(c.database_now()?);
                let running = to == SimulationStatus::Running;
                let change = StatusChange {
                    status: to,
                    started_at: (running && sim.started_at.is_none()).then_some(now),
                    ended_at: to.is_final().then_some(now),
                    results_summary: summary.map(JsonParam),
                    error_message: message.clone(),
                };
                let updated = diesel::update(
                    simulations::table
                        .find(sim.sim_key)
                        .filter(simulations::status.eq(sim.status)),
                )
                .set(&change)
                .execute(c)?;
                if updated != 1 {
                    // Unreachable under the row lock; refused rather than
                    // written over if it ever is.
                    let found = c.find_simulation(id)?;
                    return Err(Error::InvalidTransition {
                        id: id.to_string(),
                        from: found.status,
                        to,
                    });
                }
                if running {
                    diesel::update(simulations::table.find(sim.sim_key))
                        .set(simulations::heartbeat_at.eq(Some(now)))
                        .execute(c)?;
                }
                let mut ev = event(sim.sim_key, "status", Some(sim.status), Some(to), message);
                ev.occurred_at = now;
                c.insert_event(&ev)?;
                c.find_simulation(id)
            })
        }

        fn interrupt_if_stale(&mut self, id: &SimulationId, max_age_secs: f64) -> Result<Option<Simulation>> {
            self.write(|c| {
                let sim = c.lock_simulation(id)?;
                // Judged again under the lock: a run that finished, was
                // recovered or heartbeated since the scan is left alone.
                let still_stale = simulations::table
                    .find(sim.sim_key)
                    .filter(simulations::status.eq(SimulationStatus::Running))
                    .filter(silent_for!(Self, max_age_secs))
                    .count()
                    .get_result::<i64>(c)?
                    == 1;
                if !still_stale {
                    return Ok(None);
                }
                let reason = format!(
                    "no heartbeat for over {}s (last: {})",
                    max_age_secs.floor(),
                    sim.heartbeat_at
                        .or(sim.started_at)
                        .map_or_else(|| "never".to_string(), |t| t.to_rfc3339())
                );
                c.transition(id, SimulationStatus::Interrupted, None, Some(reason)).map(Some)
            })
        }

        fn heartbeat(&mut self, id: &SimulationId) -> Result<DateTime<Utc>> {
            let updated = diesel::update(
                simulations::table
                    .filter(simulations::id.eq(id))
                    .filter(simulations::status.eq(SimulationStatus::Running)),
            )
            .set(simulations::heartbeat_at.eq(Self::db_now()))
            .execute(self)?;
            let sim = self.find_simulation(id)?;
            if updated == 0 {
                return Err(Error::invalid(
                    "simulation status",
                    format!("simulation `{id}` is {}, only running ones heartbeat", sim.status),
                ));
            }
            sim.heartbeat_at
                .ok_or_else(|| Error::invalid("heartbeat", "the database stored no time"))
        }

        fn stale_running(&mut self, max_age_secs: f64) -> Result<Vec<Simulation>> {
            Ok(simulations::table
                .filter(simulations::status.eq(SimulationStatus::Running))
                .filter(silent_for!(Self, max_age_secs))
                .select(Simulation::as_select())
                .order(simulations::sim_key)
                .load(self)?)
        }

        fn insert_full_simulation(&mut self, row: FullSimulation, tags: &[String]) -> Result<i32> {
            let id = row.id.clone();
            insert_row!(self, row).map_err(|e| Error::from_write(e, "simulation", &id, None))?;
            let key = self.find_simulation(&id)?.sim_key;
            for tag in tags {
                diesel::insert_into(simulation_tags::table)
                    .values((simulation_tags::sim_key.eq(key), simulation_tags::tag.eq(tag)))
                    .execute(self)?;
            }
            Ok(key)
        }
    }
}
