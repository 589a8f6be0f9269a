//! The crate's error type.

use crate::map::OpError;
use crate::persist::PersistError;

/// Errors of the index server.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// An operation refused by the state machine.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The node map could not be saved (the operation is not applied).
    #[error("failed to save the node map: {0}")]
    Persist(#[from] PersistError),
    /// The ZooKeeper node map (`index-db = zookeeper://…`).
    #[error(transparent)]
    ZooKeeper(#[from] crate::zk::ZkError),
    /// Listening failed.
    #[error("bind() failed on port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    /// Listening on the unix socket failed.
    #[error("bind() failed on unix socket {path}: {source}")]
    BindUnix {
        path: String,
        source: std::io::Error,
    },
}
