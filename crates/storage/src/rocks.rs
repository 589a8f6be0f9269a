//! The RocksDB engine.
//!
//! One database in `<data-dir>/flare.rocksdb`. Record keys are stored behind a
//! one-byte namespace prefix (`0x01`) so that `flush_all` is a single
//! `delete_range` over a bounded key space and other namespaces stay free for
//! metadata. Writes go through the WAL; whether each write is fsynced is the
//! [`FsyncPolicy`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, DBCompressionType, DataBlockIndexType,
    Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::engine::{KvEngine, ScanStep};
use crate::error::StorageError;

const DATA: u8 = 0x01;
const DATA_END: u8 = 0x02;

/// Files of the original's backends: their presence without a RocksDB
/// directory means "this node held data in Flare 1.x".
pub const LEGACY_FILES: [&str; 3] = ["flare.hdb", "flare.bdb", "flare.kch"];

/// Directory name of the database inside `data-dir`.
pub const DB_DIR: &str = "flare.rocksdb";

/// When acknowledged writes are fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every write goes to the WAL in the OS page cache: it survives a crash or
    /// `kill -9` of flared, not a power loss or kernel crash. (Default; the
    /// original never fsyncs either.)
    Never,
    /// Every write is fsynced before it is acknowledged: survives power loss,
    /// costs one fsync per write.
    Always,
}

/// Block compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
    Bz2,
    Lz4,
    Snappy,
}

/// Engine tuning.
#[derive(Clone, Debug)]
pub struct RocksConfig {
    pub fsync: FsyncPolicy,
    pub compression: Compression,
    /// Block cache in bytes.
    pub block_cache_bytes: usize,
    /// Memtable (write buffer) size in bytes.
    pub write_buffer_bytes: usize,
}

impl Default for RocksConfig {
    fn default() -> Self {
        RocksConfig {
            fsync: FsyncPolicy::Never,
            compression: Compression::None,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
        }
    }
}

/// RocksDB behind [`KvEngine`].
pub struct RocksEngine {
    db: Arc<DB>,
    /// Kept for its statistics (block cache hits, stalls).
    opts: Options,
    write: WriteOptions,
    path: PathBuf,
}

fn engine_err(e: rocksdb::Error) -> StorageError {
    StorageError::Engine(e.into_string())
}

/// The stored key: the namespace byte, then the key. Short keys are built on
/// the stack (no allocation on the request path).
#[allow(clippy::large_enum_variant)] // the large variant is the point: no heap allocation
enum DataKey {
    Short([u8; 256], usize),
    Long(Vec<u8>),
}

impl AsRef<[u8]> for DataKey {
    fn as_ref(&self) -> &[u8] {
        match self {
            DataKey::Short(b, n) => &b[..*n],
            DataKey::Long(v) => v,
        }
    }
}

fn data_key(key: &[u8]) -> DataKey {
    if key.len() < 256 {
        let mut b = [0u8; 256];
        b[0] = DATA;
        b[1..=key.len()].copy_from_slice(key);
        DataKey::Short(b, key.len() + 1)
    } else {
        let mut k = Vec::with_capacity(key.len() + 1);
        k.push(DATA);
        k.extend_from_slice(key);
        DataKey::Long(k)
    }
}

