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
        StatsKind::Items => items(node, out),
        StatsKind::Slabs => slabs(node, out),
        StatsKind::Sizes => stat(out, "sizes_status", "disabled"),
        StatsKind::Settings => settings(node, out),
        StatsKind::Cachedump { slab, limit } => cachedump(node, slab, limit, out),
        StatsKind::Nodes => nodes(node, out),
        StatsKind::Threads => threads(node, out, true),
        StatsKind::ThreadsRequest => threads(node, out, false),
        StatsKind::ThreadsSlave => {}
        StatsKind::ThreadsQueue => stat(out, "total_thread_queue", 0),
    }
    out.extend_from_slice(reply::END);
}

/// memcached's `stats items`, for a store without slabs: every record
/// counts in class 1. Nothing is ever evicted or lost for lack of memory.
fn items(node: &Node, out: &mut BytesMut) {
    let count = node.store.count();
    if count == 0 {
        return;
    }
    stat(out, "items:1:number", count);
    stat(out, "items:1:mem_requested", node.store.size_bytes());
    stat(out, "items:1:evicted", 0);
    stat(out, "items:1:evicted_nonzero", 0);
    stat(out, "items:1:outofmemory", 0);
}

/// memcached's `stats slabs`: one class holding every record.
fn slabs(node: &Node, out: &mut BytesMut) {
    let count = node.store.count();
    let bytes = node.store.size_bytes();
    if count > 0 {
        stat(out, "1:used_chunks", count);
        stat(out, "1:mem_requested", bytes);
    }
    stat(out, "active_slabs", u64::from(count > 0));
    stat(out, "total_malloced", bytes);
}

/// memcached's `stats settings`, with this node's values.
fn settings(node: &Node, out: &mut BytesMut) {
    let cfg = node.config();
    let limits = node.parser.limits;
    stat(out, "maxconns", cfg.max_connection);
    stat(out, "tcpport", cfg.server_port);
    stat(out, "udpport", 0);
    stat(out, "evictions", "off");
    stat(out, "cas_enabled", "yes");
    stat(out, "tcp_backlog", cfg.back_log);
    stat(out, "binding_protocol", "auto-negotiate");
    stat(out, "item_size_max", limits.max_value);
    stat(out, "key_size_max", flare_proto::text::cursor::MAX_KEY_LEN);
    stat(out, "idle_timeout", cfg.net_read_timeout);
    stat(out, "meta_response_old", "no");
}

/// Most bytes of `ITEM` lines one `stats cachedump` returns (memcached's
/// bound).
const CACHEDUMP_MAX: usize = 2 << 20;

/// memcached's `stats cachedump <class> <limit>`: `ITEM <key> [<size> b;
/// <expire> s]` for up to `limit` live records (0: as many as fit in 2
/// MiB), read from storage. Only class 1 exists.
fn cachedump(node: &Node, slab: u32, limit: u32, out: &mut BytesMut) {
    if slab != 1 {
        return;
    }
    let start = out.len();
    let mut n = 0u32;
    let r = node.store.scan_live(now(), &mut |key, r| {
        out.extend_from_slice(b"ITEM ");
        out.extend_from_slice(key);
        out.extend_from_slice(b" [");
        reply::put_u64(out, r.value.len() as u64);
        out.extend_from_slice(b" b; ");
        reply::put_i64(out, r.expire);
        out.extend_from_slice(b" s]\r\n");
        n += 1;
        (limit == 0 || n < limit) && out.len() - start < CACHEDUMP_MAX
    });
    if let Err(e) = r {
        tracing::warn!("stats cachedump: {e}");
    }
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
