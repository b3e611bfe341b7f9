//! Every SQL statement of the service, written once and compiled for each
//! backend's connection type by `impl_store!`: the schema is shared, so the
//! same Diesel DSL is valid on both.

use std::ops::{Bound, RangeBounds};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::{AgentIndex, ExperimentId, SimulationId};
use crate::models::*;
use crate::schema::*;
use crate::sql_types::{JsonParam, TimeParam};

/// Inclusive `(first, last)` steps of a range.
pub(crate) fn step_bounds(range: &impl RangeBounds<i64>) -> (i64, i64) {
    let lo = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => i64::MIN,
    };
    let hi = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.saturating_sub(1),
        Bound::Unbounded => i64::MAX,
    };
    (lo, hi)
}

/// Filters for [`crate::SimulationService::list_simulations`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimulationFilter {
    /// Only simulations of this experiment.
    pub experiment: Option<ExperimentId>,
    /// Only simulations in this status.
    pub status: Option<SimulationStatus>,
    /// Only simulations carrying this tag.
    pub tag: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<i64>,
}

impl SimulationFilter {
    /// No filter: every simulation.
    pub fn new() -> Self {
        Self::default()
    }
    /// Restricts to one experiment.
    pub fn experiment(mut self, id: &ExperimentId) -> Self {
        self.experiment = Some(id.clone());
        self
    }
    /// Restricts to one status.
    pub fn status(mut self, status: SimulationStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Restricts to one tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
    /// Caps the number of results.
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = Some(limit);
        self
    }
}

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
}

/// Columns a status transition sets; `None` leaves a column as it is.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = simulations)]
pub(crate) struct StatusChange {
    pub status: SimulationStatus,
    pub started_at: Option<TimeParam>,
    pub ended_at: Option<TimeParam>,
    pub heartbeat_at: Option<TimeParam>,
    pub results_summary: Option<JsonParam>,
    pub error_message: Option<String>,
}

pub(crate) fn event(
    sim_key: i32,
    kind: &str,
    from: Option<SimulationStatus>,
    to: Option<SimulationStatus>,
    message: Option<String>,
) -> NewEvent {
    NewEvent {
        sim_key,
        occurred_at: TimeParam(Utc::now()),
        kind: kind.to_string(),
        from_status: from,
        to_status: to,
        message,
        data: None,
    }
}

