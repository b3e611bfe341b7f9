//! The bytes of a numeric chunk (agent metrics): a codec byte, then
//!
//! - `0`: the values as little-endian `f64`, in step order (8 bytes each);
//! - `2`: the same bytes byte-shuffled (all first bytes, then all second
//!   bytes, ...) and zstd-compressed at level 1;
//! - `3`: decimals: a byte `d`, then the integers `v * 10^d` (each exactly
//!   `v` again when divided by `10^d`) as little-endian `i64`, shuffled and
//!   zstd-compressed;
//! - `4`: each value's bits XORed with the previous value's (the first
//!   with 0), shuffled and zstd-compressed;
//! - `5`: the same XORs as a bit stream (bit `i` of the stream is bit
//!   `i % 8` of byte `i / 8`; a field of `k` bits is written low bit
//!   first): the first value's 64 bits, then per value `0` if it repeats
//!   the previous one, else `1` and either `0` and the XOR's bits inside the
//!   previous window (its leading and trailing zero counts) or `1`, the
//!   XOR's leading zeros (5 bits, at most 31), its length `m` less one (6
//!   bits) and its `m` bits above its trailing zeros (Gorilla's scheme);
//! - `6`: each value's bits less the previous value's, as integers
//!   (wrapping), zigzagged, as a bit stream like codec 5's: the first
//!   value's 64 bits, then per value either `0` and the difference in the
//!   previous width, or `1`, `0`, a new width `w` less one (6 bits) and the
//!   difference in `w` bits, or `1`, `1` for no change. A walk's
//!   neighbours differ by a small integer where their XOR, through a
//!   carry, can differ in many bits;
//! - `7`: codec 6 with the sign apart: per value the difference of the
//!   magnitudes' bits (sign bit cleared), zigzagged, as `0` and the
//!   difference in the previous width, or `1`, `0`, a new width and the
//!   difference; or `1`, `1`, `0` for no change; or `1`, `1`, `1` for a
//!   change of sign, then the magnitudes' difference as `0` and the
//!   previous width's bits or `1`, a new width and its bits. A walk that
//!   crosses zero goes from `+a` to `-b`, both small: as bits their
//!   difference takes all 64, as magnitudes about as many as any step.
//!
//! A chunk is stored as decimals where its values are decimals (integer-
//! like series are decimals with no digits: `0.123` has no short binary
//! form, `123` does) and that is smallest, else as the smaller bit stream
//! (XOR, codec 5, or difference, codec 7), else raw (white noise); a bit stream of
//! [`SHORT_STREAM`] bytes or fewer is kept without trying the decimals.
//! The streams' lengths are counted before either is written, and only the
//! shorter one is written. Codecs 2, 4 and 6 are read
//! but no longer written: on the ingest bench's random walk the bit
//! streams take 6.81 (difference, sign apart), 6.87 (difference, codec 6)
//! and 7.29 (XOR) bytes per value with the codec byte, against 7.51 for
//! the zstd of shuffled XORs, and each costs a fraction of a zstd call on
//! 64 values.

use std::cell::RefCell;

use super::corrupt;
use crate::error::Result;

