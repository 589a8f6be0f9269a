//! Key hash algorithms (cluster spec §4.2, protocol spec Appendix A).
//!
//! Every algorithm hashes the key as a C string: only the bytes before the
//! first NUL byte (if any) take part. All arithmetic is 32-bit with
//! wrap-around. [`HashAlgorithm::hash`] returns the value used for
//! partitioning: the raw result reinterpreted as `i32` and negated when
//! negative (`i32::MIN` stays `i32::MIN`, as in the original).

use std::fmt;

use crate::error::ClusterError;

/// A key hash algorithm known to Flare (`key-hash-algorithm`).
///
/// Only [`Simple`](Self::Simple), [`Crc32`](Self::Crc32) and
/// [`Jenkins`](Self::Jenkins) may be used for partitioning; the others exist
/// for internal purposes (e.g. [`Murmur`](Self::Murmur) picks connections and
/// lock stripes) or are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// Sum of the key bytes taken as signed chars (the default).
    Simple,
    /// `r = 19790217; r = r·37 + signed byte` for each byte (reserved).
    Bitshift,
    /// zlib CRC-32 (IEEE 802.3).
    Crc32,
    /// zlib Adler-32 (reserved).
    Adler32,
    /// libhashkit's MurmurHash2 variant (internal use only).
    Murmur,
    /// Bob Jenkins' lookup3 `hashlittle` with initval 13 (libhashkit `jenkins`).
    Jenkins,
}

impl HashAlgorithm {
    /// All algorithms, in declaration order.
    pub const ALL: [HashAlgorithm; 6] = [
        HashAlgorithm::Simple,
        HashAlgorithm::Bitshift,
        HashAlgorithm::Crc32,
        HashAlgorithm::Adler32,
        HashAlgorithm::Murmur,
        HashAlgorithm::Jenkins,
    ];

