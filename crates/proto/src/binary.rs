//! memcached's binary protocol (protocol.md §32), with memcached's
//! semantics: quiet opcodes are quiet, the opaque is echoed, `cas` is the
//! record's version. Chosen per request by the first byte `0x80`, so binary
//! and text requests mix on one connection.
//!
//! A binary request is decoded into the meta request that means the same
//! (a `GETK` is `mg <key> f c v`, an `INCREMENT` with an initial value is
//! `ma <key> N<exptime> J<initial> D<delta> c v`, ...) plus a [`BinContext`]
//! that remembers how to answer. The node executes the meta request like
//! any other, locally or on the node that owns the key, and
//! [`encode_reply`] turns its meta (or text) answer into the binary
//! response. One execution path serves text, meta and binary clients, and
//! the forwarding links keep speaking text.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::request::{MetaCmd, MetaFlags, MetaMode, MetaRequest, Request, StatsKind};
use crate::text::meta::is_text_key;

pub const REQUEST_MAGIC: u8 = 0x80;
pub const RESPONSE_MAGIC: u8 = 0x81;
pub const HEADER_LEN: usize = 24;

pub mod opcode {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const KEY_ENOENT: u16 = 0x0001;
    pub const KEY_EEXISTS: u16 = 0x0002;
    pub const E2BIG: u16 = 0x0003;
    pub const EINVAL: u16 = 0x0004;
    pub const NOT_STORED: u16 = 0x0005;
    pub const DELTA_BADVAL: u16 = 0x0006;
    pub const UNKNOWN_COMMAND: u16 = 0x0081;
    pub const INTERNAL_ERROR: u16 = 0x0084;
}

/// The fixed request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub opcode: u8,
    pub key_len: u16,
    pub extras_len: u8,
    pub body_len: u32,
    pub opaque: u32,
    pub cas: u64,
}

impl Header {
    /// Read the 24 header bytes at the front of `buf` (magic not checked).
    pub fn read(buf: &[u8]) -> Option<Header> {
        let h = buf.get(..HEADER_LEN)?;
        let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Header {
            opcode: h[1],
            key_len: be16(2),
            extras_len: h[4],
            body_len: be32(8),
            opaque: be32(12),
            cas: u64::from(be32(16)) << 32 | u64::from(be32(20)),
        })
    }
}

/// What answering a binary request needs besides the executed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinContext {
    pub opcode: u8,
    pub opaque: u32,
    /// The key, for `GETK`-style replies.
    pub key: Bytes,
}

impl BinContext {
    pub fn new(h: &Header) -> Self {
        BinContext {
            opcode: h.opcode,
            opaque: h.opaque,
            key: Bytes::new(),
        }
    }

    /// Quiet variants: success (for gets: a miss) is not answered.
    pub fn quiet(&self) -> bool {
        use opcode::*;
        matches!(
            self.opcode,
            GETQ | GETKQ
                | GATQ
                | GATKQ
                | SETQ
                | ADDQ
                | REPLACEQ
                | DELETEQ
                | INCREMENTQ
                | DECREMENTQ
                | QUITQ
                | FLUSHQ
                | APPENDQ
                | PREPENDQ
        )
    }

    fn is_get(&self) -> bool {
        use opcode::*;
        matches!(
            self.opcode,
            GET | GETQ | GETK | GETKQ | GAT | GATQ | GATK | GATKQ
        )
    }

    fn returns_key(&self) -> bool {
        use opcode::*;
        matches!(self.opcode, GETK | GETKQ | GATK | GATKQ)
    }
}

/// Largest body accepted besides the value: key and extras.
pub const MAX_OVERHEAD: usize = 65535 + 255;

/// Append a response packet.
pub fn put_response(
    out: &mut BytesMut,
    ctx: &BinContext,
    status: u16,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) {
    let body = extras.len() + key.len() + value.len();
    out.reserve(HEADER_LEN + body);
    out.put_u8(RESPONSE_MAGIC);
    out.put_u8(ctx.opcode);
    out.put_u16(key.len() as u16);
    out.put_u8(extras.len() as u8);
    out.put_u8(0);
    out.put_u16(status);
    out.put_u32(body as u32);
    out.put_u32(ctx.opaque);
    out.put_u64(cas);
    out.put_slice(extras);
    out.put_slice(key);
    out.put_slice(value);
}

