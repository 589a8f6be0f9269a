//! memcached 1.6's meta commands: `mg`, `ms`, `md`, `ma`, `me`, `mn`
//! (protocol.txt, "Meta Commands"). Not in Flare 1.3.4.
//!
//! `<cm> <key> [<datalen>] <flag>*`: each flag is one character, maybe
//! followed by a token. Errors are memcached's `CLIENT_ERROR` lines; an `ms`
//! whose line is wrong but whose length is readable still has its data
//! block consumed, so the next request is read where it starts.

use base64::Engine as _;
use bytes::Bytes;

use super::cursor::{digits_u64, Cursor, MAX_KEY_LEN};
use super::LineParse;
use crate::request::{MetaCmd, MetaFlags, MetaMode, MetaRequest, Request};

pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format\r\n";
pub const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format\r\n";
pub const INVALID_FLAG: &str = "CLIENT_ERROR invalid flag\r\n";
pub const DUPLICATE_FLAG: &str = "CLIENT_ERROR duplicate flag\r\n";
pub const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk\r\n";
pub const OPAQUE_TOO_LONG: &str = "CLIENT_ERROR opaque token too long\r\n";
pub const INVALID_MODE: &str = "CLIENT_ERROR invalid mode for ms STORE\r\n";
pub const INVALID_ARITH_MODE: &str = "CLIENT_ERROR invalid mode for ma M token\r\n";

/// Longest `O` token (memcached's limit).
pub const MAX_OPAQUE: usize = 32;

/// Can these bytes travel as a key of the text protocol (forwarding,
/// replication, dumps)? Not empty, not longer than the text limit, and no
/// byte that ends a token or a line (space, NUL, LF; a CR is kept).
pub fn is_text_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && !key.iter().any(|b| matches!(b, b' ' | 0 | b'\n'))
}

/// The flags each command accepts (besides the ignored `P` and `L`).
fn allowed(cmd: MetaCmd) -> &'static [u8] {
    match cmd {
        MetaCmd::Get => b"bcfhklOqstuvNRT",
        MetaCmd::Set => b"bcCEFIkOqsTM",
        MetaCmd::Delete => b"bCEIkOqT",
        MetaCmd::Arith => b"bCNJDTMqtcvkO",
        MetaCmd::Debug => b"b",
    }
}

fn ttl(tok: &[u8]) -> Result<i64, &'static str> {
    let (neg, digits) = match tok.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, tok),
    };
    let v = digits_u64(digits)
        .and_then(|v| i64::try_from(v).ok())
        .ok_or(BAD_TOKEN)?;
    Ok(if neg { -v } else { v })
}

fn number(tok: &[u8]) -> Result<u64, &'static str> {
    digits_u64(tok).ok_or(BAD_TOKEN)
}