/// The operations of simdb on one connection.
pub(crate) trait Store {
    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE` on SQLite).
    fn write<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T>;
    fn find_simulation(&mut self, id: &SimulationId) -> Result<Simulation>;
    fn find_experiment(&mut self, id: &ExperimentId) -> Result<Experiment>;
    fn experiment_named(&mut self, name: &str) -> Result<Experiment>;
    fn list_experiments(&mut self) -> Result<Vec<Experiment>>;
    fn insert_experiment(&mut self, new: &NewExperiment) -> Result<Experiment>;
    fn insert_simulation(&mut self, new: &NewSimulation) -> Result<Simulation>;
    fn list_simulations(&mut self, filter: &SimulationFilter) -> Result<Vec<Simulation>>;
    fn tags(&mut self, sim_key: i32) -> Result<Vec<String>>;
    fn delete_simulation(&mut self, id: &SimulationId) -> Result<()>;
    fn insert_agents(&mut self, sim: &Simulation, agents: &[NewAgent]) -> Result<Vec<Agent>>;
    fn agents(&mut self, sim_key: i32) -> Result<Vec<Agent>>;
    fn transition(
        &mut self,
        id: &SimulationId,
        to: SimulationStatus,
        summary: Option<Value>,
        message: Option<String>,
    ) -> Result<Simulation>;
    fn heartbeat(&mut self, id: &SimulationId) -> Result<DateTime<Utc>>;
    fn events(&mut self, sim_key: i32) -> Result<Vec<Event>>;
    fn metric_id(&mut self, name: &str) -> Result<i32>;
    fn insert_agent_state(&mut self, row: &AgentState) -> Result<()>;
    fn insert_step(&mut self, row: &SimulationStep) -> Result<()>;
    fn insert_step_metric(&mut self, row: &StepMetric) -> Result<()>;
    fn insert_agent_metric(&mut self, row: &AgentMetric) -> Result<()>;
    fn insert_memory(&mut self, row: &AgentMemory) -> Result<()>;
    fn agent_states(
        &mut self,
        sim_key: i32,
        agent: i32,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<AgentState>>;
    /// At most `limit` of one agent's states after `after`, by step.
    fn agent_states_page(
        &mut self,
        sim_key: i32,
        agent: i32,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AgentState>>;
    fn states_at_step(&mut self, sim_key: i32, step: i64) -> Result<Vec<AgentState>>;
    fn steps(&mut self, sim_key: i32, lo: i64, hi: i64) -> Result<Vec<SimulationStep>>;
    /// An agent's latest memory snapshot at or before step `at`.
    fn latest_memory(&mut self, sim_key: i32, agent: i32, at: i64) -> Result<Option<AgentMemory>>;
    fn memories(&mut self, sim_key: i32, agent: i32) -> Result<Vec<AgentMemory>>;
    /// Sets heartbeat_at of a running simulation to now.
    fn touch(&mut self, sim_key: i32) -> Result<()>;
    /// Running simulations whose last sign of life is older than `cutoff`.
    fn stale_running(&mut self, cutoff: DateTime<Utc>) -> Result<Vec<Simulation>>;
    /// The highest step at which all `agents` registered agents have a state
    /// (and, if the simulation records step rows, its step row exists).
    fn last_complete_step(&mut self, sim_key: i32, agents: i64) -> Result<Option<i64>>;
    /// Deletes every per-step row after `step`; returns how many.
    fn truncate_after(&mut self, sim_key: i32, step: i64) -> Result<usize>;
    fn insert_event(&mut self, event: &NewEvent) -> Result<()>;
    /// Inserts a complete simulation row and its tags; returns its key.
    fn insert_full_simulation(&mut self, row: FullSimulation, tags: &[String]) -> Result<i32>;
    /// Inserts one agent.
    fn insert_agent(&mut self, row: NewAgent) -> Result<()>;
    /// Simulation-level metrics with their names, by step then name.
    fn named_step_metrics(&mut self, sim_key: i32) -> Result<Vec<(String, i64, f64)>>;
    /// One agent's metrics with their names, by step then name.
    fn named_agent_metrics(&mut self, sim_key: i32, agent: i32) -> Result<Vec<(String, i64, f64)>>;
}

macro_rules! impl_store {
    ($conn:ty, $tx:ident) => {
        impl Store for $conn {
            fn write<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
                use diesel::connection::{TransactionManager, TransactionManagerStatus};
                let status =
                    <Self as Connection>::TransactionManager::transaction_manager_status_mut(self);
                let nested = matches!(
                    status,
                    TransactionManagerStatus::Valid(v) if v.transaction_depth().is_some()
                );
                if nested {
                    // A savepoint inside the caller's transaction.
                    self.transaction(f)
                } else {
                    self.$tx(f)
                }
            }

            fn find_simulation(&mut self, id: &SimulationId) -> Result<Simulation> {
                simulations::table
                    .filter(simulations::id.eq(id))
                    .select(Simulation::as_select())
                    .first(self)
                    .optional()?
                    .ok_or_else(|| Error::not_found("simulation", id))
            }

            fn find_experiment(&mut self, id: &ExperimentId) -> Result<Experiment> {
                experiments::table
                    .find(id)
                    .select(Experiment::as_select())
                    .first(self)
                    .optional()?
                    .ok_or_else(|| Error::not_found("experiment", id))
            }

            fn experiment_named(&mut self, name: &str) -> Result<Experiment> {
                experiments::table
                    .filter(experiments::name.eq(name))
                    .select(Experiment::as_select())
                    .first(self)
                    .optional()?
                    .ok_or_else(|| Error::not_found("experiment named", name))
            }

            fn list_experiments(&mut self) -> Result<Vec<Experiment>> {
                Ok(experiments::table
                    .select(Experiment::as_select())
                    .order((experiments::created_at, experiments::id))
                    .load(self)?)
            }

            fn insert_experiment(&mut self, new: &NewExperiment) -> Result<Experiment> {
                self.write(|c| {
                    let taken = experiments::table
                        .filter(experiments::id.eq(&new.id).or(experiments::name.eq(&new.name)))
                        .select((experiments::id, experiments::name))
                        .first::<(ExperimentId, String)>(c)
                        .optional()?;
                    if let Some((id, name)) = taken {
                        return Err(if id == new.id {
                            Error::Duplicate { entity: "experiment", id: id.to_string() }
                        } else {
                            Error::Duplicate { entity: "experiment named", id: name }
                        });
                    }
                    diesel::insert_into(experiments::table)
                        .values(new.clone())
                        .execute(c)
                        .map_err(|e| Error::from_write(e, "experiment", &new.id, None))?;
                    c.find_experiment(&new.id)
                })
            }

            fn insert_simulation(&mut self, new: &NewSimulation) -> Result<Simulation> {
                self.write(|c| {
                    if let Some(exp) = &new.experiment_id {
                        c.find_experiment(exp)?;
                    }
                    diesel::insert_into(simulations::table)
                        .values(new.clone())
                        .execute(c)
                        .map_err(|e| Error::from_write(e, "simulation", &new.id, None))?;
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
                    diesel::insert_into(events::table)
                        .values(&event(
                            sim.sim_key,
                            "created",
                            None,
                            Some(SimulationStatus::Pending),
                            None,
                        ))
                        .execute(c)?;
                    Ok(sim)
                })
            }

            fn list_simulations(&mut self, filter: &SimulationFilter) -> Result<Vec<Simulation>> {
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

            fn delete_simulation(&mut self, id: &SimulationId) -> Result<()> {
                self.write(|c| {
                    let deleted =
                        diesel::delete(simulations::table.filter(simulations::id.eq(id)))
                            .execute(c)?;
                    if deleted == 0 {
                        return Err(Error::not_found("simulation", id));
                    }
                    Ok(())
                })
            }

            fn insert_agents(&mut self, sim: &Simulation, agents: &[NewAgent]) -> Result<Vec<Agent>> {
                self.write(|c| {
                    let rows: Vec<NewAgent> = agents
                        .iter()
                        .map(|a| NewAgent { sim_key: sim.sim_key, ..a.clone() })
                        .collect();
                    // Under both bind-parameter limits (9 columns per row).
                    for chunk in rows.chunks(1000) {
                        diesel::insert_into(agents::table)
                            .values(chunk.to_vec())
                            .execute(c)
                            .map_err(|e| {
                                Error::from_write(e, "agent", format!("one or more agents of {}", sim.id), None)
                            })?;
                    }
                    diesel::insert_into(events::table)
                        .values(&event(
                            sim.sim_key,
                            "agents_registered",
                            None,
                            None,
                            Some(format!("{} agents", rows.len())),
                        ))
                        .execute(c)?;
                    let indexes: Vec<i32> = rows.iter().map(|r| r.agent_index.0).collect();
                    let mut out = Vec::with_capacity(indexes.len());
                    for chunk in indexes.chunks(1000) {
                        out.extend(
                            agents::table
                                .filter(agents::sim_key.eq(sim.sim_key))
                                .filter(agents::agent_index.eq_any(chunk))
                                .select(Agent::as_select())
                                .order(agents::agent_index)
                                .load(c)?,
                        );
                    }
                    Ok(out)
                })
            }

            fn agents(&mut self, sim_key: i32) -> Result<Vec<Agent>> {
                Ok(agents::table
                    .filter(agents::sim_key.eq(sim_key))
                    .select(Agent::as_select())
                    .order(agents::agent_index)
                    .load(self)?)
            }

            fn transition(
                &mut self,
                id: &SimulationId,
                to: SimulationStatus,
                summary: Option<Value>,
                message: Option<String>,
            ) -> Result<Simulation> {
                self.write(|c| {
                    let sim = c.find_simulation(id)?;
                    if !sim.status.can_become(to) {
                        return Err(Error::InvalidTransition {
                            id: id.to_string(),
                            from: sim.status,
                            to,
                        });
                    }
                    let now = TimeParam(Utc::now());
                    let running = to == SimulationStatus::Running;
                    let change = StatusChange {
                        status: to,
                        started_at: (running && sim.started_at.is_none()).then_some(now),
                        ended_at: to.is_final().then_some(now),
                        heartbeat_at: running.then_some(now),
                        results_summary: summary.map(JsonParam),
                        error_message: message.clone(),
                    };
                    diesel::update(simulations::table.find(sim.sim_key))
                        .set(&change)
                        .execute(c)?;
                    diesel::insert_into(events::table)
                        .values(&event(sim.sim_key, "status", Some(sim.status), Some(to), message))
                        .execute(c)?;
                    c.find_simulation(id)
                })
            }

            fn heartbeat(&mut self, id: &SimulationId) -> Result<DateTime<Utc>> {
                let now = Utc::now();
                let updated = diesel::update(
                    simulations::table
                        .filter(simulations::id.eq(id))
                        .filter(simulations::status.eq(SimulationStatus::Running)),
                )
                .set(simulations::heartbeat_at.eq(TimeParam(now)))
                .execute(self)?;
                if updated == 0 {
                    let sim = self.find_simulation(id)?;
                    return Err(Error::invalid(
                        "simulation status",
                        format!("simulation `{id}` is {}, only running ones heartbeat", sim.status),
                    ));
                }
                Ok(now)
            }

            fn events(&mut self, sim_key: i32) -> Result<Vec<Event>> {
                Ok(events::table
                    .filter(events::sim_key.eq(sim_key))
                    .select(Event::as_select())
                    .order(events::event_id)
                    .load(self)?)
            }

            fn metric_id(&mut self, name: &str) -> Result<i32> {
                let find = |c: &mut Self| {
                    metric_names::table
                        .filter(metric_names::name.eq(name))
                        .select(metric_names::metric_id)
                        .first::<i32>(c)
                        .optional()
                };
                if let Some(id) = find(self)? {
                    return Ok(id);
                }
                diesel::insert_into(metric_names::table)
                    .values(metric_names::name.eq(name))
                    .on_conflict(metric_names::name)
                    .do_nothing()
                    .execute(self)?;
                find(self)?.ok_or_else(|| Error::not_found("metric", name))
            }

            fn insert_agent_state(&mut self, row: &AgentState) -> Result<()> {
                diesel::insert_into(agent_states::table)
                    .values(row.clone())
                    .execute(self)
                    .map_err(|e| {
                        Error::from_write(
                            e,
                            "agent state",
                            format!("agent {} step {}", row.agent_index, row.step),
                            Some(("agent", row.agent_index.to_string())),
                        )
                    })?;
                Ok(())
            }

            fn insert_step(&mut self, row: &SimulationStep) -> Result<()> {
                diesel::insert_into(simulation_steps::table)
                    .values(row.clone())
                    .execute(self)
                    .map_err(|e| Error::from_write(e, "step", row.step, None))?;
                Ok(())
            }

            fn insert_step_metric(&mut self, row: &StepMetric) -> Result<()> {
                diesel::insert_into(step_metrics::table)
                    .values(row.clone())
                    .execute(self)
                    .map_err(|e| Error::from_write(e, "step metric", format!("step {}", row.step), None))?;
                Ok(())
            }

            fn insert_agent_metric(&mut self, row: &AgentMetric) -> Result<()> {
                diesel::insert_into(agent_metrics::table)
                    .values(row.clone())
                    .execute(self)
                    .map_err(|e| {
                        Error::from_write(
                            e,
                            "agent metric",
                            format!("agent {} step {}", row.agent_index, row.step),
                            Some(("agent", row.agent_index.to_string())),
                        )
                    })?;
                Ok(())
            }

            fn insert_memory(&mut self, row: &AgentMemory) -> Result<()> {
                diesel::insert_into(agent_memories::table)
                    .values(row.clone())
                    .execute(self)
                    .map_err(|e| {
                        Error::from_write(
                            e,
                            "agent memory",
                            format!("agent {} step {}", row.agent_index, row.step),
                            Some(("agent", row.agent_index.to_string())),
                        )
                    })?;
                Ok(())
            }

            fn agent_states(
                &mut self,
                sim_key: i32,
                agent: i32,
                lo: i64,
                hi: i64,
            ) -> Result<Vec<AgentState>> {
                Ok(agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::agent_index.eq(agent))
                    .filter(agent_states::step.between(lo, hi))
                    .select(AgentState::as_select())
                    .order(agent_states::step)
                    .load(self)?)
            }

            fn agent_states_page(
                &mut self,
                sim_key: i32,
                agent: i32,
                after: i64,
                limit: i64,
            ) -> Result<Vec<AgentState>> {
                Ok(agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::agent_index.eq(agent))
                    .filter(agent_states::step.gt(after))
                    .select(AgentState::as_select())
                    .order(agent_states::step)
                    .limit(limit)
                    .load(self)?)
            }

            fn states_at_step(&mut self, sim_key: i32, step: i64) -> Result<Vec<AgentState>> {
                Ok(agent_states::table
                    .filter(agent_states::sim_key.eq(sim_key))
                    .filter(agent_states::step.eq(step))
                    .select(AgentState::as_select())
                    .order(agent_states::agent_index)
                    .load(self)?)
            }

            fn steps(&mut self, sim_key: i32, lo: i64, hi: i64) -> Result<Vec<SimulationStep>> {
                Ok(simulation_steps::table
                    .filter(simulation_steps::sim_key.eq(sim_key))
                    .filter(simulation_steps::step.between(lo, hi))
                    .select(SimulationStep::as_select())
                    .order(simulation_steps::step)
                    .load(self)?)
            }

            fn latest_memory(
                &mut self,
                sim_key: i32,
                agent: i32,
                at: i64,
            ) -> Result<Option<AgentMemory>> {
                Ok(agent_memories::table
                    .filter(agent_memories::sim_key.eq(sim_key))
                    .filter(agent_memories::agent_index.eq(agent))
                    .filter(agent_memories::step.le(at))
                    .select(AgentMemory::as_select())
                    .order(agent_memories::step.desc())
                    .first(self)
                    .optional()?)
            }

            fn memories(&mut self, sim_key: i32, agent: i32) -> Result<Vec<AgentMemory>> {
                Ok(agent_memories::table
                    .filter(agent_memories::sim_key.eq(sim_key))
                    .filter(agent_memories::agent_index.eq(agent))
                    .select(AgentMemory::as_select())
                    .order(agent_memories::step)
                    .load(self)?)
            }

            fn stale_running(&mut self, cutoff: DateTime<Utc>) -> Result<Vec<Simulation>> {
                let cutoff = TimeParam(cutoff);
                Ok(simulations::table
                    .filter(simulations::status.eq(SimulationStatus::Running))
                    .filter(
                        simulations::heartbeat_at.lt(cutoff).or(simulations::heartbeat_at
                            .is_null()
                            .and(simulations::started_at.lt(cutoff))),
                    )
                    .select(Simulation::as_select())
                    .order(simulations::sim_key)
                    .load(self)?)
            }

            fn last_complete_step(&mut self, sim_key: i32, agents: i64) -> Result<Option<i64>> {
                if agents == 0 {
                    return Ok(None);
                }
                let has_step_rows = simulation_steps::table
                    .filter(simulation_steps::sim_key.eq(sim_key))
                    .select(simulation_steps::step)
                    .first::<i64>(self)
                    .optional()?
                    .is_some();
                // Walk down from the highest step: after a crash only the
                // last one or two steps can be incomplete.
                let mut below = i64::MAX;
                loop {
                    let candidate: Option<i64> = agent_states::table
                        .filter(agent_states::sim_key.eq(sim_key))
                        .filter(agent_states::step.le(below))
                        .select(diesel::dsl::max(agent_states::step))
                        .first(self)?;
                    let Some(step) = candidate else { return Ok(None) };
                    let present: i64 = agent_states::table
                        .filter(agent_states::sim_key.eq(sim_key))
                        .filter(agent_states::step.eq(step))
                        .count()
                        .get_result(self)?;
                    let step_row = !has_step_rows
                        || simulation_steps::table
                            .find((sim_key, step))
                            .select(simulation_steps::step)
                            .first::<i64>(self)
                            .optional()?
                            .is_some();
                    if present >= agents && step_row {
                        return Ok(Some(step));
                    }
                    if step == 0 {
                        return Ok(None);
                    }
                    below = step - 1;
                }
            }

            fn truncate_after(&mut self, sim_key: i32, step: i64) -> Result<usize> {
                macro_rules! delete_after {
                    ($table:ident) => {
                        diesel::delete(
                            $table::table
                                .filter($table::sim_key.eq(sim_key))
                                .filter($table::step.gt(step)),
                        )
                        .execute(self)?
                    };
                }
                Ok(delete_after!(agent_states)
                    + delete_after!(simulation_steps)
                    + delete_after!(step_metrics)
                    + delete_after!(agent_metrics)
                    + delete_after!(agent_memories))
            }

            fn insert_event(&mut self, event: &NewEvent) -> Result<()> {
                diesel::insert_into(events::table).values(event.clone()).execute(self)?;
                Ok(())
            }

            fn insert_full_simulation(&mut self, row: FullSimulation, tags: &[String]) -> Result<i32> {
                let id = row.id.clone();
                diesel::insert_into(simulations::table)
                    .values(row)
                    .execute(self)
                    .map_err(|e| Error::from_write(e, "simulation", &id, None))?;
                let key = self.find_simulation(&id)?.sim_key;
                for tag in tags {
                    diesel::insert_into(simulation_tags::table)
                        .values((simulation_tags::sim_key.eq(key), simulation_tags::tag.eq(tag)))
                        .execute(self)?;
                }
                Ok(key)
            }

            fn insert_agent(&mut self, row: NewAgent) -> Result<()> {
                let id = row.agent_index;
                diesel::insert_into(agents::table)
                    .values(row)
                    .execute(self)
                    .map_err(|e| Error::from_write(e, "agent", id, None))?;
                Ok(())
            }

            fn named_step_metrics(&mut self, sim_key: i32) -> Result<Vec<(String, i64, f64)>> {
                Ok(step_metrics::table
                    .inner_join(metric_names::table)
                    .filter(step_metrics::sim_key.eq(sim_key))
                    .select((metric_names::name, step_metrics::step, step_metrics::value))
                    .order((step_metrics::step, metric_names::name))
                    .load(self)?)
            }

            fn named_agent_metrics(&mut self, sim_key: i32, agent: i32) -> Result<Vec<(String, i64, f64)>> {
                Ok(agent_metrics::table
                    .inner_join(metric_names::table)
                    .filter(agent_metrics::sim_key.eq(sim_key))
                    .filter(agent_metrics::agent_index.eq(agent))
                    .select((metric_names::name, agent_metrics::step, agent_metrics::value))
                    .order((agent_metrics::step, metric_names::name))
                    .load(self)?)
            }

            fn touch(&mut self, sim_key: i32) -> Result<()> {
                diesel::update(
                    simulations::table
                        .find(sim_key)
                        .filter(simulations::status.eq(SimulationStatus::Running)),
                )
                .set(simulations::heartbeat_at.eq(TimeParam(Utc::now())))
                .execute(self)?;
                Ok(())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_store!(diesel::sqlite::SqliteConnection, immediate_transaction);
#[cfg(feature = "postgres")]
impl_store!(diesel::pg::PgConnection, transaction);

/// Keeps `AgentIndex` in scope for the macro bodies above.
#[allow(dead_code)]
type _AgentIndex = AgentIndex;
