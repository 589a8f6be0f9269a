//! The node's Prometheus metrics (USAGE.md, "Monitoring"): read from the
//! node's counters, storage, replication and forwarding when scraped.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flare_daemon::metrics::{Families, Scrape};

use crate::node::Node;
use crate::stats::{get, Class};

/// The node's figures, read when scraped.
pub fn scrape(node: &Arc<Node>) -> Scrape<Node> {
    Scrape::new(node, |n| n.started_at, encode)
}

fn encode(node: &Node, f: &mut Families) -> Result<(), std::fmt::Error> {
    cluster(node, f)?;
    requests(node, f)?;
    storage(node, f)?;
    replication(node, f)?;
    forwarding(node, f)?;
    reconstruction(node, f)
}

fn cluster(node: &Node, f: &mut Families) -> Result<(), std::fmt::Error> {
    let topology = node.topology();
    let me = topology.node(&node.me);
    let (role, state, partition) = match me {
        Some(n) => (n.role.word(), n.state.word(), n.partition.to_string()),
        None => ("proxy", "active", "-1".to_string()),
    };
    f.gauges(
        "node_info",
        "This node in the node map (always 1): its role, state and partition as labels.",
        &[(
            [
                ("node", Cow::Borrowed(node.me.as_str())),
                ("role", Cow::Borrowed(role)),
                ("state", Cow::Borrowed(state)),
                ("partition", Cow::Owned(partition)),
            ],
            1.0,
        )],
    )?;
    f.gauge(
        "node_map_version",
        "Version of the node map this node has (from the index's node sync).",
        topology.version as f64,
    )
}

fn requests(node: &Node, f: &mut Families) -> Result<(), std::fmt::Error> {
    let c = &node.counters;
    let by: Vec<_> = c
        .requests
        .series()
        .into_iter()
        .map(|(command, outcome, n)| ([("command", command), ("outcome", outcome)], n))
        .collect();
    f.counters(
        "requests",
        "Requests served, by command and by the outcome their reply tells.",
        &by,
    )?;
    let classes: Vec<_> = Class::ALL
        .iter()
        .map(|k| ([("class", k.name())], c.latency.get(*k)))
        .collect();
    f.histograms(
        "request_duration_seconds",
        "Time from a request's arrival to its reply, for requests that read or write data: local_ or proxied_ (another node served it), read or write.",
        &classes,
    )?;
    f.counters(
        "get_keys",
        "Keys looked up in this node's storage by get, gets and mg, found (hit) or not (miss).",
        &[
            ([("outcome", "hit")], get(&c.get_hits)),
            ([("outcome", "miss")], get(&c.get_misses)),
        ],
    )?;
    f.counter(
        "received_bytes",
        "Bytes received from clients and other nodes.",
        get(&c.bytes_read),
    )?;
    f.counter(
        "sent_bytes",
        "Bytes sent to clients and other nodes.",
        get(&c.bytes_written),
    )?;
    f.gauge(
        "connections",
        "Open connections (clients, other nodes, the index).",
        node.registry.len() as f64,
    )?;
    f.counter(
        "connections_accepted",
        "Connections accepted.",
        get(&c.total_connections),
    )?;
    f.counter(
        "connections_refused",
        "Connections refused because max-connection were open.",
        get(&c.refused_connections),
    )
}

fn storage(node: &Node, f: &mut Families) -> Result<(), std::fmt::Error> {
    let e = node.store.engine_stats();
    let (cache_hits, cache_misses) = node.store.record_cache_stats();
    f.gauge(
        "storage_items",
        "Records stored.",
        node.store.count() as f64,
    )?;
    f.gauge(
        "storage_live_data_bytes",
        "Bytes of live data in storage (RocksDB's estimate).",
        e.live_data_bytes as f64,
    )?;
    f.gauge(
        "storage_sst_bytes",
        "Bytes of RocksDB's sorted table files.",
        e.sst_bytes as f64,
    )?;
    f.gauge(
        "storage_blob_bytes",
        "Bytes of RocksDB's blob files (values of 4 KiB or more).",
        e.blob_bytes as f64,
    )?;
    f.gauge(
        "storage_memtable_bytes",
        "Bytes in RocksDB's write buffers.",
        e.memtable_bytes as f64,
    )?;
    f.counter(
        "storage_block_cache_hits",
        "Reads RocksDB's block cache answered.",
        e.block_cache_hits,
    )?;
    f.counter(
        "storage_block_cache_misses",
        "Reads RocksDB's block cache did not answer (read from disk).",
        e.block_cache_misses,
    )?;
    f.counter_f64(
        "storage_write_stall_seconds",
        "Time writes were stalled or slowed down by RocksDB (compaction behind).",
        e.stall_micros as f64 / 1e6,
    )?;
    f.counter(
        "storage_record_cache_hits",
        "Reads the record cache (storage-record-cache-size) answered.",
        cache_hits,
    )?;
    f.counter(
        "storage_record_cache_misses",
        "Reads the record cache did not answer.",
        cache_misses,
    )
}

