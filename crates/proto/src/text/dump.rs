//! `dump [<wait> [<partition> [<partition_size> [<bwlimit>]]]]` (§14) and
//! `dump_key [<partition> [<partition_size> [<bwlimit>]]]` (§15).

use super::cursor::{c_int, digits_u64, Cursor};
use crate::request::{PartitionFilter, Request};

/// An optional C int: absent → `default`, malformed → `None`.
fn opt_int(c: &mut Cursor<'_>, default: i32) -> Option<i32> {
    let tok = c.number();
    if tok.is_empty() {
        Some(default)
    } else {
        c_int(tok)
    }
}

fn opt_u64(c: &mut Cursor<'_>) -> Option<u64> {
    let tok = c.number();
    if tok.is_empty() {
        Some(0)
    } else {
        digits_u64(tok)
    }
}

/// The partition arguments' cross-checks.
fn filter(partition: i32, size: i32) -> Option<Option<PartitionFilter>> {
    if size < 0 {
        return None;
    }
    if partition >= 0 {
        if size == 0 || size < partition + 1 {
            return None;
        }
        Some(Some(PartitionFilter {
            partition: partition as u32,
            partition_size: size as u32,
        }))
    } else if size > 0 {
        None
    } else {
        Some(None)
    }
}

pub(super) fn parse_dump(c: &mut Cursor<'_>) -> Request {
    let parsed = (|| {
        let wait = opt_int(c, 0)?;
        if wait < 0 {
            return None;
        }
        let partition = opt_int(c, -1)?;
        let size = opt_int(c, 0)?;
        let bwlimit_kib = opt_u64(c)?;
        Some(Request::Dump {
            wait_us: wait as u32,
            filter: filter(partition, size)?,
            bwlimit_kib,
        })
    })();
    parsed.unwrap_or(Request::Error)
}

pub(super) fn parse_dump_key(c: &mut Cursor<'_>) -> Request {
    let parsed = (|| {
        let partition = opt_int(c, -1)?;
        let size = opt_int(c, 0)?;
        let bwlimit_kib = opt_u64(c)?;
        Some(Request::DumpKey {
            filter: filter(partition, size)?,
            bwlimit_kib,
        })
    })();
    parsed.unwrap_or(Request::Error)
}
