//! States of one shape: a chunk whose JSON texts differ only in their
//! numbers, stored as one template and the numbers' characters.
//!
//! A *number* is a run of `0-9 . - + e E` that starts with a digit or `-`
//! (greedy, wherever it stands: inside a string too; any split
//! reproduces the text, since decoding only concatenates). The template
//! is the first text with each number replaced by one NUL byte (a slot);
//! every other text must be the template's literal pieces with numbers in
//! its slots, or the chunk is not of one shape (then zstd stores it).
//!
//! Layout after the codec byte: the template's length (LEB128) and bytes;
//! one bit per step and slot, step-major, least significant bit first, set
//! where the number is the previous step's (never for the first step);
//! then the numbers whose bit is clear, in the same order, as 4-bit codes
//! (high half first: `0-9`, then `.` `-` `+` `e` `E` as 10-14), each ended
//! by 15, the last byte padded with 15.
//!
//! Against zstd (level 1) on 64-step chunks, measured on this machine:
//! five 17-digit floats per state, about half the time to encode (233
//! against 398 ns per state) at 7% more bytes (40.8 against 38.1: 4 bits
//! per digit against zstd's Huffman codes); the ingest bench's states
//! (short integers and decimals, some unchanged from step to step), 95
//! against 121 ns at about the same size (5.9 against 5.7 bytes). Decoding
//! costs about what zstd's does (58 against 61 ns per state there).

use super::corrupt;
use super::floats::{float_text, StateText};
use crate::error::Result;

/// A slot in the template.
const SLOT: u8 = 0;
/// The code that ends a number (and pads the last byte).
const END: u8 = 15;
/// A slot of a float kept as 8 bytes in a template of states with captured
/// floats (codec 3): the byte that marks a captured float in their text.
const FLOAT_SLOT: u8 = super::floats::MARK;
/// A captured float whose first value's text is at most this long is kept
/// as digits (`12.34`: 3 bytes of 4-bit codes), a longer one as its 8
/// bytes (a 17-digit float's codes take 9 to 10).
const SHORT_FLOAT: usize = 14;

/// Each byte's 4-bit code if it can be in a number (`0-9 . - + e E`),
/// else [`END`].
const CODES: [u8; 256] = {
    let mut codes = [END; 256];
    let chars = *b"0123456789.-+eE";
    let mut i = 0;
    while i < chars.len() {
        codes[chars[i] as usize] = i as u8;
        i += 1;
    }
    codes
};

/// The character of each 4-bit code; [`END`]'s is NUL.
const CHARS: [u8; 16] = *b"0123456789.-+eE\0";

fn starts_number(b: u8) -> bool {
    b.is_ascii_digit() || b == b'-'
}

/// The end of the number starting at `at` (`text[at]` starts one): runs
/// of digits, `.` and `-` are passed eight bytes at a time, other
/// characters one by one.
fn number_end(text: &[u8], at: usize) -> usize {
    let mut at = at;
    while let Some(word) = text.get(at..).and_then(|t| t.first_chunk::<8>()) {
        let other = not_digits_points_minus(u64::from_le_bytes(*word));
        if other == 0 {
            at += 8;
            continue;
        }
        // The first byte outside those: in a number (`+ e E`) or its end.
        at += (other.trailing_zeros() / 8) as usize;
        if CODES[text[at] as usize] == END {
            return at;
        }
        at += 1;
    }
    text[at..]
        .iter()
        .position(|&b| CODES[b as usize] == END)
        .map_or(text.len(), |len| at + len)
}

/// A mask with the high bit of each byte of `w` (eight characters, the
/// first lowest) that is not an ASCII digit, `.` or `-`: zero if all are.
/// Those are `0x2D..=0x39` but `/` (`0x2F`); a float as serde writes it
/// (`-0.12345678901234567`) is passed in three words, where digits alone
/// took five.
#[inline]
fn not_digits_points_minus(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const fn each(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    // Per byte, its low seven bits `t`; no sum or difference below
    // carries or borrows into the next byte.
    let t = w & LOW7;
    let at_least_2d = t + each(0x80 - 0x2D);
    let at_most_39 = each(0x80 + 0x39) - t;
    let not_slash = (t ^ each(0x2F)) + LOW7;
    let inside = at_least_2d & at_most_39 & not_slash & !w & HIGH;
    !inside & HIGH
}

/// `a == b` for the short pieces and numbers states are made of, a word
/// at a time and without a call into the C library's `memcmp` (which
/// took a quarter of the encoding time, most of it in the call).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut diff = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .fold(0u64, |d, (x, y)| d | u64::from(x ^ y));
    for (x, y) in a8.zip(b8) {
        let (mut wx, mut wy) = ([0u8; 8], [0u8; 8]);
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= u64::from_ne_bytes(wx) ^ u64::from_ne_bytes(wy);
    }
    diff == 0
}

