//! `touch` and Flare's single-key `gat` (value without `END`).

use bytes::{Bytes, BytesMut};
use flare_proto::{absolute_expire, reply};
use flare_storage::TouchOutcome;

use super::Applied;
use crate::node::{now, Node};
use crate::stats::inc;

/// `touch`; `version` (replicated touches only, else 0): apply only to the
/// record at exactly that version. A record at a later version answers
/// `NOT_STORED` (a later write already set its expire).
pub fn touch(
    node: &Node,
    key: &Bytes,
    exptime: i64,
    version: u64,
    noreply: bool,
    out: &mut BytesMut,
) -> Option<Applied> {
    let c = &node.counters;
    inc(&c.cmd_set);
    let now = now();
    let expire = absolute_expire(exptime, now);
    let mut applied = None;
    let line = match node.store.touch_version(key, expire, version, now) {
        Ok(TouchOutcome::Touched(r)) => {
            inc(&c.touch_hits);
            applied = Some(Applied::Touch(key.clone(), expire, r.version));
            reply::TOUCHED
        }
        Ok(TouchOutcome::Newer) => reply::NOT_STORED,
        Ok(TouchOutcome::NotFound) => {
            inc(&c.touch_misses);
            reply::NOT_FOUND
        }
        Err(e) => {
            node.fail_storage("touch", &e);
            out.extend_from_slice(reply::IO_ERROR);
            return None;
        }
    };
    if !noreply {
        out.extend_from_slice(line);
    }
    applied
}

pub fn gat(
    node: &Node,
    key: &Bytes,
    exptime: i64,
    noreply: bool,
    out: &mut BytesMut,
) -> Option<Applied> {
    inc(&node.counters.cmd_set);
    let now = now();
    let expire = absolute_expire(exptime, now);
    match node.store.touch(key, expire, now) {
        Ok(Some(r)) => {
            if !noreply {
                reply::value(out, key, r.flags, &r.value, None);
            }
            Some(Applied::Touch(key.clone(), expire, r.version))
        }
        Ok(None) => {
            if !noreply {
                out.extend_from_slice(reply::NOT_FOUND);
            }
            None
        }
        Err(e) => {
            node.fail_storage("gat", &e);
            out.extend_from_slice(reply::IO_ERROR);
            None
        }
    }
}
