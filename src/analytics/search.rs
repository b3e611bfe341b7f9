//! Finding simulations by their parameters: every condition is evaluated in
//! SQL on the stored JSON, with the path and the value bound as parameters,
//! then the results are ordered, offset and limited.

use diesel::prelude::*;
use serde_json::Value;

use super::Analytics;
use crate::error::{Error, Result};
use crate::models::Simulation;
use crate::schema::simulations;
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
    /// Skips the first `offset` results.
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// The keys of a parameter path.
fn keys(path: &str) -> Result<Vec<String>> {
    crate::ids::validate_text("parameter path", path, 256)?;
    let keys: Vec<String> = path.split('.').map(str::to_string).collect();
    if keys.iter().any(|k| k.is_empty() || k.contains('"')) {
        return Err(Error::invalid(
            "parameter path",
            format!("`{path}` is not a dot-separated path of non-empty keys"),
        ));
    }
    if keys.iter().filter(|k| is_index(k)).count() > 4 {
        return Err(Error::invalid("parameter path", "more than 4 numeric keys"));
    }
    Ok(keys)
}

fn is_index(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_digit())
}

/// A bound value of a search statement.
enum Bind {
    Text(String),
    Float(f64),
    BigInt(i64),
    #[cfg(feature = "postgres")]
    Keys(Vec<String>),
}

/// A statement under construction: its text and its binds, in order.
/// Placeholders are numbered (`$n` on PostgreSQL, `?n` on SQLite), so a
/// fragment that holds one may appear in the text more than once.
struct Statement {
    sql: String,
    binds: Vec<Bind>,
    /// True on PostgreSQL.
    numbered: bool,
}

impl Statement {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        let sigil = if self.numbered { '$' } else { '?' };
        format!("{sigil}{}", self.binds.len())
    }
}

/// How each backend reads a JSON value at a path.
trait JsonDialect {
    /// SQL that is true if the value at `keys` satisfies `test`, given as
    /// SQL on `{v}` (the value as SQL) and `{t}` (its JSON type name).
    fn at_path(
        st: &mut Statement,
        keys: &[String],
        test: &dyn Fn(&mut Statement, &str, &str) -> String,
    ) -> String;
    /// The JSON type names of numbers, strings, true, false and null.
    const NUMBER: &'static str;
    const TEXT: &'static str;
    const TRUE: &'static str;
    const FALSE: &'static str;
    const NULL: &'static str;
    /// SQL that is true if the value at `keys` is the JSON `value` (an
    /// array or object).
    fn equals_document(st: &mut Statement, keys: &[String], value: &Value) -> String;
    /// The value at `keys`, for ORDER BY.
    fn order_value(st: &mut Statement, keys: &[String]) -> String;
}

#[cfg(feature = "sqlite")]
struct SqliteJson;

/// Every SQLite JSON path a key list can mean: a numeric key indexes an
/// array or names an object key, as PostgreSQL's `#>` does.
#[cfg(feature = "sqlite")]
fn sqlite_paths(keys: &[String]) -> Vec<String> {
    let mut paths = vec![String::from("$")];
    for key in keys {
        let quoted = format!(".\"{key}\"");
        paths = if is_index(key) {
            paths
                .into_iter()
                .flat_map(|p| [format!("{p}[{key}]"), format!("{p}{quoted}")])
                .collect()
        } else {
            paths.into_iter().map(|p| format!("{p}{quoted}")).collect()
        };
    }
    paths
}

#[cfg(feature = "sqlite")]
impl JsonDialect for SqliteJson {
    const NUMBER: &'static str = "'integer', 'real'";
    const TEXT: &'static str = "'text'";
    const TRUE: &'static str = "'true'";
    const FALSE: &'static str = "'false'";
    const NULL: &'static str = "'null'";

