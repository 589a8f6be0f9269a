//! `node ...` sub-commands (§17, §25–§28) and `shutdown` (§30).

use bytes::BytesMut;

use super::cursor::{c_int, digits_u64, Cursor};
use super::{find_lf, line_at, LineParse};
use crate::node::{NodeLine, Role, State};
use crate::request::{Dialect, Request};

pub(super) fn parse(c: &mut Cursor<'_>, dialect: Dialect) -> LineParse {
    let sub = c.word();
    let r = match (dialect, sub) {
        (Dialect::Node, b"sync") => {
            let tok = c.number();
            let version = if tok.is_empty() {
                Some(0)
            } else {
                digits_u64(tok)
            };
            return match version {
                Some(version) if c.at_end() => LineParse::NodeSyncBody { version },
                _ => LineParse::Done(Request::Error),
            };
        }
        (Dialect::Index, b"add") => name_port(c)
            .filter(|_| c.at_end())
            .map(|(name, port)| Request::NodeAdd { name, port }),
        (Dialect::Index, b"role") => parse_role(c),
        (Dialect::Index, b"state") => parse_state(c),
        (Dialect::Index, b"remove") => name_port(c)
            .filter(|_| c.at_end())
            .map(|(name, port)| Request::NodeRemove { name, port }),
        _ => None,
    };
    LineParse::Done(r.unwrap_or(Request::Error))
}

pub(super) fn parse_shutdown(c: &mut Cursor<'_>) -> Request {
    name_port(c)
        .filter(|_| c.at_end())
        .map(|(name, port)| Request::Shutdown { name, port })
        .unwrap_or(Request::Error)
}

fn name_port(c: &mut Cursor<'_>) -> Option<(String, i32)> {
    let name = c.word();
    if name.is_empty() {
        return None;
    }
    let port = c_int(c.number())?;
    Some((String::from_utf8_lossy(name).into_owned(), port))
}

fn parse_role(c: &mut Cursor<'_>) -> Option<Request> {
    let (name, port) = name_port(c)?;
    let role = Role::from_word(c.word())?;
    let opt = |c: &mut Cursor<'_>| {
        let tok = c.number();
        if tok.is_empty() {
            Some(-1)
        } else {
            c_int(tok)
        }
    };
    let balance = opt(c)?;
    let partition = opt(c)?;
    Some(Request::NodeRole {
        name,
        port,
        role,
        balance,
        partition,
    })
}

fn parse_state(c: &mut Cursor<'_>) -> Option<Request> {
    let (name, port) = name_port(c)?;
    let state = State::from_word(c.word())?;
    c.at_end()
        .then_some(Request::NodeState { name, port, state })
}

/// Read the body of `node sync` starting at `from`. `None` = incomplete.
/// Returns the bytes consumed (header line included) and the request.
pub(super) fn parse_sync_body(
    buf: &BytesMut,
    from: usize,
    version: u64,
) -> Option<(usize, Request)> {
    let mut pos = from;
    let mut nodes = Vec::new();
    loop {
        let lf = find_lf(buf, pos)?;
        let line = line_at(buf, pos, lf);
        pos = lf + 1;
        if line == b"END" {
            return Some((pos, Request::NodeSync { version, nodes }));
        }
        match NodeLine::parse(line) {
            Some(n) => nodes.push(n),
            None => return Some((pos, Request::NodeSyncFormatError)),
        }
    }
}
