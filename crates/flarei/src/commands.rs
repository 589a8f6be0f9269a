//! Index commands (protocol.md §18–§30): each applies a request and encodes
//! its reply.

use bytes::BytesMut;
use flare_proto::node::State;
use flare_proto::{reply, Request};

use crate::error::IndexError;
use crate::index::Index;
use crate::map::{node_key, DownMode, Op};
use crate::stats;
pub use flare_net::Next;
use flare_net::Slot;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

const FAILED_ADD: &[u8] = b"SERVER_ERROR failed to add node\r\n";
const FAILED_ROLE: &[u8] = b"SERVER_ERROR failed to set role (and balance)\r\n";
const FAILED_STATE: &[u8] = b"SERVER_ERROR failed to set state\r\n";
const FAILED_REMOVE: &[u8] = b"SERVER_ERROR failed to remove node\r\n";
const FAILED_SHUTDOWN: &[u8] = b"SERVER_ERROR failed to shutdown\r\n";

/// Apply an operation; `OK` or `failure`, logging refusals.
async fn op_reply(index: &Arc<Index>, what: &str, op: Op, failure: &[u8], out: &mut BytesMut) {
    match index.apply(op).await {
        Ok(_) => out.extend_from_slice(reply::OK),
        Err(e) => refused(what, &e, failure, out),
    }
}

/// The reply to a refused operation: the command's usual error, or, when
/// the node map could not be read or written in ZooKeeper, what is wrong
/// (the operator retries once ZooKeeper is back).
fn refused(what: &str, e: &IndexError, failure: &[u8], out: &mut BytesMut) {
    tracing::warn!("{what} refused: {e}");
    match e {
        IndexError::ZooKeeper(z) => {
            reply::line(out, format_args!("SERVER_ERROR {z}"));
        }
        _ => out.extend_from_slice(failure),
    }
}

/// Is `ip` an address of the node `name`? (An IP literal is compared as
/// is; a host name is resolved.)
fn is_address_of(ip: IpAddr, name: &str, port: i32) -> bool {
    if let Ok(lit) = name.parse::<IpAddr>() {
        return lit.to_canonical() == ip;
    }
    let port = u16::try_from(port).unwrap_or(0);
    (name, port)
        .to_socket_addrs()
        .map(|mut addrs| addrs.any(|a| a.ip().to_canonical() == ip))
        .unwrap_or(false)
}

/// Is `ip` an address of a node in the map? (Nodes report their own
/// rebuilds and their slaves' missed writes with `node state`/`node role`.)
fn is_cluster_node(index: &Index, ip: IpAddr) -> bool {
    index
        .node_names()
        .iter()
        .any(|(name, port)| is_address_of(ip, name, i32::from(*port)))
}

/// Access control (docs/security.md): the refusal line, or `None`.
/// `node role`/`node state` from `admin-networks` or from the cluster's
/// nodes, `node remove` from `admin-networks`; `node add`/`shutdown` from
/// the node they name; with a required cluster secret, what nodes send
/// only on an authenticated connection.
fn refuse(index: &Index, conn: &Slot, request: &Request) -> Option<String> {
    let ip = conn.ip()?;
    let access = index.access();
    let auth = index.config.cluster_auth.as_ref();
    let trusted = auth.is_none_or(|a| !a.required() || conn.auth.is_authenticated());
    const UNAUTHENTICATED: &str =
        "CLIENT_ERROR authentication required: this index has a cluster secret (cluster-secret-file)\r\n";
    match request {
        Request::NodeRole { .. } | Request::NodeState { .. } if !access.admin.contains(ip) => {
            if !is_cluster_node(index, ip) {
                Some(format!(
                    "CLIENT_ERROR {} is not allowed from {ip} (admin-networks)\r\n",
                    request.op_name().replace('_', " ")
                ))
            } else if !trusted {
                Some(UNAUTHENTICATED.to_string())
            } else {
                None
            }
        }
        Request::NodeAdd { .. } | Request::Shutdown { .. } if !trusted => {
            Some(UNAUTHENTICATED.to_string())
        }
        Request::NodeRemove { .. } if !access.admin.contains(ip) => {
            Some(format!(
                "CLIENT_ERROR {} is not allowed from {ip} (admin-networks)\r\n",
                request.op_name().replace('_', " ")
            ))
        }
        Request::NodeAdd { name, port } | Request::Shutdown { name, port }
            if access.node_address_check && !is_address_of(ip, name, *port) =>
        {
            Some(format!(
                "CLIENT_ERROR {} {name}:{port} is accepted only from that node's address, not {ip} (node-address-check)\r\n",
                request.op_name().replace('_', " ")
            ))
        }
        _ => None,
    }
}

