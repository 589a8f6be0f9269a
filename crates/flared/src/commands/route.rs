//! Routing of requests through the cluster (cluster.md §5): decide whether a
//! key is served here or by another node, forward, and relay the answer.
//! The per-command modules only ever apply a request locally; this module is
//! the one place that knows about other nodes.

use bytes::{Bytes, BytesMut};
use flare_cluster::{murmur, ReadRoute, WriteRoute};
use flare_proto::client::{encode_request, ReplyKind};
use flare_proto::request::{Store, StoreKind, WriteOptions};
use flare_proto::{absolute_expire, reply, Request};

use super::Applied;
use crate::node::{now, Node};
use crate::replication::Message;

/// Proxy identifiers longer than this are treated as a routing loop: the
/// original has no hop limit for requests, and reads carried no identifier.
pub const MAX_HOPS: usize = 8;

const PROXY_FAILURE: &[u8] = b"SERVER_ERROR proxy failure\r\n";

/// The key a write is routed by.
pub fn write_key(req: &Request) -> Option<&Bytes> {
    match req {
        Request::Store(s) => Some(&s.key),
        Request::Touch { key, .. }
        | Request::Gat { key, .. }
        | Request::Arith { key, .. }
        | Request::Delete { key, .. } => Some(key),
        Request::MetaOp(m) if m.is_write() => Some(&m.key),
        _ => None,
    }
}

/// Where a write goes, given the proxy identifier it arrived with.
pub fn route_write(node: &Node, key: &[u8], proxy: Option<&[String]>) -> WriteRoute {
    node.topology().router(&node.me).write(key, proxy.is_some())
}

/// Where a read goes.
pub fn route_read(node: &Node, key: &[u8]) -> ReadRoute {
    node.topology().router(&node.me).read(key, pick)
}

/// A cheap per-thread xorshift choice in `0..n` for weighted read balancing.
pub fn pick(n: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x9E37_79B9_7F4A_7C15),
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % n.max(1)
    })
}

/// The identifier a forwarded request carries: what it came with, plus us.
fn forward_list(node: &Node, proxy: Option<&[String]>) -> Option<Vec<String>> {
    let mut list = proxy.map(<[String]>::to_vec).unwrap_or_default();
    if list.len() >= MAX_HOPS || list.iter().any(|k| k == &node.me) {
        return None;
    }
    list.push(node.me.clone());
    Some(list)
}

/// The request as it is sent on: relative exptimes made absolute (the
/// destination's clock must not restart them) and `noreply` removed (we always
/// read the peer's answer, so a pooled connection never loses sync).
fn for_forwarding(mut req: Request) -> (Request, bool) {
    let now = now();
    let noreply;
    match &mut req {
        Request::Store(s) => {
            s.exptime = absolute_expire(s.exptime, now);
            noreply = std::mem::take(&mut s.options.noreply);
        }
        Request::Touch {
            exptime,
            noreply: n,
            ..
        }
        | Request::Gat {
            exptime,
            noreply: n,
            ..
        } => {
            *exptime = absolute_expire(*exptime, now);
            noreply = std::mem::take(n);
        }
        Request::Arith { options, .. } => noreply = std::mem::take(&mut options.noreply),
        Request::MetaOp(m) => {
            // the peer always answers; quiet mode is applied when relaying
            let f = &mut m.flags;
            f.quiet = false;
            for t in [&mut f.ttl, &mut f.vivify].into_iter().flatten() {
                *t = absolute_expire(*t, now);
            }
            noreply = false;
        }
        Request::Delete { time, options, .. } => {
            if *time > 0 {
                *time = absolute_expire(*time, now);
            }
            noreply = std::mem::take(&mut options.noreply);
        }
        _ => noreply = false,
    }
    (req, noreply)
}

/// Forward a write to `dest` and relay its answer (cluster.md §5.2, §5.5);
/// also a meta read (one key, one answer, like a write on the wire).
pub async fn forward_write(
    node: &std::sync::Arc<Node>,
    dest: String,
    proxy: Option<&[String]>,
    req: Request,
    out: &mut BytesMut,
) {
    let Some(list) = forward_list(node, proxy) else {
        tracing::warn!(
            "routing loop detected (proxy list {:?}): request not forwarded",
            proxy
        );
        out.extend_from_slice(reply::PROXY_ERROR);
        return;
    };
    let key = match &req {
        Request::MetaOp(m) => m.key.clone(),
        other => write_key(other).cloned().unwrap_or_default(),
    };
    let quiet_meta = match &req {
        Request::MetaOp(m) if m.flags.quiet => Some(m.cmd),
        _ => None,
    };
    let (req, noreply) = for_forwarding(req);
    let mut wire = BytesMut::new();
    let Some(kind) = encode_request(&mut wire, Some(&list), &req) else {
        out.extend_from_slice(PROXY_FAILURE);
        return;
    };
    let lane = u64::from(murmur(&key));
    if noreply {
        // Queued on the key's pipe before the next request of this
        // connection is read: one client's writes apply in order, and a full
        // pipe holds the client back (back-pressure) instead of piling up
        // detached tasks.
        if let Err(e) = node.peers.send(&dest, lane, wire.freeze(), kind).await {
            tracing::warn!("forwarding a noreply write: {e}");
        }
        return;
    }
    match node
        .peers
        .call(&dest, lane, wire.freeze(), kind, false)
        .await
    {
        Ok(answer) => match quiet_meta {
            Some(cmd) => super::meta::relay_quiet(cmd, &answer, out),
            None => out.extend_from_slice(&answer),
        },
        Err(e) => {
            tracing::warn!("proxy error: {e}");
            out.extend_from_slice(reply::PROXY_ERROR);
        }
    }
}

