//! The client side of the protocol, used when a node forwards a request to
//! another node: encode a request as text, and find where the peer's reply
//! ends (protocol.md Appendix B).

use bytes::{BufMut, BytesMut};

use crate::reply::{put_i64, put_u64};
use crate::request::{Request, Store, WriteOptions};

/// What shape of reply a forwarded request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// One line (storage commands, delete, incr/decr, touch).
    Line,
    /// `VALUE` blocks then `END` (get/gets).
    Values,
    /// One `VALUE` block without `END`, or one line (gat).
    ValueOrLine,
    /// `KEY` lines then `END` (keys).
    Keys,
}

fn put_options(out: &mut BytesMut, o: WriteOptions) {
    if o.noreply {
        out.put_slice(b" noreply");
    }
    if o.sync {
        out.put_slice(b" sync");
    }
    if o.asynchronous {
        out.put_slice(b" async");
    }
}

fn put_proxy(out: &mut BytesMut, proxy: &[String]) {
    out.put_u8(b'<');
    for (i, p) in proxy.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(p.as_bytes());
    }
    out.put_u8(b'>');
}

fn put_store(out: &mut BytesMut, s: &Store) {
    out.put_slice(s.kind.name().as_bytes());
    out.put_u8(b' ');
    out.put_slice(&s.key);
    out.put_u8(b' ');
    put_u64(out, u64::from(s.flags));
    out.put_u8(b' ');
    put_i64(out, s.exptime);
    out.put_u8(b' ');
    put_u64(out, s.data.len() as u64);
    if s.version > 0 || s.kind == crate::StoreKind::Cas {
        out.put_u8(b' ');
        put_u64(out, s.version);
    }
    put_options(out, s.options);
    out.put_slice(b"\r\n");
    out.put_slice(&s.data);
    out.put_slice(b"\r\n");
}

/// Encode a request in its canonical text form, prefixed with the proxy
/// identifier `<a,b,...>` when `proxy` is given. Returns the reply shape, or
/// `None` for requests that are never forwarded.
pub fn encode_request(
    out: &mut BytesMut,
    proxy: Option<&[String]>,
    req: &Request,
) -> Option<ReplyKind> {
    if let Some(p) = proxy {
        put_proxy(out, p);
    }
    let kind = match req {
        Request::Store(s) => {
            put_store(out, s);
            return Some(ReplyKind::Line);
        }
        Request::Get { keys, with_version } => {
            out.put_slice(if *with_version { b"gets" } else { b"get" });
            for k in keys {
                out.put_u8(b' ');
                out.put_slice(k);
            }
            ReplyKind::Values
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        }
        | Request::Gat {
            key,
            exptime,
            noreply,
        } => {
            let gat = matches!(req, Request::Gat { .. });
            out.put_slice(if gat { b"gat " } else { b"touch " });
            out.put_slice(key);
            out.put_u8(b' ');
            put_i64(out, *exptime);
            if *noreply {
                out.put_slice(b" noreply");
            }
            if gat {
                ReplyKind::ValueOrLine
            } else {
                ReplyKind::Line
            }
        }
        Request::Arith {
            incr,
            key,
            delta,
            options,
        } => {
            out.put_slice(if *incr { b"incr " } else { b"decr " });
            out.put_slice(key);
            out.put_u8(b' ');
            put_u64(out, *delta);
            put_options(out, *options);
            ReplyKind::Line
        }
        Request::Delete {
            key,
            time,
            version,
            options,
        } => {
            out.put_slice(b"delete ");
            out.put_slice(key);
            out.put_u8(b' ');
            put_i64(out, *time);
            if *version > 0 {
                out.put_u8(b' ');
                put_u64(out, *version);
            }
            put_options(out, *options);
            ReplyKind::Line
        }
        Request::Keys { prefixes, limit } => {
            out.put_slice(b"keys");
            for p in prefixes {
                out.put_u8(b' ');
                out.put_slice(p);
            }
            out.put_u8(b' ');
            put_u64(out, u64::from(*limit));
            ReplyKind::Keys
        }
        _ => return None,
    };
    out.put_slice(b"\r\n");
    Some(kind)
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| from + p + 1)
}

/// The data length announced by a `VALUE <key> <flags> <bytes> ...` line.
fn value_len(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    let mut it = text.trim_end().split(' ');
    if it.next()? != "VALUE" {
        return None;
    }
    it.next()?;
    it.next()?;
    it.next()?.parse().ok()
}

/// Length of the complete reply at the front of `buf`, or `None` if more bytes
/// are needed. A reply that does not have the expected shape ends at its
/// first line (e.g. `SERVER_ERROR ...` instead of values).
pub fn reply_len(buf: &[u8], kind: ReplyKind) -> Option<usize> {
    let mut pos = 0;
    loop {
        let end = line_end(buf, pos)?;
        let line = &buf[pos..end];
        match kind {
            ReplyKind::Line => return Some(end),
            ReplyKind::Values | ReplyKind::ValueOrLine => {
                if let Some(n) = value_len(line) {
                    let block_end = end + n + 2;
                    if buf.len() < block_end {
                        return None;
                    }
                    if kind == ReplyKind::ValueOrLine {
                        return Some(block_end);
                    }
                    pos = block_end;
                } else {
                    return Some(end);
                }
            }
            ReplyKind::Keys => {
                if line.starts_with(b"KEY ") {
                    pos = end;
                } else {
                    return Some(end);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::StoreKind;
    use bytes::Bytes;

    #[test]
    fn encodes_forwarded_requests() {
        let mut out = BytesMut::new();
        let store = Store {
            kind: StoreKind::Set,
            key: Bytes::from_static(b"p1"),
            flags: 1,
            exptime: 0,
            version: 0,
            options: WriteOptions::default(),
            data: Bytes::from_static(b"hi"),
        };
        encode_request(
            &mut out,
            Some(&["127.0.0.1:12122".to_string()]),
            &Request::Store(store),
        );
        assert_eq!(&out[..], b"<127.0.0.1:12122>set p1 1 0 2\r\nhi\r\n");
        let mut out = BytesMut::new();
        encode_request(
            &mut out,
            Some(&["a:1".into(), "b:2".into()]),
            &Request::Delete {
                key: Bytes::from_static(b"k"),
                time: 0,
                version: 3,
                options: WriteOptions {
                    sync: true,
                    ..Default::default()
                },
            },
        );
        assert_eq!(&out[..], b"<a:1,b:2>delete k 0 3 sync\r\n");
    }

    #[test]
    fn finds_reply_ends() {
        assert_eq!(reply_len(b"STORED\r\nX", ReplyKind::Line), Some(8));
        assert_eq!(reply_len(b"STO", ReplyKind::Line), None);
        let v = b"VALUE a 0 3\r\nabc\r\nVALUE b 0 0\r\n\r\nEND\r\n";
        assert_eq!(reply_len(v, ReplyKind::Values), Some(v.len()));
        assert_eq!(reply_len(&v[..v.len() - 1], ReplyKind::Values), None);
        assert_eq!(
            reply_len(b"VALUE a 0 3\r\nab", ReplyKind::ValueOrLine),
            None
        );
        assert_eq!(
            reply_len(b"VALUE a 0 3\r\nabc\r\n", ReplyKind::ValueOrLine),
            Some(18)
        );
        assert_eq!(
            reply_len(b"SERVER_ERROR x\r\n", ReplyKind::Values),
            Some(16)
        );
        assert_eq!(
            reply_len(b"KEY a\r\nKEY b\r\nEND\r\n", ReplyKind::Keys),
            Some(19)
        );
    }
}
