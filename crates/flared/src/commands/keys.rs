//! `keys <prefix>... <limit>`: ascending keys per prefix (works on RocksDB,
//! whatever `storage-type` says; the original needed `tcb`).

use bytes::{Bytes, BytesMut};
use flare_proto::reply;

use crate::node::Node;
use crate::stats::inc;

pub fn apply(node: &Node, prefixes: &[Bytes], limit: u32, out: &mut BytesMut) {
    for prefix in prefixes {
        inc(&node.counters.cmd_get);
        match node.store.keys_with_prefix(prefix, limit as usize) {
            Ok(keys) => {
                for k in keys {
                    reply::key_line(out, &k);
                }
            }
            Err(e) => tracing::warn!("keys: storage error: {e}"),
        }
    }
    out.extend_from_slice(reply::END);
}
