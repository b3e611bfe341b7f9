//! The bytes of an agent-state chunk.
//!
//! - `rewards`: one little-endian `f64` per present step, in step order
//!   (8 bytes each: rewards barely compress, and a series of rewards then
//!   reads without decompressing anything).
//! - `states`: a codec byte, then
//!   - `2` (states of one shape: texts that differ only in their numbers,
//!     as an agent's serialized struct does): one template and the
//!     numbers' characters, 4 bits each, one bit for a number unchanged
//!     from the previous step (`shapes.rs`);
//!   - `3` (states of one shape whose floats the recorder captured as
//!     numbers, `floats.rs`): the same, but a float slot whose first value
//!     spells out in more than 14 characters keeps each value as its 8
//!     bytes (a 17-digit float's 4-bit codes take 9 to 10), spelled out
//!     as serde_json writes it when read;
//!   - `1` (any other texts): the uncompressed length (`u32`,
//!     little-endian), then the zstd-compressed bytes of: each present
//!     step's state length as a LEB128 varint, in step order, followed by
//!     the JSON texts back to back, exactly as written.
//!
//! zstd at level 1 was chosen on measurement: it packs ~70-byte JSON states
//! of one agent ~8x at 64 steps (lz4 ~4x; level 3 gains nothing). States of
//! one shape skip it: zstd spent about 400 ns per state of five 17-digit
//! floats, 40% of a recorder's writer on the engine bench; the template
//! costs about half that, at 41 against 38 bytes per state, and is faster
//! at about the same size on the ingest bench's states.

use std::cell::RefCell;

use super::corrupt;
use super::floats::StateText;
use crate::error::{Error, Result};

/// The codec byte of zstd-compressed states.
const ZSTD: u8 = 1;
/// The codec byte of states of one shape (`shapes.rs`).
const SHAPES: u8 = 2;
/// The codec byte of states of one shape with captured floats, some kept
/// as 8 bytes (`shapes.rs`, `floats.rs`).
const SHAPES_FLOATS: u8 = 3;
/// zstd's level: its fastest regular level.
const LEVEL: i32 = 1;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The rewards blob of `rewards`.
pub(crate) fn encode_rewards(rewards: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rewards.len() * 8);
    for r in rewards {
        out.extend_from_slice(&r.to_le_bytes());
    }
    out
}

/// The rewards of a chunk whose mask has `n` bits set.
pub(crate) fn decode_rewards(blob: &[u8], n: usize) -> Result<Vec<f64>> {
    if blob.len() != n * 8 {
        return Err(corrupt(format!(
            "{} reward bytes for {n} steps",
            blob.len()
        )));
    }
    Ok(blob
        .chunks_exact(8)
        .map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_le_bytes(a)
        })
        .collect())
}

/// zstd at `LEVEL`, its matches at least 6 bytes long and its hash table
/// of 2^11 entries: on a chunk of float-heavy states (five 17-digit
/// numbers, 124 bytes each) 9% faster and 4% smaller than level 1's
/// defaults (414 against 453 ns and 44.4 against 46.4 bytes per state);
/// the same on the ingest bench's states. Decoding is plain zstd.
fn compressor() -> std::io::Result<zstd::bulk::Compressor<'static>> {
    use zstd::zstd_safe::CParameter;
    let mut c = zstd::bulk::Compressor::new(LEVEL)?;
    c.set_parameter(CParameter::MinMatch(6))?;
    c.set_parameter(CParameter::HashLog(11))?;
    Ok(c)
}

