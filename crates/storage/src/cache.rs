//! A bounded in-memory cache of stored records (raw encoded form), sharded
//! with the lock stripes: a shard is only touched under its stripe's lock,
//! and every write to the engine goes through the store, which updates the
//! shard in the same critical section, so the cache is never stale.
//!
//! Eviction is CLOCK-like: entries leave in insertion order, except that an
//! entry read since it was last considered gets a second chance.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Bookkeeping bytes charged per entry on top of key and record.
const ENTRY_OVERHEAD: usize = 64;

struct Entry {
    raw: Arc<[u8]>,
    hot: bool,
}

/// One shard.
pub struct RecordCache {
    map: HashMap<Box<[u8]>, Entry>,
    order: VecDeque<Box<[u8]>>,
    bytes: usize,
    budget: usize,
}

fn cost(key: &[u8], raw: &[u8]) -> usize {
    key.len() + raw.len() + ENTRY_OVERHEAD
}

impl RecordCache {
    pub fn new(budget: usize) -> Self {
        RecordCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    pub fn get(&mut self, key: &[u8]) -> Option<Arc<[u8]>> {
        let e = self.map.get_mut(key)?;
        e.hot = true;
        Some(Arc::clone(&e.raw))
    }

    pub fn put(&mut self, key: &[u8], raw: Arc<[u8]>) {
        let c = cost(key, &raw);
        if self.budget == 0 || c > self.budget / 4 {
            // too large to be worth caching: make sure no stale copy stays
            self.remove(key);
            return;
        }
        match self.map.get_mut(key) {
            Some(e) => {
                self.bytes = self.bytes - cost(key, &e.raw) + c;
                e.raw = raw;
            }
            None => {
                self.bytes += c;
                self.map.insert(key.into(), Entry { raw, hot: false });
                self.order.push_back(key.into());
            }
        }
        self.evict();
    }

    pub fn remove(&mut self, key: &[u8]) {
        if let Some(e) = self.map.remove(key) {
            self.bytes -= cost(key, &e.raw);
        }
        // the key stays in `order` until it is popped (or compacted)
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            let mut seen = std::collections::HashSet::new();
            self.order
                .retain(|k| map.contains_key(k) && seen.insert(k.clone()));
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }

    fn evict(&mut self) {
        while self.bytes > self.budget {
            let Some(k) = self.order.pop_front() else {
                return;
            };
            let Some(e) = self.map.get_mut(&k) else {
                continue; // removed earlier
            };
            if e.hot {
                e.hot = false;
                self.order.push_back(k);
            } else if let Some(e) = self.map.remove(&k) {
                self.bytes -= cost(&k, &e.raw);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(n: usize) -> Arc<[u8]> {
        vec![7u8; n].into()
    }

    #[test]
    fn bounded_with_second_chance() {
        let mut c = RecordCache::new(4 * (1 + 100 + ENTRY_OVERHEAD));
        for k in [b"a", b"b", b"c", b"d"] {
            c.put(k, raw(100));
        }
        assert!(c.get(b"a").is_some()); // a is hot now
        c.put(b"e", raw(100)); // evicts b (a gets a second chance)
        assert!(c.get(b"b").is_none());
        assert!(c.get(b"a").is_some());
        assert!(c.get(b"e").is_some());
        assert!(c.bytes <= c.budget);
        c.remove(b"a");
        assert!(c.get(b"a").is_none());
        c.put(b"big", raw(10_000)); // larger than a quarter of the budget
        assert!(c.get(b"big").is_none());
        c.clear();
        assert_eq!(c.bytes, 0);
    }

    #[test]
    fn replacing_updates_accounting() {
        let mut c = RecordCache::new(10_000);
        c.put(b"k", raw(10));
        c.put(b"k", raw(20));
        assert_eq!(c.bytes, cost(b"k", &raw(20)));
        assert_eq!(c.get(b"k").map(|r| r.len()), Some(20));
    }
}
