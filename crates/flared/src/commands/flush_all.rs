//! `flush_all`: local storage only, immediately (the delay is ignored).

use bytes::BytesMut;
use flare_proto::reply;

use crate::node::Node;

pub fn apply(node: &Node, noreply: bool, out: &mut BytesMut) {
    match node.store.truncate() {
        Ok(()) => {
            if !noreply {
                out.extend_from_slice(reply::OK);
            }
        }
        Err(e) => {
            tracing::error!("flush_all failed: {e}");
            if !noreply {
                out.extend_from_slice(reply::UNKNOWN_ERROR);
            }
        }
    }
}
