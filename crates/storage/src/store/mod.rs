//! Flare record semantics over a [`KvEngine`].
//!
//! Every write is a read-modify-write under the key's lock stripe, so
//! `incr`/`append`/`cas`/`add` are atomic under concurrency. A global
//! read-write lock lets `truncate` (flush_all) exclude all writes. Reads take
//! no lock; only the lazy purge of an expired record takes the stripe lock and
//! re-checks that the record is still the expired one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::cache::RecordCache;
use crate::engine::{EngineStats, KvEngine, ScanStep};
use crate::error::StorageError;
use crate::record::{encode_parts, Header, Record};
use crate::tombstones::{Tombstone, Tombstones};

/// Tuning of the semantic layer.
#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    /// Tombstone cache capacity in entries (`storage-cache-size`).
    pub tombstone_capacity: usize,
    /// Number of lock stripes (`mutex-slot`).
    pub lock_slots: usize,
    /// Bytes of records kept in memory in front of the engine (0 = none).
    pub record_cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            tombstone_capacity: 65536,
            lock_slots: 64,
            record_cache_bytes: 64 << 20,
        }
    }
}

/// Which storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Compare-and-swap against this unique.
    Cas(u64),
}

/// A write's input.
#[derive(Clone, Copy, Debug)]
pub struct WriteRequest<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    /// Absolute expire (0 = never).
    pub expire: i64,
    pub value: &'a [u8],
    /// Explicit version (0 = none): stored as is when newer than the current one.
    pub version: u64,
}

/// Result of a storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored { version: u64 },
    NotStored,
    Exists,
    NotFound,
}

/// Result of incr/decr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    Value {
        value: u64,
        version: u64,
    },
    NotFound,
    /// [`ArithOp::strict`] and the value is not a decimal number.
    NonNumeric,
    /// [`ArithOp::compare`] did not match the record's version.
    Exists,
}

/// incr/decr as the binary and meta protocols (memcached) define it; the
/// text commands use [`Store::arith`] (Flare's rules).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArithOp {
    pub delta: u64,
    pub incr: bool,
    /// memcached's rules: the whole value must be a decimal number
    /// (else [`ArithOutcome::NonNumeric`]) and incr wraps at 2^64;
    /// otherwise Flare's (numeric prefix, saturating).
    pub strict: bool,
    /// Create a missing key with this value, flags and absolute expire
    /// (the value is returned as is, the delta is not applied).
    pub create: Option<(u64, u32, i64)>,
    /// Apply only at this version.
    pub compare: Option<u64>,
    /// New absolute expire on success.
    pub expire: Option<i64>,
}

/// Result of a versioned touch ([`Store::touch_version`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TouchOutcome {
    Touched(Record),
    /// Absent, expired, or at an older version.
    NotFound,
    /// At a later version.
    Newer,
}

/// Result of delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted {
        version: u64,
    },
    NotFound,
    /// [`Store::delete_if`]: the record is at another version.
    Exists,
}

struct Stripe {
    tombstones: Tombstones,
    cache: RecordCache,
    /// Reads the record cache answered, and those it did not.
    cache_hits: u64,
    cache_misses: u64,
    /// While the node is being rebuilt: every key deleted since, with the
    /// delete's version, kept whatever the size of the tombstone cache, so
    /// that the copy cannot bring a deleted key back (`None` otherwise).
    pinned: Option<HashMap<Vec<u8>, u64>>,
}

/// The record store.
pub struct Store<E: KvEngine> {
    engine: E,
    stripes: Vec<Mutex<Stripe>>,
    global: RwLock<()>,
    items: AtomicI64,
    /// Lowest version a new write gets (docs/replication.md §1.1): the
    /// epoch of this node's mastership in the high bits, so versions issued
    /// after a failover are above every version an earlier master issued.
    version_floor: AtomicU64,
}

/// Bits of a version below the epoch.
pub const EPOCH_SHIFT: u32 = 40;
/// Largest epoch (the rest of the 64 bits).
pub const MAX_EPOCH: u64 = (1 << (64 - EPOCH_SHIFT)) - 1;

/// The first version of `epoch`: `epoch << 40` (epochs above [`MAX_EPOCH`]
/// count as [`MAX_EPOCH`]).
pub fn epoch_floor(epoch: u64) -> u64 {
    epoch.min(MAX_EPOCH) << EPOCH_SHIFT
}

