//! The two token readers of the original parser (protocol.md §2.2).
//!
//! * [`Cursor::word`] skips spaces and takes every byte up to the next space or NUL.
//! * [`Cursor::number`] skips spaces and takes the longest run of `0-9` and `-`,
//!   without requiring a space after it; if the next byte is anything else the
//!   token is empty and only the spaces were consumed.
//!
//! Only the space `0x20` separates tokens; TAB is an ordinary byte.

/// Longest key accepted by the text protocol (the original's 8192-byte token buffer).
pub const MAX_KEY_LEN: usize = 8191;

/// A read position in one request line (CRLF already removed).
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(line: &'a [u8]) -> Self {
        Cursor { line, pos: 0 }
    }

    fn skip_spaces(&mut self) {
        while self.pos < self.line.len() && self.line[self.pos] == b' ' {
            self.pos += 1;
        }
    }

    /// Next word; empty when the line is exhausted (or at a NUL byte).
    pub fn word(&mut self) -> &'a [u8] {
        self.skip_spaces();
        let start = self.pos;
        while self.pos < self.line.len() && !matches!(self.line[self.pos], b' ' | 0) {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// Next number token (`[0-9-]*`); empty when absent.
    pub fn number(&mut self) -> &'a [u8] {
        self.skip_spaces();
        let start = self.pos;
        while self.pos < self.line.len() && matches!(self.line[self.pos], b'0'..=b'9' | b'-') {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// True when no further word follows.
    pub fn at_end(&self) -> bool {
        let mut probe = self.clone();
        probe.word().is_empty()
    }

    /// Next word as a key: `None` when missing or longer than [`MAX_KEY_LEN`].
    pub fn key(&mut self) -> Option<&'a [u8]> {
        let w = self.word();
        if w.is_empty() || w.len() > MAX_KEY_LEN {
            None
        } else {
            Some(w)
        }
    }
}

/// `[0-9]+` as u64 (no sign, no overflow).
pub fn digits_u64(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in tok {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// `-?[0-9]+`: the sign and the magnitude.
fn signed_parts(tok: &[u8]) -> Option<(bool, u64)> {
    match tok.split_first() {
        Some((b'-', rest)) => digits_u64(rest).map(|m| (true, m)),
        _ => digits_u64(tok).map(|m| (false, m)),
    }
}

/// A C `int`: `-?[0-9]+` within i32.
pub fn c_int(tok: &[u8]) -> Option<i32> {
    let (neg, mag) = signed_parts(tok)?;
    let v = if neg {
        -(i64::try_from(mag).ok()?)
    } else {
        i64::try_from(mag).ok()?
    };
    i32::try_from(v).ok()
}

/// A signed 64-bit integer `-?[0-9]+`.
pub fn c_long(tok: &[u8]) -> Option<i64> {
    let (neg, mag) = signed_parts(tok)?;
    if neg {
        0i64.checked_sub_unsigned(mag)
    } else {
        i64::try_from(mag).ok()
    }
}

/// A C `unsigned int`: `-?[0-9]+`, a negative literal wraps (`-1` = 4294967295).
pub fn c_uint_wrapping(tok: &[u8]) -> Option<u32> {
    let (neg, mag) = signed_parts(tok)?;
    let mag = u32::try_from(mag).ok()?;
    Some(if neg { mag.wrapping_neg() } else { mag })
}

/// An unsigned 64-bit delta: `-?[0-9]+`, a negative literal wraps modulo 2^64.
pub fn u64_wrapping(tok: &[u8]) -> Option<u64> {
    let (neg, mag) = signed_parts(tok)?;
    Some(if neg { mag.wrapping_neg() } else { mag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_stops_without_space() {
        let mut c = Cursor::new(b"3abc");
        assert_eq!(c.number(), b"3");
        assert_eq!(c.number(), b"");
        assert_eq!(c.word(), b"abc");
        assert!(c.at_end());
    }

    #[test]
    fn words_split_on_space_only() {
        let mut c = Cursor::new(b"  get\tfoo   bar ");
        assert_eq!(c.word(), b"get\tfoo");
        assert_eq!(c.word(), b"bar");
        assert_eq!(c.word(), b"");
    }

    #[test]
    fn numeric_forms() {
        assert_eq!(digits_u64(b"007"), Some(7));
        assert_eq!(digits_u64(b"+1"), None);
        assert_eq!(digits_u64(b"18446744073709551616"), None);
        assert_eq!(c_int(b"-5"), Some(-5));
        assert_eq!(c_int(b"1-2"), None);
        assert_eq!(c_int(b"--1"), None);
        assert_eq!(c_uint_wrapping(b"-1"), Some(u32::MAX));
        assert_eq!(u64_wrapping(b"-1"), Some(u64::MAX));
        assert_eq!(c_long(b"-9223372036854775808"), Some(i64::MIN));
    }
}
