//! Administrative commands: `flush_all`, `ping`, `version`, `meta`, `stats`,
//! `show`, `kill`, `verbosity`, `quit` (§13, §18–§24, §29).

use super::cursor::{c_int, c_long, c_uint_wrapping, digits_u64, Cursor};
use super::parse_options;
use crate::request::{Request, StatsKind};

/// Commands that take no argument at all.
pub(super) fn no_args(c: &mut Cursor<'_>, r: Request) -> Request {
    if c.at_end() {
        r
    } else {
        Request::Error
    }
}

pub(super) fn parse_flush_all(c: &mut Cursor<'_>) -> Request {
    let delay = c.number();
    if !delay.is_empty() && c_long(delay).is_none() {
        return Request::Error;
    }
    match parse_options(c, false, true) {
        Some(o) => Request::FlushAll { noreply: o.noreply },
        None => Request::Error,
    }
}

pub(super) fn parse_stats(c: &mut Cursor<'_>) -> Request {
    let kind = match c.word() {
        b"" => StatsKind::General,
        b"items" => StatsKind::Items,
        b"slabs" => StatsKind::Slabs,
        b"sizes" => StatsKind::Sizes,
        b"settings" => StatsKind::Settings,
        b"cachedump" => {
            let (Some(slab), Some(limit)) = (digits_u32(c.number()), digits_u32(c.number())) else {
                return Request::Error;
            };
            StatsKind::Cachedump { slab, limit }
        }
        b"nodes" => StatsKind::Nodes,
        b"threads" => match c.word() {
            b"" => StatsKind::Threads,
            b"request" => StatsKind::ThreadsRequest,
            b"slave" => StatsKind::ThreadsSlave,
            b"queue" => StatsKind::ThreadsQueue,
            _ => return Request::Error,
        },
        _ => return Request::Error,
    };
    Request::Stats(kind)
}

fn digits_u32(tok: &[u8]) -> Option<u32> {
    digits_u64(tok).and_then(|v| u32::try_from(v).ok())
}

pub(super) fn parse_show(c: &mut Cursor<'_>) -> Request {
    if c.word() == b"variables" {
        Request::ShowVariables
    } else {
        Request::Error
    }
}

pub(super) fn parse_kill(c: &mut Cursor<'_>) -> Request {
    match c_uint_wrapping(c.number()) {
        Some(thread_id) if c.at_end() => Request::Kill { thread_id },
        _ => Request::Error,
    }
}

/// `version` answers whatever follows, as memcached 1.6 does (1.3.4
/// answered `ERROR` to `version <args>`; clients that read the version
/// number to choose a dialect send arguments).
pub(super) fn parse_version(_c: &mut Cursor<'_>) -> Request {
    Request::Version
}

pub(super) fn parse_verbosity(c: &mut Cursor<'_>) -> Request {
    let mut probe = c.clone();
    if probe.word() == b"noreply" && probe.at_end() {
        // memcached 1.6: no level, and no reply either
        return Request::Ignored;
    }
    let Some(level) = c_int(c.number()) else {
        return Request::Error;
    };
    match parse_options(c, false, true) {
        Some(o) => Request::Verbosity {
            level,
            noreply: o.noreply,
        },
        None => Request::Error,
    }
}

/// `quit`, with or without arguments, closes the connection (memcached
/// 1.6; 1.3.4 ignored `quit <args>` and kept the connection open).
pub(super) fn parse_quit(_c: &mut Cursor<'_>) -> Request {
    Request::Quit
}

/// `failpoint <name> [<actions>]` (test builds only; see [`Request::Failpoint`]).
pub(super) fn parse_failpoint(c: &mut Cursor<'_>) -> Request {
    let name = c.word();
    let actions = c.word();
    if name.is_empty() || !c.at_end() {
        return Request::Error;
    }
    match (std::str::from_utf8(name), std::str::from_utf8(actions)) {
        (Ok(name), Ok(actions)) => Request::Failpoint {
            name: name.to_string(),
            actions: actions.to_string(),
        },
        _ => Request::Error,
    }
}

/// `auth challenge <nonce>` / `auth response <proof>` (hex tokens).
pub(super) fn parse_auth(c: &mut Cursor<'_>) -> Request {
    let step = c.word();
    let token = c.word();
    if token.is_empty() || token.len() > 128 || !c.at_end() {
        return Request::Error;
    }
    let Ok(token) = std::str::from_utf8(token) else {
        return Request::Error;
    };
    match step {
        b"challenge" => Request::AuthChallenge {
            nonce: token.to_string(),
        },
        b"response" => Request::AuthResponse {
            proof: token.to_string(),
        },
        _ => Request::Error,
    }
}
