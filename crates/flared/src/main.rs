//! flared: the flare-rs node server.

mod commands;
mod config;
mod connection;
mod index_client;
mod node;
mod reconstruction;
mod reload;
mod replication;
mod server;
mod stats;
mod topology;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use flare_daemon::{startup, PidFile};
use flare_storage::{RocksConfig, RocksEngine, Store, StoreConfig};

use config::{NodeConfig, SPECS};
use flare_cluster::{HashAlgorithm, ModularTable};
use flare_daemon::padded;
use node::Node;
use topology::Topology;

/// Bytes a deleted record is counted for when pacing deletes (the stored
/// header; the key is added).
const RECORD_OVERHEAD: u64 = 28;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    startup::fail("flared", msg)
}

fn main() -> ExitCode {
    let mut settings = match startup::command_line("flared", SPECS) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = startup::absolutize(&mut settings, &["data-dir", "server-socket"]) {
        return startup::usage_error("flared", e);
    }
    let config = match NodeConfig::from_settings(settings) {
        Ok(c) => c,
        Err(e) => return startup::usage_error("flared", e),
    };
    let log = match startup::logging(c"flared", &config.settings) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    tracing::info!(
        "flared version {} - system logger started",
        flare_proto::PACKAGE_VERSION
    );
    tracing::info!("application startup in progress...");
    for (name, value) in config.variables() {
        tracing::info!("  {}", padded(name, &value, 24));
    }
    for w in &config.settings.warnings {
        tracing::warn!("{w}");
    }
    for n in &config.notices {
        tracing::info!("{n}");
    }
    if config.index_servers.is_empty() {
        tracing::info!(
            "no index server configured: running standalone as the master of partition 0"
        );
    }

    let pid_path = config
        .settings
        .pid_path
        .clone()
        .unwrap_or_else(|| config.data_dir.join("flared.pid"));
    let daemonize = config.settings.switch("daemonize");
    let runtime = match startup::detach("flared", &pid_path, daemonize) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(run(config, pid_path, log))
}

async fn run(config: NodeConfig, pid_path: PathBuf, log: flare_daemon::LogHandle) -> ExitCode {
    let tcp = match server::bind_tcp(config.server_port, config.back_log) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let unix = match &config.server_socket {
        Some(p) => match server::bind_unix(p) {
            Ok(l) => Some(l),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let topology = match cluster_topology(&config).await {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let rocks = RocksConfig {
        fsync: config.fsync,
        compression: config.compression,
        block_cache_bytes: config.block_cache_bytes,
        write_buffer_bytes: config.write_buffer_bytes,
    };
    let engine = match RocksEngine::open(&config.data_dir, &rocks) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    tracing::info!("storage opened: {}", engine.path().display());
    let store = match Store::open(
        engine,
        StoreConfig {
            tombstone_capacity: config.storage_cache_size,
            lock_slots: config.mutex_slot,
            record_cache_bytes: config.record_cache_bytes,
        },
    ) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut node = Node::new(config, store, topology);
    node.log = Some(log);
    let node = Arc::new(node);
    let pidfile = match PidFile::write(&pid_path) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reloader = Arc::clone(&node);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot install the SIGHUP handler");
            return;
        };
        while hup.recv().await.is_some() {
            reload::reload(&reloader);
        }
    });
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown request accepted -> breaking running loop");
        let _ = stop_tx.send(true);
    });
    tracing::info!("entering running loop");
    server::run(Arc::clone(&node), tcp, unix, stop_rx, notify_index).await;
    tracing::info!("closing storage...");
    if let Err(e) = node.store.flush() {
        tracing::error!("storage flush failed: {e}");
    }
    if let Err(e) = pidfile.remove() {
        tracing::error!("{e}");
    }
    tracing::info!("flared stopped");
    ExitCode::SUCCESS
}

/// The cluster view at start-up: registration with the index (`node add`,
/// `meta`), or the standalone view when no index server is configured.
async fn cluster_topology(config: &NodeConfig) -> Result<Topology, String> {
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
    let notice = index_client::notify_shutdown(&c.index_servers, &c.server_name, c.server_port);
    match tokio::time::timeout(std::time::Duration::from_secs(5), notice).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("failed to send shutdown message: {e}"),
        Err(_) => tracing::warn!("failed to send shutdown message: timed out"),
    }
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received signal [SIGTERM] -> requesting shutdown"),
        _ = int.recv() => tracing::info!("received signal [SIGINT] -> requesting shutdown"),
    }
}
