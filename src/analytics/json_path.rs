//! A dot-separated path into JSON (`state.inventory.ore`, a parameter's
//! `opt.lr`), read alike on both backends.
//!
//! PostgreSQL's `#>` decides per value: where the value is an array, a key
//! that reads as an integer is an index (negative ones count from the end);
//! where it is an object, every key is a field name. A SQLite JSON path
//! says which in the path itself, so a key that can be an index gives two
//! SQLite paths. At most one of them exists in any one document, and it
//! holds what PostgreSQL reads.

/// At most this many keys of a path may read as array indexes (each
/// doubles the SQLite paths).
pub(crate) const MAX_INDEX_KEYS: usize = 4;

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
/// there is none (absent, or not a number). Paths are written into the
/// text as SQL strings.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_number(column: &str, keys: &[String]) -> String {
    let alternatives: Vec<String> = sqlite_paths(keys)
        .iter()
        .map(|path| {
            let path = format!("'{}'", path.replace('\'', "''"));
            format!(
                "CASE WHEN json_type({column}, {path}) IN ('integer', 'real') \
                 THEN json_extract({column}, {path}) END"
            )
        })
        .collect();
    match alternatives.as_slice() {
        [one] => one.clone(),
        _ => format!("COALESCE({})", alternatives.join(", ")),
    }
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
        assert!(sqlite_number("state", &keys(&["it's"])).contains("'$.\"it''s\"'"));
    }
}
