//! flared: the flare-rs node server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use flare_daemon::padded;
use flare_daemon::{startup, PidFile};
use flare_storage::{DynEngine, RocksConfig, RocksEngine, Store, StoreConfig};
use flared::{reload, server, NodeConfig, SPECS};

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
    // the metrics endpoint (metrics-port) before the server port: once a
    // client can connect to the server port, it can scrape too
    let metrics = match config.metrics {
        Some(addr) => match flare_daemon::metrics::bind(addr) {
            Ok(l) => Some(l),
            Err(e) => return fail(e),
        },
        None => None,
    };
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
        Box::new(engine) as DynEngine,
        StoreConfig {
            tombstone_capacity: config.storage_cache_size,
            lock_slots: config.mutex_slot,
            record_cache_bytes: config.record_cache_bytes,
        },
    ) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (node, server) =
        match flared::start(config, store, Some(log), tcp, unix, metrics, stop_rx).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
    let pidfile = match PidFile::write(&pid_path) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };

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
    if let Err(e) = server.await {
        tracing::error!("server task failed: {e}");
    }
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
