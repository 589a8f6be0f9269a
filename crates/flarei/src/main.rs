//! flarei: the flare-rs index server (the binary; see the library).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use flare_daemon::{startup, LogHandle, PidFile, Settings};

use flare_daemon::padded;
use flarei::zk::ZkStore;
use flarei::{config, index, persist, server, Index, IndexConfig, MapStore, NodeMap, SPECS};

/// Column of the values in the start-up banner.
const BANNER_WIDTH: usize = 26;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    startup::fail("flarei", msg)
}

fn main() -> ExitCode {
    let mut settings = match startup::command_line("flarei", SPECS) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = startup::absolutize(&mut settings, &["data-dir", "server-socket"]) {
        return startup::usage_error("flarei", e);
    }
    let config = match IndexConfig::from_settings(settings) {
        Ok(c) => c,
        Err(e) => return startup::usage_error("flarei", e),
    };
    let log = match startup::logging(c"flarei", &config.settings) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    tracing::info!(
        "flarei version {} - system logger started",
        flare_proto::PACKAGE_VERSION
    );
    tracing::info!("application startup in progress...");
    for (name, value) in config.banner() {
        tracing::info!("  {}", padded(name, &value, BANNER_WIDTH));
    }
    for w in &config.settings.warnings {
        tracing::warn!("{w}");
    }
    for n in &config.notices {
        tracing::info!("{n}");
    }

    if matches!(config.db, config::IndexDb::File(_)) && !config.db_dir.is_dir() {
        return fail(format!(
            "index-db directory [{}] does not exist or is not a directory",
            config.db_dir.display()
        ));
    }
    let pid_path = config
        .settings
        .pid_path
        .clone()
        .unwrap_or_else(|| config.data_dir.join("flarei.pid"));
    let daemonize = config.settings.switch("daemonize");
    let runtime = match startup::detach("flarei", &pid_path, daemonize) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(run(config, pid_path, log))
}

async fn run(mut config: IndexConfig, pid_path: PathBuf, log: LogHandle) -> ExitCode {
    let (store, map) = match open_store(&mut config).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    for (name, value) in config.partition_banner() {
        tracing::info!("  {}", padded(name, &value, BANNER_WIDTH));
    }
    index::log_partition_map(&map);

    let metrics = match config.metrics {
        Some(addr) => match flare_daemon::metrics::bind(addr) {
            Ok(l) => Some(l),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let tcp = match server::bind_tcp(config.server_port) {
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
    let settings = config.settings.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (index, serving) = flarei::start(config, store, map, tcp, unix, metrics, stop_rx);
    let pidfile = match PidFile::write(&pid_path) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };

    let signals = tokio::spawn(handle_signals(Arc::clone(&index), settings, log, stop_tx));
    tracing::info!("entering running loop");
    if let Err(e) = serving.await {
        tracing::error!("server task failed: {e}");
    }
    signals.abort();
    if let Err(e) = pidfile.remove() {
        tracing::error!("{e}");
    }
    tracing::info!("flarei stopped");
    ExitCode::SUCCESS
}

/// The node map and where it is kept: `flare.xml`, or ZooKeeper (whose
/// `/index/meta` may override the partitioning options).
async fn open_store(config: &mut IndexConfig) -> Result<(MapStore, NodeMap), String> {
    let (servers, chroot) = match &config.db {
        config::IndexDb::File(dir) => {
            let map = match persist::load(dir) {
                Ok(Some(m)) => {
                    tracing::info!(
                        "node map loaded from {} (node_map_version={}, {} node(s))",
                        persist::state_path(dir).display(),
                        m.version,
                        m.len()
                    );
                    m
                }
                Ok(None) => {
                    tracing::info!(
                        "{} does not exist: starting with an empty node map",
                        persist::state_path(dir).display()
                    );
                    NodeMap::default()
                }
                Err(e) => return Err(format!("failed to load the node map: {e}")),
            };
            return Ok((MapStore::File(dir.clone()), map));
        }
        config::IndexDb::ZooKeeper { servers, chroot } => (servers.clone(), chroot.clone()),
    };
    let me = format!("{}:{}", config.server_name, config.server_port);
    let (zk, map) = ZkStore::open(&servers, &chroot, &me, &config.db_dir)
        .await
        .map_err(|e| format!("failed to open the node map in ZooKeeper: {e}"))?;
    tracing::info!(
        "node map loaded from ZooKeeper {} (node_map_version={}, {} node(s)); registered as {me}",
        zk.describe(),
        map.version,
        map.len()
    );
    let meta = zk
        .meta()
        .await
        .map_err(|e| format!("failed to read /index/meta in ZooKeeper: {e}"))?;
    for (name, value) in &meta {
        tracing::info!("{name} = {value} (from ZooKeeper /index/meta/{name})");
    }
    config
        .apply_meta(&meta)
        .map_err(|e| format!("ZooKeeper /index/meta: {e}"))?;
    Ok((MapStore::ZooKeeper(zk), map))
}

/// SIGTERM / SIGINT: stop; SIGHUP: reload the dynamic options.
async fn handle_signals(
    index: Arc<Index>,
    mut settings: Settings,
    log: LogHandle,
    stop: tokio::sync::watch::Sender<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("received signal [SIGTERM] -> requesting shutdown");
                break;
            }
            _ = int.recv() => {
                tracing::info!("received signal [SIGINT] -> requesting shutdown");
                break;
            }
            _ = hup.recv() => {
                tracing::info!("received signal [SIGHUP] -> reloading");
                if let Some(s) = reload(&index, &settings, &log) {
                    settings = s;
                }
            }
        }
    }
    tracing::info!("shutdown request accepted -> breaking running loop");
    let _ = stop.send(true);
}

