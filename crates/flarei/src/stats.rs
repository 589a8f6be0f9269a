//! `stats` (protocol.md §19) and `show variables` (§20) on the index.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use flare_proto::reply::{self, stat};
use flare_proto::request::StatsKind;

use flare_daemon::padded;
use flare_proto::stats::{self, General, Thread};

use crate::index::{now, Index};

/// Column of the values in `show variables` on the index.
const SHOW_WIDTH: usize = 26;

pub fn stats(index: &Index, kind: StatsKind, out: &mut BytesMut) {
    match kind {
        StatsKind::General => general(index, out),
        StatsKind::Items
        | StatsKind::Slabs
        | StatsKind::Sizes
        | StatsKind::Settings
        | StatsKind::Cachedump { .. }
        | StatsKind::ThreadsSlave => {}
        StatsKind::Nodes => nodes(index, out),
        StatsKind::Threads => threads(index, out, false),
        StatsKind::ThreadsRequest => threads(index, out, true),
        StatsKind::ThreadsQueue => stat(out, "total_thread_queue", index.total_queue()),
    }
    out.extend_from_slice(reply::END);
}

/// The same field list and order as a node's `stats` (§19.2); the storage
/// and command counters are 0 on the index.
fn general(index: &Index, out: &mut BytesMut) {
    let c = &index.counters;
    let now = now();
    let (rusage_user, rusage_system) = flare_daemon::rusage();
    stats::general(
        out,
        &General {
            pid: std::process::id(),
            uptime: now - index.started_at,
            time: now,
            rusage_user,
            rusage_system,
            curr_connections: index.registry.clients() as u64,
            total_connections: c.total_connections.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            threads: index.registry.len() as u64,
            node_map_version: index.version(),
            ..General::default()
        },
    );
}

/// Five lines per node, node-key order (§19.5).
fn nodes(index: &Index, out: &mut BytesMut) {
    index.with_map(|map| stats::nodes(out, map.nodes()));
}

/// Client connections (type 1), then one entry per node agent (type = the
/// node's thread type, peer = the node, `queue`/`behind` = an undelivered
/// `node sync`).
fn threads(index: &Index, out: &mut BytesMut, clients_only: bool) {
    let now = now();
    for s in index.registry.snapshot() {
        if clients_only && s.kind != flare_net::TYPE_CLIENT {
            continue;
        }
        let (op, state) = s.activity();
        stats::thread(
            out,
            &Thread {
                id: u64::from(s.id),
                kind: i64::from(s.kind),
                peer: &s.peer,
                op,
                uptime: now - s.started,
                state: state.word(),
                info: &"",
                queue: s.queue(),
                behind: s.behind(now),
            },
        );
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