/// 4-bit codes, two per byte, gathered sixteen at a time onto a blob.
#[derive(Default)]
struct Nibbles {
    acc: u64,
    n: u32,
}

impl Nibbles {
    fn push(&mut self, code: u8, out: &mut Vec<u8>) {
        self.acc = (self.acc << 4) | u64::from(code);
        self.n += 1;
        if self.n == 16 {
            out.extend_from_slice(&self.acc.to_be_bytes());
            self.acc = 0;
            self.n = 0;
        }
    }

    /// Appends `k` codes (1 to 8) held in the low `4k` bits of `codes`,
    /// the first one highest.
    #[inline]
    fn push_codes(&mut self, codes: u64, k: u32, out: &mut Vec<u8>) {
        if self.n + k < 16 {
            self.acc = (self.acc << (4 * k)) | codes;
            self.n += k;
        } else {
            // The word is completed and the rest kept.
            let (room, rest) = (16 - self.n, self.n + k - 16);
            let word = (self.acc << (4 * room)) | (codes >> (4 * rest));
            out.extend_from_slice(&word.to_be_bytes());
            self.acc = codes & ((1u64 << (4 * rest)) - 1);
            self.n = rest;
        }
    }

    /// A number's characters (every one a number character: `0-9 . - +
    /// e E`) and its end, eight codes at a time by table, without a
    /// branch per character.
    fn number(&mut self, number: &[u8], out: &mut Vec<u8>) {
        let code = |a: u64, &b: &u8| (a << 4) | u64::from(CODES[b as usize]);
        let mut rest = number;
        while let Some((head, tail)) = rest.split_first_chunk::<8>() {
            self.push_codes(head.iter().fold(0, code), 8, out);
            rest = tail;
        }
        // At most seven characters left, then the end.
        let last = (rest.iter().fold(0, code) << 4) | u64::from(END);
        self.push_codes(last, rest.len() as u32 + 1, out);
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        if self.n % 2 == 1 {
            self.push(END, out);
        }
        if self.n > 0 {
            let whole = self.acc << (64 - 4 * self.n);
            out.extend_from_slice(&whole.to_be_bytes()[..(self.n / 2) as usize]);
        }
    }
}

/// A slot of a template of states with captured floats.
#[derive(Clone, Copy)]
enum Slot {
    /// A number in the text.
    Number,
    /// A captured float, kept as digits (`true`) or as its 8 bytes.
    Float { digits: bool },
}

/// Whether `state` is the template's literal pieces (of the first text
/// `first`) with numbers and captured floats in its slots; each slot's
/// value pushed onto `cur`: a number's range in the text, or a float's
/// bits.
fn in_shape(
    state: &StateText<'_>,
    first: &[u8],
    pieces: &[(usize, usize)],
    slots: &[Slot],
    cur: &mut Vec<(usize, usize, u64)>,
) -> bool {
    let text = state.text.as_bytes();
    let (mut at, mut fi) = (0, 0);
    for (j, &(s, e)) in pieces.iter().enumerate() {
        let piece = &first[s..e];
        if !text
            .get(at..at + piece.len())
            .is_some_and(|t| same(t, piece))
        {
            return false;
        }
        at += piece.len();
        match slots.get(j) {
            None => break,
            Some(Slot::Number) => {
                if !text.get(at).is_some_and(|&b| starts_number(b)) {
                    return false;
                }
                let end = number_end(text, at);
                cur.push((at, end, 0));
                at = end;
            }
            Some(Slot::Float { .. }) => {
                match (text.get(at), state.floats.get(fi)) {
                    (Some(&FLOAT_SLOT), Some(v)) => cur.push((0, 0, v.to_bits())),
                    _ => return false,
                }
                fi += 1;
                at += 1;
            }
        }
    }
    at == text.len() && fi == state.floats.len()
}

