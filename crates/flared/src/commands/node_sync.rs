//! `node sync`: replace this node's view of the cluster (version guard of
//! cluster.md §3.3: a version older than the current non-zero one is refused).

use bytes::BytesMut;
use flare_proto::node::NodeLine;
use flare_proto::reply;

use crate::node::Node;

pub fn apply(node: &Node, version: u64, nodes: Vec<NodeLine>, out: &mut BytesMut) {
    let mut view = node.view();
    if view.version > 0 && version < view.version {
        tracing::warn!(
            "node sync rejected: version {version} is older than the current {}",
            view.version
        );
        out.extend_from_slice(reply::NODE_SYNC_ERROR);
        return;
    }
    view.version = version;
    view.nodes = nodes;
    out.extend_from_slice(reply::OK);
}
