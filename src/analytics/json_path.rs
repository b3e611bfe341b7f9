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
    // Streamed: only the path is descended, everything beside it skipped
    // unparsed. A negative index needs the array's length: that document
    // is parsed whole.
    if keys.iter().any(|k| array_index(k).is_some_and(|i| i < 0)) {
        return number_in_value(text, keys);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let found = serde::de::DeserializeSeed::deserialize(PathSeed(keys), &mut de).ok()?;
    de.end().ok()?;
    found
}

/// [`number_at`] on the whole parsed document.
fn number_in_value(text: &str, keys: &[String]) -> Option<f64> {
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

/// Deserializes the number at the remaining keys (`None` where there is
/// none), skipping the rest of the document.
struct PathSeed<'k>(&'k [String]);

impl<'de> serde::de::DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<f64>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PathSeed<'_> {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then_some(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then_some(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then_some(v))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let Some((key, rest)) = self.0.split_first() else {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(None);
        };
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if k == key.as_str() {
                // The last of duplicate keys wins, as in a parsed document.
                found = map.next_value_seed(PathSeed(rest))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let target = self
            .0
            .split_first()
            .and_then(|(k, rest)| Some((usize::try_from(array_index(k)?).ok()?, rest)));
        let mut i = 0usize;
        loop {
            match target {
                Some((at, rest)) if i == at => match seq.next_element_seed(PathSeed(rest))? {
                    Some(v) => found = v,
                    None => break,
                },
                _ => {
                    if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
            i += 1;
        }
        Ok(found)
    }
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
        assert_eq!(number_at(r#"{"a":1,"a":2}"#, &keys(&["a"])), Some(2.0));
        assert_eq!(
            number_at(
                r#"{"a":"1\u00e9","b":[[1,[2]]]}"#,
                &keys(&["b", "0", "1", "0"])
            ),
            Some(2.0)
        );
        assert_eq!(number_at("5", &[]), Some(5.0));
        assert_eq!(number_at(r#"{"a":1} x"#, &keys(&["a"])), None);
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
