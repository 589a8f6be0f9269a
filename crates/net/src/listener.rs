//! Accept loops. An accept error (EMFILE, ENFILE, ENOBUFS, ...) is logged
//! and followed by a pause that doubles up to [`ACCEPT_BACKOFF_MAX`] while
//! errors continue, so a process out of descriptors waits instead of
//! spinning; the first success resets it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::conn::{self, Service};
use crate::registry::{Registry, Slot};

/// First pause after a failed accept.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts while they keep failing.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How a daemon admits a new connection: registers it (or refuses it at
/// `max-connection`, `None`).
pub trait Admit: Service {
    fn admit(&self, peer: String) -> Option<Arc<Slot>>;
    fn registry(&self) -> &Registry;
    /// The TLS configuration for connections on the TLS listener (the
    /// current one: a reload may replace it).
    fn tls(&self) -> Option<Arc<crate::tls::rustls::ServerConfig>> {
        None
    }
}

/// Longest a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finish the TLS handshake of a new connection, then serve it.
fn spawn_tls<S: Admit>(svc: &Arc<S>, stream: tokio::net::TcpStream, peer: String) {
    let Some(config) = svc.tls() else {
        return;
    };
    let svc = Arc::clone(svc);
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => spawn(&svc, tls, peer),
            Ok(Err(e)) => tracing::info!("TLS handshake with {peer} failed: {e} -> closed"),
            Err(_) => tracing::info!(
                "TLS handshake with {peer} did not finish within {TLS_HANDSHAKE_TIMEOUT:?} -> closed"
            ),
        }
    });
}

struct Backoff(Duration);

impl Backoff {
    async fn failed(&mut self, what: &str, e: std::io::Error) {
        tracing::warn!("accept() failed on {what}: {e} -> retrying in {:?}", self.0);
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(ACCEPT_BACKOFF_MAX);
    }
    fn reset(&mut self) {
        self.0 = ACCEPT_BACKOFF_MIN;
    }
}

fn spawn<S, T>(svc: &Arc<S>, stream: T, peer: String)
where
    S: Admit,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(slot) = svc.admit(peer.clone()) else {
        tracing::warn!("connection from {peer} refused: max-connection reached");
        return;
    };
    let svc = Arc::clone(svc);
    tokio::spawn(async move {
        let id = slot.id;
        conn::serve(Arc::clone(&svc), stream, slot).await;
        svc.registry().unregister(id);
    });
}

/// Accept on `tcp` (and `unix`, and `tls`: TLS connections) until `stop`
/// turns true, serving each connection with [`conn::serve`] on its own
/// task.
pub async fn accept_until<S: Admit>(
    svc: Arc<S>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    tls: Option<TcpListener>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tcp_backoff = Backoff(ACCEPT_BACKOFF_MIN);
    let mut unix_backoff = Backoff(ACCEPT_BACKOFF_MIN);
    let mut tls_backoff = Backoff(ACCEPT_BACKOFF_MIN);
    loop {
        tokio::select! {
            accepted = async { match &tls { Some(l) => l.accept().await, None => std::future::pending().await } } => match accepted {
                Ok((stream, addr)) => {
                    tls_backoff.reset();
                    let _ = stream.set_nodelay(true);
                    spawn_tls(&svc, stream, addr.to_string());
                }
                Err(e) => tls_backoff.failed("the TLS listener", e).await,
            },
            accepted = tcp.accept() => match accepted {
                Ok((stream, addr)) => {
                    tcp_backoff.reset();
                    let _ = stream.set_nodelay(true);
                    spawn(&svc, stream, addr.to_string());
                }
                Err(e) => tcp_backoff.failed("the TCP listener", e).await,
            },
            accepted = async { match &unix { Some(l) => l.accept().await, None => std::future::pending().await } } => match accepted {
                Ok((stream, _)) => {
                    unix_backoff.reset();
                    spawn(&svc, stream, ":0".to_string());
                }
                Err(e) => unix_backoff.failed("the unix socket", e).await,
            },
            _ = stop.changed() => break,
        }
    }
}

/// Kill every client connection and wait until they are gone, at most
/// `limit`.
pub async fn drain(registry: &Registry, limit: Duration) {
    registry.kill_clients();
    wait_for(limit, || registry.clients() == 0).await;
}

/// Poll `done` every 20 ms until it holds or `limit` passed.
pub async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bind a TCP listener on all IPv4 interfaces (as the original) with
/// `SO_REUSEADDR`, keep-alive and the given backlog.
pub fn bind_tcp(port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_keepalive(true)?;
    socket.bind(std::net::SocketAddr::from(([0, 0, 0, 0], port)))?;
    socket.listen(backlog.max(1))
}

/// Bind a unix socket, replacing a stale socket file.
pub fn bind_unix(path: &std::path::Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path)
}
