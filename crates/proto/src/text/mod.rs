//! Text protocol framing: find one request in a buffer and parse it.
//!
//! [`Parser::parse`] looks at the front of a `BytesMut`:
//! * `None`: the request is not complete yet; nothing was consumed. Read more.
//! * `Some(frame)`: the frame's bytes were consumed from the buffer.
//!
//! A request line ends at `LF` (a preceding `CR` is dropped). Storage commands
//! are complete once `bytes + 2` further bytes are buffered; `node sync` once its
//! `END` (or a bad body line) is. The parser never allocates more than the line
//! (keys are copied out of it) and the data block is split off without copying;
//! it never reserves a declared size ahead of the bytes, and a [`Decoder`]
//! examines each byte of a request once however it is split into reads.

mod admin;
mod arith;
pub mod cursor;
mod delete;
mod dump;
pub mod meta;
mod node;
mod retrieval;
mod storage;
mod touch;

use bytes::{Buf, Bytes, BytesMut};

use crate::request::{Dialect, Request, Store};
use cursor::Cursor;

/// Parser limits; see docs/compatibility.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (without its LF). A longer line is answered
    /// `CLIENT_ERROR line too long` and the connection is closed.
    pub max_line: usize,
    /// Largest data block accepted. A larger declared size is answered
    /// `SERVER_ERROR object too large for cache` and the block is skipped.
    pub max_value: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 1 << 20,
            max_value: 64 << 20,
        }
    }
}

/// One unit of input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A request, with the proxy identifier list when the line carried one.
    Request {
        proxy: Option<Vec<String>>,
        request: Request,
    },
    /// A storage command whose declared size exceeds [`Limits::max_value`]. The
    /// line was consumed; the caller must discard `skip` more bytes (data block
    /// plus trailer) and answer `SERVER_ERROR object too large for cache`.
    TooLarge { skip: u64 },
    /// No line end within [`Limits::max_line`] bytes. Fatal for the connection.
    LineTooLong,
    /// A memcached binary request (first byte `0x80`), decoded into the
    /// request it stands for; `ctx` says how to answer (crate::binary).
    Binary {
        ctx: crate::binary::BinContext,
        request: Request,
    },
    /// A binary request whose body exceeds the value limit: the header was
    /// consumed; discard `skip` more bytes and answer `E2BIG`.
    BinaryTooLarge {
        ctx: crate::binary::BinContext,
        skip: u64,
    },
    /// A binary request to a server that does not speak the binary
    /// protocol (the index): the connection is closed (TV-57).
    BinaryRefused,
}

/// Largest step by which the buffer grows ahead of a data block that is
/// still arriving.
const DATA_RESERVE_STEP: usize = 256 << 10;

/// Where a [`Decoder`] is inside the request at the front of the buffer.
#[derive(Debug, Default)]
struct DecodeState {
    /// Bytes at the front already searched for the request line's LF (or
    /// the LF's position once found).
    scanned: usize,
    /// The body of a `node sync`, parsed line by line as it arrives.
    sync: Option<node::SyncBody>,
}

/// A connection's parser: [`Parser`] plus what it already learnt about the
/// request at the front of the buffer, so each byte is examined once however
/// the request is split into reads (a `node sync` sent a line per segment,
/// a long line arriving slowly). The caller only appends to the buffer
/// between calls, except for what a returned frame consumed.
#[derive(Debug)]
pub struct Decoder {
    pub parser: Parser,
    state: DecodeState,
}

impl Decoder {
    pub fn new(parser: Parser) -> Self {
        Decoder {
            parser,
            state: DecodeState::default(),
        }
    }

    /// The next frame at the front of `buf`, or `None`: incomplete, read more.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let frame = self.parser.parse_from(buf, &mut self.state);
        if frame.is_some() {
            self.state = DecodeState::default();
        }
        frame
    }
}

/// What a command's line parser decided.
pub(crate) enum LineParse {
    /// Complete with the line.
    Done(Request),
    /// A storage command: `bytes` of data and a 2-byte trailer follow.
    Data { store: Store, bytes: usize },
    /// `ms`: the same, for a meta request.
    MetaData {
        meta: Box<crate::request::MetaRequest>,
        bytes: usize,
    },
    /// A rejected command whose data block (`bytes` + trailer) is still
    /// consumed: answered `request`.
    Discard { request: Request, bytes: usize },
    /// `node sync`: a body of `NODE` lines up to `END` follows.
    NodeSyncBody { version: u64 },
}