/// Parse the flags after the key (and datalen).
pub fn parse_flags(cmd: MetaCmd, c: &mut Cursor<'_>) -> Result<MetaFlags, &'static str> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 128];
    loop {
        let word = c.word();
        let Some((&flag, tok)) = word.split_first() else {
            return Ok(f);
        };
        if flag == b'P' || flag == b'L' {
            continue; // proxy hints, ignored (protocol.txt)
        }
        if !allowed(cmd).contains(&flag) {
            return Err(INVALID_FLAG);
        }
        let slot = &mut seen[usize::from(flag & 0x7f)];
        if *slot {
            return Err(DUPLICATE_FLAG);
        }
        *slot = true;
        match flag {
            b'b' => {
                f.base64 = true;
                f.ret.push(flag);
            }
            b'c' | b'f' | b'h' | b'k' | b'l' | b's' | b't' => f.ret.push(flag),
            b'q' => f.quiet = true,
            b'u' => {}
            b'v' => f.value = true,
            b'O' => {
                if tok.len() > MAX_OPAQUE {
                    return Err(OPAQUE_TOO_LONG);
                }
                f.opaque = Some(Bytes::copy_from_slice(tok));
                f.ret.push(flag);
            }
            b'T' => f.ttl = Some(ttl(tok)?),
            b'N' => f.vivify = Some(ttl(tok)?),
            b'R' => f.recache = Some(ttl(tok)?),
            b'C' => f.compare = Some(number(tok)?),
            b'E' => f.explicit = Some(number(tok)?).filter(|v| *v > 0),
            b'F' => f.client_flags = Some(u32::try_from(number(tok)?).map_err(|_| BAD_TOKEN)?),
            b'I' => f.invalidate = true,
            b'D' => f.delta = Some(number(tok)?),
            b'J' => f.initial = Some(number(tok)?),
            b'M' => {
                f.mode = match (cmd, tok) {
                    (MetaCmd::Set, b"S" | b"s") => MetaMode::Set,
                    (MetaCmd::Set, b"E" | b"e") => MetaMode::Add,
                    (MetaCmd::Set, b"R" | b"r") => MetaMode::Replace,
                    (MetaCmd::Set, b"A" | b"a") => MetaMode::Append,
                    (MetaCmd::Set, b"P" | b"p") => MetaMode::Prepend,
                    (MetaCmd::Arith, b"I" | b"i" | b"+") => MetaMode::Incr,
                    (MetaCmd::Arith, b"D" | b"d" | b"-") => MetaMode::Decr,
                    (MetaCmd::Arith, _) => return Err(INVALID_ARITH_MODE),
                    _ => return Err(INVALID_MODE),
                }
            }
            _ => return Err(INVALID_FLAG),
        }
    }
}

/// The key token, base64-decoded when the `b` flag is among the flags.
fn decode_key(raw: &[u8], base64: bool) -> Result<Bytes, &'static str> {
    let key = if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| BAD_FORMAT)?
    } else {
        raw.to_vec()
    };
    if is_text_key(&key) {
        Ok(Bytes::from(key))
    } else {
        Err(BAD_FORMAT)
    }
}

/// Whether the flags (looked at before parsing them) ask for base64 keys.
fn has_base64_flag(c: &Cursor<'_>) -> bool {
    let mut probe = c.clone();
    loop {
        match probe.word() {
            b"" => return false,
            b"b" => return true,
            _ => {}
        }
    }
}

fn invalid(e: &'static str) -> LineParse {
    LineParse::Done(Request::Invalid(e))
}

/// Parse one meta command line (`cmd` already read).
pub(super) fn parse(cmd_word: &[u8], c: &mut Cursor<'_>) -> LineParse {
    let cmd = match cmd_word {
        b"mn" => return LineParse::Done(Request::MetaNoop),
        b"mg" => MetaCmd::Get,
        b"ms" => MetaCmd::Set,
        b"md" => MetaCmd::Delete,
        b"ma" => MetaCmd::Arith,
        _ => MetaCmd::Debug,
    };
    let raw_key = c.word();
    if raw_key.is_empty() {
        return invalid(BAD_FORMAT);
    }
    let datalen = if cmd == MetaCmd::Set {
        match digits_u64(c.word()).and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Some(n),
            None => return invalid(BAD_CHUNK),
        }
    } else {
        None
    };
    let parsed =
        decode_key(raw_key, has_base64_flag(c)).and_then(|key| Ok((key, parse_flags(cmd, c)?)));
    match (parsed, datalen) {
        (Ok((key, flags)), Some(bytes)) => LineParse::MetaData {
            meta: Box::new(MetaRequest {
                cmd,
                key,
                flags,
                data: Bytes::new(),
            }),
            bytes,
        },
        (Ok((key, flags)), None) => LineParse::Done(Request::MetaOp(Box::new(MetaRequest {
            cmd,
            key,
            flags,
            data: Bytes::new(),
        }))),
        (Err(e), Some(bytes)) => LineParse::Discard {
            request: Request::Invalid(e),
            bytes,
        },
        (Err(e), None) => invalid(e),
    }
}