/// An error response with memcached's message for the status.
pub fn put_error(out: &mut BytesMut, ctx: &BinContext, status: u16, message: &[u8]) {
    let message: &[u8] = if message.is_empty() {
        match status {
            status::KEY_ENOENT => b"Not found",
            status::KEY_EEXISTS => b"Data exists for key.",
            status::E2BIG => b"Too large.",
            status::EINVAL => b"Invalid arguments",
            status::NOT_STORED => b"Not stored.",
            status::DELTA_BADVAL => b"Non-numeric server-side value for incr or decr",
            status::UNKNOWN_COMMAND => b"Unknown command",
            _ => b"Internal error",
        }
    } else {
        message
    };
    put_response(out, ctx, status, 0, &[], &[], message);
}

fn meta(cmd: MetaCmd, key: Bytes, flags: MetaFlags, data: Bytes) -> Request {
    Request::MetaOp(Box::new(MetaRequest {
        cmd,
        key,
        flags,
        data,
    }))
}

/// Return flags `f` (client flags) and `c` (cas).
fn ret_fc() -> Vec<u8> {
    vec![b'f', b'c']
}

/// The request a complete binary packet (header + body) stands for; the
/// key of `ctx` is filled in. Malformed packets become `Invalid`, unknown
/// opcodes `Error`.
pub fn decode_body(h: &Header, body: Bytes, ctx: &mut BinContext) -> Request {
    use opcode::*;
    const EINVAL: Request = Request::Invalid("CLIENT_ERROR invalid arguments\r\n");
    let (ext_len, key_len) = (usize::from(h.extras_len), usize::from(h.key_len));
    if ext_len + key_len > body.len() {
        return EINVAL;
    }
    let extras = body.slice(..ext_len);
    let key = body.slice(ext_len..ext_len + key_len);
    let value = body.slice(ext_len + key_len..);
    ctx.key = key.clone();
    let be32 = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let be64 = |b: &[u8], i: usize| u64::from(be32(b, i)) << 32 | u64::from(be32(b, i + 4));
    let cas = (h.cas != 0).then_some(h.cas);
    let keyed = |ok_ext: bool, ok_value: bool| ok_ext && ok_value && is_text_key(&key);
    match h.opcode {
        GET | GETQ | GETK | GETKQ => {
            if !keyed(ext_len == 0, value.is_empty()) {
                return EINVAL;
            }
            let flags = MetaFlags {
                ret: ret_fc(),
                value: true,
                ..Default::default()
            };
            meta(MetaCmd::Get, key, flags, Bytes::new())
        }
        GAT | GATQ | GATK | GATKQ | TOUCH => {
            if !keyed(ext_len == 4, value.is_empty()) {
                return EINVAL;
            }
            let flags = MetaFlags {
                ret: ret_fc(),
                value: h.opcode != TOUCH,
                ttl: Some(i64::from(be32(&extras, 0))),
                ..Default::default()
            };
            meta(MetaCmd::Get, key, flags, Bytes::new())
        }
        SET | SETQ | ADD | ADDQ | REPLACE | REPLACEQ => {
            if !keyed(ext_len == 8, true) {
                return EINVAL;
            }
            let mode = match h.opcode {
                SET | SETQ => MetaMode::Set,
                ADD | ADDQ => MetaMode::Add,
                _ => MetaMode::Replace,
            };
            let flags = MetaFlags {
                ret: vec![b'c'],
                client_flags: Some(be32(&extras, 0)),
                ttl: Some(i64::from(be32(&extras, 4))),
                compare: cas,
                mode,
                ..Default::default()
            };
            meta(MetaCmd::Set, key, flags, value)
        }
        APPEND | APPENDQ | PREPEND | PREPENDQ => {
            if !keyed(ext_len == 0, true) {
                return EINVAL;
            }
            let mode = if matches!(h.opcode, APPEND | APPENDQ) {
                MetaMode::Append
            } else {
                MetaMode::Prepend
            };
            let flags = MetaFlags {
                ret: vec![b'c'],
                compare: cas,
                mode,
                ..Default::default()
            };
            meta(MetaCmd::Set, key, flags, value)
        }
        DELETE | DELETEQ => {
            if !keyed(ext_len == 0 || ext_len == 4, value.is_empty()) {
                return EINVAL;
            }
            let flags = MetaFlags {
                compare: cas,
                ..Default::default()
            };
            meta(MetaCmd::Delete, key, flags, Bytes::new())
        }
        INCREMENT | INCREMENTQ | DECREMENT | DECREMENTQ => {
            if !keyed(ext_len == 20, value.is_empty()) {
                return EINVAL;
            }
            let exptime = be32(&extras, 16);
            let create = exptime != u32::MAX;
            let flags = MetaFlags {
                ret: vec![b'c'],
                value: true,
                delta: Some(be64(&extras, 0)),
                initial: create.then(|| be64(&extras, 8)),
                vivify: create.then_some(i64::from(exptime)),
                compare: cas,
                mode: if matches!(h.opcode, INCREMENT | INCREMENTQ) {
                    MetaMode::Incr
                } else {
                    MetaMode::Decr
                },
                ..Default::default()
            };
            meta(MetaCmd::Arith, key, flags, Bytes::new())
        }
        QUIT | QUITQ | NOOP | VERSION => {
            if ext_len != 0 || !key.is_empty() || !value.is_empty() {
                return EINVAL;
            }
            match h.opcode {
                NOOP => Request::Noop,
                VERSION => Request::Version,
                _ => Request::Quit,
            }
        }
        FLUSH | FLUSHQ => {
            if (ext_len != 0 && ext_len != 4) || !key.is_empty() || !value.is_empty() {
                return EINVAL;
            }
            Request::FlushAll { noreply: false }
        }
        VERBOSITY => {
            if ext_len != 4 || !key.is_empty() || !value.is_empty() {
                return EINVAL;
            }
            Request::Verbosity {
                level: be32(&extras, 0) as i32,
                noreply: false,
            }
        }
        STAT => {
            if ext_len != 0 || !value.is_empty() {
                return EINVAL;
            }
            let kind = match &key[..] {
                b"" => StatsKind::General,
                b"items" => StatsKind::Items,
                b"slabs" => StatsKind::Slabs,
                b"sizes" => StatsKind::Sizes,
                b"settings" => StatsKind::Settings,
                b"nodes" => StatsKind::Nodes,
                b"threads" => StatsKind::Threads,
                b"threads request" => StatsKind::ThreadsRequest,
                b"threads slave" => StatsKind::ThreadsSlave,
                b"threads queue" => StatsKind::ThreadsQueue,
                _ => return Request::Invalid("NOT_FOUND\r\n"),
            };
            Request::Stats(kind)
        }
        _ => Request::Error,
    }
}

