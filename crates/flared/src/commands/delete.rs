//! `delete <key> [<time>] [<version>]`.

use bytes::BytesMut;
use flare_proto::{absolute_expire, reply};
use flare_storage::DeleteOutcome;

use crate::node::{now, Node};
use crate::stats::inc;

pub fn apply(node: &Node, key: &[u8], time: i64, version: u64, noreply: bool, out: &mut BytesMut) {
    let c = &node.counters;
    let now = now();
    let hold = if time > 0 {
        absolute_expire(time, now)
    } else {
        0
    };
    let line = match node.store.delete(key, hold, version, now) {
        Ok(DeleteOutcome::Deleted { .. }) => {
            inc(&c.delete_hits);
            reply::DELETED
        }
        Ok(DeleteOutcome::NotFound) => {
            inc(&c.delete_misses);
            reply::NOT_FOUND
        }
        Err(e) => {
            node.fail_storage("delete", &e);
            out.extend_from_slice(reply::IO_ERROR);
            return;
        }
    };
    if !noreply {
        out.extend_from_slice(line);
    }
}
