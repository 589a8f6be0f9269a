//! `node sync`: replace this node's view of the cluster (version guard of
//! cluster.md §3.3: a version older than the current non-zero one is refused),
//! then start what the change asks for (reconstruction, cleanup after a split).

use std::sync::Arc;

use bytes::BytesMut;
use flare_proto::node::NodeLine;
use flare_proto::reply;

use crate::node::Node;
use crate::reconstruction;

/// A map version this far ahead of the current one is not from an index
/// (which counts one per change): logged loudly (docs/security.md).
const IMPLAUSIBLE_JUMP: u64 = 1_000_000;

pub fn apply(node: &Arc<Node>, version: u64, nodes: Vec<NodeLine>, out: &mut BytesMut) {
    // a node that is slow to take, or fails to take, a new map (the index
    // retries until the node has the current version)
    if flare_daemon::fault::block("node_sync::apply").is_err() {
        tracing::warn!("node sync of version {version} not applied (failpoint node_sync::apply)");
        out.extend_from_slice(b"SERVER_ERROR failpoint node_sync::apply\r\n");
        return;
    }
    let current = node.topology().version;
    if current > 0 && version > current.saturating_add(IMPLAUSIBLE_JUMP) {
        tracing::error!(
            "node sync of version {version} while this node has {current}: a jump of more than \
             {IMPLAUSIBLE_JUMP} versions that no index makes; if it was not an index you run, \
             someone else can reach this node's port as the index: check admin access and firewalls"
        );
    }
    match node.install(version, nodes) {
        Ok(crate::node::Installed {
            before,
            after,
            plan,
        }) => {
            out.extend_from_slice(reply::OK);
            if let Some(plan) = plan {
                reconstruction::start(Arc::clone(node), plan);
            }
            reconstruction::cleanup_after_split(Arc::clone(node), &before, &after);
        }
        Err(current) => {
            tracing::warn!(
                "node sync rejected: version {version} is older than the current {current}"
            );
            out.extend_from_slice(reply::NODE_SYNC_ERROR);
        }
    }
}
