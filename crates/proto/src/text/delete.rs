//! `delete <key> [<time>] [<version>] [options]` (§12).

use super::cursor::{digits_u64, Cursor};
use super::{owned, parse_options};
use crate::request::Request;

pub(super) fn parse(c: &mut Cursor<'_>) -> Request {
    parse_inner(c).unwrap_or(Request::Error)
}

fn optional_u64(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() {
        Some(0)
    } else {
        digits_u64(tok)
    }
}

fn parse_inner(c: &mut Cursor<'_>) -> Option<Request> {
    let key = owned(c.key()?);
    let time = i64::try_from(optional_u64(c.number())?).ok()?;
    let version = optional_u64(c.number())?;
    let options = parse_options(c, true, true)?;
    Some(Request::Delete {
        key,
        time,
        version,
        options,
    })
}
