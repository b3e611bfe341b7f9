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

/// The number at `keys` in JSON text `text`, read as PostgreSQL's `#>`
/// reads a `json` value: through an object a key is a field name, through
/// an array a key that reads as an integer is an index (negative ones
/// count from the end); `None` where there is no number (absent, not a
/// number, or not JSON).
pub(crate) fn number_at(text: &str, keys: &[String]) -> Option<f64> {
    let doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut at = &doc;
    for key in keys {
        at = match at {
            serde_json::Value::Object(map) => map.get(key)?,
            serde_json::Value::Array(items) => {
                let i = i64::from(array_index(key)?);
                let len = items.len() as i64;
                let i = if i < 0 { len + i } else { i };
                items.get(usize::try_from(i).ok()?)?
            }
            _ => return None,
        };
    }
    at.as_f64()
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

    #[test]
    fn numbers_are_read_as_postgresql_reads_them() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let doc = r#"{"pos":[3,4.5],"a":{"0":7,"b":"8"},"n":null}"#;
        assert_eq!(number_at(doc, &keys(&["pos", "1"])), Some(4.5));
        assert_eq!(number_at(doc, &keys(&["pos", "-2"])), Some(3.0));
        assert_eq!(number_at(doc, &keys(&["pos", "-3"])), None);
        assert_eq!(number_at(doc, &keys(&["a", "0"])), Some(7.0));
        assert_eq!(number_at(doc, &keys(&["a", "b"])), None);
        assert_eq!(number_at(doc, &keys(&["n"])), None);
        assert_eq!(number_at(doc, &keys(&["pos", "x"])), None);
        assert_eq!(number_at("not json", &keys(&["a"])), None);
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
    }
}
