//! The RocksDB engine in a temp dir.

use flare_storage::{
    RocksConfig, RocksEngine, StorageError, Store, StoreConfig, StoreMode, StoreOutcome,
    WriteRequest,
};

const NOW: i64 = 1_700_000_000;

fn req<'a>(key: &'a [u8], value: &'a [u8]) -> WriteRequest<'a> {
    WriteRequest {
        key,
        flags: 3,
        expire: 0,
        value,
        version: 0,
    }
}

#[test]
fn survives_reopen_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let e = RocksEngine::open(dir.path(), &RocksConfig::default()).expect("open");
        let s = Store::open(e, StoreConfig::default()).expect("store");
        for i in 0..100u32 {
            let k = format!("k{i}");
            assert!(matches!(
                s.store(StoreMode::Set, req(k.as_bytes(), b"v"), NOW),
                Ok(StoreOutcome::Stored { .. })
            ));
        }
        s.delete(b"k5", 0, 0, NOW).expect("delete");
        assert_eq!(s.count(), 99);
    }
    let e = RocksEngine::open(dir.path(), &RocksConfig::default()).expect("reopen");
    let s = Store::open(e, StoreConfig::default()).expect("store");
    assert_eq!(s.count(), 99);
    let r = s.get(b"k7", NOW).expect("get").expect("present");
    assert_eq!((r.flags, r.version, r.value.as_slice()), (3, 1, &b"v"[..]));
    assert!(s.get(b"k5", NOW).expect("get").is_none());
    s.truncate().expect("truncate");
    assert_eq!(s.count(), 0);
    assert!(s.get(b"k7", NOW).expect("get").is_none());
    assert!(s.keys_with_prefix(b"k", 10).expect("keys").is_empty());
}

#[test]
fn second_open_is_a_clear_lock_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = RocksEngine::open(dir.path(), &RocksConfig::default()).expect("open");
    match RocksEngine::open(dir.path(), &RocksConfig::default()) {
        Err(StorageError::Locked { .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("second open succeeded"),
    }
}

#[test]
fn legacy_database_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flare.hdb"), b"x").expect("write");
    match RocksEngine::open(dir.path(), &RocksConfig::default()) {
        Err(StorageError::LegacyDatabase { file, .. }) => assert_eq!(file, "flare.hdb"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened despite a legacy database"),
    }
}

#[test]
fn keys_at_namespace_edges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = RocksEngine::open(dir.path(), &RocksConfig::default()).expect("open");
    let s = Store::open(e, StoreConfig::default()).expect("store");
    for k in [&b"\x00"[..], b"\xff\xff", b"a"] {
        s.store(StoreMode::Set, req(k, b"1"), NOW).expect("set");
    }
    assert_eq!(s.keys_with_prefix(b"", 10).expect("keys").len(), 3);
    assert_eq!(
        s.keys_with_prefix(b"\xff", 10).expect("keys"),
        vec![b"\xff\xff".to_vec()]
    );
}
