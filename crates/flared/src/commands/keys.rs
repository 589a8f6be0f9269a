//! `keys <prefix>... <limit>`: ascending keys per prefix (works on RocksDB,
//! whatever `storage-type` says; the original needed `tcb`). Each prefix is
//! routed like a `get` of the prefix itself.

use std::sync::Arc;

use bytes::Bytes;
use flare_cluster::ReadRoute;
use flare_net::Out;
use flare_proto::{reply, Request};

use super::route;
use crate::node::Node;
use crate::stats::inc;

pub async fn apply(
    node: &Arc<Node>,
    proxy: Option<&[String]>,
    prefixes: &[Bytes],
    limit: u32,
    out: &mut Out<'_>,
) {
    for prefix in prefixes {
        inc(&node.counters.cmd_get);
        match route::route_read(node, prefix) {
            ReadRoute::Local => {
                if !local(node, prefix, limit as usize, out).await {
                    return;
                }
            }
            ReadRoute::Miss => {}
            ReadRoute::Remote(dest) => {
                let req = Request::Keys {
                    prefixes: vec![prefix.clone()],
                    limit,
                };
                out.extend_from_slice(&route::forward_read(node, &dest, proxy, &req, prefix).await);
                if !out.flush_if_full().await {
                    return;
                }
            }
        }
    }
    out.extend_from_slice(reply::END);
}

/// Keys read from storage per page.
const PAGE: usize = 1024;

/// Up to `limit` local keys under `prefix`, page by page, flushing as the
/// reply grows. False when the client is gone.
async fn local(node: &Node, prefix: &[u8], limit: usize, out: &mut Out<'_>) -> bool {
    let mut sent = 0;
    let mut last: Option<Vec<u8>> = None;
    while sent < limit {
        let page = match node
            .store
            .keys_page(prefix, last.as_deref(), PAGE.min(limit - sent))
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("keys: storage error: {e}");
                return true;
            }
        };
        let full = page.len() == PAGE.min(limit - sent);
        for k in &page {
            reply::key_line(out, k);
        }
        sent += page.len();
        last = page.into_iter().last();
        if !out.flush_if_full().await {
            return false;
        }
        if !full || last.is_none() {
            break;
        }
    }
    true
}
