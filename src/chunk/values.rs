//! The bytes of a numeric chunk (agent metrics): a codec byte, then
//!
//! - `0`: the values as little-endian `f64`, in step order (8 bytes each);
//! - `2`: the same bytes byte-shuffled (all first bytes, then all second
//!   bytes, ...) and zstd-compressed at level 1.
//!
//! Each chunk takes whichever is smaller: random-walk values barely
//! compress and stay raw; integer-like and decimal-like series shrink
//! several times once their bytes are shuffled into runs.

use std::cell::RefCell;

use crate::error::{Error, Result};

const RAW: u8 = 0;
const SHUFFLED_ZSTD: u8 = 2;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

fn corrupt(detail: impl Into<String>) -> Error {
    Error::CorruptChunk {
        detail: detail.into(),
    }
}

/// The encoded bytes of `values`.
pub(crate) fn encode(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut shuffled = vec![0u8; n * 8];
    for (i, v) in values.iter().enumerate() {
        for (b, byte) in v.to_le_bytes().into_iter().enumerate() {
            shuffled[b * n + i] = byte;
        }
    }
    let packed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(1)?),
        };
        compressor.compress(&shuffled)
    });
    match packed {
        Ok(packed) if packed.len() < n * 8 => {
            let mut out = Vec::with_capacity(packed.len() + 1);
            out.push(SHUFFLED_ZSTD);
            out.extend_from_slice(&packed);
            out
        }
        // Incompressible (or the compressor failed): raw is always right.
        _ => {
            let mut out = Vec::with_capacity(n * 8 + 1);
            out.push(RAW);
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out
        }
    }
}

/// The `n` values of an encoded chunk.
pub(crate) fn decode(blob: &[u8], n: usize) -> Result<Vec<f64>> {
    let (&codec, body) = blob.split_first().ok_or_else(|| corrupt("empty values"))?;
    let unshuffled;
    let raw: &[u8] = match codec {
        RAW => body,
        SHUFFLED_ZSTD => {
            let shuffled =
                zstd::bulk::decompress(body, n * 8).map_err(|e| corrupt(format!("zstd: {e}")))?;
            if shuffled.len() != n * 8 {
                return Err(corrupt(format!(
                    "{} value bytes for {n} steps",
                    shuffled.len()
                )));
            }
            let mut bytes = vec![0u8; n * 8];
            for i in 0..n {
                for b in 0..8 {
                    bytes[i * 8 + b] = shuffled[b * n + i];
                }
            }
            unshuffled = bytes;
            &unshuffled
        }
        other => return Err(corrupt(format!("unknown values codec {other}"))),
    };
    if raw.len() != n * 8 {
        return Err(corrupt(format!("{} value bytes for {n} steps", raw.len())));
    }
    Ok(raw
        .chunks_exact(8)
        .map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_le_bytes(a)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_raw_or_shuffled() -> Result<()> {
        let integers: Vec<f64> = (0..64).map(|i| (i % 7) as f64).collect();
        let packed = encode(&integers);
        assert_eq!(packed[0], SHUFFLED_ZSTD);
        assert!(packed.len() < 64 * 2, "{}", packed.len());
        assert_eq!(decode(&packed, 64)?, integers);
        let noise: Vec<f64> = (0..5u64)
            .map(|i| f64::from_bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 2))
            .collect();
        let packed = encode(&noise);
        assert_eq!(decode(&packed, 5)?, noise);
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
