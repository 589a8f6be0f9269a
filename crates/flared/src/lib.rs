//! flared: the flare-rs node server, as a library.
//!
//! The binary (`main.rs`) parses the command line, opens RocksDB, detaches
//! and calls [`start`]; the in-process test harness (`crates/sim`) calls
//! [`start`] with the memory engine, several nodes in one process.

pub mod commands;
pub mod config;
pub mod connection;
pub mod index_client;
pub mod metrics;
pub mod node;
pub mod recache;
pub mod reconstruction;
pub mod reload;
pub mod replication;
pub mod server;
pub mod stats;
pub mod topology;

use std::sync::Arc;

use flare_cluster::{HashAlgorithm, ModularTable};
use flare_storage::{DynEngine, Store};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

pub use config::{NodeConfig, SPECS};
pub use node::Node;
use topology::Topology;

/// Bytes a deleted record is counted for when pacing deletes (the stored
/// header; the key is added).
const RECORD_OVERHEAD: u64 = 28;

/// Register with the index (or take the standalone view), build the node
/// over `store`, and serve `tcp` (and `unix`) until `stop` turns true; then
/// drain and tell the index (see [`server::run`]). `metrics`: the bound
/// metrics endpoint (`metrics-port`), if any. Returns the node and the
/// server task; the task ends when the server has stopped.
pub async fn start(
    config: NodeConfig,
    store: Store<DynEngine>,
    log: Option<flare_daemon::LogHandle>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    metrics: Option<TcpListener>,
    stop: watch::Receiver<bool>,
) -> Result<(Arc<Node>, tokio::task::JoinHandle<()>), String> {
    // the TLS port (tls-port), before registering: a node that cannot
    // serve it does not join
    let tls = match config.tls_port {
        0 => None,
        port => Some(server::bind_tcp(port, config.back_log).map_err(|e| e.to_string())?),
    };
    let topology = cluster_topology(&config).await?;
    let mut node = Node::new(config, store, topology);
    node.log = log;
    let node = Arc::new(node);
    if let Some(listener) = metrics {
        flare_daemon::metrics::spawn(listener, metrics::scrape(&node), stop.clone());
    }
    let task = tokio::spawn(server::run(
        Arc::clone(&node),
        tcp,
        unix,
        tls,
        stop,
        notify_index,
    ));
    Ok((node, task))
}

/// The cluster view at start-up: registration with the index (`node add`,
/// `meta`), or the standalone view when no index server is configured.
pub async fn cluster_topology(config: &NodeConfig) -> Result<Topology, String> {
    if config.index_servers.is_empty() {
        return Ok(Topology::standalone(
            &config.server_name,
            config.server_port,
            Arc::new(ModularTable::default()),
            HashAlgorithm::Simple,
        ));
    }
    let (nodes, meta) = index_client::register(
        &config.index_servers,
        config.cluster_auth.clone(),
        &config.server_name,
        config.server_port,
    )
    .await
    .map_err(|e| e.to_string())?;
    let table = ModularTable::new(meta.hint, meta.virtual_nodes, meta.partition_size)
        .map_err(|e| format!("bad meta data from the index server: {e}"))?;
    tracing::info!("reconstructing node map... ({} entries)", nodes.len());
    Ok(Topology::from_nodes(
        0,
        nodes,
        None,
        Arc::new(table),
        meta.hash,
    ))
}

/// Tell the index this node is stopping (bounded), so failover starts at once.
async fn notify_index(node: Arc<Node>) {
    let c = node.config();
    if c.index_servers.is_empty() {
        return;
    }
    tracing::info!("send shutdown message to index server");
    let notice = index_client::notify_shutdown(
        &c.index_servers,
        c.cluster_auth.clone(),
        &c.server_name,
        c.server_port,
    );
    match tokio::time::timeout(std::time::Duration::from_secs(5), notice).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("failed to send shutdown message: {e}"),
        Err(_) => tracing::warn!("failed to send shutdown message: timed out"),
    }
}
