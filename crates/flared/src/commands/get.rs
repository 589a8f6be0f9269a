//! `get`, `gets`: each key in request order, served here or by the node the
//! read routing picks; misses omitted; then `END`. The reply streams out as
//! it is produced.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use flare_cluster::ReadRoute;
use flare_net::Out;
use flare_proto::{reply, Request};

use super::route;
use crate::node::{now, Node};
use crate::stats::inc;

/// One key served from local storage.
fn local(node: &Node, key: &[u8], with_version: bool, now: i64, out: &mut BytesMut) {
    let c = &node.counters;
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

/// Serve the keys; true when another node served one.
pub async fn apply(
    node: &Arc<Node>,
    proxy: Option<&[String]>,
    keys: &[Bytes],
    with_version: bool,
    out: &mut Out<'_>,
) -> bool {
    let mut forwarded = false;
    let now = now();
    let topology = node.topology();
    let router = topology.router(&node.me);
    for key in keys {
        inc(&node.counters.cmd_get);
        match router.read(key, route::pick) {
            ReadRoute::Local => local(node, key, with_version, now, out),
            ReadRoute::Miss => inc(&node.counters.get_misses),
            ReadRoute::Remote(dest) => {
                forwarded = true;
                let req = Request::Get {
                    keys: vec![key.clone()],
                    with_version,
                };
                let entries = route::forward_read(node, &dest, proxy, &req, key).await;
                out.extend_from_slice(&entries);
            }
        }
        // Stream: a multi-get never holds more than one flush of replies.
        if !out.flush_if_full().await {
            return forwarded;
        }
    }
    out.extend_from_slice(reply::END);
    forwarded
}
