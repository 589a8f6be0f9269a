//! `get`, `gets`: each key in request order, served here or by the node the
//! read routing picks; misses omitted; then `END`. The reply streams out as
//! it is produced; the keys other nodes serve are asked ahead, in one
//! `get` per node and batch (`BATCH`, at most `WINDOW` batches at once).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use flare_cluster::ReadRoute;
use flare_net::Out;
use flare_proto::{reply, Request};
use tokio::task::JoinHandle;

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

/// A multi-get sends the keys another node serves to that node as one
/// `get` of up to `BATCH` keys (one request and one reply instead of one per
/// key, and a round trip per batch), sent ahead of the keys being answered:
/// at most `WINDOW` batches in flight, and answered ones are kept only until
/// their last key (one per destination at most), so the memory a multi-get
/// holds is bounded whatever its length.
const BATCH: usize = 16;
const WINDOW: usize = 4;

/// The forwarded keys of one destination, in request order.
struct Batch {
    dest: String,
    /// Indices into the request's keys.
    keys: Vec<usize>,
}

/// A sent batch: its reply's entries, in the order the peer answered.
type Sent = JoinHandle<VecDeque<(Bytes, Bytes)>>;

/// Serve the keys in request order; true when another node served one.
pub async fn apply(
    node: &Arc<Node>,
    proxy: Option<&[String]>,
    keys: &[Bytes],
    with_version: bool,
    out: &mut Out<'_>,
) -> bool {
    let now = now();
    let topology = node.topology();
    let router = topology.router(&node.me);
    let routes: Vec<ReadRoute> = keys.iter().map(|k| router.read(k, route::pick)).collect();
    let (batches, batch_of) = plan(&routes);
    let forwarded = !batches.is_empty();
    // batches[next..] are not sent yet; `sent`: sent, not yet answered, in
    // order; `ready[b]`: the answered entries of batch b not yet relayed,
    // kept until its last key (at most one batch per destination).
    let mut sent: VecDeque<(usize, Sent)> = VecDeque::new();
    let mut ready: Vec<Option<VecDeque<(Bytes, Bytes)>>> = Vec::new();
    ready.resize_with(batches.len(), || None);
    let mut left: Vec<usize> = batches.iter().map(|b| b.keys.len()).collect();
    let mut next = 0;
    // One batch (a single forwarded key, the common case) is fetched in
    // place when its first key comes: no task to spawn.
    let inline = batches.len() == 1;
    for (i, key) in keys.iter().enumerate() {
        while !inline && next < batches.len() && sent.len() < WINDOW {
            sent.push_back((next, send(node, proxy, &batches[next], keys, with_version)));
            next += 1;
        }
        inc(&node.counters.cmd_get);
        match &routes[i] {
            ReadRoute::Local => local(node, key, with_version, now, out),
            ReadRoute::Miss => inc(&node.counters.get_misses),
            ReadRoute::Remote(_) => {
                let b = batch_of[i];
                // A batch is received at its first key; batches are made
                // and sent in the order of their first keys, so the one to
                // receive now is the oldest sent.
                if inline && ready[b].is_none() {
                    let batch = &batches[b];
                    let batch_keys = keys_of(batch, keys);
                    ready[b] =
                        Some(fetch(node, proxy, &batch.dest, batch_keys, with_version).await);
                }
                while ready[b].is_none() {
                    let Some((s, handle)) = sent.pop_front() else {
                        break;
                    };
                    ready[s] = Some(handle.await.unwrap_or_default());
                }
                if let Some(entries) = ready[b].as_mut() {
                    // the peer answers its hits in the order it was asked
                    if entries.front().is_some_and(|(k, _)| k == key) {
                        if let Some((_, entry)) = entries.pop_front() {
                            out.extend_from_slice(&entry);
                        }
                    }
                }
                left[b] -= 1;
                if left[b] == 0 {
                    ready[b] = None;
                }
            }
        }
        // Stream: a multi-get never holds more than one flush of replies.
        if !out.flush_if_full().await {
            for (_, handle) in sent {
                handle.abort();
            }
            return forwarded;
        }
    }
    out.extend_from_slice(reply::END);
    forwarded
}

/// The batches of the remote keys (in order of their first key) and, for
/// each key, the index of its batch.
fn plan(routes: &[ReadRoute]) -> (Vec<Batch>, Vec<usize>) {
    let mut batches: Vec<Batch> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut batch_of = vec![usize::MAX; routes.len()];
    for (i, r) in routes.iter().enumerate() {
        let ReadRoute::Remote(dest) = r else {
            continue;
        };
        let b = match open.iter().position(|(d, _)| d == dest) {
            Some(o) if batches[open[o].1].keys.len() < BATCH => open[o].1,
            found => {
                batches.push(Batch {
                    dest: dest.clone(),
                    keys: Vec::with_capacity(BATCH),
                });
                let b = batches.len() - 1;
                match found {
                    Some(o) => open[o].1 = b,
                    None => open.push((dest.clone(), b)),
                }
                b
            }
        };
        batches[b].keys.push(i);
        batch_of[i] = b;
    }
    (batches, batch_of)
}