/// Apply one request; replies are appended to `out`.
pub async fn execute(
    index: &Arc<Index>,
    conn: &Slot,
    request: Request,
    out: &mut BytesMut,
) -> Next {
    if let Some(refusal) = refuse(index, conn, &request) {
        tracing::warn!("{} (from {})", refusal.trim_end(), conn.peer);
        out.extend_from_slice(refusal.as_bytes());
        return Next::Continue;
    }
    match request {
        Request::AuthChallenge { nonce } => {
            let auth = index.config.cluster_auth.as_deref().map(|a| a.secret());
            out.extend_from_slice(conn.auth.challenge(auth, &nonce).as_bytes());
        }
        Request::AuthResponse { proof } => {
            let auth = index.config.cluster_auth.as_deref().map(|a| a.secret());
            let line = conn.auth.response(auth, &proof);
            if line != "OK\r\n" {
                tracing::warn!("cluster authentication failed for {}", conn.peer);
            }
            out.extend_from_slice(line.as_bytes());
        }
        Request::NodeAdd { name, port } => node_add(index, name, port, out).await,
        Request::NodeRole {
            name,
            port,
            role,
            balance,
            partition,
        } => {
            let key = node_key(&name, port);
            let what = format!("node role {key} {role} {balance} {partition}");
            let op = Op::Role {
                key,
                role,
                balance,
                partition,
            };
            op_reply(index, &what, op, FAILED_ROLE, out).await;
        }
        Request::NodeState { name, port, state } => {
            let key = node_key(&name, port);
            let what = format!("node state {key} {state}");
            let op = match state {
                State::Down => Op::Down {
                    key,
                    mode: DownMode::Manual,
                },
                State::Active => Op::Up { key },
                State::Ready => Op::Ready { key },
                State::Prepare => {
                    tracing::warn!("{what} refused: prepare cannot be set");
                    out.extend_from_slice(FAILED_STATE);
                    return Next::Continue;
                }
            };
            op_reply(index, &what, op, FAILED_STATE, out).await;
        }
        Request::NodeRemove { name, port } => {
            let key = node_key(&name, port);
            let what = format!("node remove {key}");
            op_reply(index, &what, Op::Remove { key }, FAILED_REMOVE, out).await;
        }
        Request::Shutdown { name, port } => {
            let key = node_key(&name, port);
            tracing::info!("shutdown message from node {key}");
            let what = format!("shutdown {key}");
            let op = Op::Down {
                key,
                mode: DownMode::Shutdown,
            };
            op_reply(index, &what, op, FAILED_SHUTDOWN, out).await;
        }
        Request::Meta => meta(index, out),
        Request::Ping => out.extend_from_slice(reply::OK),
        Request::Stats(kind) => stats::stats(index, kind, out),
        Request::ShowVariables => stats::show_variables(index, out),
        Request::Kill { thread_id } => return kill(index, conn, thread_id, out),
        Request::Verbosity { noreply, .. } => {
            if !noreply {
                out.extend_from_slice(reply::OK);
            }
        }
        Request::Version => {
            reply::line(out, format_args!("VERSION {}", flare_proto::VERSION_STRING))
        }
        Request::Quit => return Next::Close,
        Request::Ignored => {}
        Request::Invalid(line) => out.extend_from_slice(line.as_bytes()),
        Request::Failpoint { name, actions } => {
            out.extend_from_slice(flare_daemon::fault::command_reply(&name, &actions).as_bytes())
        }
        // Node-only commands never come out of the index parser, but stay explicit.
        Request::MetaOp(_)
        | Request::MetaNoop
        | Request::Noop
        | Request::Store(_)
        | Request::Get { .. }
        | Request::Touch { .. }
        | Request::Gat { .. }
        | Request::Arith { .. }
        | Request::Delete { .. }
        | Request::FlushAll { .. }
        | Request::Dump { .. }
        | Request::DumpKey { .. }
        | Request::Keys { .. }
        | Request::NodeSync { .. }
        | Request::NodeSyncFormatError
        | Request::Error => out.extend_from_slice(reply::ERROR),
    }
    Next::Continue
}

/// `node add`: the whole map (`NODE` lines, node-key order) then `END`.
async fn node_add(index: &Arc<Index>, name: String, port: i32, out: &mut BytesMut) {
    let key = node_key(&name, port);
    let result = index
        .apply_then(Op::Add { name, port }, |map| {
            for n in map.nodes() {
                reply::line(out, n);
            }
            out.extend_from_slice(reply::END);
        })
        .await;
    if let Err(e) = result {
        refused(&format!("node add {key}"), &e, FAILED_ADD, out);
    }
}

/// `meta`: the partitioning parameters nodes must use (cluster.md §2.2).
fn meta(index: &Index, out: &mut BytesMut) {
    let c = &index.config;
    reply::line(
        out,
        format_args!("META partition-size {}", c.partition_size),
    );
    reply::line(
        out,
        format_args!("META key-hash-algorithm {}", c.hash.name()),
    );
    reply::line(out, "META partition-type modular");
    reply::line(
        out,
        format_args!("META partition-modular-hint {}", c.partition_modular_hint),
    );
    reply::line(
        out,
        format_args!(
            "META partition-modular-virtual {}",
            c.partition_modular_virtual
        ),
    );
    out.extend_from_slice(reply::END);
}

/// `kill <id>`: close a client connection (this one after `OK`), or reset a
/// node agent's connection (it reconnects; monitoring goes on).
fn kill(index: &Index, conn: &Slot, id: u32, out: &mut BytesMut) -> Next {
    if id == conn.id {
        out.extend_from_slice(reply::OK);
        return Next::Close;
    }
    if index.registry.kill(id) {
        out.extend_from_slice(reply::OK);
    } else {
        out.extend_from_slice(reply::THREAD_NOT_FOUND);
    }
    Next::Continue
}
