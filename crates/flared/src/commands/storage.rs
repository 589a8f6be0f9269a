//! `set`, `add`, `replace`, `append`, `prepend`, `cas`.

use bytes::BytesMut;
use flare_proto::request::{Store, StoreKind};
use flare_proto::{absolute_expire, reply};
use flare_storage::{StoreMode, StoreOutcome, WriteRequest};

use super::Applied;
use crate::node::{now, Node};
use crate::stats::inc;

pub fn apply(node: &Node, s: Store, out: &mut BytesMut) -> Option<Applied> {
    let c = &node.counters;
    inc(&c.cmd_set);
    let now = now();
    let mode = match s.kind {
        StoreKind::Set => StoreMode::Set,
        StoreKind::Add => StoreMode::Add,
        StoreKind::Replace => StoreMode::Replace,
        StoreKind::Append => StoreMode::Append,
        StoreKind::Prepend => StoreMode::Prepend,
        StoreKind::Cas => StoreMode::Cas(s.version),
    };
    let cas = s.kind == StoreKind::Cas;
    let w = WriteRequest {
        key: &s.key,
        flags: s.flags,
        expire: absolute_expire(s.exptime, now),
        value: &s.data,
        version: if cas { 0 } else { s.version },
    };
    let mut applied = None;
    let line = match node.store.store(mode, w, now) {
        Ok(StoreOutcome::Stored { .. }) => {
            inc(&c.total_items);
            if cas {
                inc(&c.cas_hits);
            }
            applied = Some(Applied::Record(s.key.clone()));
            reply::STORED
        }
        Ok(StoreOutcome::NotStored) => reply::NOT_STORED,
        Ok(StoreOutcome::Exists) => {
            inc(&c.cas_badval);
            reply::EXISTS
        }
        Ok(StoreOutcome::NotFound) => {
            inc(&c.cas_misses);
            reply::NOT_FOUND
        }
        Err(e) => {
            node.fail_storage(s.kind.name(), &e);
            out.extend_from_slice(reply::IO_ERROR);
            return None;
        }
    };
    if !s.options.noreply {
        out.extend_from_slice(line);
    }
    applied
}