    /// The configuration / `meta` name of the algorithm (`"simple"`, `"crc32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Simple => "simple",
            HashAlgorithm::Bitshift => "bitshift",
            HashAlgorithm::Crc32 => "crc32",
            HashAlgorithm::Adler32 => "adler32",
            HashAlgorithm::Murmur => "murmur",
            HashAlgorithm::Jenkins => "jenkins",
        }
    }

    /// Looks an algorithm up by its exact (lower-case) name; any of the six
    /// names is accepted.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Whether the algorithm may be configured as `key-hash-algorithm`
    /// (only `simple`, `crc32` and `jenkins`).
    pub fn usable_for_partitioning(self) -> bool {
        matches!(
            self,
            HashAlgorithm::Simple | HashAlgorithm::Crc32 | HashAlgorithm::Jenkins
        )
    }

    /// Parses a `key-hash-algorithm` setting: unknown names and the reserved
    /// algorithms (`bitshift`, `adler32`, `murmur`) are errors, as they make
    /// the original index refuse to start.
    pub fn parse_for_partitioning(s: &str) -> Result<Self, ClusterError> {
        match Self::from_name(s) {
            Some(a) if a.usable_for_partitioning() => Ok(a),
            Some(a) => Err(ClusterError::HashAlgorithmNotForPartitioning(a.name())),
            None => Err(ClusterError::UnknownHashAlgorithm(s.to_owned())),
        }
    }

    /// Hashes `key` (up to its first NUL byte) and returns the final
    /// non-negative value used for partitioning. A raw result that is
    /// negative as `i32` is negated; `i32::MIN` stays `i32::MIN` (the only
    /// negative value this returns; see [`crate::ModularTable::partition`]).
    pub fn hash(self, key: &[u8]) -> i32 {
        let key = c_str(key);
        let raw = match self {
            HashAlgorithm::Simple => simple(key),
            HashAlgorithm::Bitshift => bitshift(key),
            HashAlgorithm::Crc32 => crc32(key),
            HashAlgorithm::Adler32 => adler32(key),
            HashAlgorithm::Murmur => murmur_raw(key),
            HashAlgorithm::Jenkins => jenkins(key),
        };
        let r = raw as i32;
        if r < 0 {
            r.wrapping_neg()
        } else {
            r
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Raw libhashkit murmur (MurmurHash2 variant) of `key` up to its first NUL
/// byte, without the sign fix. Used to choose a proxy thread / connection, a
/// storage lock stripe and a cluster-replication thread (`murmur(key) % n`).
pub fn murmur(key: &[u8]) -> u32 {
    murmur_raw(c_str(key))
}

/// The key as a C string: the bytes before the first NUL.
fn c_str(key: &[u8]) -> &[u8] {
    match key.iter().position(|&b| b == 0) {
        Some(n) => &key[..n],
        None => key,
    }
}

/// A byte as a C `signed char`, widened.
fn signed(b: u8) -> u32 {
    b as i8 as i32 as u32
}

fn simple(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |r, &b| r.wrapping_add(signed(b)))
}

fn bitshift(key: &[u8]) -> u32 {
    key.iter().fold(19_790_217u32, |r, &b| {
        r.wrapping_mul(37).wrapping_add(signed(b))
    })
}

/// CRC-32 (IEEE, reflected polynomial 0xEDB88320) lookup table.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// zlib `crc32(0, key, len)`.
fn crc32(key: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in key {
        c = CRC32_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// zlib `adler32(1, key, len)`.
fn adler32(key: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // Largest n such that 255·n·(n+1)/2 + (n+1)·(MOD−1) fits in u32 (zlib's NMAX).
    const NMAX: usize = 5552;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in key.chunks(NMAX) {
        for &byte in chunk {
            a += byte as u32;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// libhashkit `hashkit_murmur`.
fn murmur_raw(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = key.len() as u32;
    let seed = 0xdead_beefu32.wrapping_mul(len);
    let mut h = seed ^ len;

    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= (tail[2] as u32) << 16;
        }
        if tail.len() >= 2 {
            h ^= (tail[1] as u32) << 8;
        }
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// lookup3 `mix`.
fn jenkins_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// lookup3 `final`.
fn jenkins_final(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// Reads up to 4 bytes little-endian, zero-padded.
fn le_word(bytes: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    let n = bytes.len().min(4);
    w[..n].copy_from_slice(&bytes[..n]);
    u32::from_le_bytes(w)
}

/// libhashkit `hashkit_jenkins` = lookup3 `hashlittle(key, len, 13)`.
fn jenkins(key: &[u8]) -> u32 {
    const INITVAL: u32 = 13;
    let init = 0xdead_beefu32
        .wrapping_add(key.len() as u32)
        .wrapping_add(INITVAL);
    let (mut a, mut b, mut c) = (init, init, init);

    let mut rest = key;
    while rest.len() > 12 {
        a = a.wrapping_add(le_word(&rest[0..4]));
        b = b.wrapping_add(le_word(&rest[4..8]));
        c = c.wrapping_add(le_word(&rest[8..12]));
        jenkins_mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        // Only reachable for an empty key: `final` is skipped.
        return c;
    }
    // Last block of 1..=12 bytes, zero-padded.
    let word = |i: usize| le_word(rest.get(i..).unwrap_or(&[]));
    a = a.wrapping_add(word(0));
    b = b.wrapping_add(word(4));
    c = c.wrapping_add(word(8));
    jenkins_final(&mut a, &mut b, &mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key vectors of cluster spec §4.3: (key, simple, crc32, jenkins).
    const KEY_HASHES: &[(&[u8], i32, i32, i32)] = &[
        (b"test_key1", 921, 690310815, 174185760),
        (b"::test::key::1979", 1343, 187713242, 1700546481),
        (b"::test::key::19790217", 1545, 49614070, 459432108),
        (b"foo", 324, 1938594527, 1711779943),
        (b"bar", 309, 1996459178, 2006320315),
        (b"hello", 532, 907060870, 772589811),
        (b"key0", 377, 1532712134, 1074374777),
        (b"user:1000", 698, 1619781661, 76303748),
        (b"a", 97, 390611389, 526154096),
        (b"", 0, 0, 559038724),
        (b"abcdefghijklm", 1339, 571183454, 1239291809),
        (b"\xE3\x81\x82", 282, 1976302829, 545468882),
        (b"key-with-\xff-byte", 1343, 1665773966, 593633088),
        (
            b"0123456789012345678901234567890",
            1623,
            60085371,
            987371839,
        ),
    ];

    #[test]
    fn key_vectors_simple_crc32_jenkins() {
        for &(key, simple, crc, jenkins) in KEY_HASHES {
            let k = String::from_utf8_lossy(key);
            assert_eq!(HashAlgorithm::Simple.hash(key), simple, "simple {k:?}");
            assert_eq!(HashAlgorithm::Crc32.hash(key), crc, "crc32 {k:?}");
            assert_eq!(HashAlgorithm::Jenkins.hash(key), jenkins, "jenkins {k:?}");
        }
    }

    #[test]
    fn simple_examples() {
        assert_eq!(HashAlgorithm::Simple.hash(b"test_key1"), 921);
        // The 0xFF byte contributes -1.
        assert_eq!(HashAlgorithm::Simple.hash(b"key-with-\xff-byte"), 1343);
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // 0xCBF43926 is negative as i32 and gets negated.
        assert_eq!(
            HashAlgorithm::Crc32.hash(b"123456789"),
            (0xCBF4_3926u32 as i32).wrapping_neg()
        );
    }

    #[test]
    fn adler32_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b"123456789"), 0x091E_01DE);
        // Long input exercising the deferred modulo.
        let long = vec![0xFFu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + x as u64) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler32(&long), ((b << 16) | a) as u32);
    }

    #[test]
    fn jenkins_empty_skips_final() {
        assert_eq!(jenkins(b""), 0xdead_befc);
        assert_eq!(HashAlgorithm::Jenkins.hash(b""), 559_038_724);
    }

    #[test]
    fn murmur_reference_values() {
        // The spec's reference values are after the sign fix (operations
        // spec: "the libhashkit MurmurHash of the key, made non-negative").
        assert_eq!(HashAlgorithm::Murmur.hash(b"test_key1"), 1_808_225_538);
        assert_eq!(HashAlgorithm::Murmur.hash(b"foo"), 991_939_697);
        assert_eq!(HashAlgorithm::Murmur.hash(b""), 0);
        // Raw values: the non-negative value itself, or its negation mod 2^32.
        assert_eq!(murmur(b"test_key1"), 1_808_225_538u32.wrapping_neg());
        assert_eq!(murmur(b""), 0);
        let foo = murmur(b"foo");
        assert!(foo == 991_939_697 || foo == 991_939_697u32.wrapping_neg());
    }

    #[test]
    fn bitshift_definition() {
        // r = 19790217; r = r*37 + signed byte.
        assert_eq!(HashAlgorithm::Bitshift.hash(b""), 19_790_217);
        assert_eq!(HashAlgorithm::Bitshift.hash(b"a"), 19_790_217 * 37 + 97);
        // 0xFF is added as -1.
        assert_eq!(HashAlgorithm::Bitshift.hash(b"\xff"), 19_790_217 * 37 - 1);
    }

    #[test]
    fn key_is_a_c_string() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(alg.hash(b"foo\0bar"), alg.hash(b"foo"), "{alg}");
            assert_eq!(alg.hash(b"\0foo"), alg.hash(b""), "{alg}");
        }
        assert_eq!(murmur(b"test_key1\0zzz"), murmur(b"test_key1"));
    }

    #[test]
    fn sign_fix_is_non_negative_except_min() {
        // 128 bytes of 0x80 sum to -16384 as signed chars -> 16384.
        assert_eq!(HashAlgorithm::Simple.hash(&[0x80; 128]), 16384);
        for alg in HashAlgorithm::ALL {
            for n in 0..64u8 {
                let key: Vec<u8> = (1..=n).map(|i| i.wrapping_mul(37) | 1).collect();
                assert!(alg.hash(&key) >= 0, "{alg} {key:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        let names = [
            "simple", "bitshift", "crc32", "adler32", "murmur", "jenkins",
        ];
        for (alg, name) in HashAlgorithm::ALL.into_iter().zip(names) {
            assert_eq!(alg.name(), name);
            assert_eq!(alg.to_string(), name);
            assert_eq!(HashAlgorithm::from_name(name), Some(alg));
        }
        assert_eq!(HashAlgorithm::from_name("md5"), None);
        assert_eq!(HashAlgorithm::from_name("Simple"), None);
        assert_eq!(HashAlgorithm::from_name(""), None);
    }

    #[test]
    fn partitioning_algorithms() {
        let usable: Vec<_> = HashAlgorithm::ALL
            .into_iter()
            .filter(|a| a.usable_for_partitioning())
            .collect();
        assert_eq!(
            usable,
            [
                HashAlgorithm::Simple,
                HashAlgorithm::Crc32,
                HashAlgorithm::Jenkins
            ]
        );
        assert_eq!(
            HashAlgorithm::parse_for_partitioning("jenkins"),
            Ok(HashAlgorithm::Jenkins)
        );
        assert_eq!(
            HashAlgorithm::parse_for_partitioning("murmur"),
            Err(ClusterError::HashAlgorithmNotForPartitioning("murmur"))
        );
        assert_eq!(
            HashAlgorithm::parse_for_partitioning("sha1"),
            Err(ClusterError::UnknownHashAlgorithm("sha1".into()))
        );
    }
}
