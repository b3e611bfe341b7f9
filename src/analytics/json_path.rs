//! A dot-separated path into JSON (`state.inventory.ore`, a parameter's
//! `opt.lr`), read alike on both backends.
//!
//! PostgreSQL's `#>` decides per value: where the value is an array, a key
//! that reads as an integer is an index (negative ones count from the end);
//! where it is an object, every key is a field name. A SQLite JSON path
//! says which in the path itself, so a key that can be an index gives two
//! SQLite paths. At most one of them exists in any one document, and it
//! holds what PostgreSQL reads.

use crate::error::{Error, Result};

/// At most this many keys of a path may read as array indexes (each
/// doubles the SQLite paths).
const MAX_INDEX_KEYS: usize = 4;

/// The keys of dot-separated `path` (shown as `shown` in errors, blamed on
/// `field`): none empty, none holding `"` or NUL, at most
/// [`MAX_INDEX_KEYS`] that read as array indexes.
pub(crate) fn keys(field: &'static str, shown: &str, path: &str) -> Result<Vec<String>> {
    let keys: Vec<String> = path.split('.').map(str::to_string).collect();
    if keys.iter().any(|k| k.is_empty() || k.contains(['"', '\0'])) {
        return Err(Error::invalid(
            field,
            format!("`{shown}` is not a dot-separated path of non-empty keys"),
        ));
    }
    if keys.iter().filter(|k| array_index(k).is_some()).count() > MAX_INDEX_KEYS {
        return Err(Error::invalid(
            field,
            format!("`{shown}` has more than {MAX_INDEX_KEYS} numeric keys"),
        ));
    }
    Ok(keys)
}

/// The array index PostgreSQL reads `key` as, if any: as C's `strtol`
/// would, leading whitespace, a sign and decimal digits, within `i32`.
pub(crate) fn array_index(key: &str) -> Option<i32> {
    let trimmed = key.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    trimmed.parse().ok()
}

/// Every SQLite JSON path `keys` can mean (keys hold no `"`).
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_paths(keys: &[String]) -> Vec<String> {
    let mut paths = vec![String::from("$")];
    for key in keys {
        let field = format!(".\"{key}\"");
        paths = match array_index(key) {
            Some(i) => {
                let index = if i < 0 {
                    format!("[#{i}]")
                } else {
                    format!("[{i}]")
                };
                paths
                    .into_iter()
                    .flat_map(|p| [format!("{p}{index}"), format!("{p}{field}")])
                    .collect()
            }
            None => paths.into_iter().map(|p| format!("{p}{field}")).collect(),
        };
    }
    paths
}

/// SQLite: the number at `keys` in JSON column `column`, or NULL where
/// there is none (absent, or not a number), as SQL whose paths are the
/// numbered parameters `?first`, `?first+1`, ...; returns the SQL and the
/// paths to bind to them, in order.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_number(column: &str, keys: &[String], first: usize) -> (String, Vec<String>) {
    let paths = sqlite_paths(keys);
    let alternatives: Vec<String> = (first..first + paths.len())
        .map(|n| {
            format!(
                "CASE WHEN json_type({column}, ?{n}) IN ('integer', 'real') \
                 THEN json_extract({column}, ?{n}) END"
            )
        })
        .collect();
    let sql = match alternatives.as_slice() {
        [one] => one.clone(),
        _ => format!("COALESCE({})", alternatives.join(", ")),
    };
    (sql, paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_indexes_as_postgresql_reads_them() {
        for (key, index) in [
            ("0", Some(0)),
            ("01", Some(1)),
            ("+1", Some(1)),
            ("-1", Some(-1)),
            (" 2", Some(2)),
            ("2 ", None),
            ("x", None),
            ("-", None),
            ("1e3", None),
            ("99999999999", None),
        ] {
            assert_eq!(array_index(key), index, "{key:?}");
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn a_key_that_may_be_an_index_gives_both_paths() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(sqlite_paths(&keys(&["a", "b"])), ["$.\"a\".\"b\""]);
        assert_eq!(
            sqlite_paths(&keys(&["pos", "-1"])),
            ["$.\"pos\"[#-1]", "$.\"pos\".\"-1\""]
        );
        let (sql, paths) = sqlite_number("state", &keys(&["a", "0"]), 3);
        assert_eq!(paths, ["$.\"a\"[0]", "$.\"a\".\"0\""]);
        assert!(sql.starts_with("COALESCE(") && sql.contains("?3") && sql.contains("?4"));
    }
}
