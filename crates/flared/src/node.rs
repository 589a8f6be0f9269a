//! The node's shared state: configuration, storage, counters, connections and
//! its view of the cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashSet;

use flare_net::registry::peer_ip;
use flare_net::{PeerConfig, Pool, Registry};
use flare_proto::client::ReplyLimits;
use flare_proto::node::{NodeLine, Role, State};
use flare_proto::{Dialect, Limits, Parser};
use flare_storage::{DynEngine, Store};

use crate::config::NodeConfig;
use crate::reconstruction::{self, Plan, Progress};
use crate::replication::{OnDivergence, Replicator};
use crate::stats::Counters;
use crate::topology::Topology;

/// Unix time now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix time now in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The addresses of the configured index servers (names resolved once).
fn resolve_index(config: &NodeConfig) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    config
        .index_servers
        .iter()
        .filter_map(|(h, p)| (h.as_str(), *p).to_socket_addrs().ok())
        .flatten()
        .map(|a| a.ip().to_canonical())
        .collect()
}

/// What an accepted `node sync` changed.
pub struct Installed {
    pub before: Arc<Topology>,
    pub after: Arc<Topology>,
    /// The reconstruction the change asks this node for.
    pub plan: Option<Plan>,
}

/// Everything a connection needs.
pub struct Node {
    /// The running configuration; replaced on SIGHUP.
    config: RwLock<Arc<NodeConfig>>,
    /// The logger, for `verbosity` and reload.
    pub log: Option<flare_daemon::LogHandle>,
    pub store: Store<DynEngine>,
    pub counters: Counters,
    pub registry: Registry,
    pub started_at: i64,
    pub parser: Parser,
    /// This node's key, `server-name:server-port`.
    pub me: String,
    topology: RwLock<Arc<Topology>>,
    /// Forwarding connections to other nodes.
    pub peers: Pool,
    pub replicator: Replicator,
    /// Orders a key's writes on a master with their replication.
    pub order: OrderLocks,
    /// The meta protocol's recache hints (stale records, recache wins).
    pub hints: crate::recache::Hints,
    pub progress: Progress,
    /// The index servers' addresses (resolved at start).
    index_addrs: RwLock<Vec<std::net::IpAddr>>,
    /// When a request from an index server last arrived (unix ms).
    index_contact_ms: std::sync::atomic::AtomicU64,
    /// Set after a storage write failure: `ping` answers `SERVER_ERROR storage
    /// error` until restart, so that the index takes the node out.
    storage_failed: AtomicBool,
}

impl Node {
    pub fn new(config: NodeConfig, store: Store<DynEngine>, topology: Topology) -> Node {
        let replicator = Replicator::new(
            config.proxy_concurrency,
            peer_config(&config),
            divergence_reporter(&config),
        );
        // Versions this node issues as a master start above every version
        // issued before it became master (docs/replication.md §1.1). Until
        // the first node sync tells the map version: epoch 1.
        store.enter_epoch(1);
        replicator.set_targets(replication_targets(&topology));
        let limits = Limits {
            max_line: config.max_line_size,
            max_value: config.max_item_size,
        };
        Node {
            store,
            counters: Counters::default(),
            registry: Registry::default(),
            started_at: now(),
            parser: Parser::with_limits(Dialect::Node, limits),
            me: format!("{}:{}", config.server_name, config.server_port),
            topology: RwLock::new(Arc::new(topology)),
            peers: Pool::new(config.proxy_concurrency, peer_config(&config)),
            replicator,
            order: OrderLocks::new(1024),
            hints: crate::recache::Hints::new(65536),
            progress: Progress::default(),
            storage_failed: AtomicBool::new(false),
            index_addrs: RwLock::new(resolve_index(&config)),
            index_contact_ms: std::sync::atomic::AtomicU64::new(now_ms()),
            config: RwLock::new(Arc::new(config)),
            log: None,
        }
    }

