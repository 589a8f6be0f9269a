//! flarei: the flare-rs index server, as a library (the binary is
//! `main.rs`; the in-process test harness `crates/sim` calls [`start`]).
//!
//! It owns the cluster's node map (`flare.xml`), answers the index commands
//! of nodes and operators, monitors every node and pushes the map to the
//! nodes after every change.
//!
//! Modules: [`config`] (options), [`map`] (node map and the §8.3 state
//! machine, pure), [`persist`] (`flare.xml`), [`zk`] (the node map in
//! ZooKeeper), [`index`] (shared state: apply,
//! save, publish), [`monitor`] (one agent per node: pings and sync delivery),
//! [`sync`] (`node sync` messages and delivery), [`server`] /
//! [`connection`] / [`commands`] / [`stats`] (the protocol side). The
//! listener, connection loop, registry (`stats threads`, `kill`) and the
//! client toward the nodes are `flare-net`'s.
//!
//! Deliberate differences from flarei 1.3.4:
//!
//! * `node sync` deliveries are retried with backoff (200 ms doubling to 5 s)
//!   until the node answers `OK` (or `SERVER_ERROR node sync error`: it holds
//!   a newer map), a newer map replaces the undelivered one, the node stops
//!   being a target (recorded `down`) or is removed. A failed delivery is not
//!   a failed health check, and deliveries do not postpone pings.
//! * Every network operation towards a node has a connect timeout
//!   (`monitor-connect-timeout`, flare-rs option, default 1000 ms) and a read
//!   timeout (ping: `monitor-read-timeout`; sync: that or 5 s, whichever is
//!   larger). A ping that fails on a reused connection for another reason
//!   than a timeout is retried once on a fresh connection (restarted node).
//! * The in-memory map is authoritative: `flare.xml` is not re-read before
//!   each operation. A save writes `flare.xml.tmp`, fsyncs it, renames it and
//!   fsyncs the directory; if it fails, the operation fails and memory is
//!   left unchanged (1.3.4 kept the modified map, §10.2 #15).
//! * An operation whose result would be an inconsistent map (one the index
//!   itself would refuse to load) is refused instead of saved.
//! * A preserved master that answers again is demoted to proxy only when
//!   another live *master* owns its partition (the literal rule, "any other
//!   live node", could orphan preparing slaves).
//! * The monitor's automatic *up* applies only to nodes recorded `down`.
//! * `stats threads` lists client connections and one entry per node agent
//!   (type = thread type); `kill <agent id>` resets that agent's connection.
//! * `index-db = zookeeper://…`: a change re-reads the map under the lock
//!   and writes it with a version check ([`zk`]); without a ZooKeeper
//!   session, changes are refused at once. A relative `data-dir` stays
//!   relative.

pub mod commands;
pub mod config;
pub mod connection;
pub mod error;
pub mod index;
pub mod map;
pub mod metrics;
pub mod monitor;
pub mod persist;
pub mod server;
pub mod stats;
pub mod sync;
pub mod zk;

use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

pub use config::{IndexConfig, SPECS};
pub use index::{Index, MapStore};
pub use map::NodeMap;

/// Serve `map` (as loaded from `flare.xml`): start the node agents (pings,
/// `node sync`) and accept on `tcp` (and `unix`) until `stop` turns true;
/// the returned task then closes the connections and stops the agents.
/// `metrics`: the bound metrics endpoint (`metrics-port`), if any.
pub fn start(
    config: IndexConfig,
    store: MapStore,
    map: NodeMap,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    metrics: Option<TcpListener>,
    stop: watch::Receiver<bool>,
) -> (Arc<Index>, tokio::task::JoinHandle<()>) {
    let index = Index::new(config, store, map);
    index.start_agents();
    index.watch_store(stop.clone());
    if let Some(listener) = metrics {
        flare_daemon::metrics::spawn(listener, metrics::scrape(&index), stop.clone());
    }
    let serving = Arc::clone(&index);
    let task = tokio::spawn(async move {
        server::run(Arc::clone(&serving), tcp, unix, stop).await;
        tracing::info!("shutting down active, and pool threads...");
        serving.stop_agents().await;
        tracing::info!("all threads are successfully shutdown");
    });
    (index, task)
}
