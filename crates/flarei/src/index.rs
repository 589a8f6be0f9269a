//! The running index: the node map behind one lock, persistence, the
//! broadcast of every change, and one agent task per node.
//!
//! Every mutating operation (client command or monitor event) goes through
//! [`Index::apply`]: one at a time, it applies the operation to a copy of the
//! map, saves the copy (version + 1) and only then commits it in memory and
//! publishes the `node sync` message. Delivery happens later, in the node
//! agents; the caller's reply never waits for other nodes.
//!
//! The map is saved where `index-db` says ([`MapStore`]): `flare.xml`, or
//! ZooKeeper, where the operation first takes the shared lock and re-reads
//! the map another index may have changed ([`crate::zk`]). An index that
//! learns a map from ZooKeeper (the watch, or the re-read) adopts it without
//! sending it: the index that made a change sends it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flare_proto::node::{NodeLine, Role, State};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{IndexConfig, MonitorConfig};
use crate::error::IndexError;
use crate::map::{NodeMap, Op, Outcome};
use crate::persist;
use crate::sync::{Latest, SyncMsg};
use crate::zk::ZkStore;
use flare_net::Registry;

/// Process counters of `stats`.
#[derive(Default)]
pub struct Counters {
    pub total_connections: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Slaves promoted because their master went down (metrics).
    pub failovers: AtomicU64,
    /// `flare.xml` saves (metrics).
    pub map_saves: AtomicU64,
}

/// One node's monitoring and node sync delivery, as the metrics show it.
#[derive(Default, Debug)]
pub struct NodeStats {
    pub pings: AtomicU64,
    pub ping_failures: AtomicU64,
    /// Round trip of the last answered ping, in nanoseconds.
    pub last_ping_ns: AtomicU64,
    /// Node syncs the node took (or found stale).
    pub syncs: AtomicU64,
    /// Failed node sync attempts (each is retried).
    pub sync_failures: AtomicU64,
}

struct Agent {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<NodeStats>,
}

/// Where the node map is saved (`index-db`).
pub enum MapStore {
    /// `flare.xml` in this directory.
    File(std::path::PathBuf),
    /// Shared with the other index servers in ZooKeeper.
    ZooKeeper(Arc<ZkStore>),
}