/// The start of the answer to a fenced write (the replication sender
/// recognises it).
pub const FENCED: &str = "SERVER_ERROR fenced:";

/// Fencing (docs/replication.md §6.1): a proxied write that reaches a member
/// of the key's partition is accepted only from a node this node's map
/// allows to replicate the key. Returns the refusal line otherwise:
/// * on a slave, a write from anyone but the key's master (a former master
///   that missed the failover, or a proxy with a stale map);
/// * on the master, a write in replicated form (a versioned `set` or
///   `delete`) whose version is from an epoch before this node became
///   master: it comes from a former master.
pub fn fence(
    node: &Node,
    key: &[u8],
    proxy: &[String],
    req: &Request,
    master: bool,
) -> Option<String> {
    let sender = proxy.last()?;
    if sender == &node.me || node.config().index_servers.is_empty() {
        // a standalone node has no replicas and no former masters
        return None;
    }
    let topology = node.topology();
    if topology.router(&node.me).may_replicate(key, sender) {
        return None;
    }
    if master {
        let version = match req {
            Request::Store(s) if s.kind == StoreKind::Set => s.version,
            Request::Delete { version, .. } => *version,
            _ => 0,
        };
        let epoch = |v: u64| v >> flare_storage::EPOCH_SHIFT;
        if version == 0 || epoch(version) >= epoch(node.store.version_floor()) {
            return None;
        }
    }
    Some(format!(
        "{FENCED} {sender} is not the master of this key in node map {}\r\n",
        topology.version
    ))
}

/// Answer of a write that cannot be routed.
pub fn unroutable(route: &WriteRoute, out: &mut BytesMut) {
    match route {
        WriteRoute::NoPartition => out.extend_from_slice(reply::NO_PARTITION),
        _ => out.extend_from_slice(PROXY_FAILURE),
    }
}

/// Forward a read of one key (or one `keys` prefix) and return the relayed
/// entries without the closing `END` (empty on a miss or any failure).
pub async fn forward_read(
    node: &Node,
    dest: &str,
    proxy: Option<&[String]>,
    req: &Request,
    key: &[u8],
) -> Bytes {
    match try_forward_read(node, dest, proxy, req, key).await {
        Some(entries) => entries,
        None => Bytes::new(),
    }
}

/// [`forward_read`], telling a failure (`None`, logged) from a miss.
pub async fn try_forward_read(
    node: &Node,
    dest: &str,
    proxy: Option<&[String]>,
    req: &Request,
    key: &[u8],
) -> Option<Bytes> {
    let list = forward_list(node, proxy)?;
    let mut wire = BytesMut::new();
    let kind = encode_request(&mut wire, Some(&list), req)?;
    debug_assert!(matches!(kind, ReplyKind::Values | ReplyKind::Keys));
    match node
        .peers
        .call(dest, u64::from(murmur(key)), wire.freeze(), kind, true)
        .await
    {
        Ok(answer) => match answer.strip_suffix(reply::END) {
            Some(entries) => Some(answer.slice(..entries.len())),
            None => {
                tracing::warn!(
                    "unexpected answer from {dest}: {:?}",
                    String::from_utf8_lossy(&answer)
                );
                None
            }
        },
        Err(e) => {
            tracing::warn!("proxy error on read: {e}");
            None
        }
    }
}

/// The trailing options of a write (`touch`/`gat` only have `noreply`).
pub fn write_options(req: &Request) -> WriteOptions {
    match req {
        Request::Store(s) => s.options,
        Request::Arith { options, .. } | Request::Delete { options, .. } => *options,
        Request::Touch { noreply, .. } | Request::Gat { noreply, .. } => WriteOptions {
            noreply: *noreply,
            ..Default::default()
        },
        _ => WriteOptions::default(),
    }
}