/// The first line of a text reply and what follows it.
fn split_line(text: &[u8]) -> (&[u8], &[u8]) {
    match text.iter().position(|&b| b == b'\n') {
        Some(p) => {
            let line = &text[..p];
            (line.strip_suffix(b"\r").unwrap_or(line), &text[p + 1..])
        }
        None => (text, &[]),
    }
}

/// The numeric token after flag `c` in a meta reply line.
fn meta_token(line: &[u8], flag: u8) -> Option<u64> {
    line.split(|&b| b == b' ')
        .skip(1)
        .find_map(|t| t.strip_prefix(&[flag][..]))
        .and_then(|t| std::str::from_utf8(t).ok()?.parse().ok())
}

/// Map an error line (`ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`) or
/// an unexpected one.
fn put_error_line(out: &mut BytesMut, ctx: &BinContext, line: &[u8]) {
    if line == b"ERROR" {
        put_error(out, ctx, status::UNKNOWN_COMMAND, b"");
    } else if let Some(msg) = line.strip_prefix(b"CLIENT_ERROR ") {
        if msg.starts_with(b"cannot increment or decrement non-numeric value") {
            put_error(out, ctx, status::DELTA_BADVAL, b"");
        } else {
            put_error(out, ctx, status::EINVAL, msg);
        }
    } else if let Some(msg) = line.strip_prefix(b"SERVER_ERROR ") {
        if msg.starts_with(b"object too large") {
            put_error(out, ctx, status::E2BIG, b"");
        } else {
            put_error(out, ctx, status::INTERNAL_ERROR, msg);
        }
    } else if line == b"NOT_FOUND" {
        put_error(out, ctx, status::KEY_ENOENT, b"");
    } else {
        put_error(out, ctx, status::INTERNAL_ERROR, b"");
    }
}

