//! Listeners and the accept loop (from `flare-net`).

use std::sync::Arc;
use std::time::Duration;

use flare_net::listener;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::error::IndexError;
use crate::index::Index;

/// Bind the TCP listener on all IPv4 interfaces, backlog `SOMAXCONN`.
pub fn bind_tcp(port: u16) -> Result<TcpListener, IndexError> {
    listener::bind_tcp(port, libc::SOMAXCONN as u32)
        .map_err(|source| IndexError::Bind { port, source })
}

/// Bind the unix socket (a stale socket file is replaced), open to all.
pub fn bind_unix(path: &std::path::Path) -> Result<UnixListener, IndexError> {
    let l = listener::bind_unix(path).map_err(|source| IndexError::BindUnix {
        path: path.display().to_string(),
        source,
    })?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
    Ok(l)
}

/// Accept until `stop` turns true; then stop accepting and close the client
/// connections (bounded wait).
pub async fn run(
    index: Arc<Index>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    stop: watch::Receiver<bool>,
) {
    listener::accept_until(Arc::clone(&index), tcp, unix, None, stop).await;
    if let Some(path) = &index.config.server_socket {
        let _ = std::fs::remove_file(path);
    }
    listener::drain(&index.registry, Duration::from_secs(5)).await;
}
