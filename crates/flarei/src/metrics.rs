//! The index's Prometheus metrics (USAGE.md, "Monitoring"): the node map,
//! the monitor's pings, failovers and node sync deliveries, read when scraped.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flare_daemon::metrics::{Families, Scrape};
use flare_proto::node::{Role, State};

use crate::index::Index;

/// The index's figures, read when scraped.
pub fn scrape(index: &Arc<Index>) -> Scrape<Index> {
    Scrape::new(index, |i| i.started_at, encode)
}

const ROLES: [Role; 3] = [Role::Master, Role::Slave, Role::Proxy];
const STATES: [State; 4] = [State::Active, State::Prepare, State::Down, State::Ready];

fn encode(index: &Index, f: &mut Families) -> Result<(), std::fmt::Error> {
    let (version, counts) = index.with_map(|m| {
        let mut counts: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for r in ROLES {
            for s in STATES {
                counts.insert((r.word(), s.word()), 0);
            }
        }
        for n in m.nodes() {
            *counts.entry((n.role.word(), n.state.word())).or_default() += 1;
        }
        (m.version, counts)
    });
    f.gauge(
        "index_node_map_version",
        "Version of the node map (flare.xml); every change adds one.",
        version as f64,
    )?;
    let nodes: Vec<_> = counts
        .into_iter()
        .map(|((role, state), n)| ([("role", role), ("state", state)], n as f64))
        .collect();
    f.gauges(
        "index_nodes",
        "Nodes in the node map by role and state.",
        &nodes,
    )?;
    let c = &index.counters;
    f.counter(
        "index_failovers",
        "Slaves promoted to master because their master went down.",
        c.failovers.load(Ordering::Relaxed),
    )?;
    f.counter(
        "index_node_map_saves",
        "Node map changes saved to flare.xml.",
        c.map_saves.load(Ordering::Relaxed),
    )?;
    let per = index.node_stats();
    let series = |v: &dyn Fn(&crate::index::NodeStats) -> u64| -> Vec<_> {
        per.iter()
            .map(|(k, s)| ([("node", k.clone())], v(s)))
            .collect()
    };
    let latency: Vec<_> = series(&|s| s.last_ping_ns.load(Ordering::Relaxed))
        .into_iter()
        .map(|(l, ns)| (l, ns as f64 / 1e9))
        .collect();
    f.gauges(
        "index_ping_duration_seconds",
        "Round trip of the monitor's last answered ping to a node.",
        &latency,
    )?;
    f.counters(
        "index_pings",
        "Pings the monitor sent to a node.",
        &series(&|s| s.pings.load(Ordering::Relaxed)),
    )?;
    f.counters(
        "index_ping_failures",
        "Pings to a node that failed (monitor-threshold in a row mark it down).",
        &series(&|s| s.ping_failures.load(Ordering::Relaxed)),
    )?;
    f.counters(
        "index_node_syncs",
        "Node maps a node took (node sync answered OK, or stale: it had a newer one).",
        &series(&|s| s.syncs.load(Ordering::Relaxed)),
    )?;
    f.counters(
        "index_node_sync_failures",
        "Failed node sync deliveries to a node (each is retried with backoff).",
        &series(&|s| s.sync_failures.load(Ordering::Relaxed)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_follow_the_conventions_and_are_documented() {
        let dir = std::env::temp_dir();
        let mut s = flare_daemon::Settings::new(crate::SPECS);
        s.set("data-dir", &dir.display().to_string())
            .expect("data-dir");
        let config = crate::IndexConfig::from_settings(s).expect("config");
        // one node (nothing listens on port 1), so that the per-node
        // families have a sample
        let node = flare_proto::node::NodeLine {
            name: "127.0.0.1".to_string(),
            port: 1,
            role: Role::Proxy,
            state: State::Active,
            partition: -1,
            balance: 0,
            thread_type: 16,
        };
        let map = crate::NodeMap::from_parts(vec![node], 1, 17);
        let store = crate::MapStore::File(config.db_dir.clone());
        let index = Index::new(config, store, map);
        index.start_agents();
        let docs = include_str!("../../../USAGE.md");
        let problems = flare_daemon::metrics::check_names(&scrape(&index).registry(), docs);
        index.stop_agents().await;
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
