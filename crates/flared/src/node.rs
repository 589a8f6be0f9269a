//! The node's shared state: configuration, storage, counters, connections and
//! its view of the cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use flare_cluster::{HashAlgorithm, ModularTable};
use flare_proto::node::{NodeLine, Role, State};
use flare_proto::{Dialect, Limits, Parser};
use flare_storage::{RocksEngine, Store};

use crate::config::NodeConfig;
use crate::registry::Registry;
use crate::stats::Counters;

/// Unix time now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The node map as this node knows it.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Version of the last accepted `node sync` (0 until then).
    pub version: u64,
    pub nodes: Vec<NodeLine>,
}

/// Everything a connection needs.
pub struct Node {
    pub config: NodeConfig,
    pub store: Store<RocksEngine>,
    pub counters: Counters,
    pub registry: Registry,
    pub started_at: i64,
    pub parser: Parser,
    pub hash: HashAlgorithm,
    pub table: ModularTable,
    pub view: Mutex<ClusterView>,
    /// Set after a storage write failure: `ping` answers `SERVER_ERROR storage
    /// error` until restart, so that the index takes the node out.
    storage_failed: AtomicBool,
}

impl Node {
    pub fn new(config: NodeConfig, store: Store<RocksEngine>) -> Node {
        let limits = Limits {
            max_line: config.max_line_size,
            max_value: config.max_item_size,
        };
        // Standalone: this node is the master of partition 0.
        let me = NodeLine {
            name: config.server_name.clone(),
            port: config.server_port,
            role: Role::Master,
            state: State::Active,
            partition: 0,
            balance: 1,
            thread_type: 16,
        };
        Node {
            store,
            counters: Counters::default(),
            registry: Registry::new(),
            started_at: now(),
            parser: Parser::with_limits(Dialect::Node, limits),
            hash: HashAlgorithm::Simple,
            table: ModularTable::default(),
            view: Mutex::new(ClusterView {
                version: 0,
                nodes: vec![me],
            }),
            storage_failed: AtomicBool::new(false),
            config,
        }
    }

    pub fn view(&self) -> std::sync::MutexGuard<'_, ClusterView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
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
