//! `node sync`: replace this node's view of the cluster (version guard of
//! cluster.md §3.3: a version older than the current non-zero one is refused).

use bytes::BytesMut;
use flare_proto::node::NodeLine;
use flare_proto::reply;

use crate::node::Node;

pub fn apply(node: &Node, version: u64, nodes: Vec<NodeLine>, out: &mut BytesMut) {
    match node.install(version, nodes) {
        Ok(()) => out.extend_from_slice(reply::OK),
        Err(current) => {
            tracing::warn!(
                "node sync rejected: version {version} is older than the current {current}"
            );
            out.extend_from_slice(reply::NODE_SYNC_ERROR);
        }
    }
}
