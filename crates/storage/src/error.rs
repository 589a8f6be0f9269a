//! Storage errors.

/// Errors of the storage layer. Messages name what an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process holds the database lock.
    #[error("storage is locked by another process ({path}): is another flared running on this data-dir?")]
    Locked { path: String },
    /// A database of the original Flare (Tokyo/Kyoto Cabinet) is in the data-dir.
    #[error("{file} (a Flare 1.x Tokyo/Kyoto Cabinet database) found in {dir} and no RocksDB data: refusing to start empty; rebuild this node as a slave (see docs/compatibility.md) or move the file away")]
    LegacyDatabase { file: String, dir: String },
    /// The engine failed (I/O error, corruption reported by RocksDB, ...).
    #[error("storage engine error: {0}")]
    Engine(String),
    /// A stored record could not be decoded.
    #[error("stored record is corrupted: {0}")]
    Corrupt(&'static str),
}