    fn at_path(
        st: &mut Statement,
        keys: &[String],
        test: &dyn Fn(&mut Statement, &str, &str) -> String,
    ) -> String {
        let alternatives: Vec<String> = sqlite_paths(keys)
            .into_iter()
            .map(|path| {
                let v = format!(
                    "json_extract(parameters, {})",
                    st.bind(Bind::Text(path.clone()))
                );
                let t = format!("json_type(parameters, {})", st.bind(Bind::Text(path)));
                format!("({})", test(st, &v, &t))
            })
            .collect();
        format!("({})", alternatives.join(" OR "))
    }

    fn equals_document(st: &mut Statement, keys: &[String], value: &Value) -> String {
        let text = value.to_string();
        Self::at_path(st, keys, &|st, v, _| {
            format!("{v} = json({})", st.bind(Bind::Text(text.clone())))
        })
    }

    fn order_value(st: &mut Statement, keys: &[String]) -> String {
        let values: Vec<String> = sqlite_paths(keys)
            .into_iter()
            .map(|p| format!("json_extract(parameters, {})", st.bind(Bind::Text(p))))
            .collect();
        format!("COALESCE({}, NULL)", values.join(", "))
    }
}

#[cfg(feature = "postgres")]
struct PgJson;

#[cfg(feature = "postgres")]
impl JsonDialect for PgJson {
    const NUMBER: &'static str = "'number'";
    const TEXT: &'static str = "'string'";
    const TRUE: &'static str = "'boolean'";
    const FALSE: &'static str = "'boolean'";
    const NULL: &'static str = "'null'";

    fn at_path(
        st: &mut Statement,
        keys: &[String],
        test: &dyn Fn(&mut Statement, &str, &str) -> String,
    ) -> String {
        let path = st.bind(Bind::Keys(keys.to_vec()));
        let v = format!("(parameters #>> {path}::text[])");
        let t = format!("jsonb_typeof(parameters #> {path}::text[])");
        format!("({})", test(st, &v, &t))
    }

    fn equals_document(st: &mut Statement, keys: &[String], value: &Value) -> String {
        let path = st.bind(Bind::Keys(keys.to_vec()));
        let doc = st.bind(Bind::Text(value.to_string()));
        format!("(parameters #> {path}::text[] = {doc}::jsonb)")
    }

    fn order_value(st: &mut Statement, keys: &[String]) -> String {
        let path = st.bind(Bind::Keys(keys.to_vec()));
        format!("(parameters #> {path}::text[])")
    }
}

/// The value as a number, NULL unless it is one (PostgreSQL may evaluate a
/// cast before the type test beside it, so the test guards the cast).
fn numeric<D: JsonDialect>(v: &str, t: &str, numbered: bool) -> String {
    if numbered {
        format!("(CASE WHEN {t} IN ({}) THEN {v}::float8 END)", D::NUMBER)
    } else {
        format!("(CASE WHEN {t} IN ({}) THEN {v} END)", D::NUMBER)
    }
}

