//! Errors of the peer client.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use flare_proto::client::FrameError;

/// Why a request to another flare process failed. Cloneable: one failure of
/// a pipelined connection fails every request in flight on it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PeerError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: String,
        source: Arc<io::Error>,
    },
    #[error("connect to {addr} timed out after {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("{addr} did not answer within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("writing to {addr} made no progress for {after:?}")]
    WriteTimeout { addr: String, after: Duration },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        source: Arc<io::Error>,
    },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("{addr} sent a reply that cannot be framed: {source}")]
    Frame { addr: String, source: FrameError },
    /// The cluster's challenge–response failed (docs/security.md).
    #[error("authentication with {addr} failed: {reason}")]
    Auth { addr: String, reason: String },
    /// The connection failed before this request was written: it can be
    /// sent again safely.
    #[error("request to {addr} not sent: the connection failed first")]
    NotSent { addr: String },
}

impl PeerError {
    pub(crate) fn io(addr: &str, e: io::Error) -> PeerError {
        PeerError::Io {
            addr: addr.to_string(),
            source: Arc::new(e),
        }
    }
}