/// Turn the node's answer to the request decoded from a binary packet
/// (a meta reply for key commands, a text reply for the others) into the
/// binary response(s), honouring quiet mode.
pub fn encode_reply(ctx: &BinContext, text: &[u8], out: &mut BytesMut) {
    use opcode::*;
    let (line, rest) = split_line(text);
    let quiet = ctx.quiet();
    match ctx.opcode {
        QUIT => return put_response(out, ctx, status::SUCCESS, 0, &[], &[], &[]),
        QUITQ => return,
        STAT if line.starts_with(b"STAT ") || line == b"END" => return put_stats(ctx, text, out),
        NOOP | FLUSH | FLUSHQ | VERBOSITY if line == b"OK" => {
            if !quiet {
                put_response(out, ctx, status::SUCCESS, 0, &[], &[], &[]);
            }
            return;
        }
        VERSION if line.starts_with(b"VERSION ") => {
            return put_response(out, ctx, status::SUCCESS, 0, &[], &[], &line[8..]);
        }
        NOOP | FLUSH | FLUSHQ | VERBOSITY | VERSION | STAT => {
            return put_error_line(out, ctx, line);
        }
        _ => {}
    }
    let code = line.get(..2).unwrap_or_default();
    if line.len() > 2 && line.get(2) != Some(&b' ') {
        return put_error_line(out, ctx, line);
    }
    let cas = meta_token(line, b'c').unwrap_or(0);
    match code {
        b"VA" => {
            let size: usize = line
                .split(|&b| b == b' ')
                .nth(1)
                .and_then(|t| std::str::from_utf8(t).ok()?.parse().ok())
                .unwrap_or(0);
            let data = rest.get(..size).unwrap_or_default();
            if ctx.is_get() {
                let flags = meta_token(line, b'f').unwrap_or(0) as u32;
                let key: &[u8] = if ctx.returns_key() { &ctx.key } else { &[] };
                put_response(
                    out,
                    ctx,
                    status::SUCCESS,
                    cas,
                    &flags.to_be_bytes(),
                    key,
                    data,
                );
            } else if !quiet {
                // incr / decr: the new value as 8 bytes
                let n: u64 = std::str::from_utf8(data)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                put_response(out, ctx, status::SUCCESS, cas, &[], &[], &n.to_be_bytes());
            }
        }
        b"HD" => {
            if ctx.opcode == TOUCH {
                let flags = meta_token(line, b'f').unwrap_or(0) as u32;
                put_response(
                    out,
                    ctx,
                    status::SUCCESS,
                    cas,
                    &flags.to_be_bytes(),
                    &[],
                    &[],
                );
            } else if !quiet {
                put_response(out, ctx, status::SUCCESS, cas, &[], &[], &[]);
            }
        }
        b"EN" | b"NF" => {
            if !(quiet && ctx.is_get()) {
                let key: &[u8] = if ctx.opcode == GETK { &ctx.key } else { &[] };
                put_response(out, ctx, status::KEY_ENOENT, 0, &[], key, b"Not found");
            }
        }
        b"NS" => {
            let st = match ctx.opcode {
                ADD | ADDQ => status::KEY_EEXISTS,
                REPLACE | REPLACEQ => status::KEY_ENOENT,
                _ => status::NOT_STORED,
            };
            put_error(out, ctx, st, b"");
        }
        b"EX" => put_error(out, ctx, status::KEY_EEXISTS, b""),
        _ => put_error_line(out, ctx, line),
    }
}

/// `STAT <name> <value>` lines to one packet each, then the empty packet.
fn put_stats(ctx: &BinContext, mut text: &[u8], out: &mut BytesMut) {
    while !text.is_empty() {
        let (line, rest) = split_line(text);
        text = rest;
        if let Some(stat) = line.strip_prefix(b"STAT ") {
            let (name, value) = match stat.iter().position(|&b| b == b' ') {
                Some(p) => (&stat[..p], &stat[p + 1..]),
                None => (stat, &b""[..]),
            };
            put_response(out, ctx, status::SUCCESS, 0, &[], name, value);
        }
    }
    put_response(out, ctx, status::SUCCESS, 0, &[], &[], &[]);
}

/// What the decoder makes of the binary packet at the front of a buffer.
pub(crate) enum Decoded {
    /// Not all of it has arrived.
    Incomplete,
    /// A whole packet, consumed.
    Packet(Header, Bytes),
    /// A body beyond the limit: the header was consumed, `skip` body bytes
    /// follow and must be discarded.
    TooLarge(Header, u64),
}

/// Decode the packet at the front of `buf` (which starts with `0x80`);
/// bodies larger than `max_body` are not buffered.
pub(crate) fn decode(buf: &mut BytesMut, max_body: usize, reserve_step: usize) -> Decoded {
    let Some(h) = Header::read(buf) else {
        return Decoded::Incomplete;
    };
    let body = h.body_len as usize;
    if body > max_body {
        buf.advance(HEADER_LEN);
        return Decoded::TooLarge(h, u64::from(h.body_len));
    }
    let total = HEADER_LEN + body;
    if buf.len() < total {
        let want = (total - buf.len()).min(reserve_step);
        if buf.capacity().saturating_mul(2) <= buf.len() + want {
            buf.reserve(want);
        }
        return Decoded::Incomplete;
    }
    buf.advance(HEADER_LEN);
    Decoded::Packet(h, buf.split_to(body).freeze())
}

#[cfg(test)]
mod tests;
