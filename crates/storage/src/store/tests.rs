use std::sync::Arc;

use super::*;
use crate::memory::MemoryEngine;

fn store() -> Store<MemoryEngine> {
    Store::open(MemoryEngine::default(), StoreConfig::default()).expect("open")
}

fn w<'a>(key: &'a [u8], value: &'a [u8]) -> WriteRequest<'a> {
    WriteRequest {
        key,
        flags: 0,
        expire: 0,
        value,
        version: 0,
    }
}

const NOW: i64 = 1_700_000_000;

fn stored(v: u64) -> StoreOutcome {
    StoreOutcome::Stored { version: v }
}

#[test]
fn versions_increase_and_survive_delete() {
    let s = store();
    assert_eq!(
        s.store(StoreMode::Set, w(b"d", b"a"), NOW).ok(),
        Some(stored(1))
    );
    assert_eq!(
        s.store(StoreMode::Set, w(b"d", b"b"), NOW).ok(),
        Some(stored(2))
    );
    assert_eq!(
        s.delete(b"d", 0, 0, NOW).ok(),
        Some(DeleteOutcome::Deleted { version: 2 })
    );
    assert_eq!(
        s.store(StoreMode::Set, w(b"d", b"c"), NOW).ok(),
        Some(stored(3))
    );
    s.truncate().expect("truncate");
    assert_eq!(
        s.store(StoreMode::Set, w(b"d", b"c"), NOW).ok(),
        Some(stored(1))
    );
}

