//! The recache hints of the meta protocol (memcached's
//! stale-while-revalidate): which records are stale (`md <key> I`, or an
//! `ms` with `I` and an older cas) and whether a client already won the
//! right to recache one (`W` handed out, later clients see `Z`).
//!
//! Hints are advice, not data: they live in the memory of the node that
//! serves the key's writes (its master), bounded in number, tied to the
//! record's version (any later write of the key makes them void), and lost
//! on restart or failover, when a stale record simply reads as fresh. The
//! data itself is never wrong because of them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// What is known about one record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hint {
    /// The record version the hint is about.
    pub version: u64,
    /// Marked stale (`X`).
    pub stale: bool,
    /// A client was told it won the recache (`W`); the others get `Z`.
    pub win_sent: bool,
}

/// A bounded table of hints; the oldest entries go first.
pub struct Hints {
    inner: Mutex<Table>,
}

struct Table {
    map: HashMap<Vec<u8>, Hint>,
    order: VecDeque<Vec<u8>>,
    capacity: usize,
}

impl Table {
    fn put(&mut self, key: &[u8], hint: Hint) {
        if self.map.insert(key.to_vec(), hint).is_none() {
            self.order.push_back(key.to_vec());
            while self.map.len() > self.capacity {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                self.map.remove(&old);
            }
        }
    }
}

/// How a read of a record answers the recache protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// `X`: the record is stale.
    pub stale: bool,
    /// `W`: this client recaches it.
    pub won: bool,
    /// `Z`: another client already does.
    pub taken: bool,
}

impl Hints {
    pub fn new(capacity: usize) -> Self {
        Hints {
            inner: Mutex::new(Table {
                map: HashMap::new(),
                order: VecDeque::new(),
                capacity: capacity.max(1),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember `hint` for `key`.
    pub fn set(&self, key: &[u8], hint: Hint) {
        self.table().put(key, hint);
    }

    /// A read of `key` at `version`: `wants` says whether this client asks
    /// to recache (its `R` threshold passed). A stale record is offered to
    /// the first reader; a win is handed out once per version.
    pub fn read(&self, key: &[u8], version: u64, wants: bool) -> Answer {
        let mut t = self.table();
        let hint = t.map.get(key).copied().filter(|h| h.version == version);
        let stale = hint.is_some_and(|h| h.stale);
        let sent = hint.is_some_and(|h| h.win_sent);
        if sent {
            return Answer {
                stale,
                won: false,
                taken: true,
            };
        }
        if !(stale || wants) {
            return Answer::default();
        }
        let new = Hint {
            version,
            stale,
            win_sent: true,
        };
        t.put(key, new);
        Answer {
            stale,
            won: true,
            taken: false,
        }
    }

    /// Number of hints held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_winner_per_version_and_bounded() {
        let h = Hints::new(2);
        assert_eq!(h.read(b"k", 1, false), Answer::default());
        let won = Answer {
            stale: false,
            won: true,
            taken: false,
        };
        assert_eq!(h.read(b"k", 1, true), won);
        assert!(h.read(b"k", 1, true).taken);
        assert!(h.read(b"k", 1, false).taken);
        // a later version is a new record
        assert_eq!(h.read(b"k", 2, true), won);
        h.set(
            b"s",
            Hint {
                version: 5,
                stale: true,
                win_sent: false,
            },
        );
        let first = h.read(b"s", 5, false);
        assert!(first.stale && first.won && !first.taken);
        let second = h.read(b"s", 5, false);
        assert!(second.stale && !second.won && second.taken);
        assert!(!h.read(b"s", 6, false).stale);
        h.set(b"t", Hint::default());
        h.set(b"u", Hint::default());
        assert!(h.len() <= 2);
    }
}
