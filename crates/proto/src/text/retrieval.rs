//! `get`, `gets` (§8) and `keys` (§16).

use super::cursor::{c_int, Cursor, MAX_KEY_LEN};
use super::owned;
use crate::request::Request;

pub(super) fn parse_get(c: &mut Cursor<'_>, with_version: bool) -> Request {
    let mut keys = Vec::new();
    loop {
        let w = c.word();
        if w.is_empty() {
            break;
        }
        if w.len() > MAX_KEY_LEN {
            return Request::Error;
        }
        keys.push(owned(w));
    }
    if keys.is_empty() {
        return Request::Error;
    }
    Request::Get { keys, with_version }
}

pub(super) fn parse_keys(c: &mut Cursor<'_>) -> Request {
    let mut words = Vec::new();
    loop {
        let w = c.word();
        if w.is_empty() {
            break;
        }
        words.push(w);
    }
    if words.len() < 2 {
        return Request::Error;
    }
    let Some(limit_tok) = words.pop() else {
        return Request::Error;
    };
    let limit = match c_int(limit_tok) {
        Some(n) if n > 0 => n as u32,
        _ => return Request::Error,
    };
    if words.iter().any(|w| w.len() > MAX_KEY_LEN) {
        return Request::Error;
    }
    Request::Keys {
        prefixes: words.into_iter().map(owned).collect(),
        limit,
    }
}
