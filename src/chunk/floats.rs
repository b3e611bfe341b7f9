//! Floats captured as numbers, not text: the recorder serializes a state
//! with every finite `f64` left out of its text (a [`MARK`] byte in its
//! place) and kept as a number beside it, so that the recording thread
//! does not spell out digits the writer would only read back. The text is
//! the one serde_json writes once each mark is replaced by the float as
//! serde_json formats it ([`float_text`]); a state of one shape keeps such
//! floats as 8 bytes each (`shapes.rs`), anything else is spelled out
//! ([`expand`]) and stored as before.

use super::corrupt;
use crate::error::Result;

/// The byte that stands for a captured float in a state's text: a raw
/// control character, which serde_json never writes (it escapes them in
/// strings, and a raw fragment must be valid JSON).
pub(crate) const MARK: u8 = 0x01;

/// A state's JSON text as the recorder captured it: `floats` fill the
/// text's [`MARK`]s in order (none for a text as stored or imported).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateText<'a> {
    pub(crate) text: &'a str,
    pub(crate) floats: &'a [f64],
}

impl<'a> StateText<'a> {
    /// A text with no captured float.
    pub(crate) fn plain(text: &'a str) -> Self {
        StateText { text, floats: &[] }
    }
}

/// Appends `value` (finite) as serde_json writes it: its own formatter, so
/// that a captured float reads back as the text serde_json would have
/// written in its place.
pub(crate) fn float_text(value: f64, out: &mut Vec<u8>) -> Result<()> {
    use serde_json::ser::Formatter;
    if !value.is_finite() {
        return Err(corrupt(format!("a stored float is {value}")));
    }
    serde_json::ser::CompactFormatter
        .write_f64(out, value)
        .map_err(|e| corrupt(format!("formatting a float: {e}")))
}

/// The text of `state` with its floats spelled out, appended to `out`.
pub(crate) fn expand(state: StateText<'_>, out: &mut Vec<u8>) -> Result<()> {
    let mut floats = state.floats.iter();
    for (i, piece) in state.text.as_bytes().split(|&b| b == MARK).enumerate() {
        if i > 0 {
            let value = floats
                .next()
                .ok_or_else(|| corrupt("a state has more float marks than floats"))?;
            float_text(*value, out)?;
        }
        out.extend_from_slice(piece);
    }
    if floats.next().is_some() {
        return Err(corrupt("a state has more floats than float marks"));
    }
    Ok(())
}

/// [`expand`] as a `String`.
pub(crate) fn expanded(state: StateText<'_>) -> Result<String> {
    let mut out = Vec::with_capacity(state.text.len() + 24 * state.floats.len());
    expand(state, &mut out)?;
    String::from_utf8(out).map_err(|_| corrupt("a state is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured floats spell out as serde_json's text, in place.
    #[test]
    fn expanded_text_is_serde_jsons() {
        for value in [0.0, -0.0, 1.0, 0.1, -1.5e-300, 1e16, 123456.789, f64::MAX] {
            let want = serde_json::to_string(&serde_json::json!({ "v": value, "w": [value] }))
                .unwrap_or_default();
            let text = "{\"v\":\u{1},\"w\":[\u{1}]}";
            let got = expanded(StateText {
                text,
                floats: &[value, value],
            });
            assert_eq!(got.ok().as_deref(), Some(want.as_str()), "{value}");
        }
        let text = "[\u{1}]";
        assert!(expanded(StateText { text, floats: &[] }).is_err());
        assert!(expanded(StateText {
            text,
            floats: &[1.0, 2.0]
        })
        .is_err());
        assert!(expanded(StateText {
            text,
            floats: &[f64::NAN]
        })
        .is_err());
    }
}
