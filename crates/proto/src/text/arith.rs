//! `incr`, `decr` (§11).

use super::cursor::{u64_wrapping, Cursor};
use super::{owned, parse_options};
use crate::request::Request;

pub(super) fn parse(c: &mut Cursor<'_>, incr: bool) -> Request {
    parse_inner(c, incr).unwrap_or(Request::Error)
}

fn parse_inner(c: &mut Cursor<'_>, incr: bool) -> Option<Request> {
    let key = owned(c.key()?);
    let delta = u64_wrapping(c.number())?;
    let options = parse_options(c, true, true)?;
    Some(Request::Arith {
        incr,
        key,
        delta,
        options,
    })
}