/// The record of `key` as a versioned `set` (how a changed record replicates).
fn record_as_set(node: &Node, key: &Bytes) -> Option<Request> {
    let r = node.store.peek(key).ok().flatten()?;
    Some(Request::Store(Store {
        kind: StoreKind::Set,
        key: key.clone(),
        flags: r.flags,
        exptime: r.expire,
        version: r.version,
        options: WriteOptions::default(),
        data: Bytes::from(r.value),
    }))
}

fn encode(list: &[String], req: &Request) -> Bytes {
    let mut wire = BytesMut::new();
    encode_request(&mut wire, Some(list), req);
    wire.freeze()
}

/// The replicated form of a local write (cluster.md §6.1): the whole record
/// as `set` with its version, `delete <key> <expire> <version>`, or
/// `touch <key> <expire>` (with the record as fallback for a slave that does
/// not have the key yet). `None` when the record is gone again.
fn replicated_message(node: &Node, applied: &Applied, list: &[String]) -> Option<(Bytes, Message)> {
    Some(match applied {
        Applied::Record(key) => {
            let wire = encode(list, &record_as_set(node, key)?);
            (
                key.clone(),
                Message {
                    wire,
                    fallback: None,
                },
            )
        }
        Applied::Delete(key, expire, version) => {
            let req = Request::Delete {
                key: key.clone(),
                time: *expire,
                version: *version,
                options: WriteOptions::default(),
            };
            (
                key.clone(),
                Message {
                    wire: encode(list, &req),
                    fallback: None,
                },
            )
        }
        Applied::Touch(key, expire, version) => {
            // applied by a slave only at this version: a resent touch never
            // changes the expire of a later write (docs/replication.md §1)
            let req = Request::Touch {
                key: key.clone(),
                exptime: *expire,
                version: *version,
                noreply: false,
            };
            let fallback = record_as_set(node, key).map(|r| encode(list, &r));
            (
                key.clone(),
                Message {
                    wire: encode(list, &req),
                    fallback,
                },
            )
        }
    })
}

/// Roughly the bytes a write's replicated message takes (its queue budget
/// is taken before the write is applied).
fn message_size(req: &Request) -> usize {
    match req {
        Request::Store(s) => s.key.len() + s.data.len() + 96,
        Request::MetaOp(m) => m.key.len() + m.data.len() + 96,
        Request::Touch { key, .. }
        | Request::Gat { key, .. }
        | Request::Arith { key, .. }
        | Request::Delete { key, .. } => key.len() + 96,
        _ => 96,
    }
}

/// A write this node executes as the key's master, in one pass (cluster.md
/// §5.2 post-routing, docs/replication.md §1): take room in every slave's
/// queue first (waiting at most `proxy-timeout`), then, under the key's
/// order lock, apply the write and queue its replicated form, so every
/// slave receives a key's writes in the order the master applied them. A
/// `sync` write (the option, or `replication-type = sync` without `async`)
/// then waits until every slave confirmed; the error names the slave that
/// did not.
pub async fn write_as_master(
    node: &std::sync::Arc<Node>,
    proxy: Option<&[String]>,
    request: Request,
    out: &mut BytesMut,
) {
    let options = write_options(&request);
    let Some(key) = write_key(&request).cloned() else {
        super::apply_write(node, request, false, out);
        return;
    };
    // Loop guard: a request that already passed this node twice is not
    // replicated again.
    let looped = proxy.is_some_and(|l| l.iter().filter(|k| *k == &node.me).count() >= 2);
    let targets = node
        .topology()
        .router(&node.me)
        .replicas(&key, proxy.is_some());
    let others: Vec<String> = targets.preparing_master.iter().cloned().collect();
    let (room, mut failed) = if looped || (targets.slaves.is_empty() && others.is_empty()) {
        (Vec::new(), Vec::new())
    } else {
        node.replicator
            .reserve(&targets.slaves, &others, &key, message_size(&request))
            .await
    };
    let wait = options.sync || (node.config().replication_sync && !options.asynchronous);
    let mut local = BytesMut::new();
    let acks = {
        let _order = node.order.lock(&key);
        match super::apply_write(node, request, false, &mut local) {
            // nothing changed: nothing to replicate (the room is freed)
            None => {
                failed.clear();
                Vec::new()
            }
            Some(_) if room.is_empty() => Vec::new(),
            Some(applied) => {
                let mut list = proxy.map(<[String]>::to_vec).unwrap_or_default();
                list.push(node.me.clone());
                match replicated_message(node, &applied, &list) {
                    Some((_, msg)) => node.replicator.commit(room, &msg, wait),
                    None => Vec::new(),
                }
            }
        }
    };
    if wait {
        for (slave, rx) in acks {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push((slave, e)),
                Err(_) => failed.push((slave, "sender stopped".to_string())),
            }
        }
        if let Some((slave, e)) = failed.first() {
            if !options.noreply {
                reply::line(
                    out,
                    format_args!("SERVER_ERROR replication to {slave} failed: {e}"),
                );
            }
            return;
        }
    }
    out.extend_from_slice(&local);
}