#[test]
fn explicit_versions() {
    let s = store();
    let mut req = w(b"v", b"a");
    req.version = 10;
    assert_eq!(s.store(StoreMode::Set, req, NOW).ok(), Some(stored(10)));
    assert_eq!(
        s.store(StoreMode::Set, req, NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    req.version = 9;
    assert_eq!(
        s.store(StoreMode::Set, req, NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    req.version = 11;
    assert_eq!(s.store(StoreMode::Set, req, NOW).ok(), Some(stored(11)));
    assert_eq!(
        s.store(StoreMode::Set, w(b"v", b"c"), NOW).ok(),
        Some(stored(12))
    );
    // delete with an older version is refused
    assert_eq!(
        s.delete(b"v", 0, 4, NOW).ok(),
        Some(DeleteOutcome::NotFound)
    );
    assert_eq!(
        s.delete(b"v", 0, 12, NOW).ok(),
        Some(DeleteOutcome::Deleted { version: 12 })
    );
}

#[test]
fn add_replace_append_prepend_cas() {
    let s = store();
    assert_eq!(
        s.store(StoreMode::Replace, w(b"k", b"x"), NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.store(StoreMode::Append, w(b"k", b"x"), NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.store(StoreMode::Add, w(b"k", b"bb"), NOW).ok(),
        Some(stored(1))
    );
    assert_eq!(
        s.store(StoreMode::Add, w(b"k", b"x"), NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    let mut a = w(b"k", b"cc");
    a.flags = 9;
    assert_eq!(s.store(StoreMode::Append, a, NOW).ok(), Some(stored(2)));
    assert_eq!(
        s.store(StoreMode::Prepend, w(b"k", b"aa"), NOW).ok(),
        Some(stored(3))
    );
    let r = s.get(b"k", NOW).ok().flatten().expect("present");
    assert_eq!(r.value, b"aabbcc");
    assert_eq!(r.flags, 0);
    assert_eq!(
        s.store(StoreMode::Cas(9), w(b"k", b"z"), NOW).ok(),
        Some(StoreOutcome::Exists)
    );
    assert_eq!(
        s.store(StoreMode::Cas(3), w(b"k", b"z"), NOW).ok(),
        Some(stored(4))
    );
    assert_eq!(
        s.store(StoreMode::Cas(1), w(b"nokey", b"z"), NOW).ok(),
        Some(StoreOutcome::NotFound)
    );
}

#[test]
fn delete_hold_blocks_add_and_replace() {
    let s = store();
    s.store(StoreMode::Set, w(b"h", b"1"), NOW).expect("set");
    assert!(matches!(
        s.delete(b"h", NOW + 100, 0, NOW),
        Ok(DeleteOutcome::Deleted { .. })
    ));
    assert_eq!(
        s.store(StoreMode::Add, w(b"h", b"2"), NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.store(StoreMode::Replace, w(b"h", b"2"), NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    // the hold ends
    assert!(matches!(
        s.store(StoreMode::Add, w(b"h", b"2"), NOW + 100),
        Ok(StoreOutcome::Stored { .. })
    ));
}

#[test]
fn expiry_is_lazy_and_purges() {
    let s = store();
    let mut e = w(b"e", b"a");
    e.expire = NOW + 1;
    s.store(StoreMode::Set, e, NOW).expect("set");
    assert_eq!(s.count(), 1);
    assert!(s.get(b"e", NOW).ok().flatten().is_some());
    assert!(s.get(b"e", NOW + 1).ok().flatten().is_none());
    assert_eq!(s.count(), 0);
    // a past absolute time is stored but invisible
    let mut old = w(b"old", b"a");
    old.expire = NOW - 10;
    assert!(matches!(
        s.store(StoreMode::Set, old, NOW),
        Ok(StoreOutcome::Stored { .. })
    ));
    assert!(s.get(b"old", NOW).ok().flatten().is_none());
    // delete of an expired record answers NOT_FOUND
    let mut x = w(b"x", b"a");
    x.expire = NOW + 1;
    s.store(StoreMode::Set, x, NOW).expect("set");
    assert_eq!(
        s.delete(b"x", 0, 0, NOW + 2).ok(),
        Some(DeleteOutcome::NotFound)
    );
}

#[test]
fn arithmetic() {
    let s = store();
    s.store(StoreMode::Set, w(b"n", b"10"), NOW).expect("set");
    assert_eq!(
        s.arith(b"n", 5, true, NOW).ok(),
        Some(ArithOutcome::Value {
            value: 15,
            version: 2
        })
    );
    assert_eq!(
        s.arith(b"n", 100, false, NOW).ok(),
        Some(ArithOutcome::Value {
            value: 0,
            version: 3
        })
    );
    assert_eq!(
        s.arith(b"none", 1, true, NOW).ok(),
        Some(ArithOutcome::NotFound)
    );
    s.store(StoreMode::Set, w(b"s", b"12abc"), NOW)
        .expect("set");
    assert!(matches!(
        s.arith(b"s", 1, true, NOW),
        Ok(ArithOutcome::Value { value: 13, .. })
    ));
    s.store(StoreMode::Set, w(b"m", b"18446744073709551615"), NOW)
        .expect("set");
    assert!(matches!(
        s.arith(b"m", 1, true, NOW),
        Ok(ArithOutcome::Value {
            value: u64::MAX,
            ..
        })
    ));
    s.store(StoreMode::Set, w(b"sp", b" 12"), NOW).expect("set");
    assert!(matches!(
        s.arith(b"sp", 1, true, NOW),
        Ok(ArithOutcome::Value { value: 1, .. })
    ));
}

#[test]
fn concurrent_incr_is_atomic() {
    let s = Arc::new(store());
    s.store(StoreMode::Set, w(b"c", b"0"), NOW).expect("set");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for _ in 0..500 {
                    s.arith(b"c", 1, true, NOW).expect("incr");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    assert_eq!(
        s.get(b"c", NOW).ok().flatten().map(|r| r.value),
        Some(b"4000".to_vec())
    );
}

#[test]
fn prefix_keys_and_scans() {
    let s = store();
    for k in ["apple", "apricot", "banana", "ap"] {
        s.store(StoreMode::Set, w(k.as_bytes(), b"1"), NOW)
            .expect("set");
    }
    let keys = s.keys_with_prefix(b"ap", 10).expect("keys");
    assert_eq!(
        keys,
        vec![b"ap".to_vec(), b"apple".to_vec(), b"apricot".to_vec()]
    );
    assert_eq!(s.keys_with_prefix(b"ap", 2).expect("keys").len(), 2);
    assert!(s.keys_with_prefix(b"zz", 5).expect("keys").is_empty());
    let mut seen = 0;
    s.scan_live(NOW, &mut |_, _| {
        seen += 1;
        true
    })
    .expect("scan");
    assert_eq!(seen, 4);
}

#[test]
fn dump_import_rule() {
    let s = store();
    let rec = |v: u64, val: &[u8]| Record {
        flags: 1,
        expire: 0,
        version: v,
        value: val.to_vec(),
    };
    assert_eq!(s.import(b"k", &rec(5, b"a")).ok(), Some(stored(5)));
    assert_eq!(
        s.import(b"k", &rec(5, b"b")).ok(),
        Some(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.import(b"k", &rec(4, b"b")).ok(),
        Some(StoreOutcome::NotStored)
    );
    // a versioned delete of an absent key blocks older dumped records
    assert_eq!(
        s.delete(b"gone", 0, 9, NOW).ok(),
        Some(DeleteOutcome::NotFound)
    );
    assert_eq!(
        s.import(b"gone", &rec(8, b"x")).ok(),
        Some(StoreOutcome::NotStored)
    );
    assert_eq!(s.import(b"gone", &rec(10, b"x")).ok(), Some(stored(10)));
    // an expired local record still counts
    let mut e = w(b"e", b"a");
    e.expire = NOW - 1;
    e.version = 7;
    s.store(StoreMode::Set, e, NOW).expect("set");
    assert_eq!(
        s.import(b"e", &rec(6, b"x")).ok(),
        Some(StoreOutcome::NotStored)
    );
}

#[test]
fn epochs_put_new_versions_above_every_older_one() {
    let s = store();
    let e1 = epoch_floor(1);
    s.enter_epoch(1);
    assert_eq!(
        s.store(StoreMode::Set, w(b"k", b"a"), NOW).ok(),
        Some(stored(e1 + 1))
    );
    // a small cas unique never matches by chance
    assert_eq!(
        s.store(StoreMode::Cas(1), w(b"k", b"x"), NOW).ok(),
        Some(StoreOutcome::Exists)
    );
    assert_eq!(
        s.store(StoreMode::Cas(e1 + 1), w(b"k", b"b"), NOW).ok(),
        Some(stored(e1 + 2))
    );
    // an explicit version from an older epoch is stored as given
    let old = WriteRequest {
        version: 7,
        ..w(b"o", b"x")
    };
    assert_eq!(s.store(StoreMode::Set, old, NOW).ok(), Some(stored(7)));
    // a later epoch: every key's next version is above the floor
    s.enter_epoch(5);
    assert_eq!(
        s.store(StoreMode::Set, w(b"k", b"c"), NOW).ok(),
        Some(stored(epoch_floor(5) + 1))
    );
    assert_eq!(
        s.arith(b"o", 1, true, NOW).ok(),
        Some(ArithOutcome::Value {
            value: 1,
            version: epoch_floor(5) + 1
        })
    );
    // the floor never goes down
    s.enter_epoch(2);
    assert_eq!(s.version_floor(), epoch_floor(5));
    assert_eq!(epoch_floor(u64::MAX), MAX_EPOCH << EPOCH_SHIFT);
}

#[test]
fn deletes_during_a_rebuild_win_over_the_copy_whatever_the_cache_size() {
    let s = Store::open(
        MemoryEngine::default(),
        StoreConfig {
            tombstone_capacity: 1,
            lock_slots: 1,
            ..StoreConfig::default()
        },
    )
    .expect("open");
    let rec = |v| Record {
        flags: 0,
        expire: 0,
        version: v,
        value: b"old".to_vec(),
    };
    s.begin_rebuild();
    // replicated deletes of keys the copy has not delivered yet
    for i in 0..100u64 {
        let key = format!("k{i}");
        assert_eq!(
            s.delete(key.as_bytes(), 0, 10 + i, NOW).ok(),
            Some(DeleteOutcome::NotFound)
        );
    }
    // the copy delivers them later, with older versions: none comes back
    for i in 0..100u64 {
        let key = format!("k{i}");
        assert_eq!(
            s.import(key.as_bytes(), &rec(5 + i)).ok(),
            Some(StoreOutcome::NotStored),
            "{key} came back"
        );
    }
    // a newer version than the delete is a later write: stored
    assert_eq!(
        s.import(b"k0", &rec(11)).ok(),
        Some(StoreOutcome::Stored { version: 11 })
    );
    s.end_rebuild();
    // without the pins the one-entry cache remembers only the last delete
    s.begin_rebuild();
    s.end_rebuild();
    assert_eq!(
        s.import(b"k1", &rec(6)).ok(),
        Some(StoreOutcome::Stored { version: 6 })
    );
}

/// A replicated touch applies only to the record at its version: a later
/// write keeps its own expire, a missing or older record asks for the whole
/// record; version 0 touches whatever is there.
#[test]
fn touch_at_a_version() {
    let s = store();
    let v1 = match s.store(StoreMode::Set, w(b"t", b"a"), NOW) {
        Ok(StoreOutcome::Stored { version }) => version,
        other => panic!("{other:?}"),
    };
    let v2 = match s.store(StoreMode::Set, w(b"t", b"b"), NOW) {
        Ok(StoreOutcome::Stored { version }) => version,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        s.touch_version(b"t", NOW + 100, v1, NOW).ok(),
        Some(TouchOutcome::Newer)
    );
    assert_eq!(s.get(b"t", NOW).ok().flatten().map(|r| r.expire), Some(0));
    assert_eq!(
        s.touch_version(b"t", NOW + 100, v2 + 1, NOW).ok(),
        Some(TouchOutcome::NotFound)
    );
    match s.touch_version(b"t", NOW + 100, v2, NOW) {
        Ok(TouchOutcome::Touched(r)) => assert_eq!((r.version, r.expire), (v2, NOW + 100)),
        other => panic!("{other:?}"),
    }
    match s.touch_version(b"t", NOW + 200, 0, NOW) {
        Ok(TouchOutcome::Touched(r)) => assert_eq!((r.version, r.expire), (v2, NOW + 200)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.touch_version(b"missing", NOW + 100, 0, NOW).ok(),
        Some(TouchOutcome::NotFound)
    );
}

/// Issue 11: `set k` → `delete k <hold>` → `set k` with an expiry in the
/// past → `add k` stores (as 1.3.4): a record written after the hold ends
/// it, even once it has expired. `replace` and `cas` see no live record.
#[test]
fn a_record_written_after_a_delete_hold_ends_the_hold() {
    let s = store();
    s.store(StoreMode::Set, w(b"k", b"1"), NOW).expect("set");
    s.delete(b"k", NOW + 10_000, 0, NOW).expect("delete");
    let expired = WriteRequest {
        expire: NOW - 1,
        ..w(b"k", b"2")
    };
    assert!(matches!(
        s.store(StoreMode::Set, expired, NOW),
        Ok(StoreOutcome::Stored { .. })
    ));
    assert_eq!(
        s.store(StoreMode::Replace, w(b"k", b"r"), NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.store(StoreMode::Cas(1), w(b"k", b"c"), NOW).ok(),
        Some(StoreOutcome::NotFound)
    );
    assert!(matches!(
        s.store(StoreMode::Add, w(b"k", b"3"), NOW),
        Ok(StoreOutcome::Stored { .. })
    ));
    // one that expires later: the same once it has passed
    s.delete(b"k", NOW + 10_000, 0, NOW).expect("delete");
    let short = WriteRequest {
        expire: NOW + 1,
        ..w(b"k", b"4")
    };
    s.store(StoreMode::Set, short, NOW).expect("set");
    assert_eq!(
        s.store(StoreMode::Add, w(b"k", b"5"), NOW).ok(),
        Some(StoreOutcome::NotStored)
    );
    assert!(matches!(
        s.store(StoreMode::Add, w(b"k", b"5"), NOW + 2),
        Ok(StoreOutcome::Stored { .. })
    ));
}

#[test]
fn store_if_compares_the_live_version_in_every_mode() {
    let s = store();
    assert_eq!(
        s.store_if(StoreMode::Set, w(b"c", b"a"), Some(1), NOW).ok(),
        Some(StoreOutcome::NotFound)
    );
    let v = match s.store(StoreMode::Set, w(b"c", b"a"), NOW) {
        Ok(StoreOutcome::Stored { version }) => version,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        s.store_if(StoreMode::Append, w(b"c", b"b"), Some(v + 1), NOW)
            .ok(),
        Some(StoreOutcome::Exists)
    );
    let v2 = match s.store_if(StoreMode::Append, w(b"c", b"b"), Some(v), NOW) {
        Ok(StoreOutcome::Stored { version }) => version,
        other => panic!("{other:?}"),
    };
    assert!(v2 > v);
    assert_eq!(
        s.get(b"c", NOW).ok().flatten().map(|r| r.value),
        Some(b"ab".to_vec())
    );
    assert_eq!(
        s.store_if(StoreMode::Add, w(b"c", b"x"), Some(v2), NOW)
            .ok(),
        Some(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.delete_if(b"c", v, 0, NOW).ok(),
        Some(DeleteOutcome::Exists)
    );
    assert!(matches!(
        s.delete_if(b"c", v2, 0, NOW),
        Ok(DeleteOutcome::Deleted { .. })
    ));
    assert_eq!(
        s.delete_if(b"c", v2, 0, NOW).ok(),
        Some(DeleteOutcome::NotFound)
    );
}

#[test]
fn arith_with_memcached_rules() {
    let s = store();
    let strict = |delta, incr| ArithOp {
        delta,
        incr,
        strict: true,
        ..Default::default()
    };
    // create with the initial value, delta not applied
    let create = ArithOp {
        create: Some((9, 3, NOW + 50)),
        ..strict(1, false)
    };
    assert!(matches!(
        s.arith_with(b"n", create, NOW),
        Ok(ArithOutcome::Value { value: 9, .. })
    ));
    let r = s.get(b"n", NOW).ok().flatten().expect("created");
    assert_eq!((r.flags, r.expire, &r.value[..]), (3, NOW + 50, &b"9"[..]));
    assert!(matches!(
        s.arith_with(b"n", create, NOW),
        Ok(ArithOutcome::Value { value: 8, .. })
    ));
    assert_eq!(
        s.arith_with(b"missing", strict(1, true), NOW).ok(),
        Some(ArithOutcome::NotFound)
    );
    // decr floors at 0, incr wraps
    assert!(matches!(
        s.arith_with(b"n", strict(100, false), NOW),
        Ok(ArithOutcome::Value { value: 0, .. })
    ));
    s.store(
        StoreMode::Set,
        w(b"big", u64::MAX.to_string().as_bytes()),
        NOW,
    )
    .expect("set");
    assert!(matches!(
        s.arith_with(b"big", strict(2, true), NOW),
        Ok(ArithOutcome::Value { value: 1, .. })
    ));
    // non-numeric values are refused; Flare's rules read them as 0
    s.store(StoreMode::Set, w(b"s", b"12abc"), NOW)
        .expect("set");
    assert_eq!(
        s.arith_with(b"s", strict(1, true), NOW).ok(),
        Some(ArithOutcome::NonNumeric)
    );
    assert!(matches!(
        s.arith_with(
            b"s",
            ArithOp {
                strict: false,
                ..strict(1, true)
            },
            NOW
        ),
        Ok(ArithOutcome::Value { value: 13, .. })
    ));
    // compare and new expire
    let v = s.get(b"s", NOW).ok().flatten().expect("s").version;
    assert_eq!(
        s.arith_with(
            b"s",
            ArithOp {
                compare: Some(v + 7),
                ..strict(1, true)
            },
            NOW
        )
        .ok(),
        Some(ArithOutcome::Exists)
    );
    let op = ArithOp {
        compare: Some(v),
        expire: Some(NOW + 9),
        ..strict(1, true)
    };
    assert!(matches!(
        s.arith_with(b"s", op, NOW),
        Ok(ArithOutcome::Value { value: 14, .. })
    ));
    assert_eq!(
        s.get(b"s", NOW).ok().flatten().map(|r| r.expire),
        Some(NOW + 9)
    );
}
