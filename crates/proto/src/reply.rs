//! Reply encoders. They append to an output buffer so that pipelined replies
//! are written with one syscall.

use std::fmt::{Display, Write as _};

use bytes::{BufMut, BytesMut};

pub const STORED: &[u8] = b"STORED\r\n";
pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
pub const EXISTS: &[u8] = b"EXISTS\r\n";
pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
pub const DELETED: &[u8] = b"DELETED\r\n";
pub const TOUCHED: &[u8] = b"TOUCHED\r\n";
pub const OK: &[u8] = b"OK\r\n";
pub const END: &[u8] = b"END\r\n";
pub const ERROR: &[u8] = b"ERROR\r\n";
pub const IO_ERROR: &[u8] = b"SERVER_ERROR i/o error\r\n";
pub const UNKNOWN_ERROR: &[u8] = b"SERVER_ERROR unknown error\r\n";
pub const NO_PARTITION: &[u8] = b"SERVER_ERROR no partition available\r\n";
pub const PROXY_ERROR: &[u8] = b"SERVER_ERROR proxy error\r\n";
pub const STORAGE_ERROR: &[u8] = b"SERVER_ERROR storage error\r\n";
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
pub const LINE_TOO_LONG: &[u8] = b"CLIENT_ERROR line too long\r\n";
pub const THREAD_NOT_FOUND: &[u8] = b"CLIENT_ERROR thread not found\r\n";
pub const FORMAT_ERROR: &[u8] = b"CLIENT_ERROR format error\r\n";
pub const NODE_SYNC_ERROR: &[u8] = b"SERVER_ERROR node sync error\r\n";
pub const ITERATION_CANCELED: &[u8] = b"SERVER_ERROR iteration canceled\r\n";
pub const OPERATION_INTERRUPTED: &[u8] = b"SERVER_ERROR operation interrupted\r\n";

/// Append a decimal number.
pub fn put_u64(out: &mut BytesMut, n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut v = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.put_slice(&tmp[i..]);
}

/// Append a signed decimal number.
pub fn put_i64(out: &mut BytesMut, n: i64) {
    if n < 0 {
        out.put_u8(b'-');
    }
    put_u64(out, n.unsigned_abs());
}

/// `VALUE <key> <flags> <bytes>[ <version>]` + data block (get / gets / gat).
pub fn value(out: &mut BytesMut, key: &[u8], flags: u32, data: &[u8], version: Option<u64>) {
    out.reserve(key.len() + data.len() + 48);
    out.put_slice(b"VALUE ");
    out.put_slice(key);
    out.put_u8(b' ');
    put_u64(out, u64::from(flags));
    out.put_u8(b' ');
    put_u64(out, data.len() as u64);
    if let Some(v) = version {
        out.put_u8(b' ');
        put_u64(out, v);
    }
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// `VALUE <key> <flags> <bytes> <version> <expire>` + data block (dump).
pub fn dump_value(
    out: &mut BytesMut,
    key: &[u8],
    flags: u32,
    data: &[u8],
    version: u64,
    expire: i64,
) {
    out.reserve(key.len() + data.len() + 72);
    out.put_slice(b"VALUE ");
    out.put_slice(key);
    out.put_u8(b' ');
    put_u64(out, u64::from(flags));
    out.put_u8(b' ');
    put_u64(out, data.len() as u64);
    out.put_u8(b' ');
    put_u64(out, version);
    out.put_u8(b' ');
    put_i64(out, expire);
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// `KEY <key>`.
pub fn key_line(out: &mut BytesMut, key: &[u8]) {
    out.put_slice(b"KEY ");
    out.put_slice(key);
    out.put_slice(b"\r\n");
}

/// `STAT <name> <value>` (an empty value keeps its trailing space).
pub fn stat(out: &mut BytesMut, name: &str, value: impl Display) {
    let _ = write!(out, "STAT {name} {value}\r\n");
}

/// A number alone on a line (incr/decr result).
pub fn number_line(out: &mut BytesMut, n: u64) {
    put_u64(out, n);
    out.put_slice(b"\r\n");
}

/// Any text line plus CRLF.
pub fn line(out: &mut BytesMut, text: impl Display) {
    let _ = write!(out, "{text}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_values() {
        let mut out = BytesMut::new();
        value(&mut out, b"foo", 5, b"bar", None);
        value(&mut out, b"k", 0, b"", Some(18446744073709551615));
        assert_eq!(
            &out[..],
            b"VALUE foo 5 3\r\nbar\r\nVALUE k 0 0 18446744073709551615\r\n\r\n"
        );
        let mut out = BytesMut::new();
        dump_value(&mut out, b"d1", 3, b"xy", 7, 0);
        dump_value(&mut out, b"e", 0, b"", 1, -5);
        assert_eq!(
            &out[..],
            b"VALUE d1 3 2 7 0\r\nxy\r\nVALUE e 0 0 1 -5\r\n\r\n"
        );
    }

    #[test]
    fn encodes_stats_and_numbers() {
        let mut out = BytesMut::new();
        stat(&mut out, "5:op", "");
        number_line(&mut out, 0);
        put_i64(&mut out, -12);
        assert_eq!(&out[..], b"STAT 5:op \r\n0\r\n-12");
    }
}
