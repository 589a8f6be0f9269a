//! Flare record storage.
//!
//! * [`engine::KvEngine`]: an ordered byte-key/byte-value engine with snapshot
//!   scans, free of RocksDB types. [`rocks::RocksEngine`] is the production
//!   engine; [`memory::MemoryEngine`] serves unit tests.
//! * [`record`]: the record (flags, expire, version, value) and its 28-byte
//!   little-endian header codec (operations.md §5.3).
//! * [`store::Store`]: Flare's record semantics on top of an engine: expiry,
//!   versions, the tombstone cache, per-key serialisation of read-modify-write
//!   commands (protocol.md §4, §6–§12).

mod cache;
pub mod engine;
pub mod error;
pub mod memory;
pub mod record;
pub mod rocks;
pub mod store;
mod tombstones;

pub use engine::{DynEngine, EngineStats, KvEngine};
pub use error::StorageError;
pub use record::Record;
pub use rocks::{Compression, FsyncPolicy, RocksConfig, RocksEngine};
pub use store::{
    epoch_floor, ArithOp, ArithOutcome, DeleteOutcome, Store, StoreConfig, StoreMode, StoreOutcome,
    TouchOutcome, WriteRequest, EPOCH_SHIFT, MAX_EPOCH,
};
