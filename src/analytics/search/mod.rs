//! Finding simulations by their parameters: every condition is evaluated in
//! SQL on the stored JSON, with the path and the value bound as parameters,
//! then the results are ordered, offset and limited.

use diesel::prelude::*;
use serde_json::Value;

mod statement;

#[cfg(feature = "postgres")]
use statement::PgJson;
#[cfg(feature = "sqlite")]
use statement::SqliteJson;
use statement::{statement, Bind, FinalOf};

use super::Analytics;
use crate::error::{Error, Result};
use crate::models::Simulation;
use crate::schema::simulations;
use crate::store::prelude::MetricStore;
use crate::store::SimulationFilter;
use crate::with_connection;

/// Parameter conditions for [`Analytics::find_simulations`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParameterQuery {
    /// Restricts by experiment, status, tag; its `limit` caps the results,
    /// applied after every condition.
    pub filter: SimulationFilter,
    /// `path == value` conditions; a path is dot-separated (`optimizer.lr`,
    /// `layers.0`). Numbers compare by value (`1` equals `1.0`).
    pub equals: Vec<(String, Value)>,
    /// `lo <= path <= hi` numeric conditions (either bound optional); a
    /// value that is not a number never matches.
    pub ranges: Vec<(String, Option<f64>, Option<f64>)>,
    /// Order by this parameter (`true`: descending) instead of newest
    /// first; simulations without it come last.
    pub order_by: Option<(String, bool)>,
    /// Order by a field's final value (as [`Analytics::compare`] computes
    /// it: the mean across agents at the last step, or a simulation-level
    /// metric's last value; `true`: descending), before `order_by`.
    /// Simulations without it come last.
    pub order_by_final: Option<(String, bool)>,
    /// Results to skip, for pages.
    pub offset: Option<i64>,
}

impl ParameterQuery {
    /// Every simulation that `filter` admits.
    pub fn new(filter: SimulationFilter) -> Self {
        ParameterQuery {
            filter,
            ..Default::default()
        }
    }
    /// Adds `path == value`.
    pub fn equals(mut self, path: &str, value: Value) -> Self {
        self.equals.push((path.to_string(), value));
        self
    }
    /// Adds `lo <= path <= hi` (numbers only).
    pub fn range(mut self, path: &str, lo: Option<f64>, hi: Option<f64>) -> Self {
        self.ranges.push((path.to_string(), lo, hi));
        self
    }
    /// Orders by a parameter, ascending or descending.
    pub fn order_by(mut self, path: &str, descending: bool) -> Self {
        self.order_by = Some((path.to_string(), descending));
        self
    }
    /// Orders by the final value of `field` (`reward` or a metric name).
    pub fn order_by_final(mut self, field: &str, descending: bool) -> Self {
        self.order_by_final = Some((field.to_string(), descending));
        self
    }
    /// Skips the first `offset` results.
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    sim_key: i32,
}

/// Runs a search statement on one backend.
trait SearchStore {
    /// Keys of the matches, within `above < sim_key <= upto` if given.
    fn search_keys(
        &mut self,
        query: &ParameterQuery,
        keys_in: Option<(i64, i64)>,
    ) -> Result<Vec<i32>>;
}

macro_rules! run_statement {
    ($conn:expr, $st:expr, $backend:ty) => {{
        let mut q = diesel::sql_query($st.sql.clone()).into_boxed::<$backend>();
        for b in $st.binds {
            q = match b {
                Bind::Text(v) => q.bind::<diesel::sql_types::Text, _>(v),
                Bind::Float(v) => q.bind::<diesel::sql_types::Double, _>(v),
                Bind::BigInt(v) => q.bind::<diesel::sql_types::BigInt, _>(v),
                #[cfg(feature = "postgres")]
                Bind::Keys(v) => bind_keys(q, v)?,
            };
        }
        let keys: Vec<Key> = q.load($conn)?;
        Ok(keys.into_iter().map(|k| k.sim_key).collect())
    }};
}

/// Text-array binds exist on PostgreSQL only.
#[cfg(feature = "postgres")]
trait BindKeys: Sized {
    fn bind_keys(self, keys: Vec<String>) -> Result<Self>;
}

#[cfg(feature = "postgres")]
fn bind_keys<Q: BindKeys>(q: Q, keys: Vec<String>) -> Result<Q> {
    q.bind_keys(keys)
}

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl BindKeys
    for diesel::query_builder::BoxedSqlQuery<
        '_,
        diesel::sqlite::Sqlite,
        diesel::query_builder::SqlQuery,
    >
{
    fn bind_keys(self, _keys: Vec<String>) -> Result<Self> {
        Err(Error::invalid(
            "parameter path",
            "array binds are PostgreSQL's",
        ))
    }
}

