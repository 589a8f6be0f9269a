//! The engine trait: an ordered key-value store with snapshot scans.

use crate::error::StorageError;

/// What a scan callback wants next.
pub enum ScanStep {
    Continue,
    Stop,
}

/// An ordered byte-key/byte-value store. Implementations are thread-safe; the
/// record semantics (versions, expiry, locking) live in [`crate::Store`].
pub trait KvEngine: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError>;
    fn delete(&self, key: &[u8]) -> Result<(), StorageError>;
    /// Remove every record.
    fn clear(&self) -> Result<(), StorageError>;
    /// Visit records in ascending key order starting at `start`, over a
    /// consistent snapshot taken when the scan begins.
    fn scan(
        &self,
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> ScanStep,
    ) -> Result<(), StorageError>;
    /// Bytes used on disk (and in write buffers).
    fn size_bytes(&self) -> u64;
    /// Make everything written so far durable (memtables flushed, WAL synced).
    fn flush(&self) -> Result<(), StorageError>;
    /// Figures for monitoring; an engine without some of them leaves 0.
    fn stats(&self) -> EngineStats {
        EngineStats {
            live_data_bytes: self.size_bytes(),
            ..EngineStats::default()
        }
    }
}

/// What an engine tells about itself (the metrics of docs/operations.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Records (an estimate).
    pub keys: u64,
    /// Bytes of live data (an estimate).
    pub live_data_bytes: u64,
    /// Bytes of sorted tables on disk.
    pub sst_bytes: u64,
    /// Bytes of blob files on disk (large values).
    pub blob_bytes: u64,
    /// Bytes in write buffers.
    pub memtable_bytes: u64,
    /// Reads the block cache answered / did not.
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
    /// Microseconds writes were stalled or slowed down by the engine.
    pub stall_micros: u64,
}

/// An engine chosen at run time (RocksDB in the daemon, the memory engine in
/// the in-process tests): one virtual call per engine operation.
pub type DynEngine = Box<dyn KvEngine>;

/// Boxed and shared engines are engines (`DynEngine`; an `Arc` lets a test
/// keep a node's memory engine across restarts).
macro_rules! forward_engine {
    ($($ptr:ident),*) => {$(
        impl<E: KvEngine + ?Sized> KvEngine for $ptr<E> {
            fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
                (**self).get(key)
            }
            fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
                (**self).put(key, value)
            }
            fn delete(&self, key: &[u8]) -> Result<(), StorageError> {
                (**self).delete(key)
            }
            fn clear(&self) -> Result<(), StorageError> {
                (**self).clear()
            }
            fn scan(
                &self,
                start: &[u8],
                f: &mut dyn FnMut(&[u8], &[u8]) -> ScanStep,
            ) -> Result<(), StorageError> {
                (**self).scan(start, f)
            }
            fn size_bytes(&self) -> u64 {
                (**self).size_bytes()
            }
            fn flush(&self) -> Result<(), StorageError> {
                (**self).flush()
            }
            fn stats(&self) -> EngineStats {
                (**self).stats()
            }
        }
    )*};
}

use std::sync::Arc;
forward_engine!(Box, Arc);
