//! The JSON API behind every page (documented in the README, section
//! "Dashboard"). Every endpoint is a GET; every answer is one JSON document.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{blocking, AppState, Failure};
use crate::analytics::{
    AgentSummary, Comparison, Cursor, GroupBy, LeaderboardRow, ParameterQuery, Progress,
    RecordedFields, StepAggregate, Summary,
};
use crate::error::{Error, Result};
use crate::ids::{ExperimentId, SimulationId};
use crate::models::{Event, Experiment, Simulation, SimulationStatus};
use crate::service::SimulationService;
use crate::store::SimulationFilter;

type Answer<T> = std::result::Result<Json<T>, Failure>;

/// Filters of the simulations list: `?status=running&tag=t&experiment=ID
/// &param=opt.lr=0.01&limit=100` (`param` may repeat; its value is JSON,
/// else a string).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ListQuery {
    pub(crate) status: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) experiment: Option<String>,
    pub(crate) param: Option<String>,
    pub(crate) limit: Option<i64>,
}

/// One simulation in the list, with what a live view needs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ListedSimulation {
    pub(crate) simulation: Simulation,
    pub(crate) tags: Vec<String>,
    pub(crate) progress: Progress,
}

fn not_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The simulations a list query selects, newest first (at most 200 unless
/// `limit` says otherwise), with their tags and progress.
pub(crate) fn list(svc: &SimulationService, q: &ListQuery) -> Result<Vec<ListedSimulation>> {
    let sims = select(svc, q)?;
    // Tags and progress in a fixed number of statements, whatever the
    // length of the list (tags in chunks of 10,000 simulations).
    let tags = svc.tags_of(&sims)?;
    let progress = svc.analytics().progress_of(&sims)?;
    Ok(sims
        .into_iter()
        .zip(tags)
        .zip(progress)
        .map(|((simulation, tags), progress)| ListedSimulation {
            simulation,
            tags,
            progress,
        })
        .collect())
}

/// The simulations a list query selects, newest first, alone.
pub(crate) fn select(svc: &SimulationService, q: &ListQuery) -> Result<Vec<Simulation>> {
    let mut filter = SimulationFilter::new().limit(q.limit.unwrap_or(200));
    if let Some(status) = not_empty(&q.status) {
        filter.status = Some(status.parse::<SimulationStatus>()?);
    }
    if let Some(tag) = not_empty(&q.tag) {
        filter.tag = Some(tag.to_string());
    }
    if let Some(exp) = not_empty(&q.experiment) {
        filter.experiment = Some(ExperimentId::new(exp)?);
    }
    let mut query = ParameterQuery::new(filter);
    if let Some(param) = not_empty(&q.param) {
        let (path, value) = param.split_once('=').ok_or_else(|| Error::InvalidInput {
            field: "param",
            reason: format!("`{param}` is not PATH=VALUE"),
        })?;
        let value =
            serde_json::from_str::<Value>(value).unwrap_or_else(|_| Value::String(value.into()));
        query = query.equals(path.trim(), value);
    }
    svc.analytics().find_simulations(&query)
}

pub(crate) async fn experiments(State(app): State<AppState>) -> Answer<Vec<Experiment>> {
    Ok(Json(blocking(move || app.svc.list_experiments()).await?))
}

/// Each read replica's lag behind the primary (empty without replicas).
pub(crate) async fn replicas(State(app): State<AppState>) -> Answer<Vec<crate::ReplicaStatus>> {
    Ok(Json(
        blocking(move || Ok(app.svc.database().replica_status())).await?,
    ))
}

pub(crate) async fn simulations(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Answer<Vec<ListedSimulation>> {
    Ok(Json(blocking(move || list(&app.svc, &q)).await?))
}

/// Everything the simulation page shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SimulationDetail {
    pub(crate) summary: Summary,
    pub(crate) tags: Vec<String>,
    pub(crate) fields: RecordedFields,
    pub(crate) progress: Progress,
}

pub(crate) fn detail(svc: &SimulationService, id: &SimulationId) -> Result<SimulationDetail> {
    let analytics = svc.analytics();
    let summary = analytics.summary(id)?;
    // Counts without the run's step rows (the progress route streams those).
    let progress = analytics
        .progress_of(std::slice::from_ref(&summary.simulation))?
        .pop()
        .ok_or_else(|| Error::not_found("simulation", id))?;
    Ok(SimulationDetail {
        tags: svc.simulation_tags(id)?,
        fields: analytics.recorded_fields(id)?,
        summary,
        progress,
    })
}

pub(crate) async fn simulation(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Answer<SimulationDetail> {
    Ok(Json(
        blocking(move || detail(&app.svc, &SimulationId::new(&id)?)).await?,
    ))
}

pub(crate) async fn agents(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Answer<Vec<AgentSummary>> {
    Ok(Json(
        blocking(move || app.svc.analytics().agent_totals(&SimulationId::new(&id)?)).await?,
    ))
}

/// A progress cursor as query parameters (`?step=&rows=&at=`), as the
/// previous answer's `cursor` gave them; none for everything.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CursorQuery {
    step: Option<i64>,
    rows: Option<i64>,
    at: Option<chrono::DateTime<chrono::Utc>>,
}

pub(crate) async fn progress(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CursorQuery>,
) -> Answer<Progress> {
    let cursor = match (q.step, q.rows, q.at) {
        (Some(step), Some(rows), Some(at)) => Some(Cursor { step, rows, at }),
        _ => None,
    };
    Ok(Json(
        blocking(move || {
            app.svc
                .analytics()
                .progress(&SimulationId::new(&id)?, cursor)
        })
        .await?,
    ))
}

/// `?field=reward&buckets=200&from=&to=`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AggregatesQuery {
    pub(crate) field: Option<String>,
    pub(crate) buckets: Option<usize>,
    pub(crate) from: Option<i64>,
    pub(crate) to: Option<i64>,
}

/// A field over steps: across all agents, and per agent kind (absent for a
/// simulation-level metric).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FieldSeries {
    pub(crate) field: String,
    pub(crate) all: Vec<StepAggregate>,
    pub(crate) by_kind: BTreeMap<String, Vec<StepAggregate>>,
    /// Whether agents are behind the values (a reward, a state field, an
    /// agent metric) or the simulation recorded them (a simulation-level
    /// metric: one value per step).
    pub(crate) per_agent: bool,
}