    /// The running configuration (cheap: an `Arc` clone).
    pub fn config(&self) -> Arc<NodeConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replace the running configuration (SIGHUP).
    pub fn set_config(&self, mut config: NodeConfig) {
        // the secret is read at start-up only; `cluster-secret-required`
        // changes in place, for every peer client holding it
        let current = self.config();
        if let (Some(old), Some(new)) = (&current.cluster_auth, &config.cluster_auth) {
            old.set_required(new.required());
        }
        config.cluster_auth = current.cluster_auth.clone();
        // the index servers' addresses are resolved again (node sync is
        // accepted from them only)
        *self.index_addrs.write().unwrap_or_else(|e| e.into_inner()) = resolve_index(&config);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    fn index_addrs(&self) -> std::sync::RwLockReadGuard<'_, Vec<std::net::IpAddr>> {
        self.index_addrs.read().unwrap_or_else(|e| e.into_inner())
    }

    /// May `peer` send `node sync`? Only an index server this node is
    /// configured with (its addresses resolved at start and on reload). A
    /// node without an index has no legitimate sender: only its own host
    /// (loopback) is allowed, for tests and local tools.
    pub fn may_sync(&self, peer: &str) -> bool {
        let Some(ip) = peer_ip(peer) else {
            return true; // a unix socket: the node's own host
        };
        if self.config().index_servers.is_empty() {
            return ip == std::net::Ipv4Addr::LOCALHOST || ip == std::net::Ipv6Addr::LOCALHOST;
        }
        self.index_addrs().contains(&ip)
    }

    /// The cluster secret, when one is configured.
    pub fn cluster_auth(&self) -> Option<Arc<flare_net::auth::ClusterAuth>> {
        self.config().cluster_auth.clone()
    }

    /// May this connection send cluster commands (`node sync`, proxied and
    /// replicated requests, `dump`)? Always without a required secret;
    /// with one, only once it authenticated.
    pub fn trusted(&self, conn: &flare_net::Slot) -> bool {
        match self.cluster_auth() {
            Some(auth) if auth.required() => conn.auth.is_authenticated(),
            _ => true,
        }
    }

    /// May `peer` send an administrative command (`admin-networks`)?
    pub fn admin_allowed(&self, peer: &str) -> bool {
        self.config().admin_networks.allows_peer(peer)
    }

    /// Is `peer` a node of the cluster (an address of a node in the map) or
    /// an index server? Such peers may `dump` whatever `admin-networks` says
    /// (reconstruction needs it).
    pub fn is_cluster_peer(&self, peer: &str) -> bool {
        use std::net::ToSocketAddrs;
        let Some(ip) = peer_ip(peer) else {
            return true;
        };
        if self.index_addrs().contains(&ip) {
            return true;
        }
        self.topology().nodes.iter().any(|n| {
            (n.name.as_str(), n.port)
                .to_socket_addrs()
                .map(|mut addrs| addrs.any(|a| a.ip().to_canonical() == ip))
                .unwrap_or(false)
        })
    }

