//! The client side of the protocol, used when a node forwards a request to
//! another node: encode a request as text, and find where the peer's reply
//! ends (protocol.md Appendix B). Keys and values are bytes throughout: a
//! reply is framed by its byte structure, never decoded as text.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::reply::{put_i64, put_u64};
use crate::request::{MetaMode, MetaRequest, Request, Store, WriteOptions};

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
    /// Lines up to `END` or an error line (`stats`, `node add`, `meta`).
    Block,
    /// A meta reply: `VA <size> ...` and a data block, or one line.
    Meta,
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

/// A meta request in canonical form: the return flags in their order, then
/// the others. TTLs are sent as given (the forwarder makes them absolute).
fn put_meta(out: &mut BytesMut, m: &MetaRequest) {
    use base64::Engine as _;
    out.put_slice(m.cmd.word());
    out.put_u8(b' ');
    if m.flags.base64 {
        let enc = base64::engine::general_purpose::STANDARD.encode(&m.key);
        out.put_slice(enc.as_bytes());
    } else {
        out.put_slice(&m.key);
    }
    if m.cmd == crate::request::MetaCmd::Set {
        out.put_u8(b' ');
        put_u64(out, m.data.len() as u64);
    }
    let f = &m.flags;
    let flag = |out: &mut BytesMut, c: u8| {
        out.put_u8(b' ');
        out.put_u8(c);
    };
    for &c in &f.ret {
        flag(out, c);
        if c == b'O' {
            out.put_slice(f.opaque.as_deref().unwrap_or_default());
        }
    }
    if f.value {
        flag(out, b'v');
    }
    if f.quiet {
        flag(out, b'q');
    }
    for (c, v) in [(b'T', f.ttl), (b'N', f.vivify), (b'R', f.recache)] {
        if let Some(v) = v {
            flag(out, c);
            put_i64(out, v);
        }
    }
    for (c, v) in [
        (b'C', f.compare),
        (b'E', f.explicit),
        (b'F', f.client_flags.map(u64::from)),
        (b'D', f.delta),
        (b'J', f.initial),
    ] {
        if let Some(v) = v {
            flag(out, c);
            put_u64(out, v);
        }
    }
    if f.invalidate {
        flag(out, b'I');
    }
    let mode = match f.mode {
        MetaMode::Set => None,
        MetaMode::Add => Some(b'E'),
        MetaMode::Replace => Some(b'R'),
        MetaMode::Append => Some(b'A'),
        MetaMode::Prepend => Some(b'P'),
        MetaMode::Incr => Some(b'I'),
        MetaMode::Decr => Some(b'D'),
    };
    if let Some(c) = mode {
        flag(out, b'M');
        out.put_u8(c);
    }
    out.put_slice(b"\r\n");
    if m.cmd == crate::request::MetaCmd::Set {
        out.put_slice(&m.data);
        out.put_slice(b"\r\n");
    }
}

/// The data length of a meta `VA <size> ...` line.
fn meta_value_len(line: &[u8]) -> Result<Option<usize>, FrameError> {
    if !line.starts_with(b"VA ") {
        return Ok(None);
    }
    match tokens(line).nth(1) {
        Some(n) => number(n).map(Some).ok_or(FrameError::BadValueLine),
        None => Err(FrameError::BadValueLine),
    }
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
            ..
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
            if let Request::Touch { version, .. } = req {
                if *version != 0 {
                    out.put_u8(b' ');
                    out.put_slice(version.to_string().as_bytes());
                }
            }
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
        Request::MetaOp(m) => {
            put_meta(out, m);
            return Some(ReplyKind::Meta);
        }
        Request::MetaNoop => {
            out.put_slice(b"mn");
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

/// Why a peer's reply cannot be framed. The connection it came on is out of
/// step and must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reply line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed VALUE line in a reply")]
    BadValueLine,
    #[error("bytes arrived with no request waiting for them")]
    Unexpected,
}

/// Bounds of one reply a client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest line (without its LF).
    pub max_line: usize,
    /// Largest whole reply.
    pub max_reply: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line: 64 << 10,
            max_reply: 256 << 20,
        }
    }
}

/// Position just past the LF of the line starting at `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| from + p + 1)
}

/// A line without its LF and CR.
fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The space-separated tokens of a line (its CRLF removed). Bytes, not text:
/// keys may hold any byte but space, CR, LF.
fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    trim_crlf(line)
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
}

fn number<T: std::str::FromStr>(tok: &[u8]) -> Option<T> {
    if tok.is_empty() || !tok.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
        return None;
    }
    std::str::from_utf8(tok).ok()?.parse().ok()
}

/// The data length of a `VALUE <key> <flags> <bytes> ...` line: `Ok(None)`
/// when the line is not a VALUE line, an error when it is one but malformed.
fn value_len(line: &[u8]) -> Result<Option<usize>, FrameError> {
    if !line.starts_with(b"VALUE ") {
        return Ok(None);
    }
    let mut it = tokens(line).skip(2);
    let (Some(_flags), Some(bytes)) = (it.next(), it.next()) else {
        return Err(FrameError::BadValueLine);
    };
    number(bytes).map(Some).ok_or(FrameError::BadValueLine)
}

/// A line that ends any multi-line reply early.
fn is_error_line(line: &[u8]) -> bool {
    line.starts_with(b"ERROR")
        || line.starts_with(b"CLIENT_ERROR")
        || line.starts_with(b"SERVER_ERROR")
}

/// Finds where one reply ends in a growing buffer. It remembers how far it
/// got, so a large reply arriving in many reads is scanned once in all
/// (not once per read), and it is bounded by [`ReplyLimits`].
#[derive(Clone, Debug)]
pub struct ReplyFramer {
    kind: ReplyKind,
    limits: ReplyLimits,
    /// Bytes at the front already known to belong to the reply.
    pos: usize,
}

