//! Listeners and the accept loop; graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::watch;

use crate::connection;
use crate::node::{now, Node};
use crate::stats::inc;

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
    let err = |source| ServerError::Bind { port, source };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_keepalive(true).map_err(err)?;
    socket
        .bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .map_err(err)?;
    socket.listen(backlog.max(1) as u32).map_err(err)
}

/// Bind the unix socket (a stale socket file is replaced).
pub fn bind_unix(path: &std::path::Path) -> Result<UnixListener, ServerError> {
    if path.exists() {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(|source| ServerError::BindUnix {
        path: path.display().to_string(),
        source,
    })
}

fn admit(node: &Node, peer: String) -> Option<Arc<crate::registry::ConnSlot>> {
    let slot = node
        .registry
        .register(peer, now(), node.config().max_connection);
    if slot.is_some() {
        inc(&node.counters.total_connections);
    }
    slot
}

/// Accept until `stop` turns true; then stop accepting, close idle
/// connections, and wait (bounded) for in-flight requests to finish.
/// `on_stop` runs after the listeners are closed (the shutdown notice).
pub async fn run<F, Fut>(
    node: Arc<Node>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    mut stop: watch::Receiver<bool>,
    on_stop: F,
) where
    F: FnOnce(Arc<Node>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            accepted = tcp.accept() => {
                let Ok((stream, addr)) = accepted else { continue };
                let Some(slot) = admit(&node, addr.to_string()) else {
                    tracing::warn!("connection from {addr} refused: max-connection ({}) reached", node.config().max_connection);
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let n = Arc::clone(&node);
                tokio::spawn(async move {
                    let id = slot.id;
                    connection::serve(Arc::clone(&n), stream, slot).await;
                    n.registry.unregister(id);
                });
            }
            accepted = async { match &unix { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                let Ok((stream, _)) = accepted else { continue };
                let Some(slot) = admit(&node, ":0".to_string()) else { continue };
                let n = Arc::clone(&node);
                tokio::spawn(async move {
                    let id = slot.id;
                    connection::serve(Arc::clone(&n), stream, slot).await;
                    n.registry.unregister(id);
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(tcp);
    if let Some(path) = &node.config().server_socket {
        let _ = std::fs::remove_file(path);
    }
    on_stop(Arc::clone(&node)).await;
    node.registry.kill_all();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while node.registry.len() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