#[cfg(feature = "postgres")]
impl<'f> BindKeys
    for diesel::query_builder::BoxedSqlQuery<'f, diesel::pg::Pg, diesel::query_builder::SqlQuery>
{
    fn bind_keys(self, keys: Vec<String>) -> Result<Self> {
        Ok(self.bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys))
    }
}

/// Resolves the field of a final-value order.
fn final_of<C: MetricStore>(c: &mut C, query: &ParameterQuery) -> Result<Option<FinalOf>> {
    let Some((field, _)) = &query.order_by_final else {
        return Ok(None);
    };
    if field == "reward" {
        return Ok(Some(FinalOf::Reward));
    }
    match c.metric_lookup(field)? {
        Some(id) => Ok(Some(FinalOf::Metric(id))),
        None => Err(Error::not_found(
            "field",
            format!("{field} (no simulation recorded it)"),
        )),
    }
}

#[cfg(feature = "sqlite")]
impl SearchStore for diesel::sqlite::SqliteConnection {
    fn search_keys(
        &mut self,
        query: &ParameterQuery,
        keys_in: Option<(i64, i64)>,
    ) -> Result<Vec<i32>> {
        let final_of = final_of(self, query)?;
        let st = statement::<SqliteJson>(query, false, keys_in, final_of)?;
        run_statement!(self, st, diesel::sqlite::Sqlite)
    }
}

#[cfg(feature = "postgres")]
impl SearchStore for diesel::pg::PgConnection {
    fn search_keys(
        &mut self,
        query: &ParameterQuery,
        keys_in: Option<(i64, i64)>,
    ) -> Result<Vec<i32>> {
        let final_of = final_of(self, query)?;
        let st = statement::<PgJson>(query, true, keys_in, final_of)?;
        run_statement!(self, st, diesel::pg::Pg)
    }
}

impl Analytics {
    /// Simulations whose parameters match every condition: evaluated in SQL
    /// with bound paths and values (nothing a caller passes is spliced into
    /// SQL text), then ordered (newest first, or by `order_by`), offset and
    /// limited — the limit applies to the matches, not before them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty or malformed path or a
    /// negative limit.
    pub fn find_simulations(&self, query: &ParameterQuery) -> Result<Vec<Simulation>> {
        query.filter.check()?;
        if query.offset.is_some_and(|o| o < 0) {
            return Err(Error::invalid("offset", "is negative"));
        }
        with_connection!(self.db.connection()?, |c| {
            let newest_first = query.order_by.is_none() && query.order_by_final.is_none();
            let keys = match (newest_first, query.filter.limit) {
                // Newest first with a limit: walk the keys down in growing
                // windows and stop once enough matched, instead of leaving
                // the plan to a planner that cannot see how selective JSON
                // conditions are.
                (true, Some(limit)) => {
                    let offset = query.offset.unwrap_or(0);
                    let want = limit.saturating_add(offset);
                    let top: Option<i32> = simulations::table
                        .select(diesel::dsl::max(simulations::sim_key))
                        .first(c)?;
                    let mut upto = i64::from(top.unwrap_or(0));
                    let mut width: i64 = 10_000;
                    let mut keys: Vec<i32> = Vec::new();
                    while upto > 0 && (keys.len() as i64) < want {
                        let above = upto.saturating_sub(width).max(0);
                        let mut window = query.clone();
                        window.filter.limit = Some(want - keys.len() as i64);
                        window.offset = None;
                        keys.extend(c.search_keys(&window, Some((above, upto)))?);
                        upto = above;
                        width = width.saturating_mul(4);
                    }
                    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
                    let take = usize::try_from(limit).unwrap_or(usize::MAX);
                    keys.into_iter().skip(skip).take(take).collect()
                }
                _ => c.search_keys(query, None)?,
            };
            let mut found: std::collections::HashMap<i32, Simulation> =
                std::collections::HashMap::new();
            for chunk in keys.chunks(1000) {
                for sim in simulations::table
                    .filter(simulations::sim_key.eq_any(chunk))
                    .select(Simulation::as_select())
                    .load::<Simulation>(c)?
                {
                    found.insert(sim.sim_key, sim);
                }
            }
            Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
        })
    }
}
