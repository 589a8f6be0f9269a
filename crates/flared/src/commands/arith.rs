//! `incr`, `decr`.

use bytes::{Bytes, BytesMut};
use flare_proto::reply;
use flare_storage::ArithOutcome;

use super::Applied;
use crate::node::{now, Node};
use crate::stats::inc;

pub fn apply(
    node: &Node,
    incr: bool,
    key: &Bytes,
    delta: u64,
    noreply: bool,
    out: &mut BytesMut,
) -> Option<Applied> {
    let c = &node.counters;
    let (hits, misses) = if incr {
        (&c.incr_hits, &c.incr_misses)
    } else {
        (&c.decr_hits, &c.decr_misses)
    };
    match node.store.arith(key, delta, incr, now()) {
        Ok(ArithOutcome::Value { value, .. }) => {
            inc(hits);
            if !noreply {
                reply::number_line(out, value);
            }
            Some(Applied::Record(key.clone()))
        }
        Ok(ArithOutcome::NotFound | ArithOutcome::NonNumeric | ArithOutcome::Exists) => {
            inc(misses);
            if !noreply {
                out.extend_from_slice(reply::NOT_FOUND);
            }
            None
        }
        Err(e) => {
            node.fail_storage(if incr { "incr" } else { "decr" }, &e);
            out.extend_from_slice(reply::IO_ERROR);
            None
        }
    }
}