/// The blob (without its codec byte) of `states` if they are of one shape
/// (and hold no NUL): the same literal pieces, numbers and floats in the
/// same places; `Ok(false)` (and `out` as it was) otherwise. Without a
/// captured float in any state ([`super::floats`]) it is codec 2: a mark
/// byte is then a literal one. With them, codec 3: a float slot whose
/// first value spells out in at most [`SHORT_FLOAT`] characters is kept
/// as those digits, the others as 8 bytes each, after the flags and before
/// the 4-bit codes.
pub(crate) fn encode(states: &[StateText<'_>], out: &mut Vec<u8>) -> Result<bool> {
    let Some(first) = states.first() else {
        return Ok(false);
    };
    let bytes = first.text.as_bytes();
    if bytes.contains(&SLOT) {
        return Ok(false);
    }
    let with_floats = states.iter().any(|s| !s.floats.is_empty());
    let mut scratch: Vec<u8> = Vec::with_capacity(32);
    // The template's literal pieces (as ranges of the first text) and
    // its slots.
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let (mut start, mut at, mut floats) = (0, 0, 0);
    while at < bytes.len() {
        if with_floats && bytes[at] == FLOAT_SLOT {
            let Some(&value) = first.floats.get(floats) else {
                return Ok(false);
            };
            floats += 1;
            scratch.clear();
            float_text(value, &mut scratch)?;
            pieces.push((start, at));
            slots.push(Slot::Float {
                digits: scratch.len() <= SHORT_FLOAT,
            });
            at += 1;
            start = at;
        } else if starts_number(bytes[at]) {
            let end = number_end(bytes, at);
            pieces.push((start, at));
            slots.push(Slot::Number);
            start = end;
            at = end;
        } else {
            at += 1;
        }
    }
    if floats != first.floats.len() {
        return Ok(false);
    }
    pieces.push((start, bytes.len()));
    let n_slots = slots.len();
    let only_floats = floats == n_slots;
    let undo = out.len();
    let template_len = pieces.iter().map(|(s, e)| e - s).sum::<usize>() + n_slots;
    super::varint::put(out, template_len);
    for (j, &(s, e)) in pieces.iter().enumerate() {
        out.extend_from_slice(&bytes[s..e]);
        match slots.get(j) {
            Some(Slot::Float { digits: false }) => out.push(FLOAT_SLOT),
            Some(_) => out.push(SLOT),
            None => {}
        }
    }
    let flags_at = out.len();
    out.resize(flags_at + (states.len() * n_slots).div_ceil(8), 0);
    // Room for every value as if none repeated: 8 bytes a kept float, and
    // a number's codes as long as its first text's (a float's at most 24).
    let kept = slots
        .iter()
        .filter(|s| matches!(s, Slot::Float { digits: false }))
        .count();
    let digits = bytes.len() - pieces.iter().map(|(s, e)| e - s).sum::<usize>() - kept
        + 24 * (floats - kept);
    let mut bin: Vec<u8> = Vec::with_capacity(states.len() * kept * 8);
    let mut codes: Vec<u8> = Vec::with_capacity(states.len() * (digits + n_slots).div_ceil(2) + 8);
    let mut nibbles = Nibbles::default();
    // Each slot's value in the text before: a number's range, or a
    // float's bits.
    let mut prev: Vec<(usize, usize, u64)> = vec![(0, 0, 0); n_slots];
    let mut cur: Vec<(usize, usize, u64)> = Vec::with_capacity(n_slots);
    let mut prev_text = bytes;
    for (i, state) in states.iter().enumerate() {
        let text = state.text.as_bytes();
        cur.clear();
        let fits = if only_floats && state.floats.len() == floats && same(text, bytes) {
            // Every slot a captured float (as the engine bench's states)
            // and the first text byte for byte: its values are its floats,
            // without matching the template piece by piece.
            cur.extend(state.floats.iter().map(|v| (0, 0, v.to_bits())));
            true
        } else {
            in_shape(state, bytes, &pieces, &slots, &mut cur)
        };
        if !fits {
            out.truncate(undo);
            return Ok(false);
        }
        for (j, (slot, &(s, e, bits))) in slots.iter().zip(&cur).enumerate() {
            let (ps, pe, prev_bits) = prev[j];
            let unchanged = i > 0
                && match slot {
                    Slot::Number => same(&text[s..e], &prev_text[ps..pe]),
                    Slot::Float { .. } => bits == prev_bits,
                };
            if unchanged {
                let bit = i * n_slots + j;
                out[flags_at + bit / 8] |= 1 << (bit % 8);
                continue;
            }
            match slot {
                Slot::Number => nibbles.number(&text[s..e], &mut codes),
                Slot::Float { digits: true } => {
                    scratch.clear();
                    float_text(f64::from_bits(bits), &mut scratch)?;
                    nibbles.number(&scratch, &mut codes);
                }
                Slot::Float { digits: false } => bin.extend_from_slice(&bits.to_le_bytes()),
            }
        }
        std::mem::swap(&mut prev, &mut cur);
        prev_text = text;
    }
    nibbles.finish(&mut codes);
    out.reserve_exact(bin.len() + codes.len());
    out.extend_from_slice(&bin);
    out.extend_from_slice(&codes);
    Ok(true)
}

/// A blob's parts (after its codec byte) for `n` states.
struct Parts<'a> {
    /// The first text, a NUL in each number's place (and, with captured
    /// floats, [`FLOAT_SLOT`] in each float's kept as 8 bytes).
    template: &'a [u8],
    /// Each slot's kind, in order: true for a float kept as 8 bytes.
    floats: Vec<bool>,
    /// One bit per step and slot: the number is the previous step's.
    flags: &'a [u8],
    /// The floats kept as 8 bytes whose bit is clear, in order
    /// (little-endian `f64`s).
    bin: &'a [u8],
    /// The other numbers' characters, two 4-bit codes per byte.
    codes: &'a [u8],
}

