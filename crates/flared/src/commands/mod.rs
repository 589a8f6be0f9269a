//! One module per command (family): each applies the request to the node and
//! encodes the reply. [`execute`] is the single entry point, used alike for
//! direct clients and requests arriving from other nodes.

mod admin;
mod arith;
mod delete;
mod dump;
mod flush_all;
mod get;
mod keys;
pub mod meta;
mod node_sync;
mod route;
mod show;
mod stats;
mod storage;
mod touch;

use std::sync::Arc;

use bytes::BytesMut;
use flare_cluster::{ReadRoute, WriteRoute};
use flare_net::{Out, Slot};
use flare_proto::reply;
use flare_proto::Request;

pub use flare_net::Next;
pub use route::FENCED;

use crate::node::Node;

/// A successful local write, as replication needs it.
pub enum Applied {
    /// The key's record changed (set family, cas, incr/decr): send it whole.
    Record(bytes::Bytes),
    /// Deleted: key, delete-hold expire (0 = none), deleted version.
    Delete(bytes::Bytes, i64, u64),
    /// Touched: key, new expire, the record's version (unchanged by touch).
    Touch(bytes::Bytes, i64, u64),
}

/// Execute one request; replies are appended to `out`. `proxy` is the proxy
/// identifier the request arrived with (other nodes' forwarded requests).
/// Counted by command and outcome, and timed when it reads or writes data
/// (the metrics of USAGE.md, "Monitoring").
pub async fn execute(
    node: &Arc<Node>,
    conn: &Slot,
    proxy: Option<Vec<String>>,
    request: Request,
    out: &mut Out<'_>,
) -> Next {
    let command = crate::stats::command_index(request.op_name());
    let write = route::write_key(&request).is_some() && changes_data(&request);
    let timed = write || matches!(request, Request::Get { .. } | Request::MetaOp(_));
    let start = timed.then(std::time::Instant::now);
    let mark = out.mark();
    let mut forwarded = false;
    let next = dispatch(node, conn, proxy, request, out, &mut forwarded).await;
    let c = &node.counters;
    c.requests.count(
        command,
        crate::stats::outcome_index(command, out.since(mark)),
    );
    if let Some(start) = start {
        c.latency
            .observe(crate::stats::Class::of(write, forwarded), start.elapsed());
    }
    next
}

