//! Listeners and the accept loop.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::watch;

use crate::connection;
use crate::error::IndexError;
use crate::index::{now, Index};

/// Bind the TCP listener on all IPv4 interfaces, backlog `SOMAXCONN`.
pub fn bind_tcp(port: u16) -> Result<TcpListener, IndexError> {
    let err = |source| IndexError::Bind { port, source };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_keepalive(true).map_err(err)?;
    socket
        .bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .map_err(err)?;
    socket.listen(libc::SOMAXCONN as u32).map_err(err)
}

/// Bind the unix socket (a stale socket file is replaced).
pub fn bind_unix(path: &std::path::Path) -> Result<UnixListener, IndexError> {
    if path.exists() {
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(|source| IndexError::BindUnix {
        path: path.display().to_string(),
        source,
    })?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
    Ok(l)
}

fn spawn_client<S>(index: &Arc<Index>, stream: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max = index.max_connection();
    let Some(slot) = index.registry.register_client(peer.clone(), now(), max) else {
        tracing::warn!("too many connection(s) [{max}] -> closing socket and continue ({peer})");
        return;
    };
    index
        .counters
        .total_connections
        .fetch_add(1, Ordering::Relaxed);
    let index = Arc::clone(index);
    tokio::spawn(async move {
        let id = slot.id;
        connection::serve(Arc::clone(&index), stream, slot).await;
        index.registry.unregister(id);
    });
}

/// Accept until `stop` turns true; then stop accepting and close the client
/// connections (bounded wait).
pub async fn run(
    index: Arc<Index>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    spawn_client(&index, stream, addr.to_string());
                }
                Err(e) => {
                    tracing::warn!("accept() failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            accepted = async { match &unix { Some(l) => l.accept().await, None => std::future::pending().await } } => match accepted {
                Ok((stream, _)) => spawn_client(&index, stream, ":0".to_string()),
                Err(e) => {
                    tracing::warn!("accept() failed on the unix socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(tcp);
    drop(unix);
    if let Some(path) = &index.config.server_socket {
        let _ = std::fs::remove_file(path);
    }
    index.registry.kill_clients();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while index.registry.clients() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