impl RocksEngine {
    /// Open (or create) the database in `data_dir`, which must exist.
    pub fn open(data_dir: &Path, config: &RocksConfig) -> Result<RocksEngine, StorageError> {
        let path = data_dir.join(DB_DIR);
        if !path.exists() {
            for f in LEGACY_FILES {
                if data_dir.join(f).exists() {
                    return Err(StorageError::LegacyDatabase {
                        file: f.to_string(),
                        dir: data_dir.display().to_string(),
                    });
                }
            }
        }
        if !data_dir.is_dir() {
            return Err(StorageError::Engine(format!(
                "data-dir {} does not exist or is not a directory",
                data_dir.display()
            )));
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(match config.compression {
            Compression::None => DBCompressionType::None,
            Compression::Zlib => DBCompressionType::Zlib,
            Compression::Bz2 => DBCompressionType::Bz2,
            Compression::Lz4 => DBCompressionType::Lz4,
            Compression::Snappy => DBCompressionType::Snappy,
        });
        opts.set_write_buffer_size(config.write_buffer_bytes);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        opts.set_enable_pipelined_write(true);
        // Large values go to blob files: compactions then move keys, not values.
        opts.set_enable_blob_files(true);
        opts.set_min_blob_size(4096);
        opts.set_blob_file_size(256 << 20);
        opts.set_enable_blob_gc(true);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.05);
        // tickers only (block cache hits, stall time) for the metrics: no
        // histograms or timers on the request path
        opts.enable_statistics();
        opts.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptHistogramOrTimers);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_whole_key_filtering(true);
        table.set_index_type(BlockBasedIndexType::BinarySearch);
        table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        table.set_block_cache(&cache);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, &path).map_err(|e| {
            let msg = e.into_string();
            if msg.contains("lock") || msg.contains("LOCK") {
                StorageError::Locked {
                    path: path.display().to_string(),
                }
            } else {
                StorageError::Engine(format!("cannot open {}: {msg}", path.display()))
            }
        })?;
        let mut write = WriteOptions::default();
        write.set_sync(config.fsync == FsyncPolicy::Always);
        Ok(RocksEngine {
            db: Arc::new(db),
            opts,
            write,
            path,
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn int_property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }
}

/// Stop RocksDB's background work (flushes, compactions, periodic tasks)
/// before the database is closed: otherwise a background thread can still
/// take a mutex of a closed database, and the process aborts with
/// `pthread lock: Invalid argument` as it exits (facebook/rocksdb#11349).
impl Drop for RocksEngine {
    fn drop(&mut self) {
        if Arc::strong_count(&self.db) == 1 {
            self.db.cancel_all_background_work(true);
        }
    }
}

impl KvEngine for RocksEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get(data_key(key)).map_err(engine_err)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.db
            .put_opt(data_key(key), value, &self.write)
            .map_err(engine_err)
    }

    fn delete(&self, key: &[u8]) -> Result<(), StorageError> {
        self.db
            .delete_opt(data_key(key), &self.write)
            .map_err(engine_err)
    }

    fn clear(&self) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range([DATA], [DATA_END]);
        self.db.write_opt(batch, &self.write).map_err(engine_err)?;
        // Reclaim the space in the background: the range tombstone already
        // hides every record, and a large compaction must not hold up the caller.
        let db = Arc::clone(&self.db);
        let _ = std::thread::Builder::new()
            .name("flush-compaction".into())
            .spawn(move || db.compact_range(Some([DATA]), Some([DATA_END])));
        Ok(())
    }

    fn scan(
        &self,
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> ScanStep,
    ) -> Result<(), StorageError> {
        let from = data_key(start);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound([DATA_END]);
        ro.fill_cache(false);
        let snapshot = self.db.snapshot();
        ro.set_snapshot(&snapshot);
        let iter = self
            .db
            .iterator_opt(IteratorMode::From(from.as_ref(), Direction::Forward), ro);
        for item in iter {
            let (k, v) = item.map_err(engine_err)?;
            if let ScanStep::Stop = f(&k[1..], &v) {
                break;
            }
        }
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.int_property("rocksdb.total-sst-files-size")
            + self.int_property("rocksdb.cur-size-all-mem-tables")
    }

    fn stats(&self) -> crate::EngineStats {
        use rocksdb::statistics::Ticker;
        crate::EngineStats {
            keys: self.int_property("rocksdb.estimate-num-keys"),
            live_data_bytes: self.int_property("rocksdb.estimate-live-data-size"),
            sst_bytes: self.int_property("rocksdb.total-sst-files-size"),
            blob_bytes: self.int_property("rocksdb.total-blob-file-size"),
            memtable_bytes: self.int_property("rocksdb.cur-size-all-mem-tables"),
            block_cache_hits: self.opts.get_ticker_count(Ticker::BlockCacheHit),
            block_cache_misses: self.opts.get_ticker_count(Ticker::BlockCacheMiss),
            stall_micros: self.opts.get_ticker_count(Ticker::StallMicros),
        }
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(engine_err)?;
        self.db.flush().map_err(engine_err)
    }
}
