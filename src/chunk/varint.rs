//! LEB128 lengths, as the state chunks write them: seven bits a byte, low
//! bits first, the high bit set on every byte but the last.

use super::corrupt;
use crate::error::Result;

/// Appends `n`.
pub(crate) fn put(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The length at `*at` in `bytes` (at most five bytes, under 2^35), and
/// `*at` moved past it; `CorruptChunk` naming `what` otherwise.
pub(crate) fn get(bytes: &[u8], at: &mut usize, what: &str) -> Result<usize> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let byte = *bytes
            .get(*at)
            .ok_or_else(|| corrupt(format!("truncated {what}")))?;
        *at += 1;
        n |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
        shift += 7;
        if shift > 35 {
            return Err(corrupt(format!("overlong {what}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        for n in [0, 1, 127, 128, 300, 1 << 34] {
            out.clear();
            put(&mut out, n);
            let mut at = 0;
            assert_eq!(get(&out, &mut at, "length").ok(), Some(n));
            assert_eq!(at, out.len());
        }
        assert!(get(&[0x80], &mut 0, "length").is_err());
        assert!(get(&[0xff; 6], &mut 0, "length").is_err());
    }
}
