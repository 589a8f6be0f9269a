//! `stats` (protocol.md §19) and `show variables` (§20) on the index.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use flare_proto::reply::{self, stat};
use flare_proto::request::StatsKind;

use crate::config::padded;
use crate::index::{now, Index};

/// Column of the values in `show variables` on the index.
const SHOW_WIDTH: usize = 26;

pub fn stats(index: &Index, kind: StatsKind, out: &mut BytesMut) {
    match kind {
        StatsKind::General => general(index, out),
        StatsKind::Items | StatsKind::Slabs | StatsKind::Sizes | StatsKind::ThreadsSlave => {}
        StatsKind::Nodes => nodes(index, out),
        StatsKind::Threads => threads(index, out, false),
        StatsKind::ThreadsRequest => threads(index, out, true),
        StatsKind::ThreadsQueue => stat(out, "total_thread_queue", index.total_queue()),
    }
    out.extend_from_slice(reply::END);
}

/// CPU time of the process: (user, system) as `sec.usec` strings.
fn rusage() -> (String, String) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return ("0.000000".into(), "0.000000".into());
    }
    let f = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (f(ru.ru_utime), f(ru.ru_stime))
}

/// The same field list and order as a node's `stats` (§19.2); the storage
/// and command counters are 0 on the index.
fn general(index: &Index, out: &mut BytesMut) {
    let c = &index.counters;
    let now = now();
    let (user, system) = rusage();
    stat(out, "pid", std::process::id());
    stat(out, "uptime", now - index.started_at);
    stat(out, "time", now);
    stat(out, "version", flare_proto::PACKAGE_VERSION);
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", user);
    stat(out, "rusage_system", system);
    stat(out, "curr_items", 0);
    stat(out, "total_items", 0);
    stat(out, "bytes", 0);
    stat(out, "curr_connections", index.registry.clients());
    stat(
        out,
        "total_connections",
        c.total_connections.load(Ordering::Relaxed),
    );
    stat(out, "connection_structures", 0);
    for name in [
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "cas_hits",
        "cas_misses",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "evictions",
    ] {
        stat(out, name, 0);
    }
    stat(out, "bytes_read", c.bytes_read.load(Ordering::Relaxed));
    stat(
        out,
        "bytes_written",
        c.bytes_written.load(Ordering::Relaxed),
    );
    stat(out, "limit_maxbytes", 0);
    stat(out, "threads", index.registry.len());
    stat(out, "pool_threads", 0);
    stat(out, "node_map_version", index.version());
}

/// Five lines per node, node-key order (§19.5).
fn nodes(index: &Index, out: &mut BytesMut) {
    index.with_map(|map| {
        for n in map.nodes() {
            let k = n.key();
            stat(out, &format!("{k}:role"), n.role);
            stat(out, &format!("{k}:state"), n.state);
            stat(out, &format!("{k}:partition"), n.partition);
            stat(out, &format!("{k}:balance"), n.balance);
            stat(out, &format!("{k}:thread_type"), n.thread_type);
        }
    });
}

/// Client connections (type 1), then one entry per node agent (type = the
/// node's thread type, peer = the node, `queue`/`behind` = an undelivered
/// `node sync`).
fn threads(index: &Index, out: &mut BytesMut, clients_only: bool) {
    let now = now();
    for s in index.registry.snapshot() {
        if clients_only && s.kind != crate::registry::TYPE_CLIENT {
            continue;
        }
        let (op, state) = s.activity();
        let id = s.id;
        stat(out, &format!("{id}:type"), s.kind);
        stat(out, &format!("{id}:peer"), &s.peer);
        stat(out, &format!("{id}:op"), op);
        stat(out, &format!("{id}:uptime"), now - s.started);
        stat(out, &format!("{id}:state"), state.word());
        stat(out, &format!("{id}:info"), "");
        stat(out, &format!("{id}:queue"), s.queue());
        stat(out, &format!("{id}:behind"), s.behind(now));
    }
}

pub fn show_variables(index: &Index, out: &mut BytesMut) {
    let mut cfg = index.config.clone();
    cfg.monitor = index.monitor_config();
    cfg.max_connection = index.max_connection();
    for (name, value) in cfg.variables() {
        reply::line(out, padded(name, &value, SHOW_WIDTH));
    }
    out.extend_from_slice(reply::END);
}
