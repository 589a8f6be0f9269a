//! An in-memory engine for unit tests (a `BTreeMap` behind a lock).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::engine::{KvEngine, ScanStep};
use crate::error::StorageError;

/// In-memory [`KvEngine`]; scans copy the map first (a snapshot).
#[derive(Default)]
pub struct MemoryEngine {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryEngine {
    fn map(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KvEngine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map().get(key).cloned())
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.map().insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &[u8]) -> Result<(), StorageError> {
        self.map().remove(key);
        Ok(())
    }
    fn clear(&self) -> Result<(), StorageError> {
        self.map().clear();
        Ok(())
    }
    fn scan(
        &self,
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> ScanStep,
    ) -> Result<(), StorageError> {
        let snapshot: Vec<(Vec<u8>, Vec<u8>)> = self
            .map()
            .range(start.to_vec()..)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &snapshot {
            if let ScanStep::Stop = f(k, v) {
                break;
            }
        }
        Ok(())
    }
    fn size_bytes(&self) -> u64 {
        self.map()
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
