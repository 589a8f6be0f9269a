//! `stats` and its sub-commands (protocol.md §19).

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use flare_proto::reply::{self, stat};
use flare_proto::request::StatsKind;

use crate::node::{now, Node};
use flare_proto::stats::{self, CommandCounts, General, Thread};

use crate::stats::get;

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
    let (rusage_user, rusage_system) = flare_daemon::rusage();
    let conns = node.registry.len() as u64;
    let commands = CommandCounts {
        cmd_get: get(&c.cmd_get),
        cmd_set: get(&c.cmd_set),
        get_hits: get(&c.get_hits),
        get_misses: get(&c.get_misses),
        delete_hits: get(&c.delete_hits),
        delete_misses: get(&c.delete_misses),
        incr_hits: get(&c.incr_hits),
        incr_misses: get(&c.incr_misses),
        decr_hits: get(&c.decr_hits),
        decr_misses: get(&c.decr_misses),
        cas_hits: get(&c.cas_hits),
        cas_misses: get(&c.cas_misses),
        cas_badval: get(&c.cas_badval),
        touch_hits: get(&c.touch_hits),
        touch_misses: get(&c.touch_misses),
    };
    stats::general(
        out,
        &General {
            pid: std::process::id(),
            uptime: now - node.started_at,
            time: now,
            rusage_user,
            rusage_system,
            curr_items: node.store.count(),
            total_items: get(&c.total_items),
            bytes: node.store.size_bytes(),
            curr_connections: conns,
            total_connections: get(&c.total_connections),
            commands,
            bytes_read: get(&c.bytes_read),
            bytes_written: get(&c.bytes_written),
            threads: conns,
            pool_threads: 0,
            node_map_version: node.topology().version,
        },
    );
    reconstruction(node, out);
}

/// flare-rs additions, present only once a reconstruction (or a cleanup after
/// a split, or a dropped replication) happened since start-up, so that the
/// general list keeps the original's shape otherwise.
fn reconstruction(node: &Node, out: &mut BytesMut) {
    let p = &node.progress;
    let state = p.state();
    let cleaned = p.cleaned.load(Ordering::Relaxed);
    let dropped = node.replicator.dropped();
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
    stats::nodes(out, &node.topology().nodes);
}

/// One entry per client connection (type 1). flare-rs has no alarm or pool
/// threads to show: its internal work runs as async tasks.
fn threads(node: &Node, out: &mut BytesMut, internal: bool) {
    let now = now();
    for s in node.registry.snapshot() {
        let (op, state) = s.activity();
        stats::thread(
            out,
            &Thread {
                id: u64::from(s.id),
                kind: 1,
                peer: &s.peer,
                op,
                uptime: now - s.started,
                state: state.word(),
                info: &"",
                queue: 0,
                behind: 0,
            },
        );
    }
    // The reconstruction, while it runs, as the original's type-3 thread.
    let p = &node.progress;
    if internal && p.state() == "running" {
        let info = format!(
            "records={} bytes={}",
            p.records.load(Ordering::Relaxed),
            p.bytes.load(Ordering::Relaxed)
        );
        stats::thread(
            out,
            &Thread {
                id: 0,
                kind: 3,
                peer: &p.source(),
                op: "dump",
                uptime: 0,
                state: flare_net::SlotState::Execute.word(),
                info: &info,
                queue: 0,
                behind: 0,
            },
        );
    }
}
