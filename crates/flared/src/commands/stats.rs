//! `stats` and its sub-commands (protocol.md §19).

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use flare_proto::reply::{self, stat};
use flare_proto::request::StatsKind;

use crate::node::{now, Node};
use crate::registry::ConnState;
use crate::stats::{get, rusage};

pub fn apply(node: &Node, kind: StatsKind, out: &mut BytesMut) {
    match kind {
        StatsKind::General => general(node, out),
        StatsKind::Items | StatsKind::Slabs | StatsKind::Sizes => {}
        StatsKind::Nodes => nodes(node, out),
        StatsKind::Threads => threads(node, out, true),
        StatsKind::ThreadsRequest => threads(node, out, false),
        StatsKind::ThreadsSlave => {}
        StatsKind::ThreadsQueue => stat(out, "total_thread_queue", 0),
    }
    out.extend_from_slice(reply::END);
}

fn general(node: &Node, out: &mut BytesMut) {
    let c = &node.counters;
    let now = now();
    let (user, system) = rusage();
    let conns = node.registry.len();
    stat(out, "pid", std::process::id());
    stat(out, "uptime", now - node.started_at);
    stat(out, "time", now);
    stat(out, "version", flare_proto::PACKAGE_VERSION);
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", user);
    stat(out, "rusage_system", system);
    stat(out, "curr_items", node.store.count());
    stat(out, "total_items", get(&c.total_items));
    stat(out, "bytes", node.store.size_bytes());
    stat(out, "curr_connections", conns);
    stat(out, "total_connections", get(&c.total_connections));
    stat(out, "connection_structures", 0);
    for (name, counter) in [
        ("cmd_get", &c.cmd_get),
        ("cmd_set", &c.cmd_set),
        ("get_hits", &c.get_hits),
        ("get_misses", &c.get_misses),
        ("delete_hits", &c.delete_hits),
        ("delete_misses", &c.delete_misses),
        ("incr_hits", &c.incr_hits),
        ("incr_misses", &c.incr_misses),
        ("decr_hits", &c.decr_hits),
        ("decr_misses", &c.decr_misses),
        ("cas_hits", &c.cas_hits),
        ("cas_misses", &c.cas_misses),
        ("cas_badval", &c.cas_badval),
        ("touch_hits", &c.touch_hits),
        ("touch_misses", &c.touch_misses),
    ] {
        stat(out, name, get(counter));
    }
    stat(out, "evictions", 0);
    stat(out, "bytes_read", get(&c.bytes_read));
    stat(out, "bytes_written", get(&c.bytes_written));
    stat(out, "limit_maxbytes", 0);
    stat(out, "threads", conns);
    stat(out, "pool_threads", 0);
    stat(out, "node_map_version", node.topology().version);
    reconstruction(node, out);
}

/// flare-rs additions, present only once a reconstruction (or a cleanup after
/// a split, or a dropped replication) happened since start-up, so that the
/// general list keeps the original's shape otherwise.
fn reconstruction(node: &Node, out: &mut BytesMut) {
    let p = &node.progress;
    let state = p.state();
    let cleaned = p.cleaned.load(Ordering::Relaxed);
    let dropped = node.replicator.dropped.load(Ordering::Relaxed);
    if state.is_empty() && cleaned == 0 && dropped == 0 {
        return;
    }
    stat(
        out,
        "reconstruction_state",
        if state.is_empty() { "idle" } else { state },
    );
    stat(out, "reconstruction_source", p.source());
    stat(
        out,
        "reconstruction_records",
        p.records.load(Ordering::Relaxed),
    );
    stat(out, "reconstruction_bytes", p.bytes.load(Ordering::Relaxed));
    stat(out, "split_cleanup_deleted", cleaned);
    stat(out, "replication_dropped", dropped);
}

fn nodes(node: &Node, out: &mut BytesMut) {
    let mut nodes = node.topology().nodes.clone();
    nodes.sort_by_key(|n| n.key());
    for n in nodes {
        let k = n.key();
        stat(out, &format!("{k}:role"), n.role);
        stat(out, &format!("{k}:state"), n.state);
        stat(out, &format!("{k}:partition"), n.partition);
        stat(out, &format!("{k}:balance"), n.balance);
        stat(out, &format!("{k}:thread_type"), n.thread_type);
    }
}

/// One entry per client connection (type 1). flare-rs has no alarm or pool
/// threads to show: its internal work runs as async tasks.
fn threads(node: &Node, out: &mut BytesMut, internal: bool) {
    let now = now();
    for s in node.registry.snapshot() {
        let (op, state) = s.activity();
        let id = s.id;
        stat(out, &format!("{id}:type"), 1);
        stat(out, &format!("{id}:peer"), &s.peer);
        stat(out, &format!("{id}:op"), op);
        stat(out, &format!("{id}:uptime"), now - s.started);
        stat(out, &format!("{id}:state"), state.word());
        stat(out, &format!("{id}:info"), "");
        stat(out, &format!("{id}:queue"), 0);
        stat(out, &format!("{id}:behind"), 0);
    }
    // The reconstruction, while it runs, as the original's type-3 thread.
    let p = &node.progress;
    if internal && p.state() == "running" {
        stat(out, "0:type", 3);
        stat(out, "0:peer", p.source());
        stat(out, "0:op", "dump");
        stat(out, "0:uptime", 0);
        stat(out, "0:state", ConnState::Execute.word());
        stat(
            out,
            "0:info",
            format_args!(
                "records={} bytes={}",
                p.records.load(Ordering::Relaxed),
                p.bytes.load(Ordering::Relaxed)
            ),
        );
        stat(out, "0:queue", 0);
        stat(out, "0:behind", 0);
    }
}
