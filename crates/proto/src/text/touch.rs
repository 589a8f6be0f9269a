//! `touch` (§9) and Flare's single-key `gat` (§10).

use super::cursor::{digits_u64, Cursor};
use super::{owned, parse_options};
use crate::request::Request;

pub(super) fn parse(c: &mut Cursor<'_>, gat: bool) -> Request {
    parse_inner(c, gat).unwrap_or(Request::Error)
}

fn parse_inner(c: &mut Cursor<'_>, gat: bool) -> Option<Request> {
    let key = owned(c.key()?);
    let exptime = i64::try_from(digits_u64(c.number())?).ok()?;
    let version_tok = c.number();
    let version = if version_tok.is_empty() {
        0
    } else {
        digits_u64(version_tok)?
    };
    let noreply = parse_options(c, false, false)?.noreply;
    Some(if gat {
        Request::Gat {
            key,
            exptime,
            noreply,
        }
    } else {
        Request::Touch {
            key,
            exptime,
            version,
            noreply,
        }
    })
}
