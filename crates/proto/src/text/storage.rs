//! `set`, `add`, `replace`, `append`, `prepend`, `cas` (protocol.md §6, §7).

use bytes::Bytes;

use super::cursor::{digits_u64, Cursor};
use super::{owned, parse_options, LineParse};
use crate::request::{Request, Store, StoreKind};

/// Declared sizes at or above this are rejected (`ERROR`): the original
/// overflows an int adding the 2-byte trailer (protocol.md §33).
pub const MAX_DECLARED_BYTES: u64 = 2_147_483_645;

pub(super) fn parse(cmd: &[u8], c: &mut Cursor<'_>) -> LineParse {
    let kind = match cmd {
        b"set" => StoreKind::Set,
        b"add" => StoreKind::Add,
        b"replace" => StoreKind::Replace,
        b"append" => StoreKind::Append,
        b"prepend" => StoreKind::Prepend,
        _ => StoreKind::Cas,
    };
    match header(kind, c) {
        Some((store, bytes)) => LineParse::Data { store, bytes },
        None => LineParse::Done(Request::Error),
    }
}

fn header(kind: StoreKind, c: &mut Cursor<'_>) -> Option<(Store, usize)> {
    let key = c.key()?;
    let flags = u32::try_from(digits_u64(c.number())?).ok()?;
    let exptime = i64::try_from(digits_u64(c.number())?).ok()?;
    let bytes = digits_u64(c.number())?;
    if bytes > MAX_DECLARED_BYTES {
        return None;
    }
    let version_tok = c.number();
    let version = if version_tok.is_empty() {
        if kind == StoreKind::Cas {
            return None;
        }
        0
    } else {
        digits_u64(version_tok)?
    };
    let options = parse_options(c, true, true)?;
    let store = Store {
        kind,
        key: owned(key),
        flags,
        exptime,
        version,
        options,
        data: Bytes::new(),
    };
    Some((store, usize::try_from(bytes).ok()?))
}
