//! `get`, `gets`: each key in request order; misses omitted; then `END`.

use bytes::{Bytes, BytesMut};
use flare_proto::reply;

use crate::node::{now, Node};
use crate::stats::inc;

pub fn apply(node: &Node, keys: &[Bytes], with_version: bool, out: &mut BytesMut) {
    let c = &node.counters;
    let now = now();
    for key in keys {
        inc(&c.cmd_get);
        match node.store.get(key, now) {
            Ok(Some(r)) => {
                inc(&c.get_hits);
                reply::value(
                    out,
                    key,
                    r.flags,
                    &r.value,
                    with_version.then_some(r.version),
                );
            }
            Ok(None) => inc(&c.get_misses),
            Err(e) => {
                tracing::warn!(
                    "storage i/o error (key={}) -> continue processing (pretending not found): {e}",
                    String::from_utf8_lossy(key)
                );
                inc(&c.get_misses);
            }
        }
    }
    out.extend_from_slice(reply::END);
}