    /// The current cluster view (cheap: an `Arc` clone).
    pub fn topology(&self) -> Arc<Topology> {
        Arc::clone(&self.topology.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Apply a `node sync`: `Err(current)` when `version` is older than the
    /// current non-zero version (cluster.md §3.3). Returns the maps before
    /// and after, and the reconstruction the change asks for. A node that is
    /// about to be rebuilt starts from an empty store (unlike the original,
    /// which kept stale data and could resurrect deleted keys); the store is
    /// emptied before the new map takes effect, so that no replicated write
    /// that arrives under the new map is lost.
    pub fn install(&self, version: u64, nodes: Vec<NodeLine>) -> Result<Installed, u64> {
        let mut slot = self.topology.write().unwrap_or_else(|e| e.into_inner());
        let before = Arc::clone(&slot);
        if before.version > 0 && version < before.version {
            return Err(before.version);
        }
        let after = Arc::new(Topology::from_nodes(
            version,
            nodes,
            Some(&before.maps),
            Arc::clone(&before.table),
            before.hash,
        ));
        let me_before = before
            .node(&self.me)
            .map(|n| (n.role, n.state, n.partition, n.balance));
        let me_after = after
            .node(&self.me)
            .map(|n| (n.role, n.state, n.partition, n.balance));
        if me_before != me_after {
            tracing::info!("node map version {version}: this node {me_before:?} -> {me_after:?}");
        }
        let plan = reconstruction::plan(&before, &after, &self.me);
        let master = |t: &Topology| t.node(&self.me).is_some_and(|n| n.role == Role::Master);
        if master(&after) && (!master(&before) || before.version == 0) {
            // a new mastership (or the first map since start): a new epoch
            self.store.enter_epoch(version);
            tracing::info!(
                "master under node map version {version}: new versions start at {}",
                self.store.version_floor()
            );
        }
        if plan.is_some() {
            tracing::info!("this node is to be rebuilt: emptying the local store first");
            if let Err(e) = self.store.truncate() {
                tracing::error!("emptying the store before reconstruction failed: {e}");
            }
            // deletes replicated during the copy must win over the copy
            self.store.begin_rebuild();
        }
        let targets = replication_targets(&after);
        let keys: HashSet<String> = after.nodes.iter().map(NodeLine::key).collect();
        *slot = Arc::clone(&after);
        drop(slot);
        self.replicator.set_targets(targets);
        self.peers.retain(|k| keys.contains(k));
        Ok(Installed {
            before,
            after,
            plan,
        })
    }

    /// A request arrived from `peer` (`ip:port`): if it is an index server,
    /// the node has heard from the index now.
    pub fn heard_from(&self, peer: &str) {
        let ip = peer_ip(peer);
        if ip.is_some_and(|ip| self.index_addrs().contains(&ip)) {
            self.index_contact_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// With `index-silence-limit`: how long (ms) this node has not heard
    /// from any index, when that is past the limit.
    pub fn index_silence(&self) -> Option<u64> {
        let limit = self.config().index_silence_limit_ms;
        if limit == 0 || self.index_addrs().is_empty() {
            return None;
        }
        let silent = now_ms().saturating_sub(self.index_contact_ms.load(Ordering::Relaxed));
        (silent > limit).then_some(silent)
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

/// Striped locks (by key hash) that a master holds while it applies a write
/// and queues its replication, so that slaves get a key's writes in the
/// order the master applied them. Held only for those synchronous steps.
pub struct OrderLocks(Vec<Mutex<()>>);

impl OrderLocks {
    pub fn new(stripes: usize) -> Self {
        OrderLocks((0..stripes.max(1)).map(|_| Mutex::new(())).collect())
    }

    pub fn lock(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        let i = flare_cluster::murmur(key) as usize % self.0.len();
        self.0[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A slave that missed a write while still a target has diverged: report it
/// to the index (`node state <slave> down`), which takes it out of reads; it
/// must then be rebuilt. Without an index, the error log is all there is.
fn divergence_reporter(config: &NodeConfig) -> Option<OnDivergence> {
    if config.index_servers.is_empty() {
        return None;
    }
    let servers = config.index_servers.clone();
    let auth = config.cluster_auth.clone();
    Some(Arc::new(move |dest: &str| {
        let Some((host, port)) = dest.rsplit_once(':') else {
            return;
        };
        let line = format!("node state {host} {port} down\r\n");
        let servers = servers.clone();
        let auth = auth.clone();
        let dest = dest.to_string();
        tokio::spawn(async move {
            tracing::error!(
                "slave {dest} missed a write: reporting it to the index as down (rebuild it)"
            );
            match crate::index_client::command(&servers, auth, &line).await {
                Ok(reply) if reply == "OK" => {}
                Ok(reply) => tracing::warn!("index answered [{reply}] to [{}]", line.trim_end()),
                Err(e) => tracing::warn!("reporting slave {dest} to the index failed: {e}"),
            }
        });
    }))
}

/// How this node talks to other nodes: `proxy-timeout` bounds connecting and
/// every wait; a reply may be as large as a value plus its header (or a
/// `keys` reply).
pub fn peer_config(config: &NodeConfig) -> PeerConfig {
    let mut cfg = PeerConfig::new(Duration::from_millis(config.proxy_timeout_ms));
    cfg.limits = ReplyLimits {
        max_line: config.max_line_size.max(64 << 10),
        max_reply: (config.max_item_size.saturating_mul(2)).max(256 << 20),
    };
    cfg.secret = config.cluster_auth.clone();
    cfg
}

/// Nodes replication may go to: live slaves and masters being prepared.
fn replication_targets(t: &Topology) -> HashSet<String> {
    t.nodes
        .iter()
        .filter(|n| {
            (n.role == Role::Slave && n.state != State::Down)
                || (n.role == Role::Master && matches!(n.state, State::Prepare | State::Ready))
        })
        .map(NodeLine::key)
        .collect()
}