impl From<Request> for LineParse {
    fn from(r: Request) -> Self {
        LineParse::Done(r)
    }
}

/// The request parser for one server kind.
#[derive(Clone, Copy, Debug)]
pub struct Parser {
    pub dialect: Dialect,
    pub limits: Limits,
}

/// Position of the first LF at or after `from`, looking no further than `limit` bytes.
fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| p + from)
}

/// The line `buf[from..lf]` without a trailing CR.
fn line_at(buf: &[u8], from: usize, lf: usize) -> &[u8] {
    let line = &buf[from..lf];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Split `<a,b>rest` into the proxy list and the rest.
fn split_proxy(line: &[u8]) -> (Option<Vec<String>>, &[u8]) {
    if line.first() != Some(&b'<') {
        return (None, line);
    }
    match line.iter().position(|&b| b == b'>') {
        Some(end) => {
            let list = line[1..end]
                .split(|&b| b == b',')
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            (Some(list), &line[end + 1..])
        }
        None => (None, line),
    }
}

impl Parser {
    pub fn new(dialect: Dialect) -> Self {
        Parser {
            dialect,
            limits: Limits::default(),
        }
    }

    pub fn with_limits(dialect: Dialect, limits: Limits) -> Self {
        Parser { dialect, limits }
    }

    /// Parse the request at the front of `buf`, consuming it when complete.
    /// Stateless: a connection should use a [`Decoder`], which does not
    /// search the same bytes again on every read.
    pub fn parse(&self, buf: &mut BytesMut) -> Option<Frame> {
        Decoder::new(*self).decode(buf)
    }

    fn parse_from(&self, buf: &mut BytesMut, state: &mut DecodeState) -> Option<Frame> {
        let first = *buf.first()?;
        if first == crate::binary::REQUEST_MAGIC {
            if self.dialect != Dialect::Node {
                return Some(Frame::BinaryRefused);
            }
            let max_body = self.limits.max_value + crate::binary::MAX_OVERHEAD;
            return match crate::binary::decode(buf, max_body, DATA_RESERVE_STEP) {
                crate::binary::Decoded::Incomplete => None,
                crate::binary::Decoded::TooLarge(h, skip) => Some(Frame::BinaryTooLarge {
                    ctx: crate::binary::BinContext::new(&h),
                    skip,
                }),
                crate::binary::Decoded::Packet(h, body) => {
                    let mut ctx = crate::binary::BinContext::new(&h);
                    let head = usize::from(h.key_len) + usize::from(h.extras_len);
                    if body.len().saturating_sub(head) > self.limits.max_value {
                        // a value over the limit (the body was small enough
                        // to take in whole, and is dropped)
                        return Some(Frame::BinaryTooLarge { ctx, skip: 0 });
                    }
                    let request = crate::binary::decode_body(&h, body, &mut ctx);
                    Some(Frame::Binary { ctx, request })
                }
            };
        }
        let Some(lf) = find_lf(buf, state.scanned) else {
            state.scanned = buf.len();
            return (buf.len() > self.limits.max_line).then_some(Frame::LineTooLong);
        };
        if lf > self.limits.max_line {
            return Some(Frame::LineTooLong);
        }
        // The line end is known: later calls for this request start there.
        state.scanned = lf;
        let line_len = lf + 1;
        let line = line_at(buf, 0, lf);
        let (proxy, rest) = split_proxy(line);
        let parsed = self.parse_line(rest);
        match parsed {
            LineParse::Done(request) => {
                buf.advance(line_len);
                Some(Frame::Request { proxy, request })
            }
            LineParse::Data { store, bytes } => {
                self.with_data(buf, line_len, proxy, bytes, |data| {
                    let mut store = store;
                    store.data = data;
                    Request::Store(store)
                })
            }
            LineParse::MetaData { meta, bytes } => {
                self.with_data(buf, line_len, proxy, bytes, |data| {
                    let mut meta = meta;
                    meta.data = data;
                    Request::MetaOp(meta)
                })
            }
            LineParse::Discard { request, bytes } => {
                self.with_data(buf, line_len, proxy, bytes, |_| request)
            }
            LineParse::NodeSyncBody { version } => {
                let body = state
                    .sync
                    .get_or_insert_with(|| node::SyncBody::new(line_len, version));
                match body.advance(buf, self.limits.max_line)? {
                    node::SyncOutcome::Done { consumed, request } => {
                        buf.advance(consumed);
                        Some(Frame::Request { proxy, request })
                    }
                    node::SyncOutcome::LineTooLong => Some(Frame::LineTooLong),
                }
            }
        }
    }

    /// A request line followed by a data block of `bytes` and a 2-byte
    /// trailer: the request once all of it is buffered (`make` gets the
    /// block), `TooLarge` beyond the limit.
    fn with_data(
        &self,
        buf: &mut BytesMut,
        line_len: usize,
        proxy: Option<Vec<String>>,
        bytes: usize,
        make: impl FnOnce(Bytes) -> Request,
    ) -> Option<Frame> {
        if bytes > self.limits.max_value {
            buf.advance(line_len);
            return Some(Frame::TooLarge {
                skip: bytes as u64 + 2,
            });
        }
        let total = line_len + bytes + 2;
        if buf.len() < total {
            // Room for what comes next, never the whole declared
            // size: memory follows the bytes that arrived. Only
            // while the buffer is under half of what it asks for:
            // `reserve` may double the capacity, which would put it
            // up to twice the step ahead of the bytes.
            let want = (total - buf.len()).min(DATA_RESERVE_STEP);
            if buf.capacity().saturating_mul(2) <= buf.len() + want {
                buf.reserve(want);
            }
            return None;
        }
        buf.advance(line_len);
        let data = buf.split_to(bytes).freeze();
        buf.advance(2);
        Some(Frame::Request {
            proxy,
            request: make(data),
        })
    }

    /// Parse one request line (proxy prefix already removed).
    pub(crate) fn parse_line(&self, line: &[u8]) -> LineParse {
        let mut c = Cursor::new(line);
        let cmd = c.word();
        let node = self.dialect == Dialect::Node;
        let index = self.dialect == Dialect::Index;
        match cmd {
            b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" if node => {
                storage::parse(cmd, &mut c)
            }
            b"get" if node => retrieval::parse_get(&mut c, false).into(),
            b"gets" if node => retrieval::parse_get(&mut c, true).into(),
            b"keys" if node => retrieval::parse_keys(&mut c).into(),
            b"touch" if node => touch::parse(&mut c, false).into(),
            b"gat" if node => touch::parse(&mut c, true).into(),
            b"incr" if node => arith::parse(&mut c, true).into(),
            b"decr" if node => arith::parse(&mut c, false).into(),
            b"delete" if node => delete::parse(&mut c).into(),
            b"flush_all" if node => admin::parse_flush_all(&mut c).into(),
            b"dump" if node => dump::parse_dump(&mut c).into(),
            b"dump_key" if node => dump::parse_dump_key(&mut c).into(),
            b"node" => node::parse(&mut c, self.dialect),
            b"meta" if index => admin::no_args(&mut c, Request::Meta).into(),
            b"shutdown" if index => node::parse_shutdown(&mut c).into(),
            b"ping" => admin::no_args(&mut c, Request::Ping).into(),
            b"version" => admin::parse_version(&mut c).into(),
            b"stats" => admin::parse_stats(&mut c).into(),
            b"show" => admin::parse_show(&mut c).into(),
            b"kill" => admin::parse_kill(&mut c).into(),
            b"verbosity" => admin::parse_verbosity(&mut c).into(),
            b"quit" => admin::parse_quit(&mut c).into(),
            b"failpoint" => admin::parse_failpoint(&mut c).into(),
            b"auth" => admin::parse_auth(&mut c).into(),
            b"mg" | b"ms" | b"md" | b"ma" | b"me" | b"mn" if node => meta::parse(cmd, &mut c),
            _ => Request::Error.into(),
        }
    }
}

/// Turn a slice of the line into an owned key.
pub(crate) fn owned(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// Parse trailing option words; `allowed` says which are accepted.
pub(crate) fn parse_options(
    c: &mut Cursor<'_>,
    allow_sync: bool,
    allow_async: bool,
) -> Option<crate::request::WriteOptions> {
    let mut o = crate::request::WriteOptions::default();
    loop {
        match c.word() {
            b"" => return Some(o),
            b"noreply" => o.noreply = true,
            b"sync" if allow_sync => o.sync = true,
            b"async" if allow_async => o.asynchronous = true,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests;