fn replication(node: &Node, f: &mut Families) -> Result<(), std::fmt::Error> {
    let dests = node.replicator.stats();
    let now = crate::replication::unix_ms();
    let label = |d: &crate::replication::DestSnapshot| [("slave", d.dest.clone())];
    let gauges = |v: &dyn Fn(&crate::replication::DestSnapshot) -> f64| -> Vec<_> {
        dests.iter().map(|d| (label(d), v(d))).collect()
    };
    let counters = |v: &dyn Fn(&crate::replication::DestSnapshot) -> u64| -> Vec<_> {
        dests.iter().map(|d| (label(d), v(d))).collect()
    };
    f.gauges(
        "replication_queue_writes",
        "Writes queued for or in delivery to a slave (its lag in writes).",
        &gauges(&|d| d.stats.queued.load(Ordering::Relaxed) as f64),
    )?;
    f.gauges(
        "replication_queue_bytes",
        "Bytes of the writes queued for a slave (at most 64 MiB, then writers wait).",
        &gauges(&|d| d.queued_bytes as f64),
    )?;
    f.gauges(
        "replication_lag_seconds",
        "How long the oldest write not yet acknowledged by a slave has waited (0: caught up).",
        &gauges(&|d| d.stats.lag(now).as_secs_f64()),
    )?;
    f.counters(
        "replication_acks",
        "Writes a slave acknowledged.",
        &counters(&|d| d.stats.acks.load(Ordering::Relaxed)),
    )?;
    f.counters(
        "replication_failures",
        "Delivery attempts to a slave that failed (retried while it stays a target).",
        &counters(&|d| d.stats.failures.load(Ordering::Relaxed)),
    )?;
    f.counters(
        "replication_dropped",
        "Writes a slave never got while in the node map: it must be rebuilt.",
        &counters(&|d| d.stats.dropped.load(Ordering::Relaxed)),
    )
}

fn forwarding(node: &Node, f: &mut Families) -> Result<(), std::fmt::Error> {
    let peers = node.peers.stats();
    let series = |v: &dyn Fn(&flare_net::PeerStats) -> u64| -> Vec<_> {
        peers
            .iter()
            .map(|(p, s)| ([("peer", p.clone())], v(s)))
            .collect()
    };
    let in_flight: Vec<_> = series(&|s| s.in_flight.load(Ordering::Relaxed))
        .into_iter()
        .map(|(l, v)| (l, v as f64))
        .collect();
    f.gauges(
        "forward_in_flight",
        "Requests forwarded to another node and not yet answered.",
        &in_flight,
    )?;
    f.counters(
        "forward_requests",
        "Requests forwarded to another node.",
        &series(&|s| s.requests.load(Ordering::Relaxed)),
    )?;
    f.counters(
        "forward_errors",
        "Forwarded requests that failed (no connection, connection lost, no answer).",
        &series(&|s| s.errors.load(Ordering::Relaxed)),
    )?;
    f.counters(
        "forward_timeouts",
        "Forwarded requests not answered within proxy-timeout.",
        &series(&|s| s.timeouts.load(Ordering::Relaxed)),
    )
}

fn reconstruction(node: &Node, f: &mut Families) -> Result<(), std::fmt::Error> {
    let p = &node.progress;
    f.gauge(
        "reconstruction_records",
        "Records copied by the current (or last) reconstruction.",
        p.records.load(Ordering::Relaxed) as f64,
    )?;
    f.gauge(
        "reconstruction_bytes",
        "Bytes copied by the current (or last) reconstruction.",
        p.bytes.load(Ordering::Relaxed) as f64,
    )?;
    let current = match p.state() {
        "" => "idle",
        s => s,
    };
    let states: Vec<_> = ["idle", "running", "done", "failed"]
        .iter()
        .map(|s| ([("state", *s)], if *s == current { 1.0 } else { 0.0 }))
        .collect();
    f.gauges(
        "reconstruction_state",
        "1 for the state of the current (or last) reconstruction: idle, running, done or failed.",
        &states,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flare_cluster::{HashAlgorithm, ModularTable};
    use flare_storage::{memory::MemoryEngine, DynEngine, Store, StoreConfig};

    /// A standalone node on the memory engine.
    fn node() -> Arc<Node> {
        let dir = std::env::temp_dir();
        let mut s = flare_daemon::Settings::new(crate::SPECS);
        s.set("data-dir", &dir.display().to_string())
            .expect("data-dir");
        s.set("server-name", "127.0.0.1").expect("server-name");
        let config = crate::NodeConfig::from_settings(s).expect("config");
        let store = Store::open(
            Box::new(MemoryEngine::default()) as DynEngine,
            StoreConfig::default(),
        )
        .expect("store");
        let topology = crate::topology::Topology::standalone(
            "127.0.0.1",
            12121,
            Arc::new(ModularTable::default()),
            HashAlgorithm::Simple,
        );
        Arc::new(Node::new(config, store, topology))
    }

    #[tokio::test]
    async fn names_follow_the_conventions_and_are_documented() {
        let node = node();
        // every family with samples: a request, a replication destination
        // and a forwarding peer (nothing listens on port 1)
        node.counters.requests.count(0, 0);
        let dest = "127.0.0.1:1".to_string();
        let (room, _) = node
            .replicator
            .reserve(std::slice::from_ref(&dest), &[], b"k", 1)
            .await;
        assert_eq!(room.len(), 1);
        drop(room);
        let _ = node.peers.pipe(&dest, 0);
        let docs = include_str!("../../../USAGE.md");
        let problems = flare_daemon::metrics::check_names(&scrape(&node).registry(), docs);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