/// [`execute`] but the counting; `forwarded` is set when another node
/// served (part of) the request.
async fn dispatch(
    node: &Arc<Node>,
    conn: &Slot,
    proxy: Option<Vec<String>>,
    request: Request,
    out: &mut Out<'_>,
    forwarded: &mut bool,
) -> Next {
    let proxy = proxy.as_deref();
    if let Some(refusal) = refuse(node, conn, proxy, &request) {
        tracing::warn!("{} (from {})", refusal.trim_end(), conn.peer);
        out.extend_from_slice(refusal.as_bytes());
        return Next::Continue;
    }
    if let Some(key) = route::write_key(&request) {
        let route = route::route_write(node, key, proxy);
        if let (Some(list), WriteRoute::Local { master }) = (proxy, &route) {
            if let Some(refusal) = route::fence(node, key, list, &request, *master) {
                tracing::warn!("{}", refusal.trim_end());
                out.extend_from_slice(refusal.as_bytes());
                return Next::Continue;
            }
        }
        match route {
            WriteRoute::Local { master: false } => {
                // a replicated write from the key's master (fenced above)
                apply_write(node, request, true, out);
            }
            // an `mg` with only `R`: served by the master (which keeps the
            // recache marks), but it changes nothing
            WriteRoute::Local { master: true } if !changes_data(&request) => {
                apply_write(node, request, false, out);
            }
            WriteRoute::Local { master: true } => match node.index_silence() {
                // index-silence-limit: maybe replaced by now; do not acknowledge
                Some(ms) => reply::line(
                    out,
                    format_args!(
                        "SERVER_ERROR no contact with the index for {ms} ms: not accepting writes"
                    ),
                ),
                None => route::write_as_master(node, proxy, request, out).await,
            },
            WriteRoute::Forward(dest) => {
                *forwarded = true;
                route::forward_write(node, dest, proxy, request, out).await
            }
            other => route::unroutable(&other, out),
        }
        return Next::Continue;
    }
    match request {
        Request::AuthChallenge { nonce } => {
            let auth = node.cluster_auth();
            let line = conn
                .auth
                .challenge(auth.as_deref().map(|a| a.secret()), &nonce);
            out.extend_from_slice(line.as_bytes());
        }
        Request::AuthResponse { proof } => {
            let auth = node.cluster_auth();
            let line = conn
                .auth
                .response(auth.as_deref().map(|a| a.secret()), &proof);
            if line != "OK\r\n" {
                tracing::warn!("cluster authentication failed for {}", conn.peer);
            }
            out.extend_from_slice(line.as_bytes());
        }
        Request::MetaOp(m) => match route::route_read(node, &m.key) {
            ReadRoute::Local => meta::read(node, &m, out),
            ReadRoute::Miss => {
                if !m.flags.quiet {
                    out.extend_from_slice(b"EN\r\n");
                }
            }
            ReadRoute::Remote(dest) => {
                *forwarded = true;
                route::forward_write(node, dest, proxy, Request::MetaOp(m), out).await
            }
        },
        Request::MetaNoop => out.extend_from_slice(b"MN\r\n"),
        Request::Noop => admin::ping(node, out),
        Request::Invalid(line) => out.extend_from_slice(line.as_bytes()),
        Request::Get { keys, with_version } => {
            *forwarded = get::apply(node, proxy, &keys, with_version, out).await
        }
        Request::Keys { prefixes, limit } => keys::apply(node, proxy, &prefixes, limit, out).await,
        Request::FlushAll { noreply } => flush_all::apply(node, noreply, out),
        Request::Dump {
            wait_us,
            filter,
            bwlimit_kib,
        } => return dump::run(node, dump::DumpJob::dump(wait_us, filter, bwlimit_kib), out).await,
        Request::DumpKey {
            filter,
            bwlimit_kib,
        } => return dump::run(node, dump::DumpJob::keys(filter, bwlimit_kib), out).await,
        Request::NodeSync { version, nodes } => {
            node.heard_from(&conn.peer);
            node_sync::apply(node, version, nodes, out)
        }
        Request::NodeSyncFormatError => out.extend_from_slice(reply::FORMAT_ERROR),
        Request::Ping => {
            node.heard_from(&conn.peer);
            admin::ping(node, out)
        }
        Request::Stats(kind) => stats::apply(node, kind, out),
        Request::ShowVariables => show::apply(node, out),
        Request::Kill { thread_id } => return admin::kill(node, conn, thread_id, out),
        Request::Verbosity { level, noreply } => {
            admin::verbosity(node, level);
            if !noreply {
                out.extend_from_slice(reply::OK);
            }
        }
        Request::Version => {
            reply::line(out, format_args!("VERSION {}", flare_proto::VERSION_STRING))
        }
        Request::Quit => return Next::Close,
        Request::Ignored => {}
        Request::Failpoint { name, actions } => {
            out.extend_from_slice(flare_daemon::fault::command_reply(&name, &actions).as_bytes())
        }
        // Index-only commands never reach here (the node parser answers them
        // `ERROR`), but stay explicit.
        Request::NodeAdd { .. }
        | Request::NodeRole { .. }
        | Request::NodeState { .. }
        | Request::NodeRemove { .. }
        | Request::Meta
        | Request::Shutdown { .. }
        | Request::Error => out.extend_from_slice(reply::ERROR),
        // Writes were routed above.
        Request::Store(_)
        | Request::Touch { .. }
        | Request::Gat { .. }
        | Request::Arith { .. }
        | Request::Delete { .. } => {
            apply_write(node, request, false, out);
        }
    }
    Next::Continue
}