impl Parts<'_> {
    fn slots(&self) -> usize {
        self.floats.len()
    }

    fn repeated(&self, i: usize, j: usize) -> bool {
        let bit = i * self.slots() + j;
        self.flags[bit / 8] & (1 << (bit % 8)) != 0
    }

    /// The literal pieces between the slots.
    fn pieces(&self, with_floats: bool) -> Vec<&[u8]> {
        self.template.split(|&b| is_slot(b, with_floats)).collect()
    }

    /// The `k`-th float kept as 8 bytes.
    fn float(&self, k: usize) -> Result<f64> {
        let bytes = self
            .bin
            .get(k * 8..k * 8 + 8)
            .and_then(|b| b.first_chunk::<8>())
            .ok_or_else(|| corrupt("truncated floats"))?;
        Ok(f64::from_le_bytes(*bytes))
    }
}

/// Whether a template byte is a slot: NUL, or with captured floats (codec
/// 3) also [`FLOAT_SLOT`] (a literal byte in codec 2's templates).
fn is_slot(b: u8, with_floats: bool) -> bool {
    b == SLOT || (with_floats && b == FLOAT_SLOT)
}

fn parts(blob: &[u8], n: usize, with_floats: bool) -> Result<Parts<'_>> {
    let mut at = 0;
    let len = super::varint::get(blob, &mut at, "template length")?;
    let template = blob
        .get(at..at.saturating_add(len))
        .ok_or_else(|| corrupt("truncated template"))?;
    at += len;
    let floats: Vec<bool> = template
        .iter()
        .filter(|&&b| is_slot(b, with_floats))
        .map(|&b| b == FLOAT_SLOT)
        .collect();
    let slots = floats.len();
    let flag_bytes = n
        .checked_mul(slots)
        .map(|bits| bits.div_ceil(8))
        .ok_or_else(|| corrupt("too many slots"))?;
    let flags = blob
        .get(at..at.saturating_add(flag_bytes))
        .ok_or_else(|| corrupt("truncated number flags"))?;
    at += flag_bytes;
    let mut parts = Parts {
        template,
        floats,
        flags,
        bin: &[],
        codes: &[],
    };
    let mut kept = 0usize;
    if parts.floats.iter().any(|&f| f) {
        for i in 0..n {
            for j in 0..slots {
                if parts.floats[j] && !parts.repeated(i, j) {
                    kept += 1;
                }
            }
        }
    }
    let bin_end = at.saturating_add(kept.saturating_mul(8));
    parts.bin = blob
        .get(at..bin_end)
        .ok_or_else(|| corrupt("truncated floats"))?;
    parts.codes = &blob[bin_end..];
    Ok(parts)
}

