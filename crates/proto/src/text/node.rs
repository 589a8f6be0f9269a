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

/// Most `NODE` lines one `node sync` may carry: far above any real cluster,
/// low enough that a forged body cannot exhaust memory.
pub const MAX_SYNC_NODES: usize = 200_000;

/// The body of a `node sync`, parsed as its lines arrive.
#[derive(Debug)]
pub(super) struct SyncBody {
    /// End of the part already parsed (header line included).
    pos: usize,
    version: u64,
    nodes: Vec<NodeLine>,
}

pub(super) enum SyncOutcome {
    /// The request is complete: consume `consumed` bytes.
    Done { consumed: usize, request: Request },
    /// A body line longer than the line limit.
    LineTooLong,
}

impl SyncBody {
    pub(super) fn new(header_len: usize, version: u64) -> Self {
        SyncBody {
            pos: header_len,
            version,
            nodes: Vec::new(),
        }
    }

    /// Parse the lines that arrived since the last call. `None` = incomplete.
    pub(super) fn advance(&mut self, buf: &BytesMut, max_line: usize) -> Option<SyncOutcome> {
        loop {
            let Some(lf) = find_lf(buf, self.pos) else {
                return (buf.len() - self.pos > max_line).then_some(SyncOutcome::LineTooLong);
            };
            if lf - self.pos > max_line {
                return Some(SyncOutcome::LineTooLong);
            }
            let line = line_at(buf, self.pos, lf);
            self.pos = lf + 1;
            if line == b"END" {
                return Some(SyncOutcome::Done {
                    consumed: self.pos,
                    request: Request::NodeSync {
                        version: self.version,
                        nodes: std::mem::take(&mut self.nodes),
                    },
                });
            }
            match NodeLine::parse(line) {
                Some(n) if self.nodes.len() < MAX_SYNC_NODES => self.nodes.push(n),
                _ => {
                    return Some(SyncOutcome::Done {
                        consumed: self.pos,
                        request: Request::NodeSyncFormatError,
                    })
                }
            }
        }
    }
}