/// Access control (docs/security.md): `node sync` only from this node's
/// index servers; `flush_all`, `kill`, `verbosity` only from
/// `admin-networks`; `dump`/`dump_key` from a node of the cluster, or from
/// `admin-networks`; with a required cluster secret, `node sync`, proxied
/// requests and `dump` (but from `admin-networks`) only on an
/// authenticated connection. The refusal line, or `None` to go on.
fn refuse(node: &Node, conn: &Slot, proxy: Option<&[String]>, request: &Request) -> Option<String> {
    let guarded = proxy.is_some()
        || matches!(
            request,
            Request::NodeSync { .. }
                | Request::NodeSyncFormatError
                | Request::FlushAll { .. }
                | Request::Kill { .. }
                | Request::Verbosity { .. }
                | Request::Dump { .. }
                | Request::DumpKey { .. }
        );
    if !guarded {
        return None; // every client request: nothing to check
    }
    let peer = conn.peer.as_str();
    let ip = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip);
    const UNAUTHENTICATED: &str =
        "CLIENT_ERROR authentication required: this node has a cluster secret (cluster-secret-file)\r\n";
    let cluster_command = proxy.is_some()
        || matches!(
            request,
            Request::NodeSync { .. } | Request::NodeSyncFormatError
        );
    if cluster_command && !node.trusted(conn) {
        return Some(UNAUTHENTICATED.to_string());
    }
    let secret = node.cluster_auth().is_some();
    let proved = secret && conn.auth.is_authenticated();
    match request {
        // an authenticated peer proved the cluster secret: stronger than
        // its address (a multi-homed index may connect from another one)
        Request::NodeSync { .. } | Request::NodeSyncFormatError
            if !proved && !node.may_sync(peer) =>
        {
            Some(format!(
                "CLIENT_ERROR node sync is accepted from this node's index servers only, not {ip}\r\n"
            ))
        }
        Request::Dump { .. } | Request::DumpKey { .. }
            if secret && !node.admin_allowed(peer) && !node.trusted(conn) =>
        {
            Some(UNAUTHENTICATED.to_string())
        }
        Request::FlushAll { .. } | Request::Kill { .. } | Request::Verbosity { .. }
            if !node.admin_allowed(peer) =>
        {
            Some(format!(
                "CLIENT_ERROR {} is not allowed from {ip} (admin-networks)\r\n",
                request.op_name()
            ))
        }
        Request::Dump { .. } | Request::DumpKey { .. }
            if !node.admin_allowed(peer) && !node.is_cluster_peer(peer) =>
        {
            Some(format!(
                "CLIENT_ERROR dump is allowed from the cluster's nodes and admin-networks only, not {ip}\r\n"
            ))
        }
        _ => None,
    }
}

/// Whether a request routed as a write can change the data (all but an
/// `mg` that takes part in the recache protocol only).
fn changes_data(request: &Request) -> bool {
    match request {
        Request::MetaOp(m) => m.modifies(),
        _ => true,
    }
}

/// Apply a write to local storage; `replica`: a replicated write on a
/// slave (a `touch` with a version then applies only at that version).
pub(crate) fn apply_write(
    node: &Node,
    request: Request,
    replica: bool,
    out: &mut BytesMut,
) -> Option<Applied> {
    // a slow (`sleep(MS)`) or failing disk, in the fault-injection tests
    if flare_daemon::fault::block("storage::write").is_err() {
        let e = flare_storage::StorageError::Engine("failpoint storage::write".to_string());
        node.fail_storage(request.op_name(), &e);
        out.extend_from_slice(reply::IO_ERROR);
        return None;
    }
    match request {
        Request::Store(s) => storage::apply(node, s, out),
        Request::Touch {
            key,
            exptime,
            version,
            noreply,
        } => {
            let version = if replica { version } else { 0 };
            touch::touch(node, &key, exptime, version, noreply, out)
        }
        Request::Gat {
            key,
            exptime,
            noreply,
        } => touch::gat(node, &key, exptime, noreply, out),
        Request::Arith {
            incr,
            key,
            delta,
            options,
        } => arith::apply(node, incr, &key, delta, options.noreply, out),
        Request::Delete {
            key,
            time,
            version,
            options,
        } => delete::apply(node, &key, time, version, options.noreply, out),
        Request::MetaOp(m) => meta::write(node, &m, out),
        _ => {
            out.extend_from_slice(reply::ERROR);
            None
        }
    }
}
