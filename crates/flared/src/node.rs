//! The node's shared state: configuration, storage, counters, connections and
//! its view of the cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flare_proto::node::NodeLine;
use flare_proto::{Dialect, Limits, Parser};
use flare_storage::{RocksEngine, Store};

use crate::config::NodeConfig;
use crate::proxy::Peers;
use crate::registry::Registry;
use crate::stats::Counters;
use crate::topology::Topology;

/// Unix time now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Everything a connection needs.
pub struct Node {
    pub config: NodeConfig,
    pub store: Store<RocksEngine>,
    pub counters: Counters,
    pub registry: Registry,
    pub started_at: i64,
    pub parser: Parser,
    /// This node's key, `server-name:server-port`.
    pub me: String,
    topology: RwLock<Arc<Topology>>,
    pub peers: Peers,
    /// Set after a storage write failure: `ping` answers `SERVER_ERROR storage
    /// error` until restart, so that the index takes the node out.
    storage_failed: AtomicBool,
}

impl Node {
    pub fn new(config: NodeConfig, store: Store<RocksEngine>, topology: Topology) -> Node {
        let limits = Limits {
            max_line: config.max_line_size,
            max_value: config.max_item_size,
        };
        Node {
            store,
            counters: Counters::default(),
            registry: Registry::new(),
            started_at: now(),
            parser: Parser::with_limits(Dialect::Node, limits),
            me: format!("{}:{}", config.server_name, config.server_port),
            topology: RwLock::new(Arc::new(topology)),
            peers: Peers::new(
                config.proxy_concurrency,
                Duration::from_millis(config.proxy_timeout_ms),
            ),
            storage_failed: AtomicBool::new(false),
            config,
        }
    }

    /// The current cluster view (cheap: an `Arc` clone).
    pub fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Apply a `node sync`: `Err(current)` when `version` is older than the
    /// current non-zero version (cluster.md §3.3).
    pub fn install(&self, version: u64, nodes: Vec<NodeLine>) -> Result<(), u64> {
        let mut slot = self.topology.write().unwrap_or_else(|e| e.into_inner());
        let cur = Arc::clone(&slot);
        if cur.version > 0 && version < cur.version {
            return Err(cur.version);
        }
        let me_before = cur
            .node(&self.me)
            .map(|n| (n.role, n.state, n.partition, n.balance));
        let next = Topology::from_nodes(
            version,
            nodes,
            Some(&cur.maps),
            Arc::clone(&cur.table),
            cur.hash,
        );
        let me_after = next
            .node(&self.me)
            .map(|n| (n.role, n.state, n.partition, n.balance));
        if me_before != me_after {
            tracing::info!(
                "node map version {version}: this node {:?} -> {:?}",
                me_before,
                me_after
            );
        }
        let keys: std::collections::HashSet<String> =
            next.nodes.iter().map(NodeLine::key).collect();
        *slot = Arc::new(next);
        drop(slot);
        self.peers.retain(|k| keys.contains(k));
        Ok(())
    }

    pub fn storage_failed(&self) -> bool {
        self.storage_failed.load(Ordering::Relaxed)
    }

    /// Record a storage write failure (sticky until restart).
    pub fn fail_storage(&self, what: &str, e: &flare_storage::StorageError) {
        tracing::error!("storage i/o error during {what}: {e}");
        self.storage_failed.store(true, Ordering::Relaxed);
    }
}