/// The keys of `batch`.
fn keys_of(batch: &Batch, keys: &[Bytes]) -> Vec<Bytes> {
    batch.keys.iter().map(|&i| keys[i].clone()).collect()
}

/// Send one batch in a task of its own ([`fetch`]).
fn send(
    node: &Arc<Node>,
    proxy: Option<&[String]>,
    batch: &Batch,
    keys: &[Bytes],
    with_version: bool,
) -> Sent {
    let node = Arc::clone(node);
    let proxy: Option<Vec<String>> = proxy.map(<[String]>::to_vec);
    let dest = batch.dest.clone();
    let batch_keys = keys_of(batch, keys);
    tokio::spawn(
        async move { fetch(&node, proxy.as_deref(), &dest, batch_keys, with_version).await },
    )
}

/// One batch's entries (key, `VALUE` block), empty on a miss of them all.
/// A batch whose reply cannot be had (a failure, or a reply over the peer
/// client's size limit) is asked again key by key.
async fn fetch(
    node: &Node,
    proxy: Option<&[String]>,
    dest: &str,
    batch_keys: Vec<Bytes>,
    with_version: bool,
) -> VecDeque<(Bytes, Bytes)> {
    let Some(first) = batch_keys.first().cloned() else {
        return VecDeque::new();
    };
    let single = batch_keys.len() == 1;
    let req = Request::Get {
        keys: batch_keys,
        with_version,
    };
    if let Some(entries) = route::try_forward_read(node, dest, proxy, &req, &first).await {
        return split_entries(&entries);
    }
    let Request::Get { keys, .. } = req else {
        return VecDeque::new();
    };
    if single {
        return VecDeque::new();
    }
    let mut all = VecDeque::new();
    for key in keys {
        let req = Request::Get {
            keys: vec![key.clone()],
            with_version,
        };
        let entries = route::forward_read(node, dest, proxy, &req, &key).await;
        all.extend(split_entries(&entries));
    }
    all
}

/// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n` blocks as (key,
/// block). The peer client framed them already; anything unexpected ends
/// the list (the keys left are misses).
fn split_entries(entries: &Bytes) -> VecDeque<(Bytes, Bytes)> {
    let mut out = VecDeque::new();
    let mut at = 0;
    while at < entries.len() {
        let rest = &entries[at..];
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let mut fields = rest[..eol].split(|b| *b == b' ');
        let (Some(b"VALUE"), Some(key), Some(_flags), Some(len)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            break;
        };
        let Some(len) = std::str::from_utf8(len)
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
        else {
            break;
        };
        let end = eol + 2 + len + 2;
        if rest.len() < end {
            break;
        }
        let key_at = at + b"VALUE ".len();
        out.push_back((
            entries.slice(key_at..key_at + key.len()),
            entries.slice(at..at + end),
        ));
        at += end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(d: &str) -> ReadRoute {
        ReadRoute::Remote(d.to_string())
    }

    #[test]
    fn batches_per_destination_in_key_order() {
        let mut routes = vec![ReadRoute::Local, remote("a"), remote("b"), ReadRoute::Miss];
        routes.extend((0..BATCH).map(|_| remote("a")));
        let (batches, batch_of) = plan(&routes);
        let dests: Vec<&str> = batches.iter().map(|b| b.dest.as_str()).collect();
        assert_eq!(dests, ["a", "b", "a"], "a full batch opens another");
        assert_eq!(batches[0].keys.len(), BATCH);
        assert_eq!(batches[0].keys[..2], [1, 4]);
        assert_eq!(batches[1].keys, [2]);
        assert_eq!(batches[2].keys, [routes.len() - 1]);
        assert_eq!(batch_of[1], 0);
        assert_eq!(batch_of[2], 1);
        assert_eq!(batch_of[routes.len() - 1], 2);
        assert_eq!(batch_of[0], usize::MAX, "local keys have no batch");
    }

    #[test]
    fn splits_value_blocks_with_any_bytes() {
        let raw = Bytes::from_static(
            b"VALUE k\xff 0 4\r\na\r\nb\r\nVALUE k2 5 0 77\r\n\r\nVALUE bad\r\n",
        );
        let e = split_entries(&raw);
        assert_eq!(e.len(), 2, "the broken block ends the list");
        assert_eq!(&e[0].0[..], b"k\xff");
        assert_eq!(&e[0].1[..], b"VALUE k\xff 0 4\r\na\r\nb\r\n");
        assert_eq!(&e[1].0[..], b"k2");
        assert_eq!(&e[1].1[..], b"VALUE k2 5 0 77\r\n\r\n");
        assert!(split_entries(&Bytes::new()).is_empty());
    }
}
