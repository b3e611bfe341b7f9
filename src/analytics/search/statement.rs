//! The SQL of a parameter search: each backend's way of reading a JSON
//! value at a bound path, and the statement built from a query.

use serde_json::Value;

use super::ParameterQuery;
#[cfg(feature = "sqlite")]
use crate::analytics::json_path::sqlite_paths;
use crate::error::Result;

/// The keys of a parameter path (see `json_path::keys`).
pub(super) fn keys(path: &str) -> Result<Vec<String>> {
    crate::ids::validate_text("parameter path", path, 256)?;
    crate::analytics::json_path::keys("parameter path", path, path)
}

/// A bound value of a search statement.
pub(super) enum Bind {
    Text(String),
    Float(f64),
    BigInt(i64),
    #[cfg(feature = "postgres")]
    Keys(Vec<String>),
}

/// A statement under construction: its text and its binds, in order.
/// Placeholders are numbered (`$n` on PostgreSQL, `?n` on SQLite), so a
/// fragment that holds one may appear in the text more than once.
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) binds: Vec<Bind>,
    /// True on PostgreSQL.
    pub(super) numbered: bool,
}

impl Statement {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        let sigil = if self.numbered { '$' } else { '?' };
        format!("{sigil}{}", self.binds.len())
    }
}

/// How each backend reads a JSON value at a path.
pub(super) trait JsonDialect {
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
pub(super) struct SqliteJson;

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
pub(super) struct PgJson;

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
pub(super) fn numeric<D: JsonDialect>(v: &str, t: &str, numbered: bool) -> String {
    if numbered {
        format!("(CASE WHEN {t} IN ({}) THEN {v}::float8 END)", D::NUMBER)
    } else {
        format!("(CASE WHEN {t} IN ({}) THEN {v} END)", D::NUMBER)
    }
}

/// What a final-value order reads: the reward, or a metric by id.
#[derive(Debug, Clone, Copy)]
pub(super) enum FinalOf {
    Reward,
    Metric(i32),
}

/// The final value of a field for the simulation of the current row.
pub(super) fn final_value(st: &mut Statement, of: FinalOf) -> String {
    match of {
        // The reward's rollup at its last step holds that step's mean (the
        // rewards themselves are in compressed chunks SQL cannot read).
        FinalOf::Reward => "(SELECT r.total / r.n FROM simdb_step_rollups r \
             WHERE r.sim_key = simdb_simulations.sim_key AND r.field_id = 0 AND r.kind = '' \
             ORDER BY r.step DESC LIMIT 1)"
            .to_string(),
        FinalOf::Metric(id) => {
            let m = st.bind(Bind::BigInt(i64::from(id)));
            // An agent metric's mean at its last step is its rollup there.
            format!(
                "COALESCE((SELECT r.total / r.n FROM simdb_step_rollups r \
                 WHERE r.sim_key = simdb_simulations.sim_key AND r.field_id = {m} AND r.kind = '' \
                 ORDER BY r.step DESC LIMIT 1), \
                 (SELECT s.value FROM simdb_step_metrics s WHERE s.sim_key = simdb_simulations.sim_key \
                 AND s.metric_id = {m} ORDER BY s.step DESC LIMIT 1))"
            )
        }
    }
}

/// The statement selecting the keys of the matching simulations.
pub(super) fn statement<D: JsonDialect>(
    query: &ParameterQuery,
    numbered: bool,
    keys_in: Option<(i64, i64)>,
    final_of: Option<FinalOf>,
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
            "sim_key IN (SELECT sim_key FROM simdb_simulation_tags WHERE tag = {p})"
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
    let mut order = Vec::new();
    if let (Some(of), Some((_, descending))) = (final_of, &query.order_by_final) {
        let value = final_value(&mut st, of);
        let dir = if *descending { "DESC" } else { "ASC" };
        order.push(format!("({value}) IS NULL, {value} {dir}"));
    }
    if let Some((path, descending)) = &query.order_by {
        let value = D::order_value(&mut st, &keys(path)?);
        let dir = if *descending { "DESC" } else { "ASC" };
        order.push(format!("({value}) IS NULL, {value} {dir}"));
    }
    order.push("sim_key DESC".into());
    let order = order.join(", ");
    st.sql = format!(
        "SELECT sim_key FROM simdb_simulations WHERE {} ORDER BY {order}",
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
