//! Listeners and the accept loop (from `flare-net`); graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use flare_net::listener;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::node::Node;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("bind() failed on port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("bind() failed on unix socket {path}: {source}")]
    BindUnix {
        path: String,
        source: std::io::Error,
    },
}

/// Bind the TCP listener on all IPv4 interfaces with the configured backlog.
pub fn bind_tcp(port: u16, backlog: i32) -> Result<TcpListener, ServerError> {
    listener::bind_tcp(port, backlog.max(1) as u32)
        .map_err(|source| ServerError::Bind { port, source })
}

/// Bind the unix socket (a stale socket file is replaced).
pub fn bind_unix(path: &std::path::Path) -> Result<UnixListener, ServerError> {
    listener::bind_unix(path).map_err(|source| ServerError::BindUnix {
        path: path.display().to_string(),
        source,
    })
}

/// Longest wait at shutdown for queued replication to be delivered.
pub const REPLICATION_DRAIN: Duration = Duration::from_secs(10);

/// Accept until `stop` turns true; then stop accepting, close the
/// connections (waiting, bounded, for in-flight requests), deliver the
/// queued replication (bounded by [`REPLICATION_DRAIN`]), and only then run
/// `on_stop` (the shutdown notice that makes the index promote a slave): a
/// write acknowledged before the stop is on the slaves when one takes over.
pub async fn run<F, Fut>(
    node: Arc<Node>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    tls: Option<TcpListener>,
    stop: watch::Receiver<bool>,
    on_stop: F,
) where
    F: FnOnce(Arc<Node>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    listener::accept_until(Arc::clone(&node), tcp, unix, tls, stop).await;
    if let Some(path) = &node.config().server_socket {
        let _ = std::fs::remove_file(path);
    }
    listener::drain(&node.registry, Duration::from_secs(10)).await;
    tracing::info!("draining replication queues (at most {REPLICATION_DRAIN:?})");
    let left = node.replicator.drain(REPLICATION_DRAIN).await;
    if left > 0 {
        tracing::warn!("{left} replicated write(s) still undelivered at shutdown");
    }
    on_stop(Arc::clone(&node)).await;
}
