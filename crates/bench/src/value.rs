//! Keys and deterministic values.
//!
//! The value of a key is a pure function of (key, size): anyone can rebuild
//! it, so every value read back can be checked without remembering what was
//! written. Layout:
//!
//! * bytes 0..16: the 16 lowercase hex digits of `h = hash(key, size)` (the
//!   first `size` of them when `size < 16`): a value stored under the wrong
//!   key does not verify;
//! * the rest: a window of a fixed pseudo-random alphanumeric pool, starting
//!   at an offset derived from `h`: a corrupted or shifted body does not
//!   verify.
//!
//! The flags are the high 32 bits of `h`. Building or checking a value is a
//! copy or a `memcmp` of the pool window: cheap enough that the generator does
//! not need to keep values in memory.

use crate::rng::{mix64, Rng};

/// Length of the pool's window starts (offsets are `< POOL_STARTS`).
const POOL_STARTS: usize = 1 << 16;
const HEADER: usize = 16;
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Append the name of key `index` (`<prefix><index>`) to `out`.
pub fn key_name(prefix: &str, index: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(prefix.as_bytes());
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = index;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// FNV-1a over the key and the size, then a SplitMix finalizer.
pub fn value_hash(key: &[u8], size: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.iter().chain(&(size as u64).to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// Why a value read back does not verify.
#[derive(Debug, PartialEq, Eq)]
pub enum Mismatch {
    Length { expected: usize, got: usize },
    Flags { expected: u32, got: u32 },
    Header,
    Body { at: usize },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Length { expected, got } => {
                write!(f, "length {got}, expected {expected}")
            }
            Mismatch::Flags { expected, got } => write!(f, "flags {got}, expected {expected}"),
            Mismatch::Header => write!(f, "header (value of another key?)"),
            Mismatch::Body { at } => write!(f, "body differs at byte {at}"),
        }
    }
}

/// Builds and verifies the values of one size.
#[derive(Clone, Debug)]
pub struct ValueGen {
    size: usize,
    pool: Vec<u8>,
}

impl ValueGen {
    pub fn new(size: usize) -> ValueGen {
        let mut rng = Rng::new(0x666c_6172_652d_7273); // fixed: same pool every run
        let len = POOL_STARTS + size.saturating_sub(HEADER);
        let pool = (0..len)
            .map(|_| ALNUM[rng.below(ALNUM.len() as u64) as usize])
            .collect();
        ValueGen { size, pool }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn header(h: u64) -> [u8; HEADER] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; HEADER];
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        }
        out
    }

    fn body(&self, h: u64) -> &[u8] {
        let start = ((h >> 8) % POOL_STARTS as u64) as usize;
        &self.pool[start..start + self.size.saturating_sub(HEADER)]
    }

    /// The flags stored with the value of `key`.
    pub fn flags(&self, key: &[u8]) -> u32 {
        (value_hash(key, self.size) >> 32) as u32
    }

    /// Append the value of `key` to `out`; returns its flags.
    pub fn write_value(&self, key: &[u8], out: &mut Vec<u8>) -> u32 {
        let h = value_hash(key, self.size);
        let head = Self::header(h);
        out.extend_from_slice(&head[..self.size.min(HEADER)]);
        out.extend_from_slice(self.body(h));
        (h >> 32) as u32
    }

    /// Check a value read back for `key`.
    pub fn verify(&self, key: &[u8], flags: u32, data: &[u8]) -> Result<(), Mismatch> {
        if data.len() != self.size {
            return Err(Mismatch::Length {
                expected: self.size,
                got: data.len(),
            });
        }
        let h = value_hash(key, self.size);
        let expected_flags = (h >> 32) as u32;
        if flags != expected_flags {
            return Err(Mismatch::Flags {
                expected: expected_flags,
                got: flags,
            });
        }
        let n = self.size.min(HEADER);
        if data[..n] != Self::header(h)[..n] {
            return Err(Mismatch::Header);
        }
        let body = self.body(h);
        if &data[n..] != body {
            let at = data[n..]
                .iter()
                .zip(body)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(Mismatch::Body { at: n + at });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Vec<u8> {
        let mut k = Vec::new();
        key_name("fb:", i, &mut k);
        k
    }

    #[test]
    fn key_names() {
        assert_eq!(key(0), b"fb:0");
        assert_eq!(key(1234567), b"fb:1234567");
        assert_eq!(key(u64::MAX), format!("fb:{}", u64::MAX).as_bytes());
    }

    #[test]
    fn values_are_deterministic_and_verify() {
        for size in [0usize, 1, 15, 16, 17, 100, 10_240] {
            let a = ValueGen::new(size);
            let b = ValueGen::new(size);
            for i in [0u64, 1, 99, 1_000_000] {
                let k = key(i);
                let (mut va, mut vb) = (Vec::new(), Vec::new());
                let fa = a.write_value(&k, &mut va);
                let fb = b.write_value(&k, &mut vb);
                assert_eq!(va.len(), size);
                assert_eq!((fa, &va), (fb, &vb), "size {size} key {i}");
                assert_eq!(fa, a.flags(&k));
                assert_eq!(a.verify(&k, fa, &va), Ok(()));
                assert!(va.iter().all(u8::is_ascii_alphanumeric));
            }
        }
    }

    #[test]
    fn values_differ_between_keys_and_sizes() {
        let g = ValueGen::new(100);
        let (mut v1, mut v2) = (Vec::new(), Vec::new());
        g.write_value(&key(1), &mut v1);
        g.write_value(&key(2), &mut v2);
        assert_ne!(v1, v2);
        let h = ValueGen::new(101);
        let mut v3 = Vec::new();
        h.write_value(&key(1), &mut v3);
        assert_ne!(&v3[..16], &v1[..16]);
    }

    #[test]
    fn verifier_catches_every_kind_of_corruption() {
        let g = ValueGen::new(100);
        let k = key(7);
        let mut v = Vec::new();
        let f = g.write_value(&k, &mut v);

        assert!(matches!(
            g.verify(&k, f, &v[..99]),
            Err(Mismatch::Length { .. })
        ));
        let mut longer = v.clone();
        longer.push(b'x');
        assert!(matches!(
            g.verify(&k, f, &longer),
            Err(Mismatch::Length { .. })
        ));
        assert!(matches!(
            g.verify(&k, f ^ 1, &v),
            Err(Mismatch::Flags { .. })
        ));
        // The value of another key (same size, flags forced equal).
        let other = key(8);
        let mut w = Vec::new();
        g.write_value(&other, &mut w);
        assert_eq!(g.verify(&k, f, &w), Err(Mismatch::Header));
        // One flipped byte in the body.
        let mut bad = v.clone();
        bad[60] ^= 0x20;
        assert_eq!(g.verify(&k, f, &bad), Err(Mismatch::Body { at: 60 }));
        // One flipped byte in the header.
        let mut bad = v.clone();
        bad[3] = b'Z';
        assert_eq!(g.verify(&k, f, &bad), Err(Mismatch::Header));
    }

    #[test]
    fn tiny_values() {
        let g = ValueGen::new(4);
        let k = key(3);
        let mut v = Vec::new();
        let f = g.write_value(&k, &mut v);
        assert_eq!(v.len(), 4);
        assert_eq!(g.verify(&k, f, &v), Ok(()));
        assert!(g.verify(&k, f, b"zzzz").is_err());
    }
}