/// Re-read the configuration file and apply the dynamic options atomically
/// (operations.md §2.5). Returns the new effective settings.
fn reload(index: &Index, current: &Settings, log: &LogHandle) -> Option<Settings> {
    let skip = |e: &dyn std::fmt::Display| {
        tracing::warn!("{e}");
        tracing::warn!("invalid config file -> skip reloading");
    };
    let fresh = match current.reload_file() {
        Ok(s) => s,
        Err(e) => {
            skip(&e);
            return None;
        }
    };
    let mut merged = current.clone();
    let mut lines = Vec::new();
    for (name, value) in fresh.explicit() {
        let Some(spec) = merged.spec(name).filter(|s| s.dynamic) else {
            continue;
        };
        let old = merged.str(name).unwrap_or("").to_string();
        if let Err(e) = merged.set(spec.name, value) {
            skip(&e);
            return None;
        }
        lines.push(format!("  {}: {old} -> {value}", name.replace('-', "_")));
    }
    let monitor = match config::monitor_config(&merged) {
        Ok(m) => m,
        Err(e) => {
            skip(&e);
            return None;
        }
    };
    let access = match config::access(&merged) {
        Ok(a) => a,
        Err(e) => {
            skip(&e);
            return None;
        }
    };
    let max_connection = match merged.int("max-connection") {
        Ok(Some(n)) if n >= 1 => n as usize,
        _ => {
            skip(&"invalid max-connection");
            return None;
        }
    };
    let facility = merged.str("log-facility").unwrap_or("").to_string();
    if let Err(e) = flare_daemon::logging::parse_facility(&facility) {
        skip(&e);
        return None;
    }
    for l in &lines {
        tracing::info!("{l}");
    }
    if current.str("log-facility") != merged.str("log-facility") {
        tracing::info!("re-opening syslog...");
        if let Err(e) = log.set_facility(&facility) {
            tracing::warn!("{e}");
        }
    }
    index.set_max_connection(max_connection);
    index.set_monitor_config(monitor);
    index.set_access(access);
    if let Some(auth) = &index.config.cluster_auth {
        match merged.bool("cluster-secret-required") {
            Ok(required) => auth.set_required(required.unwrap_or(true)),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    tracing::info!("process successfully reloaded");
    Some(merged)
}