/// A change being made: where it will be saved.
enum Txn<'a> {
    File(&'a std::path::Path),
    Zk(&'a ZkStore, crate::zk::ZkTxn),
}

/// Shared state of the index server.
pub struct Index {
    pub config: IndexConfig,
    /// `admin-networks`, `node-address-check` (reloadable).
    access: std::sync::RwLock<crate::config::Access>,
    monitor: watch::Sender<MonitorConfig>,
    max_connection: AtomicUsize,
    map: Mutex<NodeMap>,
    store: MapStore,
    /// One mutating operation at a time in this process.
    serial: tokio::sync::Mutex<()>,
    latest: Latest,
    pub registry: Registry,
    pub counters: Counters,
    pub started_at: i64,
    agents: Mutex<BTreeMap<String, Agent>>,
    stopping: AtomicBool,
}

/// Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One line per field that differs between two records of the same node.
fn describe_shift(old: &NodeLine, new: &NodeLine) -> Option<String> {
    let mut parts = Vec::new();
    if old.role != new.role {
        parts.push(format!("role {} -> {}", old.role, new.role));
    }
    if old.state != new.state {
        parts.push(format!("state {} -> {}", old.state, new.state));
    }
    if old.partition != new.partition {
        parts.push(format!("partition {} -> {}", old.partition, new.partition));
    }
    if old.balance != new.balance {
        parts.push(format!("balance {} -> {}", old.balance, new.balance));
    }
    (!parts.is_empty()).then(|| format!("node {}: {}", new.key(), parts.join(", ")))
}

/// Log what an operation changed.
fn log_changes(before: &NodeMap, after: &NodeMap) {
    for n in after.nodes() {
        match before.get(&n.key()) {
            None => tracing::info!(
                "node {} added (role={}, state={}, thread_type={})",
                n.key(),
                n.role,
                n.state,
                n.thread_type
            ),
            Some(old) => {
                if let Some(line) = describe_shift(old, n) {
                    tracing::info!("{line}");
                }
            }
        }
    }
    for k in before.keys() {
        if after.get(k).is_none() {
            tracing::info!("node {k} removed");
        }
    }
}

/// The partition map lines logged at start-up (operations.md §3.1 item 6).
pub fn log_partition_map(map: &NodeMap) {
    tracing::info!(
        "reconstructing node partition map... (from {} entries in node map)",
        map.len()
    );
    let maps = map.partition_maps();
    let show = |p: usize, part: &flare_cluster::Partition| {
        if let Some((k, b)) = &part.master {
            tracing::info!("{p}: master (node_key={k}, node_balance={b})");
        }
        for (k, b) in &part.slaves {
            tracing::info!("{p}: slave (node_key={k}, node_balance={b})");
        }
    };
    tracing::info!("node partition map:");
    for (p, part) in maps.active.iter().enumerate() {
        show(p, part);
    }
    tracing::info!("node partition map (prepare):");
    if let Some(part) = &maps.prepare {
        show(maps.active.len(), part);
    }
}

impl Index {
    /// The index over a loaded (and checked) map. No agent runs yet.
    pub fn new(config: IndexConfig, store: MapStore, map: NodeMap) -> Arc<Index> {
        let (monitor, _) = watch::channel(config.monitor);
        let (latest, _) = watch::channel(Arc::new(SyncMsg::startup(&map)));
        Arc::new(Index {
            max_connection: AtomicUsize::new(config.max_connection),
            access: std::sync::RwLock::new(config.access.clone()),
            config,
            monitor,
            map: Mutex::new(map),
            store,
            serial: tokio::sync::Mutex::new(()),
            latest,
            registry: Registry::default(),
            counters: Counters::default(),
            started_at: now(),
            agents: Mutex::default(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Start one agent per node of the map (start-up).
    pub fn start_agents(self: &Arc<Self>) {
        let nodes: Vec<NodeLine> = lock(&self.map).lines();
        for n in nodes {
            self.ensure_agent(&n);
        }
    }

    fn ensure_agent(self: &Arc<Self>, node: &NodeLine) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut agents = lock(&self.agents);
        let key = node.key();
        if agents.contains_key(&key) {
            return;
        }
        let (stop, stop_rx) = watch::channel(false);
        let slot = self
            .registry
            .register_agent(node.thread_type, key.clone(), now());
        let stats = Arc::new(NodeStats::default());
        let task = tokio::spawn(crate::monitor::run(
            Arc::clone(self),
            key.clone(),
            slot,
            Arc::clone(&stats),
            stop_rx,
        ));
        agents.insert(key, Agent { stop, task, stats });
    }

    /// Each monitored node's figures (metrics).
    pub fn node_stats(&self) -> Vec<(String, Arc<NodeStats>)> {
        lock(&self.agents)
            .iter()
            .map(|(k, a)| (k.clone(), Arc::clone(&a.stats)))
            .collect()
    }

    fn stop_agent(&self, key: &str) {
        if let Some(agent) = lock(&self.agents).remove(key) {
            let _ = agent.stop.send(true);
        }
    }

    /// Stop every agent and wait for them (bounded).
    pub async fn stop_agents(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let agents: Vec<Agent> = std::mem::take(&mut *lock(&self.agents))
            .into_values()
            .collect();
        for a in &agents {
            let _ = a.stop.send(true);
        }
        for a in agents {
            let mut task = a.task;
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Apply a mutating operation (see the module docs).
    pub async fn apply(self: &Arc<Self>, op: Op) -> Result<Outcome, IndexError> {
        self.apply_then(op, |_| ()).await.map(|(o, ())| o)
    }

    /// [`Index::apply`], then run `f` on the resulting map (e.g. to answer
    /// `node add` with exactly the map it produced).
    pub async fn apply_then<R>(
        self: &Arc<Self>,
        op: Op,
        f: impl FnOnce(&NodeMap) -> R,
    ) -> Result<(Outcome, R), IndexError> {
        let _serial = self.serial.lock().await;
        let (base, txn) = match &self.store {
            MapStore::File(dir) => (lock(&self.map).clone(), Txn::File(dir)),
            MapStore::ZooKeeper(zk) => {
                let txn = zk.begin().await?;
                self.adopt(txn.map.clone());
                (txn.map.clone(), Txn::Zk(zk, txn))
            }
        };
        let mut next = base.clone();
        let outcome = next.apply(&op)?;
        let Outcome::Changed(change) = &outcome else {
            let r = f(&lock(&self.map));
            return Ok((outcome, r));
        };
        if matches!(op, Op::Down { .. }) {
            // the failover path: `return(crash)` stops the index after
            // it decided, before anything was saved or sent
            let _ = flare_daemon::fault::block("failover::decide");
        }
        match txn {
            Txn::File(dir) => persist::save(dir, &next)?,
            Txn::Zk(zk, txn) => zk.commit(txn, &next).await?,
        }
        self.counters.map_saves.fetch_add(1, Ordering::Relaxed);
        if matches!(op, Op::Down { .. }) {
            let promoted = next
                .nodes()
                .filter(|n| {
                    n.role == Role::Master
                        && base.get(&n.key()).is_some_and(|o| o.role == Role::Slave)
                })
                .count();
            self.counters
                .failovers
                .fetch_add(promoted as u64, Ordering::Relaxed);
            // saved, not yet sent to any node
            let _ = flare_daemon::fault::block("failover::saved");
        }
        log_changes(&base, &next);
        tracing::info!("node map saved (node_map_version={})", next.version);
        let r = {
            let mut map = lock(&self.map);
            *map = next;
            self.latest
                .send_replace(Arc::new(SyncMsg::new(&map, change)));
            f(&map)
        };
        self.sync_agents();
        Ok((outcome, r))
    }

    /// Take `map` (read from ZooKeeper, changed by another index) as the
    /// current map, unless it is not newer; start and stop agents to match.
    /// Nothing is sent to the nodes: the index that changed it does.
    pub fn adopt(self: &Arc<Self>, map: NodeMap) {
        {
            let mut current = lock(&self.map);
            if map.version < current.version || *current == map {
                return;
            }
            tracing::info!(
                "node map changed by another index server (node_map_version {} -> {})",
                current.version,
                map.version
            );
            log_changes(&current, &map);
            *current = map;
        }
        self.sync_agents();
    }

    /// With ZooKeeper: follow the shared map (changes made by the other
    /// index servers) until `stop` turns true.
    pub fn watch_store(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        let MapStore::ZooKeeper(zk) = &self.store else {
            return;
        };
        let zk = Arc::clone(zk);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let follow = zk.watch(move |map| {
                if let Some(index) = me.upgrade() {
                    index.adopt(map);
                }
            });
            tokio::select! {
                _ = follow => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }

    /// One agent per node of the map, no more.
    fn sync_agents(self: &Arc<Self>) {
        let nodes: Vec<NodeLine> = lock(&self.map).lines();
        let keys: std::collections::BTreeSet<String> = nodes.iter().map(|n| n.key()).collect();
        let gone: Vec<String> = lock(&self.agents)
            .keys()
            .filter(|k| !keys.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.stop_agent(&k);
        }
        for n in &nodes {
            self.ensure_agent(n);
        }
    }

    /// Run `f` on the current map.
    pub fn with_map<R>(&self, f: impl FnOnce(&NodeMap) -> R) -> R {
        f(&lock(&self.map))
    }

    /// The node's current state (`None` once removed).
    pub fn node_state(&self, key: &str) -> Option<State> {
        lock(&self.map).get(key).map(|n| n.state)
    }

    /// The current map version.
    pub fn version(&self) -> u64 {
        lock(&self.map).version
    }

    pub fn subscribe_sync(&self) -> watch::Receiver<Arc<SyncMsg>> {
        self.latest.subscribe()
    }

    pub fn subscribe_monitor(&self) -> watch::Receiver<MonitorConfig> {
        self.monitor.subscribe()
    }

    pub fn monitor_config(&self) -> MonitorConfig {
        *self.monitor.borrow()
    }

    /// Reload: new monitor settings for every agent.
    pub fn set_monitor_config(&self, cfg: MonitorConfig) {
        self.monitor.send_replace(cfg);
    }

    pub fn max_connection(&self) -> usize {
        self.max_connection.load(Ordering::Relaxed)
    }

    pub fn set_max_connection(&self, n: usize) {
        self.max_connection.store(n, Ordering::Relaxed);
    }

    /// Number of node syncs waiting for delivery (`stats threads queue`).
    pub fn total_queue(&self) -> u64 {
        self.registry.snapshot().iter().map(|s| s.queue()).sum()
    }

    /// The `(name, port)` of every node in the map.
    pub fn node_names(&self) -> Vec<(String, u16)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.nodes().map(|n| (n.name.clone(), n.port)).collect()
    }

    /// The access options in force.
    pub fn access(&self) -> crate::config::Access {
        self.access
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reload: new access options.
    pub fn set_access(&self, access: crate::config::Access) {
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = access;
    }
}
