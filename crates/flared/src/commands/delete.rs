//! `delete <key> [<time>] [<version>]`.

use bytes::{Bytes, BytesMut};
use flare_proto::{absolute_expire, reply};
use flare_storage::DeleteOutcome;

use super::Applied;
use crate::node::{now, Node};
use crate::stats::inc;

pub fn apply(
    node: &Node,
    key: &Bytes,
    time: i64,
    version: u64,
    noreply: bool,
    out: &mut BytesMut,
) -> Option<Applied> {
    let c = &node.counters;
    let now = now();
    let hold = if time > 0 {
        absolute_expire(time, now)
    } else {
        0
    };
    let mut applied = None;
    let line = match node.store.delete(key, hold, version, now) {
        Ok(DeleteOutcome::Deleted { version }) => {
            inc(&c.delete_hits);
            applied = Some(Applied::Delete(key.clone(), hold, version));
            reply::DELETED
        }
        Ok(DeleteOutcome::NotFound | DeleteOutcome::Exists) => {
            inc(&c.delete_misses);
            reply::NOT_FOUND
        }
        Err(e) => {
            node.fail_storage("delete", &e);
            out.extend_from_slice(reply::IO_ERROR);
            return None;
        }
    };
    if !noreply {
        out.extend_from_slice(line);
    }
    applied
}
