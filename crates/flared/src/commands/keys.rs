//! `keys <prefix>... <limit>`: ascending keys per prefix (works on RocksDB,
//! whatever `storage-type` says; the original needed `tcb`). Each prefix is
//! routed like a `get` of the prefix itself.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use flare_cluster::ReadRoute;
use flare_proto::{reply, Request};

use super::route;
use crate::node::Node;
use crate::stats::inc;

pub async fn apply(
    node: &Arc<Node>,
    proxy: Option<&[String]>,
    prefixes: &[Bytes],
    limit: u32,
    out: &mut BytesMut,
) {
    for prefix in prefixes {
        inc(&node.counters.cmd_get);
        match route::route_read(node, prefix) {
            ReadRoute::Local => match node.store.keys_with_prefix(prefix, limit as usize) {
                Ok(keys) => {
                    for k in keys {
                        reply::key_line(out, &k);
                    }
                }
                Err(e) => tracing::warn!("keys: storage error: {e}"),
            },
            ReadRoute::Miss => {}
            ReadRoute::Remote(dest) => {
                let req = Request::Keys {
                    prefixes: vec![prefix.clone()],
                    limit,
                };
                out.extend_from_slice(&route::forward_read(node, &dest, proxy, &req, prefix).await);
            }
        }
    }
    out.extend_from_slice(reply::END);
}