/// The states blob of `states` (one per present step, in step order):
/// states of one shape as codec 2, or 3 where the recorder captured their
/// floats ([`super::floats`]); others with captured floats spelled out
/// first; any other texts zstd.
pub(crate) fn encode_states(states: &[StateText<'_>]) -> Result<Vec<u8>> {
    let captured = states.iter().any(|s| !s.floats.is_empty());
    let mut out = vec![if captured { SHAPES_FLOATS } else { SHAPES }];
    if super::shapes::encode(states, &mut out)? {
        // Exactly as long as it is: a writer keeps the last chunk of every
        // agent, and the encoder's room to spare cost 10,000 agents 30 MiB.
        out.shrink_to_fit();
        return Ok(out);
    }
    if captured {
        let texts = states
            .iter()
            .map(|&s| super::floats::expanded(s))
            .collect::<Result<Vec<String>>>()?;
        let plain: Vec<StateText<'_>> = texts.iter().map(|t| StateText::plain(t)).collect();
        return encode_states(&plain);
    }
    let total: usize = states.iter().map(|s| s.text.len()).sum();
    let mut raw = Vec::with_capacity(total + 128);
    for s in states {
        super::varint::put(&mut raw, s.text.len());
    }
    for s in states {
        raw.extend_from_slice(s.text.as_bytes());
    }
    let raw_len = u32::try_from(raw.len())
        .map_err(|_| Error::invalid("state", "a chunk's states exceed 4 GiB"))?;
    let packed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(compressor()?),
        };
        compressor.compress(&raw)
    });
    let packed = packed.map_err(|e| corrupt(format!("zstd compression failed: {e}")))?;
    let mut out = Vec::with_capacity(packed.len() + 5);
    out.push(ZSTD);
    out.extend_from_slice(&raw_len.to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// A chunk's states, decoded: one text, and where each state ends in it.
#[derive(Debug, Default)]
pub(crate) struct Texts {
    text: String,
    ends: Vec<usize>,
}

impl Texts {
    /// How many states.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The `i`-th present step's JSON text.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// Every state, in step order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

/// The states of a chunk whose mask has `n` bits set.
pub(crate) fn decode_states(blob: &[u8], n: usize) -> Result<Texts> {
    let (&codec, rest) = blob.split_first().ok_or_else(|| corrupt("empty states"))?;
    if codec == SHAPES || codec == SHAPES_FLOATS {
        let (text, ends) = super::shapes::decode(rest, n, codec == SHAPES_FLOATS)?;
        return texts(text, ends);
    }
    let (raw, at, ends) = unzstd(codec, rest, n)?;
    texts(raw[at..].to_vec(), ends)
}

/// The text of the `i`-th of the `n` states of a chunk (steps in
/// ascending order), without building the others where the codec allows
/// (states of one shape).
pub(crate) fn decode_state(blob: &[u8], n: usize, i: usize) -> Result<String> {
    let (&codec, rest) = blob.split_first().ok_or_else(|| corrupt("empty states"))?;
    if codec == SHAPES || codec == SHAPES_FLOATS {
        return super::shapes::decode_one(rest, n, i, codec == SHAPES_FLOATS);
    }
    let (raw, at, ends) = unzstd(codec, rest, n)?;
    let body = &raw[at..];
    let start = match i.checked_sub(1) {
        Some(before) => ends.get(before).copied(),
        None => Some(0),
    };
    let text = start
        .zip(ends.get(i).copied())
        .and_then(|(start, end)| body.get(start..end))
        .ok_or_else(|| corrupt(format!("state {i} of {n}")))?;
    String::from_utf8(text.to_vec()).map_err(|_| corrupt("states are not UTF-8"))
}

/// A zstd states blob (after its codec byte) decompressed: the lengths
/// and texts, where the texts start, and where each of the `n` texts ends
/// after that.
fn unzstd(codec: u8, rest: &[u8], n: usize) -> Result<(Vec<u8>, usize, Vec<usize>)> {
    if codec != ZSTD || rest.len() < 4 {
        return Err(corrupt(format!("unknown states codec {codec}")));
    }
    let (len, packed) = rest.split_at(4);
    let mut raw_len = [0u8; 4];
    raw_len.copy_from_slice(len);
    let raw_len = u32::from_le_bytes(raw_len) as usize;
    let raw = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(packed, raw_len)
    });
    let raw = raw.map_err(|e| corrupt(format!("zstd: {e}")))?;
    if raw.len() != raw_len {
        return Err(corrupt("states shorter than their stated length"));
    }
    let mut at = 0;
    let mut ends = Vec::with_capacity(n);
    let mut end = 0usize;
    for _ in 0..n {
        let len = super::varint::get(&raw, &mut at, "lengths")?;
        end += len;
        ends.push(end);
    }
    let body = raw.get(at..).ok_or_else(|| corrupt("truncated states"))?;
    if body.len() != end {
        return Err(corrupt(format!(
            "{} bytes of states for lengths summing to {end}",
            body.len()
        )));
    }
    Ok((raw, at, ends))
}

/// `text` split at `ends`, checked to be UTF-8 split between characters.
fn texts(text: Vec<u8>, ends: Vec<usize>) -> Result<Texts> {
    let text = String::from_utf8(text).map_err(|_| corrupt("states are not UTF-8"))?;
    // Every boundary must fall on a character boundary (true of whole JSON
    // texts; checked so that `get` never slices mid-character).
    if ends.iter().any(|&e| !text.is_char_boundary(e)) {
        return Err(corrupt("a state boundary splits a character"));
    }
    Ok(Texts { text, ends })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain<'a>(texts: &[&'a str]) -> Vec<StateText<'a>> {
        texts.iter().map(|&t| StateText::plain(t)).collect()
    }

    #[test]
    fn states_and_rewards_round_trip() -> Result<()> {
        let texts = ["{\"a\":1}", "", "[\"é\",2]", "null"];
        let blob = encode_states(&plain(&texts))?;
        let back = decode_states(&blob, texts.len())?;
        assert_eq!(back.iter().collect::<Vec<_>>(), texts);
        // One state at a time, from either codec.
        let shaped = ["{\"x\":1.5}", "{\"x\":1.5}", "{\"x\":-2}"];
        let shaped_blob = encode_states(&plain(&shaped))?;
        assert_eq!(shaped_blob[0], SHAPES);
        assert_eq!(blob[0], ZSTD);
        for (blob, texts) in [(&blob, &texts[..]), (&shaped_blob, &shaped[..])] {
            for (i, text) in texts.iter().enumerate() {
                assert_eq!(decode_state(blob, texts.len(), i)?, *text);
            }
            assert!(matches!(
                decode_state(blob, texts.len(), texts.len()),
                Err(Error::CorruptChunk { .. })
            ));
        }
        let rewards = [0.5, -1e300, f64::MIN_POSITIVE];
        assert_eq!(decode_rewards(&encode_rewards(&rewards), 3)?, rewards);
        Ok(())
    }

    #[test]
    fn damaged_blobs_are_typed_errors() -> Result<()> {
        let blob = encode_states(&plain(&["{\"a\":1}", "{}"]))?;
        assert!(matches!(
            decode_states(&blob, 3),
            Err(Error::CorruptChunk { .. })
        ));
        assert!(matches!(
            decode_states(&blob[..6], 2),
            Err(Error::CorruptChunk { .. })
        ));
        assert!(matches!(
            decode_states(&[], 0),
            Err(Error::CorruptChunk { .. })
        ));
        assert!(matches!(
            decode_rewards(&[0; 7], 1),
            Err(Error::CorruptChunk { .. })
        ));
        Ok(())
    }
}
