//! The bytes of a numeric chunk (agent metrics): a codec byte, then
//!
//! - `0`: the values as little-endian `f64`, in step order (8 bytes each);
//! - `2`: the same bytes byte-shuffled (all first bytes, then all second
//!   bytes, ...) and zstd-compressed at level 1;
//! - `3`: decimals: a byte `d`, then the integers `v * 10^d` (each exactly
//!   `v` again when divided by `10^d`) as little-endian `i64`, shuffled and
//!   zstd-compressed.
//!
//! - `4`: each value's bits XORed with the previous value's (the first
//!   with 0), shuffled and zstd-compressed: neighbouring values of a walk
//!   share their sign, exponent and leading mantissa bits, which become
//!   runs of zero bytes.
//!
//! A chunk is stored as decimals where its values are decimals (integer-
//! like series are decimals with no digits: `0.123` has no short binary
//! form, `123` does), else XORed, else raw where compressing does not pay
//! (white noise).

use std::cell::RefCell;

use super::corrupt;
use crate::error::Result;

const RAW: u8 = 0;
const SHUFFLED_ZSTD: u8 = 2;
const DECIMAL: u8 = 3;
const XOR_ZSTD: u8 = 4;
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

/// The encoded bytes of `values`, compressed at most once: as decimals if
/// they are decimals (exact integers over `10^d`), else XORed with their
/// neighbours; raw where compression does not pay. (Codec 2, shuffled
/// bytes without the XOR, is read but no longer chosen: for the series
/// measured it was never smaller than the XOR by more than a few bytes,
/// and trying both doubled the compression work.)
pub(crate) fn encode(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let raw_len = n * 8 + 1;
    if let Some((digits, ints)) = as_decimals(values) {
        if let Some(packed) = compress(&shuffle(ints.iter().map(|k| k.to_le_bytes()))) {
            if packed.len() + 2 < raw_len {
                let mut out = Vec::with_capacity(packed.len() + 2);
                out.push(DECIMAL);
                out.push(digits);
                out.extend_from_slice(&packed);
                return out;
            }
        }
    }
    let mut prev = 0u64;
    let xored: Vec<[u8; 8]> = values
        .iter()
        .map(|v| {
            let word = v.to_bits() ^ prev;
            prev = v.to_bits();
            word.to_le_bytes()
        })
        .collect();
    if let Some(packed) = compress(&shuffle(xored.into_iter())) {
        if packed.len() + 1 < raw_len {
            let mut out = Vec::with_capacity(packed.len() + 1);
            out.push(XOR_ZSTD);
            out.extend_from_slice(&packed);
            return out;
        }
    }
    let mut out = Vec::with_capacity(raw_len);
    out.push(RAW);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
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
            matches!(packed[0], SHUFFLED_ZSTD | XOR_ZSTD),
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
        assert_eq!(packed[0], XOR_ZSTD);
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
}