pub(crate) fn field_series(
    svc: &SimulationService,
    id: &SimulationId,
    field: &str,
    buckets: usize,
    steps: std::ops::RangeInclusive<i64>,
) -> Result<FieldSeries> {
    let analytics = svc.analytics();
    let all = analytics.step_aggregates_within(id, field, steps.clone(), buckets)?;
    let (by_kind, per_agent) =
        match analytics.step_aggregates_by_kind_within(id, field, steps, buckets) {
            Ok(by_kind) => (by_kind, true),
            // A simulation-level metric belongs to no kind.
            Err(Error::InvalidInput { .. }) => (BTreeMap::new(), false),
            Err(e) => return Err(e),
        };
    Ok(FieldSeries {
        field: field.to_string(),
        all,
        by_kind,
        per_agent,
    })
}

pub(crate) async fn aggregates(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AggregatesQuery>,
) -> Answer<FieldSeries> {
    let field = q.field.unwrap_or_else(|| "reward".into());
    let buckets = q.buckets.unwrap_or(200).clamp(1, 2000);
    let steps = q.from.unwrap_or(i64::MIN)..=q.to.unwrap_or(i64::MAX);
    Ok(Json(
        blocking(move || field_series(&app.svc, &SimulationId::new(&id)?, &field, buckets, steps))
            .await?,
    ))
}

pub(crate) async fn events(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Answer<Vec<Event>> {
    Ok(Json(
        blocking(move || app.svc.events(&SimulationId::new(&id)?)).await?,
    ))
}

/// The fields an experiment's comparison shows: the reward and every metric
/// any of its simulations recorded.
pub(crate) fn compare_fields(svc: &SimulationService, exp: &ExperimentId) -> Result<Vec<String>> {
    let mut fields = std::collections::BTreeSet::new();
    let analytics = svc.analytics();
    for sim in svc.list_simulations(&SimulationFilter::new().experiment(exp))? {
        let recorded = analytics.recorded_fields(&sim.id)?;
        fields.extend(recorded.agent_metrics);
        fields.extend(recorded.simulation_metrics);
    }
    let mut out = vec!["reward".to_string()];
    out.extend(fields);
    Ok(out)
}

pub(crate) fn comparison(svc: &SimulationService, exp: &ExperimentId) -> Result<Comparison> {
    let fields = compare_fields(svc, exp)?;
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    svc.analytics().compare(exp, &names)
}

pub(crate) async fn compare(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Answer<Comparison> {
    Ok(Json(
        blocking(move || comparison(&app.svc, &ExperimentId::new(&id)?)).await?,
    ))
}

/// `?by=kind|policy|agent` (default kind).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct LeaderboardQuery {
    pub(crate) by: Option<String>,
}

pub(crate) fn group_by(by: Option<&str>) -> Result<GroupBy> {
    match by.unwrap_or("kind") {
        "kind" => Ok(GroupBy::Kind),
        "policy" => Ok(GroupBy::Policy),
        "agent" => Ok(GroupBy::Agent),
        other => Err(Error::InvalidInput {
            field: "by",
            reason: format!("`{other}` is not kind, policy or agent"),
        }),
    }
}

pub(crate) async fn leaderboard(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LeaderboardQuery>,
) -> Answer<Vec<LeaderboardRow>> {
    Ok(Json(
        blocking(move || {
            let by = group_by(q.by.as_deref())?;
            app.svc
                .analytics()
                .leaderboard(&ExperimentId::new(&id)?, by)
        })
        .await?,
    ))
}
