//! The tombstone ("delete queue") cache of protocol.md §4.5: key → (expire,
//! version) of recently deleted keys, bounded, evicted oldest-first by first
//! insertion. It is sharded with the lock stripes, so each shard is only
//! touched under its stripe's lock.

use std::collections::{HashMap, VecDeque};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// Delete-hold expiry (absolute), or the delete time when no hold was given.
    pub expire: i64,
    pub version: u64,
}

#[derive(Default)]
pub struct Tombstones {
    map: HashMap<Vec<u8>, Tombstone>,
    order: VecDeque<Vec<u8>>,
    capacity: usize,
}

impl Tombstones {
    pub fn new(capacity: usize) -> Self {
        Tombstones {
            capacity,
            ..Default::default()
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Tombstone> {
        self.map.get(key).copied()
    }

    pub fn insert(&mut self, key: &[u8], t: Tombstone) {
        if self.capacity == 0 {
            return;
        }
        if let Some(slot) = self.map.get_mut(key) {
            *slot = t;
            return;
        }
        self.map.insert(key.to_vec(), t);
        self.order.push_back(key.to_vec());
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_by_first_insertion() {
        let mut t = Tombstones::new(2);
        let ts = |v| Tombstone {
            expire: 0,
            version: v,
        };
        t.insert(b"a", ts(1));
        t.insert(b"b", ts(2));
        t.insert(b"a", ts(3)); // update does not move it
        t.insert(b"c", ts(4));
        assert_eq!(t.get(b"a"), None);
        assert_eq!(t.get(b"b"), Some(ts(2)));
        assert_eq!(t.get(b"c"), Some(ts(4)));
    }
}