const RAW: u8 = 0;
const SHUFFLED_ZSTD: u8 = 2;
const DECIMAL: u8 = 3;
const XOR_ZSTD: u8 = 4;
const XOR_BITS: u8 = 5;
const DELTA_BITS: u8 = 6;
const SIGNED_DELTA_BITS: u8 = 7;
/// The most decimal digits tried.
const MAX_DIGITS: u8 = 6;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes` (8 per value) shuffled: every value's first byte, then every
/// second byte, ...
fn shuffle(words: impl ExactSizeIterator<Item = [u8; 8]>) -> Vec<u8> {
    let n = words.len();
    let mut out = vec![0u8; n * 8];
    for (i, word) in words.enumerate() {
        for (b, byte) in word.into_iter().enumerate() {
            out[b * n + i] = byte;
        }
    }
    out
}

/// The 8-byte words of shuffled `bytes`.
fn unshuffle(bytes: &[u8], n: usize) -> Vec<[u8; 8]> {
    (0..n)
        .map(|i| {
            let mut w = [0u8; 8];
            for (b, byte) in w.iter_mut().enumerate() {
                *byte = bytes[b * n + i];
            }
            w
        })
        .collect()
}

fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            let compressor = match slot.as_mut() {
                Some(c) => c,
                None => slot.insert(zstd::bulk::Compressor::new(1)?),
            };
            compressor.compress(raw)
        })
        .ok()
}

fn decompress(packed: &[u8], len: usize) -> Result<Vec<u8>> {
    let raw = DECOMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            let decompressor = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            decompressor.decompress(packed, len)
        })
        .map_err(|e| corrupt(format!("zstd: {e}")))?;
    if raw.len() != len {
        return Err(corrupt(format!(
            "{} value bytes for {} values",
            raw.len(),
            len / 8
        )));
    }
    Ok(raw)
}

/// The fewest decimal digits `d` for which every value is an integer over
/// `10^d` (exactly, and within f64's exact integers), with those integers.
fn as_decimals(values: &[f64]) -> Option<(u8, Vec<i64>)> {
    let mut scale = 1.0f64;
    for d in 0..=MAX_DIGITS {
        let ints: Option<Vec<i64>> = values
            .iter()
            .map(|&v| {
                let k = (v * scale).round();
                (k.abs() < 9.0e15 && (k / scale).to_bits() == v.to_bits()).then_some(k as i64)
            })
            .collect();
        if let Some(ints) = ints {
            return Some((d, ints));
        }
        scale *= 10.0;
    }
    None
}

/// The encoded bytes of `values`, the smallest of: their XOR or
/// difference bit stream, their decimals (where they are exact integers over `10^d`), raw.
pub(crate) fn encode(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let raw_len = n * 8 + 1;
    // Each bit stream's length is counted first; only the shorter one
    // (XOR on a tie) is written.
    let stream_len = |bits: u64| 1 + bits.div_ceil(8) as usize;
    let (mut xor, mut delta) = (BitCount(0), BitCount(0));
    xor_bits(values, &mut xor);
    signed_delta_bits(values, &mut delta);
    let (codec, stream) = if delta.0 < xor.0 {
        (SIGNED_DELTA_BITS, stream_len(delta.0))
    } else {
        (XOR_BITS, stream_len(xor.0))
    };
    // A stream this short is left as it is: the decimals' zstd frame
    // alone is 11 bytes or more, and a compressor call costs more than
    // the few bytes it could save.
    if stream > SHORT_STREAM {
        if let Some((digits, ints)) = as_decimals(values) {
            if let Some(packed) = compress(&shuffle(ints.iter().map(|k| k.to_le_bytes()))) {
                if packed.len() + 2 < stream.min(raw_len) {
                    let mut out = Vec::with_capacity(packed.len() + 2);
                    out.push(DECIMAL);
                    out.push(digits);
                    out.extend_from_slice(&packed);
                    return out;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(stream.min(raw_len));
    if stream < raw_len {
        out.push(codec);
        write_bits(values, codec, &mut out);
        return out;
    }
    out.push(RAW);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Appends the bit stream of `values` in codec `codec`
/// (`SIGNED_DELTA_BITS`, else `XOR_BITS`) to `out`.
fn write_bits(values: &[f64], codec: u8, out: &mut Vec<u8>) {
    let mut w = BitWriter {
        out,
        acc: 0,
        pending: 0,
    };
    if codec == SIGNED_DELTA_BITS {
        signed_delta_bits(values, &mut w);
    } else {
        xor_bits(values, &mut w);
    }
    w.finish();
}

/// Bit streams up to this many bytes (codec byte included) are not
/// compared with the decimals' zstd.
const SHORT_STREAM: usize = 32;

/// All ones in the low `bits` bits.
fn low_bits(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Appends fields of up to 64 bits to a byte vector, low bit first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Pending bits, the oldest lowest.
    acc: u64,
    /// How many bits of `acc` are pending (always below 64).
    pending: u32,
}

/// Where a bit stream's fields go: written, or only counted.
trait Bits {
    /// Takes the low `bits` bits of `value` (`value` has no higher bit).
    fn put(&mut self, value: u64, bits: u32);
}

/// Counts a bit stream's bits without writing them.
struct BitCount(u64);

impl Bits for BitCount {
    #[inline]
    fn put(&mut self, _value: u64, bits: u32) {
        self.0 += u64::from(bits);
    }
}

impl Bits for BitWriter<'_> {
    /// Appends the low `bits` bits of `value` (`value` has no higher bit).
    #[inline]
    fn put(&mut self, value: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        self.acc |= value << self.pending;
        let total = self.pending + bits;
        if total >= 64 {
            self.out.extend_from_slice(&self.acc.to_le_bytes());
            let taken = 64 - self.pending;
            self.acc = if taken >= 64 { 0 } else { value >> taken };
            self.pending = total - 64;
        } else {
            self.pending = total;
        }
    }
}

impl BitWriter<'_> {
    fn finish(self) {
        let bytes = self.pending.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// Reads fields back from a [`BitWriter`]'s bytes.
struct BitReader<'a> {
    bytes: &'a [u8],
    /// The next bit's position.
    pos: usize,
}

impl BitReader<'_> {
    /// The 64 bits from bit `pos` on (at least 57 of them from the
    /// stream; zeros past its end).
    fn window(&self, pos: usize) -> u64 {
        let i = pos / 8;
        let mut word = [0u8; 8];
        let have = self.bytes.len().saturating_sub(i).min(8);
        word[..have].copy_from_slice(&self.bytes[i..i + have]);
        u64::from_le_bytes(word) >> (pos % 8)
    }

    fn get(&mut self, bits: u32) -> Result<u64> {
        let end = self.pos + bits as usize;
        if end > self.bytes.len() * 8 {
            return Err(corrupt("the values' bit stream ends early"));
        }
        let value = if bits <= 56 {
            self.window(self.pos) & low_bits(bits)
        } else {
            (self.window(self.pos) & low_bits(32))
                | ((self.window(self.pos + 32) & low_bits(bits - 32)) << 32)
        };
        self.pos = end;
        Ok(value)
    }
}

/// Puts `values` as a bit stream onto `w`: the first value's 64 bits,
/// then what `next` puts for each later value, given the previous
/// value's bits and its own.
fn bit_stream<W: Bits>(values: &[f64], w: &mut W, mut next: impl FnMut(&mut W, u64, u64)) {
    let mut iter = values.iter().map(|v| v.to_bits());
    if let Some(mut prev) = iter.next() {
        w.put(prev, 64);
        for bits in iter {
            next(w, prev, bits);
            prev = bits;
        }
    }
}

/// The `n` values of a bit stream: the first value's 64 bits, then each
/// later value's bits as `next` reads them, given the previous value's.
/// The stream must end in the byte its last value ends in.
fn from_bit_stream(
    body: &[u8],
    n: usize,
    mut next: impl FnMut(&mut BitReader<'_>, u64) -> Result<u64>,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    let mut r = BitReader {
        bytes: body,
        pos: 0,
    };
    if n > 0 {
        let mut prev = r.get(64)?;
        out.push(f64::from_bits(prev));
        for _ in 1..n {
            prev = next(&mut r, prev)?;
            out.push(f64::from_bits(prev));
        }
    }
    let used = r.pos.div_ceil(8);
    if body.len() != used {
        return Err(corrupt(format!(
            "{} bytes after the values' bit stream",
            body.len().saturating_sub(used)
        )));
    }
    Ok(out)
}

/// Puts the XOR bit stream of `values` (codec 5) onto `w`.
fn xor_bits<W: Bits>(values: &[f64], w: &mut W) {
    // The window of the last XOR written in full: (leading, trailing) zeros.
    let mut window: Option<(u32, u32)> = None;
    bit_stream(values, w, |w, prev, bits| {
        let x = bits ^ prev;
        if x == 0 {
            return w.put(0, 1);
        }
        let (lead, trail) = (x.leading_zeros().min(31), x.trailing_zeros());
        match window {
            // The previous window, unless it wastes more bits than a new
            // one's 11-bit header costs.
            Some((l, t)) if lead >= l && trail >= t && (lead - l) + (trail - t) <= 11 => {
                w.put(0b01, 2);
                w.put(x >> t, 64 - l - t);
            }
            _ => {
                let m = 64 - lead - trail;
                w.put(0b11, 2);
                w.put(u64::from(lead), 5);
                w.put(u64::from(m - 1), 6);
                w.put(x >> trail, m);
                window = Some((lead, trail));
            }
        }
    })
}

/// Puts a non-zero zigzagged difference `z` of `len` bits: `0` and `z` in
/// the previous `width`, unless that wastes more bits than a new width's
/// 6-bit header costs; else `1`, `0`, the new width less one and `z`.
fn put_difference<W: Bits>(w: &mut W, z: u64, len: u32, width: &mut u32) {
    if len <= *width && *width - len <= 6 {
        w.put(0, 1);
        w.put(z, *width);
    } else {
        w.put(0b01, 2);
        w.put(u64::from(len - 1), 6);
        w.put(z, len);
        *width = len;
    }
}

/// The zigzag of `b - a` (as 64-bit integers, wrapping) and its length in
/// bits.
fn zigzag_difference(a: u64, b: u64) -> (u64, u32) {
    let d = b.wrapping_sub(a) as i64;
    let z = ((d << 1) ^ (d >> 63)) as u64;
    (z, 64 - z.leading_zeros())
}

/// The difference whose zigzag is `z`.
fn unzigzag(z: u64) -> u64 {
    (((z >> 1) as i64) ^ -((z & 1) as i64)) as u64
}

const SIGN: u64 = 1 << 63;

/// Puts the signed difference bit stream of `values` (codec 7) onto `w`.
fn signed_delta_bits<W: Bits>(values: &[f64], w: &mut W) {
    let mut width = 0u32;
    bit_stream(values, w, |w, prev, bits| {
        if bits == prev {
            return w.put(0b011, 3);
        }
        let flip = (bits ^ prev) & SIGN != 0;
        let (z, len) = zigzag_difference(prev & !SIGN, bits & !SIGN);
        if flip {
            w.put(0b111, 3);
            // A single bit says which width follows; the difference may
            // be 0 (`1.0` to `-1.0`).
            if width > 0 && len <= width && (width - len <= 6 || z == 0) {
                w.put(0, 1);
                w.put(z, width);
            } else {
                width = len.max(1);
                w.put(1, 1);
                w.put(u64::from(width - 1), 6);
                w.put(z, width);
            }
        } else {
            put_difference(w, z, len, &mut width);
        }
    })
}

/// The `n` values of a signed difference bit stream.
fn from_signed_delta_bits(body: &[u8], n: usize) -> Result<Vec<f64>> {
    let mut width = 0u32;
    from_bit_stream(body, n, |r, prev| {
        let (new_width, sign) = if r.get(1)? == 0 {
            (false, prev & SIGN)
        } else if r.get(1)? == 0 {
            (true, prev & SIGN)
        } else if r.get(1)? == 0 {
            return Ok(prev);
        } else {
            (r.get(1)? == 1, !prev & SIGN)
        };
        if new_width {
            width = r.get(6)? as u32 + 1;
        } else if width == 0 {
            return Err(corrupt("a difference reuses no width"));
        }
        let z = r.get(width)?;
        let magnitude = (prev & !SIGN).wrapping_add(unzigzag(z));
        if magnitude & SIGN != 0 {
            return Err(corrupt("a magnitude out of range"));
        }
        Ok(sign | magnitude)
    })
}

/// The `n` values of a difference bit stream.
fn from_delta_bits(body: &[u8], n: usize) -> Result<Vec<f64>> {
    let mut width = 0u32;
    from_bit_stream(body, n, |r, prev| {
        let z = if r.get(1)? == 0 {
            if width == 0 {
                return Err(corrupt("a difference reuses no width"));
            }
            r.get(width)?
        } else if r.get(1)? == 0 {
            width = r.get(6)? as u32 + 1;
            r.get(width)?
        } else {
            0
        };
        Ok(prev.wrapping_add(unzigzag(z)))
    })
}

/// The `n` values of an XOR bit stream.
fn from_xor_bits(body: &[u8], n: usize) -> Result<Vec<f64>> {
    let mut window: Option<(u32, u32)> = None;
    from_bit_stream(body, n, |r, prev| {
        if r.get(1)? == 0 {
            return Ok(prev);
        }
        let x = if r.get(1)? == 0 {
            let (l, t) = window.ok_or_else(|| corrupt("a value reuses no window"))?;
            r.get(64 - l - t)? << t
        } else {
            let lead = r.get(5)? as u32;
            let m = r.get(6)? as u32 + 1;
            if lead + m > 64 {
                return Err(corrupt(format!("a {m}-bit value after {lead} zeros")));
            }
            let trail = 64 - lead - m;
            window = Some((lead, trail));
            r.get(m)? << trail
        };
        Ok(prev ^ x)
    })
}

/// The `n` values of an encoded chunk.
pub(crate) fn decode(blob: &[u8], n: usize) -> Result<Vec<f64>> {
    let (&codec, body) = blob.split_first().ok_or_else(|| corrupt("empty values"))?;
    match codec {
        RAW => {
            if body.len() != n * 8 {
                return Err(corrupt(format!("{} value bytes for {n} steps", body.len())));
            }
            Ok(body
                .chunks_exact(8)
                .map(|b| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    f64::from_le_bytes(a)
                })
                .collect())
        }
        SHUFFLED_ZSTD => {
            let bytes = decompress(body, n * 8)?;
            Ok(unshuffle(&bytes, n)
                .into_iter()
                .map(f64::from_le_bytes)
                .collect())
        }
        XOR_ZSTD => {
            let bytes = decompress(body, n * 8)?;
            let mut prev = 0u64;
            Ok(unshuffle(&bytes, n)
                .into_iter()
                .map(|w| {
                    prev ^= u64::from_le_bytes(w);
                    f64::from_bits(prev)
                })
                .collect())
        }
        XOR_BITS => from_xor_bits(body, n),
        DELTA_BITS => from_delta_bits(body, n),
        SIGNED_DELTA_BITS => from_signed_delta_bits(body, n),
        DECIMAL => {
            let (&digits, packed) = body.split_first().ok_or_else(|| corrupt("no digits"))?;
            if digits > MAX_DIGITS {
                return Err(corrupt(format!("{digits} decimal digits")));
            }
            let scale = 10f64.powi(i32::from(digits));
            let bytes = decompress(packed, n * 8)?;
            Ok(unshuffle(&bytes, n)
                .into_iter()
                .map(|w| i64::from_le_bytes(w) as f64 / scale)
                .collect())
        }
        other => Err(corrupt(format!("unknown values codec {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// Puts the difference bit stream of `values` (codec 6, as the
    /// releases that wrote it did) onto `w`.
    fn delta_bits<W: Bits>(values: &[f64], w: &mut W) {
        let mut width = 0u32;
        bit_stream(values, w, |w, prev, bits| {
            let (z, len) = zigzag_difference(prev, bits);
            if z == 0 {
                return w.put(0b11, 2);
            }
            put_difference(w, z, len, &mut width);
        })
    }

    /// Codec 6's bit stream of `values`.
    fn codec6(values: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = BitWriter {
            out: &mut out,
            acc: 0,
            pending: 0,
        };
        delta_bits(values, &mut w);
        w.finish();
        out
    }

    #[test]
    fn values_round_trip_raw_or_shuffled() -> Result<()> {
        let integers: Vec<f64> = (0..64).map(|i| (i % 7) as f64).collect();
        let packed = encode(&integers);
        // Integers are decimals with no digits: their i64s pack tightest.
        assert_eq!(&packed[..2], &[DECIMAL, 0]);
        assert!(packed.len() < 64 * 2, "{}", packed.len());
        assert_eq!(decode(&packed, 64)?, integers);
        let noise: Vec<f64> = (0..5u64)
            .map(|i| f64::from_bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 2))
            .collect();
        let packed = encode(&noise);
        assert_eq!(packed[0], RAW);
        assert_eq!(decode(&packed, 5)?, noise);
        // A walk: neighbours share their leading bits.
        let mut x = 10.0f64;
        let walk: Vec<f64> = (0..64u64)
            .map(|i| {
                x += ((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64)
                    - 0.5;
                x
            })
            .collect();
        let packed = encode(&walk);
        assert!(
            matches!(packed[0], XOR_BITS | SIGNED_DELTA_BITS),
            "{}",
            packed[0]
        );
        assert!(packed.len() < 64 * 8, "{}", packed.len());
        assert_eq!(decode(&packed, 64)?, walk);
        // Values whose shuffled bytes repeat, but are no decimals.
        let halves: Vec<f64> = (0..64)
            .map(|i| 1.0 + (i % 4) as f64 * 2f64.powi(-30))
            .collect();
        let packed = encode(&halves);
        assert!(
            matches!(packed[0], XOR_BITS | SIGNED_DELTA_BITS),
            "{}",
            packed[0]
        );
        assert!(packed.len() < 64 * 2, "{}", packed.len());
        assert_eq!(decode(&packed, 64)?, halves);
        // Codec 2 (shuffled, no XOR) still reads back.
        let shuffled = [SHUFFLED_ZSTD]
            .into_iter()
            .chain(compress(&shuffle(halves.iter().map(|v| v.to_le_bytes()))).unwrap_or_default())
            .collect::<Vec<u8>>();
        assert_eq!(decode(&shuffled, 64)?, halves);
        // XOR of neighbours, decoded back bit for bit.
        let xor = [XOR_ZSTD]
            .into_iter()
            .chain(
                compress(&shuffle(
                    [1.5f64, 1.5, -3.0]
                        .iter()
                        .scan(0u64, |p, v| {
                            let w = v.to_bits() ^ *p;
                            *p = v.to_bits();
                            Some(w.to_le_bytes())
                        })
                        .collect::<Vec<_>>()
                        .into_iter(),
                ))
                .unwrap_or_default(),
            )
            .collect::<Vec<u8>>();
        assert_eq!(decode(&xor, 3)?, [1.5, 1.5, -3.0]);
        assert!(matches!(
            decode(&packed, 6),
            Err(Error::CorruptChunk { .. })
        ));
        assert!(matches!(
            decode(&[9, 1, 2], 1),
            Err(Error::CorruptChunk { .. })
        ));
        Ok(())
    }

    /// The XOR and difference bit streams give back every bit pattern: repeats, a sign
    /// flip, XORs of all 64 bits, one bit, windows reused and renewed,
    /// infinities and NaN payloads; a cut or padded stream is corrupt.
    #[test]
    fn xor_bit_stream_round_trips_any_bits() -> Result<()> {
        let mut seed = 5u64;
        let mut noise = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed
        };
        let mut cases: Vec<Vec<f64>> = vec![
            vec![],
            vec![1.0],
            vec![0.0, -0.0, 0.0, 0.0, 3.5, 3.5],
            vec![
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::from_bits(0x7ff8_0000_dead_beef),
            ],
            vec![
                f64::from_bits(1),
                f64::from_bits(u64::MAX),
                f64::from_bits(1 << 63),
                f64::from_bits(0),
            ],
        ];
        // Changes of sign: to the same magnitude, through both zeros, a
        // difference that needs a new width right after one.
        cases.push(vec![
            1.0,
            -1.0,
            1.0,
            -0.5,
            0.25,
            -0.0,
            0.0,
            -0.0,
            f64::MAX,
            -f64::MIN_POSITIVE,
        ]);
        cases.push(vec![-3.0, -3.0, 3.0, 3.0, -1e-300, 1e300, -1e300, 2.5]);
        let mut walk = 0.4f64;
        cases.push(
            (0..64)
                .map(|i| {
                    walk += f64::from(i % 5) * 0.21 - 0.43;
                    walk
                })
                .collect(),
        );
        cases.push((0..64).map(|_| f64::from_bits(noise())).collect());
        cases.push((0..64).map(|i| 1000.0 + f64::from(i) * 0.001).collect());
        cases.push(
            (0..64)
                .map(|_| f64::from_bits(noise() & 0xffff_0000_0000_ff00))
                .collect(),
        );
        for values in &cases {
            let mut body = Vec::new();
            write_bits(values, XOR_BITS, &mut body);
            let back = from_xor_bits(&body, values.len())?;
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back), bits(values));
            let deltas = codec6(values);
            assert_eq!(bits(&from_delta_bits(&deltas, values.len())?), bits(values));
            if !deltas.is_empty() {
                assert!(from_delta_bits(&deltas[..deltas.len() - 1], values.len()).is_err());
            }
            let mut signed = Vec::new();
            write_bits(values, SIGNED_DELTA_BITS, &mut signed);
            let back = from_signed_delta_bits(&signed, values.len())?;
            assert_eq!(bits(&back), bits(values));
            if !signed.is_empty() {
                let cut = &signed[..signed.len() - 1];
                assert!(from_signed_delta_bits(cut, values.len()).is_err());
            }
            // The counted streams are as long as the written ones.
            let (mut xor, mut delta, mut signed_delta) = (BitCount(0), BitCount(0), BitCount(0));
            xor_bits(values, &mut xor);
            delta_bits(values, &mut delta);
            signed_delta_bits(values, &mut signed_delta);
            assert_eq!(xor.0.div_ceil(8) as usize, body.len());
            assert_eq!(delta.0.div_ceil(8) as usize, deltas.len());
            assert_eq!(signed_delta.0.div_ceil(8) as usize, signed.len());
            let packed = encode(values);
            assert_eq!(bits(&decode(&packed, values.len())?), bits(values));
            // The smallest of the streams written, the decimals and raw.
            let smallest = (body.len().min(signed.len()) + 1).min(values.len() * 8 + 1);
            assert!(packed.len() <= smallest, "{} > {smallest}", packed.len());
            if !body.is_empty() {
                let cut = &body[..body.len() - 1];
                assert!(from_xor_bits(cut, values.len()).is_err());
                let mut padded = body.clone();
                padded.push(0);
                assert!(from_xor_bits(&padded, values.len()).is_err());
            }
        }
        Ok(())
    }

    /// A walk that crosses zero: codec 7 spends the magnitudes' difference
    /// on a change of sign (about 53 bits for neighbours within a few
    /// powers of two of each other), where codec 6's difference takes all
    /// 64; otherwise the two are alike.
    #[test]
    fn a_change_of_sign_costs_the_magnitudes_difference() {
        let crossing = [0.75, 0.5, 0.25, -0.125, -0.375, -0.625, -0.25, 0.125, 0.5];
        let (mut plain, mut signed) = (BitCount(0), BitCount(0));
        delta_bits(&crossing, &mut plain);
        signed_delta_bits(&crossing, &mut signed);
        // Two changes of sign, each at least 8 bits cheaper.
        assert!(signed.0 + 16 <= plain.0, "{} vs {}", signed.0, plain.0);
        let positive: Vec<f64> = crossing.iter().map(|v| v + 10.0).collect();
        let (mut plain, mut signed) = (BitCount(0), BitCount(0));
        delta_bits(&positive, &mut plain);
        signed_delta_bits(&positive, &mut signed);
        assert_eq!(signed.0, plain.0);
    }

    /// Damaged chunks (bits flipped, bytes cut or added, a wrong count)
    /// decode to values or to `CorruptChunk`, never a panic, whatever the
    /// codec.
    #[test]
    fn damaged_chunks_never_panic() {
        let mut seed = 17u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 11
        };
        let mut walk = 0.0f64;
        let series: Vec<Vec<f64>> = vec![
            (0..64).map(|i| f64::from(i % 9)).collect(),
            (0..64).map(|i| f64::from(i % 50) / 100.0).collect(),
            (0..64)
                .map(|i| {
                    walk += f64::from(i % 7) - 3.1;
                    walk
                })
                .collect(),
            (0..64)
                .map(|i| 1.0 + f64::from(i % 4) * 2f64.powi(-30))
                .collect(),
            (0..5u64)
                .map(|i| f64::from_bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .collect(),
        ];
        for values in &series {
            let packed = encode(values);
            for _ in 0..2000 {
                let mut damaged = packed.clone();
                match next() % 4 {
                    0 => {
                        let i = (next() as usize) % damaged.len();
                        damaged[i] ^= 1 << (next() % 8);
                    }
                    1 => damaged.truncate((next() as usize) % damaged.len()),
                    2 => damaged.push(next() as u8),
                    _ => damaged[0] = (next() % 8) as u8,
                }
                let n = (next() % 66) as usize;
                if let Err(e) = decode(&damaged, n) {
                    assert!(matches!(e, crate::error::Error::CorruptChunk { .. }), "{e}");
                }
            }
        }
    }
}
