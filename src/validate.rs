//! Input checks shared by the facade, the recorder and import: what both
//! backends can store alike.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::validate_text;
use crate::models::{Simulation, SimulationStatus};

/// Longest experiment, agent or simulation name, kind, policy or tag.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// Accepts finite numbers only (NaN and infinities would read back
/// differently on the two backends) and turns -0.0 into 0.0 (SQLite stores
/// it as integer 0), so that both backends return the same bits.
pub(crate) fn finite(field: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value + 0.0)
    } else {
        Err(Error::invalid(
            field,
            format!("{value} is not a finite number"),
        ))
    }
}

/// Refuses JSON whose strings or keys contain NUL: PostgreSQL's JSONB cannot
/// store it, and both backends must accept the same documents.
pub(crate) fn check_json(field: &'static str, value: &Value) -> Result<()> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if has_nul(value) {
        Err(nul_error(field))
    } else {
        Ok(())
    }
}

/// As [`check_json`], on serialized JSON text (where NUL is `\u0000`).
pub(crate) fn check_json_text(field: &'static str, text: &[u8]) -> Result<()> {
    const NUL: &[u8] = b"\\u0000";
    // Most texts hold no escape at all: one memchr-fast scan settles them.
    if !text.contains(&b'\\') {
        return Ok(());
    }
    let mut from = 0;
    while let Some(i) = text[from..].windows(NUL.len()).position(|w| w == NUL) {
        let at = from + i;
        // An escape only if preceded by an even number of backslashes.
        let backslashes = text[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 0 {
            return Err(nul_error(field));
        }
        from = at + 1;
    }
    Ok(())
}

/// Serializes `value` as compact JSON (exactly `serde_json::to_writer`'s
/// text) onto `out`, refusing a NUL character as [`check_json_text`] does
/// without scanning the text again: the formatter notes it as it escapes
/// it (`\u0000`); raw fragments (`RawValue`) are scanned as they are
/// written. With `floats`, every finite `f64` is captured onto it and left
/// out of the text, a mark in its place (`chunk/floats.rs`): the digits
/// are spelled out where a state is read, not on the recording thread.
/// On error `out` may hold part of the text: the caller cuts it.
pub(crate) fn write_json<S: serde::Serialize + ?Sized>(
    field: &'static str,
    value: &S,
    out: &mut Vec<u8>,
    floats: Option<&mut Vec<f64>>,
) -> Result<()> {
    let mut nul = false;
    let watch = NulWatch {
        nul: &mut nul,
        floats,
    };
    let mut ser = serde_json::Serializer::with_formatter(Pieces(out), watch);
    value.serialize(&mut ser)?;
    if nul {
        return Err(nul_error(field));
    }
    Ok(())
}

/// A text's bytes as serde_json's writer gives them: in short pieces (a
/// quote, a key, a colon, a number). `Vec`'s `write_all` copies each
/// through a call to the C library's `memcpy`, which cost a recording
/// loop as much as formatting its numbers did (the engine bench's states:
/// some 30 pieces each); a piece of up to 32 bytes is copied here as two
/// fixed-size words instead.
struct Pieces<'a>(&'a mut Vec<u8>);