/// The statement selecting the keys of the matching simulations.
fn statement<D: JsonDialect>(
    query: &ParameterQuery,
    numbered: bool,
    keys_in: Option<(i64, i64)>,
) -> Result<Statement> {
    let mut st = Statement {
        sql: String::new(),
        binds: Vec::new(),
        numbered,
    };
    let mut conditions = vec!["1 = 1".to_string()];
    if let Some((above, upto)) = keys_in {
        let a = st.bind(Bind::BigInt(above));
        let u = st.bind(Bind::BigInt(upto));
        conditions.push(format!("sim_key > {a} AND sim_key <= {u}"));
    }
    let filter = &query.filter;
    if let Some(exp) = &filter.experiment {
        let p = st.bind(Bind::Text(exp.to_string()));
        conditions.push(format!("experiment_id = {p}"));
    }
    if let Some(status) = filter.status {
        let p = st.bind(Bind::Text(status.to_string()));
        conditions.push(format!("status = {p}"));
    }
    if let Some(tag) = &filter.tag {
        let p = st.bind(Bind::Text(tag.clone()));
        conditions.push(format!(
            "sim_key IN (SELECT sim_key FROM simulation_tags WHERE tag = {p})"
        ));
    }
    for (path, want) in &query.equals {
        let keys = keys(path)?;
        let condition = match want {
            Value::Null => D::at_path(&mut st, &keys, &|_, _, t| format!("{t} = {}", D::NULL)),
            Value::Bool(b) => {
                let (kind, text) = if *b {
                    (D::TRUE, "true")
                } else {
                    (D::FALSE, "false")
                };
                D::at_path(&mut st, &keys, &|st, v, t| {
                    if numbered {
                        format!(
                            "{t} = {kind} AND {v} = {}",
                            st.bind(Bind::Text(text.into()))
                        )
                    } else {
                        format!("{t} = {kind}")
                    }
                })
            }
            Value::Number(n) => {
                let n = n.as_f64().unwrap_or(f64::NAN);
                D::at_path(&mut st, &keys, &|st, v, t| {
                    format!(
                        "{} = {}",
                        numeric::<D>(v, t, numbered),
                        st.bind(Bind::Float(n))
                    )
                })
            }
            Value::String(s) => D::at_path(&mut st, &keys, &|st, v, t| {
                format!(
                    "{t} = {} AND {v} = {}",
                    D::TEXT,
                    st.bind(Bind::Text(s.clone()))
                )
            }),
            doc => D::equals_document(&mut st, &keys, doc),
        };
        conditions.push(condition);
    }
    for (path, lo, hi) in &query.ranges {
        let keys = keys(path)?;
        let condition = D::at_path(&mut st, &keys, &|st, v, t| {
            let cast = numeric::<D>(v, t, numbered);
            let mut parts = vec![format!("{t} IN ({})", D::NUMBER)];
            if let Some(lo) = lo {
                parts.push(format!("{cast} >= {}", st.bind(Bind::Float(*lo))));
            }
            if let Some(hi) = hi {
                parts.push(format!("{cast} <= {}", st.bind(Bind::Float(*hi))));
            }
            parts.join(" AND ")
        });
        conditions.push(condition);
    }
    let order = match &query.order_by {
        Some((path, descending)) => {
            let value = D::order_value(&mut st, &keys(path)?);
            let dir = if *descending { "DESC" } else { "ASC" };
            format!("({value}) IS NULL, {value} {dir}, sim_key DESC")
        }
        None => "sim_key DESC".into(),
    };
    st.sql = format!(
        "SELECT sim_key FROM simulations WHERE {} ORDER BY {order}",
        conditions.join(" AND ")
    );
    match (filter.limit, query.offset) {
        (Some(limit), offset) => {
            let l = st.bind(Bind::BigInt(limit));
            let o = st.bind(Bind::BigInt(offset.unwrap_or(0)));
            st.sql.push_str(&format!(" LIMIT {l} OFFSET {o}"));
        }
        (None, Some(offset)) => {
            let o = st.bind(Bind::BigInt(offset));
            let all = if numbered { "ALL" } else { "-1" };
            st.sql.push_str(&format!(" LIMIT {all} OFFSET {o}"));
        }
        (None, None) => {}
    }
    Ok(st)
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

#[cfg(feature = "sqlite")]
impl SearchStore for diesel::sqlite::SqliteConnection {
    fn search_keys(
        &mut self,
        query: &ParameterQuery,
        keys_in: Option<(i64, i64)>,
    ) -> Result<Vec<i32>> {
        let st = statement::<SqliteJson>(query, false, keys_in)?;
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
        let st = statement::<PgJson>(query, true, keys_in)?;
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
            let keys = match (&query.order_by, query.filter.limit) {
                // Newest first with a limit: walk the keys down in growing
                // windows and stop once enough matched, instead of leaving
                // the plan to a planner that cannot see how selective JSON
                // conditions are.
                (None, Some(limit)) => {
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn numeric_keys_mean_index_or_key() {
        assert_eq!(
            sqlite_paths(&["a".into(), "0".into()]),
            vec!["$.\"a\"[0]", "$.\"a\".\"0\""]
        );
        assert!(keys("a..b").is_err());
        assert!(keys("").is_err());
    }
}