impl ReplyFramer {
    pub fn new(kind: ReplyKind, limits: ReplyLimits) -> Self {
        ReplyFramer {
            kind,
            limits,
            pos: 0,
        }
    }

    /// Length of the complete reply at the front of `buf` (which holds the
    /// same bytes as at the previous call, plus more), or `None` when more
    /// bytes are needed. A reply that does not have the expected shape ends at
    /// its first line (e.g. `SERVER_ERROR ...` instead of values).
    pub fn frame(&mut self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        loop {
            let Some(end) = line_end(buf, self.pos) else {
                if buf.len() - self.pos > self.limits.max_line {
                    return Err(FrameError::LineTooLong(self.limits.max_line));
                }
                return Ok(None);
            };
            if end - self.pos - 1 > self.limits.max_line {
                return Err(FrameError::LineTooLong(self.limits.max_line));
            }
            let line = &buf[self.pos..end];
            let next = match self.kind {
                ReplyKind::Line => return Ok(Some(end)),
                ReplyKind::Values | ReplyKind::ValueOrLine | ReplyKind::Meta => {
                    let len = if self.kind == ReplyKind::Meta {
                        meta_value_len(line)?
                    } else {
                        value_len(line)?
                    };
                    let Some(n) = len else {
                        return Ok(Some(end));
                    };
                    let block_end = end
                        .checked_add(n)
                        .and_then(|e| e.checked_add(2))
                        .filter(|e| *e <= self.limits.max_reply)
                        .ok_or(FrameError::TooLarge(self.limits.max_reply))?;
                    if buf.len() < block_end {
                        return Ok(None);
                    }
                    if self.kind != ReplyKind::Values {
                        // one value block is the whole reply
                        return Ok(Some(block_end));
                    }
                    block_end
                }
                ReplyKind::Keys if line.starts_with(b"KEY ") => end,
                ReplyKind::Keys => return Ok(Some(end)),
                ReplyKind::Block => {
                    if trim_crlf(line) == b"END" || is_error_line(line) {
                        return Ok(Some(end));
                    }
                    end
                }
            };
            if next > self.limits.max_reply {
                return Err(FrameError::TooLarge(self.limits.max_reply));
            }
            self.pos = next;
        }
    }
}

/// Length of the complete reply at the front of `buf`, or `None` if more bytes
/// are needed (or the reply cannot be framed). One-shot form of
/// [`ReplyFramer`] with no size bounds, for tests and tools.
pub fn reply_len(buf: &[u8], kind: ReplyKind) -> Option<usize> {
    let limits = ReplyLimits {
        max_line: usize::MAX / 2,
        max_reply: usize::MAX / 2,
    };
    ReplyFramer::new(kind, limits).frame(buf).ok().flatten()
}

/// One item of a `dump` stream (`VALUE <key> <flags> <bytes> <version>
/// <expire>` + data block, ..., `END`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpItem {
    /// A record; `len` bytes in all (header, data, trailer).
    Record {
        key: Bytes,
        flags: u32,
        version: u64,
        expire: i64,
        value: Bytes,
        len: usize,
    },
    /// `END`: the dump is complete.
    End,
    /// Any other line: the source refused or failed (the line, without CRLF).
    Refused(Bytes),
}

/// Take the next complete dump item from the front of `buf` (consumed), or
/// `Ok(None)` when more bytes are needed. Keys are bytes.
pub fn next_dump_item(
    buf: &mut BytesMut,
    limits: ReplyLimits,
) -> Result<Option<DumpItem>, FrameError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_line {
            return Err(FrameError::LineTooLong(limits.max_line));
        }
        return Ok(None);
    };
    if lf > limits.max_line {
        return Err(FrameError::LineTooLong(limits.max_line));
    }
    let line = &buf[..=lf];
    if !line.starts_with(b"VALUE ") {
        let text = Bytes::copy_from_slice(trim_crlf(line));
        buf.advance(lf + 1);
        return Ok(Some(if &text[..] == b"END" {
            DumpItem::End
        } else {
            DumpItem::Refused(text)
        }));
    }
    let mut it = tokens(line).skip(1);
    let mut field = || it.next().ok_or(FrameError::BadValueLine);
    let key = field()?;
    let flags: u32 = number(field()?).ok_or(FrameError::BadValueLine)?;
    let bytes: usize = number(field()?).ok_or(FrameError::BadValueLine)?;
    let version: u64 = number(field()?).ok_or(FrameError::BadValueLine)?;
    let expire: i64 = number(field()?).ok_or(FrameError::BadValueLine)?;
    if it.next().is_some() {
        return Err(FrameError::BadValueLine);
    }
    // The token iterator borrows `buf`; end that borrow before `buf` is
    // reserved / advanced below (an opaque iterator may run drop glue).
    drop(it);
    let total = (lf + 1)
        .checked_add(bytes)
        .and_then(|t| t.checked_add(2))
        .filter(|t| *t <= limits.max_reply)
        .ok_or(FrameError::TooLarge(limits.max_reply))?;
    if buf.len() < total {
        // room for what comes next, never the whole declared size at once
        buf.reserve((total - buf.len()).min(1 << 20));
        return Ok(None);
    }
    let key = Bytes::copy_from_slice(key);
    buf.advance(lf + 1);
    let value = buf.split_to(bytes).freeze();
    buf.advance(2);
    Ok(Some(DumpItem::Record {
        key,
        flags,
        version,
        expire,
        value,
        len: total,
    }))
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