impl std::io::Write for Pieces<'_> {
    #[inline]
    fn write(&mut self, piece: &[u8]) -> std::io::Result<usize> {
        self.write_all(piece)?;
        Ok(piece.len())
    }

    #[inline]
    fn write_all(&mut self, piece: &[u8]) -> std::io::Result<()> {
        let out = &mut *self.0;
        match piece.len() {
            0 => {}
            1 => out.push(piece[0]),
            2..=3 => append_words::<2>(out, piece),
            4..=7 => append_words::<4>(out, piece),
            8..=15 => append_words::<8>(out, piece),
            16..=32 => append_words::<16>(out, piece),
            _ => out.extend_from_slice(piece),
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends `piece` (`W` to `2 * W` bytes) as its first and its last `W`
/// bytes, which overlap where it is shorter than `2 * W`: the first word
/// is appended, cut back to where the last one starts, and the last one
/// appended.
#[inline]
fn append_words<const W: usize>(out: &mut Vec<u8>, piece: &[u8]) {
    if let (Some(first), Some(last)) = (piece.first_chunk::<W>(), piece.last_chunk::<W>()) {
        let end = out.len() + piece.len();
        out.extend_from_slice(first);
        out.truncate(end - W);
        out.extend_from_slice(last);
    }
}

/// serde_json's compact formatter, noting any NUL character it writes.
struct NulWatch<'a> {
    nul: &'a mut bool,
    /// Where finite `f64`s go instead of the text, if they are captured.
    floats: Option<&'a mut Vec<f64>>,
}

impl serde_json::ser::Formatter for NulWatch<'_> {
    /// serde_json calls this for finite values only (others are `null`).
    #[inline]
    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        match self.floats.as_mut() {
            Some(floats) => {
                floats.push(value);
                writer.write_all(&[crate::chunk::floats::MARK])
            }
            None => serde_json::ser::CompactFormatter.write_f64(writer, value),
        }
    }

    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        if matches!(escape, serde_json::ser::CharEscape::AsciiControl(0)) {
            *self.nul = true;
        }
        serde_json::ser::CompactFormatter.write_char_escape(writer, escape)
    }

    fn write_raw_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if check_json_text("", fragment.as_bytes()).is_err() {
            *self.nul = true;
        }
        writer.write_all(fragment.as_bytes())
    }
}

pub(crate) fn nul_error(field: &'static str) -> Error {
    Error::invalid(
        field,
        "JSON text contains a NUL character (\\u0000), which PostgreSQL JSONB cannot store",
    )
}

/// Free text (a description, a failure message): anything but NUL, which
/// PostgreSQL cannot store in text, so both backends refuse it alike.
pub(crate) fn check_free_text(field: &'static str, text: &str) -> Result<()> {
    if text.contains('\0') {
        Err(Error::invalid(
            field,
            "contains a NUL character, which PostgreSQL text cannot store",
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn check_step(step: i64) -> Result<()> {
    if step < 0 {
        Err(Error::invalid("step", format!("{step} is negative")))
    } else {
        Ok(())
    }
}

pub(crate) fn check_optional(field: &'static str, value: &Option<String>) -> Result<()> {
    match value {
        Some(v) => validate_text(field, v, MAX_NAME_LEN),
        None => Ok(()),
    }
}

pub(crate) fn check_running(sim: &Simulation) -> Result<()> {
    if sim.status == SimulationStatus::Running {
        Ok(())
    } else {
        Err(Error::invalid(
            "simulation status",
            format!(
                "simulation `{}` is {}; only running simulations accept records (call start_simulation)",
                sim.id, sim.status
            ),
        ))
    }
}

/// How a JSON value's kind reads in an error message.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::write_json;

    #[test]
    fn json_text_is_serde_jsons_for_pieces_of_every_length() -> crate::Result<()> {
        // Keys and strings of 0 to 40 characters (each copy path and the
        // boundaries between them), escapes, numbers of every length.
        let mut values = Vec::new();
        for len in 0..40 {
            let s: String = "abcdefghij\"klmnopqrs\\tuvwxyz0123456789é!?"
                .chars()
                .take(len)
                .collect();
            values.push(
                serde_json::json!({ s.clone(): s, "n": len, "x": -1.0 / (len as f64 + 3.0) }),
            );
        }
        values.push(serde_json::json!([
            1e300,
            -0.0,
            12345678901234567890u64,
            i64::MIN,
            "\u{1}",
            null,
            true
        ]));
        for v in &values {
            let mut out = b"prefix".to_vec();
            write_json("state", v, &mut out, None)?;
            let mut want = b"prefix".to_vec();
            serde_json::to_writer(&mut want, v)?;
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want)
            );
        }
        Ok(())
    }
}