/// The texts of `n` states from a blob (after its codec byte; codec 3 if
/// `with_floats`): the texts back to back, and where each ends.
pub(crate) fn decode(blob: &[u8], n: usize, with_floats: bool) -> Result<(Vec<u8>, Vec<usize>)> {
    let parts = parts(blob, n, with_floats)?;
    let slots = parts.slots();
    let pieces = parts.pieces(with_floats);
    let flag_bytes = parts.flags.len();
    // Every code as its character, a number's end as NUL.
    let chars: Vec<u8> = parts
        .codes
        .iter()
        .flat_map(|&b| [CHARS[usize::from(b >> 4)], CHARS[usize::from(b & 15)]])
        .collect();
    let mut pos = 0;
    let mut kept = 0;
    let mut text: Vec<u8> = Vec::with_capacity(n * (parts.template.len() + 8 * slots));
    let mut ends = Vec::with_capacity(n);
    let mut prev: Vec<(usize, usize)> = vec![(0, 0); slots];
    for i in 0..n {
        for (j, piece) in pieces.iter().enumerate() {
            text.extend_from_slice(piece);
            if j == slots {
                break;
            }
            let start = text.len();
            if parts.repeated(i, j) {
                if i == 0 {
                    return Err(corrupt("the first state repeats a number"));
                }
                let (s, e) = prev[j];
                text.extend_from_within(s..e);
            } else if parts.floats[j] {
                super::floats::float_text(parts.float(kept)?, &mut text)?;
                kept += 1;
            } else {
                let rest = chars.get(pos..).unwrap_or_default();
                let len = rest
                    .iter()
                    .position(|&c| c == SLOT)
                    .ok_or_else(|| corrupt("truncated numbers"))?;
                if len == 0 {
                    return Err(corrupt("an empty number"));
                }
                text.extend_from_slice(&rest[..len]);
                pos += len + 1;
            }
            prev[j] = (start, text.len());
        }
        ends.push(text.len());
    }
    // Unused flag bits are clear; only a padding code may follow.
    let used = n * slots;
    if used % 8 != 0 && flag_bytes > 0 && parts.flags[flag_bytes - 1] >> (used % 8) != 0 {
        return Err(corrupt("stray number flags"));
    }
    let rest = chars.get(pos..).unwrap_or_default();
    if rest.len() > 1 || rest.first().is_some_and(|&c| c != SLOT) {
        return Err(corrupt("bytes after the numbers"));
    }
    Ok((text, ends))
}

/// A slot's latest value while [`decode_one`] walks the steps: where its
/// number's codes start and how many, or which kept float.
#[derive(Clone, Copy)]
enum Latest {
    Codes(usize, usize),
    Float(usize),
}

