//! The record and its on-disk encoding.
//!
//! A stored value is a 28-byte header followed by the value bytes, fields
//! packed little-endian: flags u32, expire i64, size u64, version u64
//! (operations.md §5.3, with explicit endianness).

use crate::error::StorageError;

/// Header length in bytes.
pub const HEADER_LEN: usize = 28;

/// One stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub flags: u32,
    /// Absolute unix time, 0 = never expires.
    pub expire: i64,
    /// Per-key version ("cas unique").
    pub version: u64,
    pub value: Vec<u8>,
}

impl Record {
    /// True when `0 < expire <= now` (protocol.md §4.2).
    pub fn is_expired(&self, now: i64) -> bool {
        is_expired(self.expire, now)
    }

    /// Encode header + value.
    pub fn encode(&self) -> Vec<u8> {
        encode_parts(self.flags, self.expire, self.version, &[&self.value])
    }

    /// Decode a stored value that the caller owns, without copying the value.
    pub fn from_vec(mut raw: Vec<u8>) -> Result<Record, StorageError> {
        let h = Header::decode(&raw)?;
        raw.drain(..HEADER_LEN);
        Ok(Record {
            flags: h.flags,
            expire: h.expire,
            version: h.version,
            value: raw,
        })
    }

    /// Decode a stored value.
    pub fn decode(raw: &[u8]) -> Result<Record, StorageError> {
        let h = Header::decode(raw)?;
        Ok(Record {
            flags: h.flags,
            expire: h.expire,
            version: h.version,
            value: raw[HEADER_LEN..].to_vec(),
        })
    }
}

/// True when `0 < expire <= now`.
pub fn is_expired(expire: i64, now: i64) -> bool {
    expire > 0 && expire <= now
}

/// The decoded header of a stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub flags: u32,
    pub expire: i64,
    pub version: u64,
    pub size: u64,
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// Decode and validate against the stored length.
    pub fn decode(raw: &[u8]) -> Result<Header, StorageError> {
        if raw.len() < HEADER_LEN {
            return Err(StorageError::Corrupt("shorter than the record header"));
        }
        let mut f = [0u8; 4];
        f.copy_from_slice(&raw[0..4]);
        let h = Header {
            flags: u32::from_le_bytes(f),
            expire: le_u64(&raw[4..12]) as i64,
            size: le_u64(&raw[12..20]),
            version: le_u64(&raw[20..28]),
        };
        if h.size != (raw.len() - HEADER_LEN) as u64 {
            return Err(StorageError::Corrupt(
                "actual data size differs from the header",
            ));
        }
        Ok(h)
    }
}

/// Encode a record whose value is the concatenation of `parts`.
pub fn encode_parts(flags: u32, expire: i64, version: u64, parts: &[&[u8]]) -> Vec<u8> {
    let size: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + size);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&expire.to_le_bytes());
    out.extend_from_slice(&(size as u64).to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let r = Record {
            flags: 7,
            expire: -1,
            version: 3,
            value: b"abc".to_vec(),
        };
        let raw = r.encode();
        assert_eq!(raw.len(), 31);
        assert_eq!(&raw[0..4], &[7, 0, 0, 0]);
        assert_eq!(&raw[12..20], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Record::decode(&raw).ok(), Some(r));
        assert!(Record::decode(&raw[..20]).is_err());
        assert!(Record::decode(&raw[..30]).is_err());
    }

    #[test]
    fn expiry_rule() {
        assert!(!is_expired(0, 100));
        assert!(is_expired(100, 100));
        assert!(!is_expired(101, 100));
    }
}
