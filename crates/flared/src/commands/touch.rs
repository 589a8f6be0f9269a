//! `touch` and Flare's single-key `gat` (value without `END`).

use bytes::BytesMut;
use flare_proto::{absolute_expire, reply};

use crate::node::{now, Node};
use crate::stats::inc;

pub fn touch(node: &Node, key: &[u8], exptime: i64, noreply: bool, out: &mut BytesMut) {
    let c = &node.counters;
    inc(&c.cmd_set);
    let now = now();
    let line = match node.store.touch(key, absolute_expire(exptime, now), now) {
        Ok(Some(_)) => {
            inc(&c.touch_hits);
            reply::TOUCHED
        }
        Ok(None) => {
            inc(&c.touch_misses);
            reply::NOT_FOUND
        }
        Err(e) => {
            node.fail_storage("touch", &e);
            out.extend_from_slice(reply::IO_ERROR);
            return;
        }
    };
    if !noreply {
        out.extend_from_slice(line);
    }
}

pub fn gat(node: &Node, key: &[u8], exptime: i64, noreply: bool, out: &mut BytesMut) {
    inc(&node.counters.cmd_set);
    let now = now();
    match node.store.touch(key, absolute_expire(exptime, now), now) {
        Ok(Some(r)) => {
            if !noreply {
                reply::value(out, key, r.flags, &r.value, None);
            }
        }
        Ok(None) => {
            if !noreply {
                out.extend_from_slice(reply::NOT_FOUND);
            }
        }
        Err(e) => {
            node.fail_storage("gat", &e);
            out.extend_from_slice(reply::IO_ERROR);
        }
    }
}