/// The text of state `i` of the `n` states of a blob (after its codec
/// byte; codec 3 if `with_floats`), without building the others: a read
/// of one step (all agents at a step, an agent's latest state) walks the
/// numbers of the steps before it as positions in the blob and spells out
/// only its own. The checks of what it walks are [`decode`]'s; what lies
/// after state `i` is not read.
pub(crate) fn decode_one(blob: &[u8], n: usize, i: usize, with_floats: bool) -> Result<String> {
    if i >= n {
        return Err(corrupt(format!("state {i} of {n}")));
    }
    let parts = parts(blob, n, with_floats)?;
    let codes = parts.codes;
    let code = |q: usize| {
        codes
            .get(q / 2)
            .map(|&b| if q % 2 == 0 { b >> 4 } else { b & 15 })
    };
    // Each slot's latest value.
    let mut latest: Vec<Option<Latest>> = vec![None; parts.slots()];
    let mut q = 0;
    let mut kept = 0;
    for k in 0..=i {
        for (j, slot) in latest.iter_mut().enumerate() {
            if parts.repeated(k, j) {
                if slot.is_none() {
                    return Err(corrupt("the first state repeats a number"));
                }
                continue;
            }
            if parts.floats[j] {
                *slot = Some(Latest::Float(kept));
                kept += 1;
                continue;
            }
            let start = q;
            loop {
                match code(q) {
                    None => return Err(corrupt("truncated numbers")),
                    Some(END) => break,
                    Some(_) => q += 1,
                }
            }
            if q == start {
                return Err(corrupt("an empty number"));
            }
            *slot = Some(Latest::Codes(start, q - start));
            q += 1;
        }
    }
    let mut text = Vec::with_capacity(parts.template.len() + 24 * parts.slots());
    let mut values = latest.iter();
    let pieces = parts.pieces(with_floats);
    let slots = parts.slots();
    for (j, piece) in pieces.iter().enumerate() {
        text.extend_from_slice(piece);
        if j == slots {
            break;
        }
        match values.next() {
            Some(Some(Latest::Codes(start, len))) => {
                for q in *start..start + len {
                    text.push(CHARS[usize::from(code(q).unwrap_or(END))]);
                }
            }
            Some(Some(Latest::Float(k))) => super::floats::float_text(parts.float(*k)?, &mut text)?,
            _ => {}
        }
    }
    String::from_utf8(text).map_err(|_| corrupt("states are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts with no captured float: codec 2's `encode`.
    fn encode_texts(texts: &[&str], out: &mut Vec<u8>) -> bool {
        let states: Vec<StateText<'_>> = texts.iter().map(|t| StateText::plain(t)).collect();
        matches!(encode(&states, out), Ok(true))
    }

    fn round_trip(texts: &[&str]) -> Option<usize> {
        let mut blob = Vec::new();
        if !encode_texts(texts, &mut blob) {
            return None;
        }
        let (text, ends) = decode(&blob, texts.len(), false).ok()?;
        let mut start = 0;
        for (t, &end) in texts.iter().zip(&ends) {
            assert_eq!(&text[start..end], t.as_bytes());
            start = end;
        }
        assert_eq!(ends.len(), texts.len());
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(
                decode_one(&blob, texts.len(), i, false).ok()?,
                *t,
                "state {i}"
            );
        }
        assert!(decode_one(&blob, texts.len(), texts.len(), false).is_err());
        Some(blob.len())
    }

    /// States captured as the recorder captures them: (text, floats).
    fn captured(values: &[serde_json::Value]) -> Vec<(String, Vec<f64>)> {
        values
            .iter()
            .map(|v| {
                let (mut text, mut floats) = (Vec::new(), Vec::new());
                let written = crate::validate::write_json("state", v, &mut text, Some(&mut floats));
                assert!(written.is_ok());
                (String::from_utf8(text).unwrap_or_default(), floats)
            })
            .collect()
    }

    /// Codec 3 reads back serde_json's text of each state, whole and one
    /// at a time; `None` if the states are not of one shape.
    fn captured_round_trip(values: &[serde_json::Value]) -> Option<usize> {
        let held = captured(values);
        let states: Vec<StateText<'_>> = held
            .iter()
            .map(|(text, floats)| StateText { text, floats })
            .collect();
        let mut blob = Vec::new();
        if !encode(&states, &mut blob).ok()? {
            assert!(blob.is_empty());
            return None;
        }
        let (text, ends) = decode(&blob, values.len(), true).ok()?;
        let mut start = 0;
        for (i, (v, &end)) in values.iter().zip(&ends).enumerate() {
            let want = serde_json::to_string(v).ok()?;
            assert_eq!(
                std::str::from_utf8(&text[start..end]).ok()?,
                want,
                "state {i}"
            );
            assert_eq!(
                decode_one(&blob, values.len(), i, true).ok()?,
                want,
                "state {i}"
            );
            start = end;
        }
        assert!(decode_one(&blob, values.len(), values.len(), true).is_err());
        Some(blob.len())
    }

    /// Floats kept as 8 bytes or as digits, repeated or not, beside
    /// numbers in the text, in keys and arrays, read back as serde_json
    /// writes them.
    #[test]
    fn captured_floats_round_trip_as_serde_json_writes_them() {
        use serde_json::json;
        let values: Vec<serde_json::Value> = (0..64)
            .map(|i| {
                let f = f64::from(i);
                json!({
                    "x": 0.1 * f + 1e-9 * f * f,
                    "short": f / 4.0,
                    "same": 0.123_456_789_012_345_67,
                    "n": i % 3,
                    "neg": -f * 1e-300,
                    "big": [1e16 * f, -0.0, f64::MAX],
                    "s": format!("a{i}"),
                })
            })
            .collect();
        let bytes = captured_round_trip(&values);
        assert!(bytes.is_some());
        // Nothing but integers: no float captured.
        let ints: Vec<serde_json::Value> = (0..5).map(|i| json!({ "n": i })).collect();
        assert!(captured(&ints).iter().all(|(_, f)| f.is_empty()));
        // A float where another state has an integer, or another key: not
        // of one shape.
        assert!(captured_round_trip(&[json!({"x": 1.5}), json!({"x": 2})]).is_none());
        assert!(captured_round_trip(&[json!({"x": 1.5}), json!({"y": 1.5})]).is_none());
        assert!(captured_round_trip(&[json!([1.5]), json!([1.5, 2.5])]).is_none());
        // One state, and a float map key (serde_json writes it quoted).
        let keyed: std::collections::BTreeMap<String, f64> =
            [("k".to_string(), 0.1 + 0.2)].into_iter().collect();
        assert!(captured_round_trip(&[serde_json::to_value(keyed).unwrap_or_default()]).is_some());
    }

    /// A damaged codec 3 blob is an error or some text, never a panic.
    #[test]
    fn damaged_captured_blobs_never_panic() {
        let values: Vec<serde_json::Value> = (0..64)
            .map(|i| serde_json::json!({"x": 0.1 * f64::from(i), "y": f64::from(i) / 7.0, "n": i}))
            .collect();
        let held = captured(&values);
        let states: Vec<StateText<'_>> = held
            .iter()
            .map(|(text, floats)| StateText { text, floats })
            .collect();
        let mut blob = Vec::new();
        assert!(matches!(encode(&states, &mut blob), Ok(true)));
        for cut in 0..blob.len() {
            assert!(decode(&blob[..cut], 64, true).is_err(), "cut at {cut}");
        }
        let mut seed = 3u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for _ in 0..10_000 {
            let mut bad = blob.clone();
            let i = next() % bad.len();
            bad[i] ^= 1 << (next() % 8);
            let _ = decode(&bad, 64, true);
            let _ = decode_one(&bad, 64, next() % 64, true);
        }
    }

    #[test]
    fn one_shape_round_trips_text_for_text() {
        let texts = [
            r#"{"x":0.12345678901234567,"y":-3,"hp":100,"s":"a7"}"#,
            r#"{"x":1e-7,"y":-3,"hp":99,"s":"a8"}"#,
            r#"{"x":-0.0,"y":-3.5E+300,"hp":99,"s":"a-"}"#,
            r#"{"x":2,"y":-3,"hp":99,"s":"a1.2.3"}"#,
        ];
        assert!(round_trip(&texts).is_some());
        // No numbers at all; one state; numbers at both ends.
        assert!(round_trip(&["{\"alive\":true}", "{\"alive\":true}"]).is_some());
        assert!(round_trip(&["[1,2]"]).is_some());
        assert!(round_trip(&["7", "-8", "9e9", "9e9"]).is_some());
        assert!(round_trip(&["é1", "é22"]).is_some());
    }

    #[test]
    fn same_compares_every_byte() {
        let a = b"0123456789abcdefgh";
        for len in 0..a.len() {
            assert!(same(&a[..len], &a[..len]));
            for at in 0..len {
                let mut b = a[..len].to_vec();
                b[at] ^= 0x20;
                assert!(!same(&a[..len], &b), "len {len} byte {at}");
            }
        }
        assert!(!same(b"12", b"123"));
    }

    #[test]
    fn other_shapes_are_left_to_zstd() {
        assert_eq!(round_trip(&["{\"a\":1}", "{\"b\":1}"]), None);
        assert_eq!(round_trip(&["{\"a\":1}", "{\"a\":true}"]), None);
        assert_eq!(round_trip(&["[1]", "[1,2]"]), None);
        assert_eq!(round_trip(&["[1]", "[1] "]), None);
        assert_eq!(round_trip(&["a\0", "a\0"]), None);
        assert_eq!(round_trip(&[]), None);
    }

    #[test]
    fn unchanged_numbers_cost_a_bit() {
        let same: Vec<String> = (0..64).map(|_| "{\"hp\":100,\"ore\":3}".into()).collect();
        let refs: Vec<&str> = same.iter().map(String::as_str).collect();
        // Template (16 + 1) and the first step's two numbers (3 bytes),
        // then 2 bits per step.
        assert_eq!(round_trip(&refs), Some(17 + 16 + 3));
    }

    #[test]
    fn damaged_blobs_are_typed_errors() {
        let mut blob = Vec::new();
        assert!(encode_texts(
            &["{\"a\":12}", "{\"a\":12}", "{\"a\":3}"],
            &mut blob
        ));
        assert!(decode(&blob, 3, false).is_ok());
        for cut in 0..blob.len() {
            assert!(decode(&blob[..cut], 3, false).is_err(), "cut at {cut}");
        }
        let mut extra = blob.clone();
        extra.push(0xff);
        assert!(decode(&extra, 3, false).is_err());
        // The first step marked as a repeat.
        let mut first = blob.clone();
        first[8] |= 1;
        assert!(decode(&first, 3, false).is_err());
        assert!(decode_one(&first, 3, 0, false).is_err());
        for cut in 0..blob.len() {
            // Cut inside what state 2 needs: an error, never a short text.
            if let Ok(text) = decode_one(&blob[..cut], 3, 2, false) {
                assert_eq!(text, "{\"a\":3}", "cut at {cut}");
            }
        }
        assert!(decode(&blob, 4, false).is_err());
    }

    #[test]
    fn damaged_blobs_never_panic() {
        let texts: Vec<String> = (0..64)
            .map(|i| {
                format!(
                    "{{\"x\":{},\"hp\":{},\"e\":1.5e-3}}",
                    i as f64 / 7.0,
                    100 - i % 4
                )
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut blob = Vec::new();
        assert!(encode_texts(&refs, &mut blob));
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
        for _ in 0..10_000 {
            let mut bad = blob.clone();
            match next() % 3 {
                0 => {
                    let i = next() % bad.len();
                    bad[i] ^= 1 << (next() % 8);
                }
                1 => bad.truncate(next() % bad.len()),
                _ => bad.push(next() as u8),
            }
            let n = if next() % 4 == 0 { next() % 65 } else { 64 };
            // A value or an error, never a panic.
            let _ = decode(&bad, n, false);
            let _ = decode_one(&bad, n, next() % 65, false);
        }
    }

    /// `number` packs exactly what pushing each code alone packs, from
    /// every position in the 16-code word, for numbers of every length up
    /// to 40 characters with digits and other characters anywhere.
    #[test]
    fn word_coded_numbers_pack_as_single_codes() {
        let chars = b"0123456789.-+eE";
        let mut seed = 11u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
        for before in 0..20usize {
            for len in 0..41usize {
                for _ in 0..20 {
                    // Mostly digits, sometimes any number character.
                    let number: Vec<u8> = (0..len)
                        .map(|_| {
                            let r = next();
                            if r % 5 == 0 {
                                chars[r / 5 % 15]
                            } else {
                                b'0' + (r % 10) as u8
                            }
                        })
                        .collect();
                    let (mut words, mut single) = (Vec::new(), Vec::new());
                    let (mut w, mut s) = (Nibbles::default(), Nibbles::default());
                    for i in 0..before {
                        w.push((i % 15) as u8, &mut words);
                        s.push((i % 15) as u8, &mut single);
                    }
                    w.number(&number, &mut words);
                    for &b in &number {
                        s.push(CODES[b as usize], &mut single);
                    }
                    s.push(END, &mut single);
                    w.finish(&mut words);
                    s.finish(&mut single);
                    assert_eq!(
                        words,
                        single,
                        "{before} codes before {:?}",
                        String::from_utf8_lossy(&number)
                    );
                }
            }
        }
    }

    /// The word classifier marks exactly the bytes that are not a digit,
    /// `.` or `-`, at every position of the word.
    #[test]
    fn word_classifier_marks_every_other_byte() {
        for b in 0..=255u8 {
            let fast = b.is_ascii_digit() || b == b'.' || b == b'-';
            for pos in 0..8 {
                let mut word = *b"58-0.912";
                word[pos] = b;
                let other = not_digits_points_minus(u64::from_le_bytes(word));
                let want = if fast { 0 } else { 0x80u64 << (8 * pos) };
                assert_eq!(other, want, "byte {b:#x} at {pos}");
            }
        }
    }

    /// A number's end found eight digits at a time is where a scan one
    /// byte at a time finds it: every byte value after every length of
    /// digit run, with other number characters and text around it, from
    /// every start.
    #[test]
    fn number_end_matches_one_byte_at_a_time() {
        let slow = |text: &[u8], at: usize| {
            text[at..]
                .iter()
                .position(|&b| CODES[b as usize] == END)
                .map_or(text.len(), |len| at + len)
        };
        for b in 0..=255u8 {
            for run in 0..20 {
                let mut text = b"x:-".to_vec();
                text.extend(std::iter::repeat_n(b'7', run));
                text.push(b);
                text.extend_from_slice(b"1.5e-3,y");
                for at in 2..text.len() {
                    if starts_number(text[at]) {
                        assert_eq!(number_end(&text, at), slow(&text, at), "{text:?} from {at}");
                    }
                }
            }
        }
    }
}