/// Stripe index of a key (FNV-1a; internal only).
fn stripe_of(key: &[u8], n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % n as u64) as usize
}

/// The numeric value of a record for incr/decr: the longest prefix of ASCII
/// digits; empty or overflowing → 0 (protocol.md §11.2).
fn numeric_prefix(v: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            break;
        }
        match n
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(b - b'0')))
        {
            Some(x) => n = x,
            None => return 0,
        }
    }
    n
}

/// memcached's reading of a counter: the whole value is a decimal u64
/// (trailing spaces allowed, as memcached pads values it rewrote in place).
fn strict_number(v: &[u8]) -> Option<u64> {
    let end = v.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
    let digits = &v[..end];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What is known about a key under its lock.
struct Current {
    record: Option<Record>,
    tombstone: Option<Tombstone>,
}

impl Current {
    fn alive(&self, now: i64) -> Option<&Record> {
        self.record.as_ref().filter(|r| !r.is_expired(now))
    }
    /// Absent (not merely expired) with an unexpired delete hold. A record
    /// stored after the hold, even one that has expired since, ends the
    /// hold, as in 1.3.4 (`set` after `delete k 100`, then the record
    /// expires: `add` stores).
    fn held(&self, now: i64) -> bool {
        self.record.is_none() && self.tombstone.is_some_and(|t| t.expire > now)
    }
    /// The version a new write builds on (§4.3).
    fn version(&self) -> u64 {
        match (&self.record, self.tombstone) {
            (Some(r), _) => r.version,
            (None, Some(t)) => t.version,
            (None, None) => 0,
        }
    }
}

impl<E: KvEngine> Store<E> {
    /// The version a write without an explicit version gets: one above the
    /// key's current version, and above the version floor.
    fn next_version(&self, current: u64) -> u64 {
        current
            .max(self.version_floor.load(Ordering::Relaxed))
            .wrapping_add(1)
    }

    /// Raise the version floor to `epoch_floor(epoch)` (never lowers it).
    pub fn enter_epoch(&self, epoch: u64) {
        self.version_floor
            .fetch_max(epoch_floor(epoch), Ordering::Relaxed);
    }

    /// The current version floor.
    pub fn version_floor(&self) -> u64 {
        self.version_floor.load(Ordering::Relaxed)
    }

    /// Wrap an engine; counts the records once (for `curr_items`).
    pub fn open(engine: E, config: StoreConfig) -> Result<Self, StorageError> {
        let slots = config.lock_slots.max(1);
        let per_stripe = config.tombstone_capacity.div_ceil(slots);
        let stripes = (0..slots)
            .map(|_| {
                Mutex::new(Stripe {
                    tombstones: Tombstones::new(per_stripe),
                    cache: RecordCache::new(config.record_cache_bytes / slots),
                    cache_hits: 0,
                    cache_misses: 0,
                    pinned: None,
                })
            })
            .collect();
        let mut count = 0i64;
        engine.scan(b"", &mut |_, _| {
            count += 1;
            ScanStep::Continue
        })?;
        Ok(Store {
            engine,
            stripes,
            global: RwLock::new(()),
            items: AtomicI64::new(count),
            version_floor: AtomicU64::new(0),
        })
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn stripe(&self, key: &[u8]) -> MutexGuard<'_, Stripe> {
        self.stripes[stripe_of(key, self.stripes.len())]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.global.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Read a record under its stripe's lock, through the record cache; a
    /// corrupted one counts as absent (it is overwritten by the next write),
    /// as in the original.
    fn read(&self, stripe: &mut Stripe, key: &[u8]) -> Result<Option<Record>, StorageError> {
        let cached = stripe.cache.get(key);
        if cached.is_some() {
            stripe.cache_hits += 1;
        } else {
            stripe.cache_misses += 1;
        }
        let raw: Arc<[u8]> = match cached {
            Some(raw) => raw,
            None => match self.engine.get(key)? {
                None => return Ok(None),
                Some(raw) => {
                    let raw: Arc<[u8]> = raw.into();
                    stripe.cache.put(key, Arc::clone(&raw));
                    raw
                }
            },
        };
        match Record::decode(&raw) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(key),
                    "{e} -> continue processing (pretending not found)"
                );
                stripe.cache.remove(key);
                Ok(None)
            }
        }
    }

    /// Write a record (engine, then cache) under its stripe's lock.
    fn save(&self, stripe: &mut Stripe, key: &[u8], raw: Vec<u8>) -> Result<(), StorageError> {
        if let Err(e) = self.engine.put(key, &raw) {
            stripe.cache.remove(key);
            return Err(e);
        }
        stripe.cache.put(key, raw.into());
        Ok(())
    }

    /// Delete a record (engine and cache) under its stripe's lock.
    fn erase(&self, stripe: &mut Stripe, key: &[u8]) -> Result<(), StorageError> {
        stripe.cache.remove(key);
        self.engine.delete(key)
    }

    fn current(&self, stripe: &mut Stripe, key: &[u8]) -> Result<Current, StorageError> {
        Ok(Current {
            record: self.read(stripe, key)?,
            tombstone: stripe.tombstones.get(key),
        })
    }

    /// Remove an expired record under its lock, remembering a tombstone.
    fn purge_locked(
        &self,
        stripe: &mut Stripe,
        key: &[u8],
        r: &Record,
        now: i64,
    ) -> Result<(), StorageError> {
        self.erase(stripe, key)?;
        self.items.fetch_sub(1, Ordering::Relaxed);
        stripe.tombstones.insert(
            key,
            Tombstone {
                expire: now,
                version: r.version,
            },
        );
        Ok(())
    }

    /// The stored record whether or not it has expired, without purging it
    /// (replication sends a record stored with a past expiry as it is).
    pub fn peek(&self, key: &[u8]) -> Result<Option<Record>, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(key);
        self.read(&mut stripe, key)
    }

    /// `get`: the live record, purging it when expired.
    pub fn get(&self, key: &[u8], now: i64) -> Result<Option<Record>, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(key);
        let Some(r) = self.read(&mut stripe, key)? else {
            return Ok(None);
        };
        if !r.is_expired(now) {
            return Ok(Some(r));
        }
        self.purge_locked(&mut stripe, key, &r, now)?;
        Ok(None)
    }

    /// set / add / replace / append / prepend / cas (protocol.md §6, §7, §4.3).
    pub fn store(
        &self,
        mode: StoreMode,
        w: WriteRequest<'_>,
        now: i64,
    ) -> Result<StoreOutcome, StorageError> {
        self.store_if(mode, w, None, now)
    }

    /// [`Store::store`], applied only if the live record is at version
    /// `compare` (memcached's cas on any storage mode: `NotFound` when there
    /// is no live record, `Exists` when its version differs).
    pub fn store_if(
        &self,
        mode: StoreMode,
        w: WriteRequest<'_>,
        compare: Option<u64>,
        now: i64,
    ) -> Result<StoreOutcome, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(w.key);
        let cur = self.current(&mut stripe, w.key)?;
        let alive = cur.alive(now);
        let held = cur.held(now);
        if let Some(unique) = compare {
            match alive {
                None => return Ok(StoreOutcome::NotFound),
                Some(r) if r.version != unique => return Ok(StoreOutcome::Exists),
                Some(_) => {}
            }
        }
        let mut new_version = if w.version > 0 {
            w.version
        } else {
            self.next_version(cur.version())
        };
        match mode {
            StoreMode::Set => {}
            StoreMode::Add => {
                if alive.is_some() || held {
                    return Ok(StoreOutcome::NotStored);
                }
            }
            StoreMode::Replace => {
                if alive.is_none() {
                    return Ok(StoreOutcome::NotStored);
                }
            }
            StoreMode::Append | StoreMode::Prepend => {
                if alive.is_none() {
                    // append/prepend read the record: an expired one is purged (§4.2)
                    if let Some(r) = cur.record.as_ref().filter(|r| r.is_expired(now)) {
                        self.purge_locked(&mut stripe, w.key, r, now)?;
                    }
                    return Ok(StoreOutcome::NotStored);
                }
            }
            StoreMode::Cas(unique) => {
                let expected = match (alive, held, cur.tombstone) {
                    (Some(r), _, _) => r.version,
                    (None, true, Some(t)) => t.version,
                    _ => return Ok(StoreOutcome::NotFound),
                };
                if unique != expected {
                    return Ok(StoreOutcome::Exists);
                }
                new_version = self.next_version(unique);
            }
        }
        if w.version > 0 && !matches!(mode, StoreMode::Cas(_)) {
            if let Some(r) = alive {
                if w.version <= r.version {
                    return Ok(StoreOutcome::NotStored);
                }
            }
        }
        let raw = match (mode, alive) {
            (StoreMode::Append, Some(r)) => {
                encode_parts(r.flags, r.expire, new_version, &[&r.value, w.value])
            }
            (StoreMode::Prepend, Some(r)) => {
                encode_parts(r.flags, r.expire, new_version, &[w.value, &r.value])
            }
            _ => encode_parts(w.flags, w.expire, new_version, &[w.value]),
        };
        self.save(&mut stripe, w.key, raw)?;
        if cur.record.is_none() {
            self.items.fetch_add(1, Ordering::Relaxed);
        }
        Ok(StoreOutcome::Stored {
            version: new_version,
        })
    }

    /// Store a record received by reconstruction (`dump`), cluster.md §7.4:
    /// skipped (`NotStored`) unless its version is newer than every version
    /// known here for the key: live, expired, or remembered by a tombstone.
    pub fn import(&self, key: &[u8], record: &Record) -> Result<StoreOutcome, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(key);
        let cur = self.current(&mut stripe, key)?;
        let known = match (&cur.record, cur.tombstone) {
            (Some(r), Some(t)) => r.version.max(t.version),
            (Some(r), None) => r.version,
            (None, Some(t)) => t.version,
            (None, None) => 0,
        };
        let pinned = stripe
            .pinned
            .as_ref()
            .and_then(|p| p.get(key).copied())
            .unwrap_or(0);
        if record.version <= known.max(pinned) {
            return Ok(StoreOutcome::NotStored);
        }
        self.save(&mut stripe, key, record.encode())?;
        if cur.record.is_none() {
            self.items.fetch_add(1, Ordering::Relaxed);
        }
        Ok(StoreOutcome::Stored {
            version: record.version,
        })
    }

    /// touch / gat: replace the expire of a live record; returns the record.
    pub fn touch(&self, key: &[u8], expire: i64, now: i64) -> Result<Option<Record>, StorageError> {
        match self.touch_version(key, expire, 0, now)? {
            TouchOutcome::Touched(r) => Ok(Some(r)),
            TouchOutcome::NotFound | TouchOutcome::Newer => Ok(None),
        }
    }

    /// A replicated touch: replace the expire only if the record is at
    /// exactly `version` (0: any version). A record at a later version has
    /// a later write, whose expire wins (`Newer`); an older or missing one
    /// is behind (`NotFound`: the master then sends the whole record).
    pub fn touch_version(
        &self,
        key: &[u8],
        expire: i64,
        version: u64,
        now: i64,
    ) -> Result<TouchOutcome, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(key);
        let Some(mut r) = self.read(&mut stripe, key)? else {
            return Ok(TouchOutcome::NotFound);
        };
        if r.is_expired(now) {
            self.purge_locked(&mut stripe, key, &r, now)?;
            return Ok(TouchOutcome::NotFound);
        }
        if version != 0 && r.version != version {
            return Ok(if r.version > version {
                TouchOutcome::Newer
            } else {
                TouchOutcome::NotFound
            });
        }
        r.expire = expire;
        self.save(&mut stripe, key, r.encode())?;
        Ok(TouchOutcome::Touched(r))
    }

    /// incr / decr (protocol.md §11): saturating add, clamped subtract.
    pub fn arith(
        &self,
        key: &[u8],
        delta: u64,
        incr: bool,
        now: i64,
    ) -> Result<ArithOutcome, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(key);
        let Some(r) = self.read(&mut stripe, key)? else {
            return Ok(ArithOutcome::NotFound);
        };
        if r.is_expired(now) {
            self.purge_locked(&mut stripe, key, &r, now)?;
            return Ok(ArithOutcome::NotFound);
        }
        let n = numeric_prefix(&r.value);
        let value = if incr {
            n.saturating_add(delta)
        } else {
            n.saturating_sub(delta)
        };
        let version = self.next_version(r.version);
        let text = value.to_string();
        self.save(
            &mut stripe,
            key,
            encode_parts(r.flags, r.expire, version, &[text.as_bytes()]),
        )?;
        Ok(ArithOutcome::Value { value, version })
    }

    /// incr / decr with memcached's options (binary and meta protocols).
    pub fn arith_with(
        &self,
        key: &[u8],
        op: ArithOp,
        now: i64,
    ) -> Result<ArithOutcome, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(key);
        let cur = self.current(&mut stripe, key)?;
        let Some(r) = cur.alive(now).cloned() else {
            if let Some(r) = cur.record.as_ref() {
                self.purge_locked(&mut stripe, key, r, now)?;
            }
            let Some((initial, flags, expire)) = op.create else {
                return Ok(ArithOutcome::NotFound);
            };
            if op.compare.is_some() {
                return Ok(ArithOutcome::NotFound);
            }
            let version = self.next_version(cur.version());
            let text = initial.to_string();
            self.save(
                &mut stripe,
                key,
                encode_parts(flags, expire, version, &[text.as_bytes()]),
            )?;
            self.items.fetch_add(1, Ordering::Relaxed);
            return Ok(ArithOutcome::Value {
                value: initial,
                version,
            });
        };
        if op.compare.is_some_and(|c| c != r.version) {
            return Ok(ArithOutcome::Exists);
        }
        let value = if op.strict {
            let Some(n) = strict_number(&r.value) else {
                return Ok(ArithOutcome::NonNumeric);
            };
            if op.incr {
                n.wrapping_add(op.delta)
            } else {
                n.saturating_sub(op.delta)
            }
        } else {
            let n = numeric_prefix(&r.value);
            if op.incr {
                n.saturating_add(op.delta)
            } else {
                n.saturating_sub(op.delta)
            }
        };
        let version = self.next_version(r.version);
        let text = value.to_string();
        let expire = op.expire.unwrap_or(r.expire);
        self.save(
            &mut stripe,
            key,
            encode_parts(r.flags, expire, version, &[text.as_bytes()]),
        )?;
        Ok(ArithOutcome::Value { value, version })
    }

    /// delete with memcached's cas: only a live record at version
    /// `compare` is deleted (`Exists` otherwise; `NotFound` without one).
    pub fn delete_if(
        &self,
        key: &[u8],
        compare: u64,
        version: u64,
        now: i64,
    ) -> Result<DeleteOutcome, StorageError> {
        self.delete_inner(key, 0, version, Some(compare), now)
    }

    /// delete (protocol.md §12): `hold_expire` absolute (0 = no hold),
    /// `version` explicit (0 = none).
    pub fn delete(
        &self,
        key: &[u8],
        hold_expire: i64,
        version: u64,
        now: i64,
    ) -> Result<DeleteOutcome, StorageError> {
        self.delete_inner(key, hold_expire, version, None, now)
    }

    fn delete_inner(
        &self,
        key: &[u8],
        hold_expire: i64,
        version: u64,
        compare: Option<u64>,
        now: i64,
    ) -> Result<DeleteOutcome, StorageError> {
        let _g = self.shared();
        let mut stripe = self.stripe(key);
        let cur = self.current(&mut stripe, key)?;
        if let Some(unique) = compare {
            match cur.alive(now) {
                None => return Ok(DeleteOutcome::NotFound),
                Some(r) if r.version != unique => return Ok(DeleteOutcome::Exists),
                Some(_) => {}
            }
        }
        if version > 0 && version < cur.version() {
            return Ok(DeleteOutcome::NotFound);
        }
        let tomb_expire = if hold_expire > 0 { hold_expire } else { now };
        let pin_version = if version > 0 { version } else { cur.version() };
        if let Some(pinned) = stripe.pinned.as_mut() {
            let v = pinned.entry(key.to_vec()).or_insert(0);
            *v = (*v).max(pin_version);
        }
        let Some(r) = cur.record else {
            if version > 0 {
                stripe.tombstones.insert(
                    key,
                    Tombstone {
                        expire: tomb_expire,
                        version,
                    },
                );
            }
            return Ok(DeleteOutcome::NotFound);
        };
        self.erase(&mut stripe, key)?;
        self.items.fetch_sub(1, Ordering::Relaxed);
        let tomb_version = if version > 0 { version } else { r.version };
        stripe.tombstones.insert(
            key,
            Tombstone {
                expire: tomb_expire,
                version: tomb_version,
            },
        );
        if r.is_expired(now) {
            Ok(DeleteOutcome::NotFound)
        } else {
            Ok(DeleteOutcome::Deleted {
                version: tomb_version,
            })
        }
    }

    /// flush_all: remove every record and forget every tombstone.
    /// A reconstruction starts: from now until [`Store::end_rebuild`] every
    /// delete is remembered (key and version) however many there are, so
    /// that [`Store::import`] never brings back a key deleted meanwhile. The
    /// memory this takes is one entry per key deleted during the copy.
    pub fn begin_rebuild(&self) {
        for s in &self.stripes {
            s.lock()
                .unwrap_or_else(|e| e.into_inner())
                .pinned
                .get_or_insert_with(HashMap::new);
        }
    }

    /// The reconstruction ended: forget the remembered deletes.
    pub fn end_rebuild(&self) {
        for s in &self.stripes {
            s.lock().unwrap_or_else(|e| e.into_inner()).pinned = None;
        }
    }

    pub fn truncate(&self) -> Result<(), StorageError> {
        let _g = self.global.write().unwrap_or_else(|e| e.into_inner());
        self.engine.clear()?;
        for s in &self.stripes {
            let mut stripe = s.lock().unwrap_or_else(|e| e.into_inner());
            stripe.tombstones.clear();
            stripe.cache.clear();
        }
        self.items.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Visit live records in key order over a snapshot (dump). Expired records
    /// are skipped and purged. `f` returns false to stop.
    pub fn scan_live(
        &self,
        now: i64,
        f: &mut dyn FnMut(&[u8], &Record) -> bool,
    ) -> Result<(), StorageError> {
        let mut expired: Vec<Vec<u8>> = Vec::new();
        self.engine.scan(b"", &mut |k, raw| {
            let Ok(r) = Record::decode(raw) else {
                return ScanStep::Continue;
            };
            if r.is_expired(now) {
                expired.push(k.to_vec());
                return ScanStep::Continue;
            }
            if f(k, &r) {
                ScanStep::Continue
            } else {
                ScanStep::Stop
            }
        })?;
        for k in expired {
            self.get(&k, now)?;
        }
        Ok(())
    }

    /// Visit every stored key (dump_key; expired-but-unpurged included).
    pub fn scan_keys(&self, f: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), StorageError> {
        self.engine.scan(b"", &mut |k, _| {
            if f(k) {
                ScanStep::Continue
            } else {
                ScanStep::Stop
            }
        })
    }

    /// Up to `limit` keys starting with `prefix`, ascending (keys; expiry not checked).
    pub fn keys_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        self.keys_page(prefix, None, limit)
    }

    /// Up to `limit` keys starting with `prefix` in ascending order, after
    /// the key `after` when given: one page of a `keys` reply, so a large
    /// limit is served page by page instead of collected whole.
    pub fn keys_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.engine.scan(after.unwrap_or(prefix), &mut |k, _| {
            if Some(k) == after {
                return ScanStep::Continue;
            }
            if !k.starts_with(prefix) {
                return ScanStep::Stop;
            }
            out.push(k.to_vec());
            if out.len() >= limit {
                ScanStep::Stop
            } else {
                ScanStep::Continue
            }
        })?;
        Ok(out)
    }

    /// Records stored, including expired ones not yet purged (`curr_items`).
    pub fn count(&self) -> u64 {
        self.items.load(Ordering::Relaxed).max(0) as u64
    }

    /// Reads the record cache answered and did not answer, so far.
    pub fn record_cache_stats(&self) -> (u64, u64) {
        self.stripes.iter().fold((0, 0), |(h, m), s| {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            (h + s.cache_hits, m + s.cache_misses)
        })
    }

    /// The engine's figures (sizes, block cache, stalls).
    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// Bytes used by the database (`bytes`).
    pub fn size_bytes(&self) -> u64 {
        self.engine.size_bytes()
    }

    /// Make all writes durable (graceful shutdown).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.engine.flush()
    }

    /// Header-only peek (used by tests and diagnostics).
    pub fn header(&self, key: &[u8]) -> Result<Option<Header>, StorageError> {
        match self.engine.get(key)? {
            None => Ok(None),
            Some(raw) => Header::decode(&raw).map(Some),
        }
    }
}

#[cfg(test)]
mod tests;
