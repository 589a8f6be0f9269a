//! Retrieval and expiry: `get`, `gets`, `touch`, `gat`, exptime conversion
//! (protocol.md §4.2, §8 … §10; TV-03, TV-32 … TV-35, TV-66).

use std::time::Duration;

use flare_e2e::{version, DumpRecord, Flared, STANDALONE_EPOCH};

/// The `n`-th version a key gets from writes without an explicit version on
/// a standalone node (epoch 1: 2^40 + n).
fn v(n: u64) -> u64 {
    version(STANDALONE_EPOCH, n)
}

/// TV-03 multi-get: order kept, misses omitted, duplicates repeated.
#[test]
fn tv03_multi_get() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > set a 0 0 1
        > 1
        < STORED
        > set b 0 0 1
        > 2
        < STORED
        > get b nope a b
        < VALUE b 0 1
        < 2
        < VALUE a 0 1
        < 1
        < VALUE b 0 1
        < 2
        < END
        > gets a   b
        < VALUE a 0 1 {v1}
        < 1
        < VALUE b 0 1 {v1}
        < 2
        < END
        > get nope
        < END
        ",
        v1 = v(1)
    ));
}

/// Many keys in one `get` (no limit on their number), misses interleaved.
#[test]
fn get_with_many_keys() {
    let f = Flared::start();
    let mut c = f.connect();
    let mut pipeline = Vec::new();
    for i in 0..500 {
        pipeline.extend_from_slice(
            format!("set mk{i} {i} 0 {}\r\nv{i}\r\n", format!("v{i}").len()).as_bytes(),
        );
    }
    c.expect(&pipeline, "STORED\r\n".repeat(500).as_bytes());
    let mut req = String::from("get");
    let mut expected = String::new();
    for i in 0..1000 {
        req.push_str(&format!(" mk{i}"));
        if i < 500 {
            expected.push_str(&format!(
                "VALUE mk{i} {i} {}\r\nv{i}\r\n",
                format!("v{i}").len()
            ));
        }
    }
    req.push_str("\r\n");
    expected.push_str("END\r\n");
    c.expect(req.as_bytes(), expected.as_bytes());
}

/// Keys may contain any byte but space, LF and NUL (CR and TAB included).
#[test]
fn unusual_key_bytes() {
    let f = Flared::start();
    let mut c = f.connect();
    c.expect(b"set k\tx\x01\xff 0 0 1\r\n1\r\n", b"STORED\r\n");
    c.expect(
        b"get k\tx\x01\xff\r\n",
        b"VALUE k\tx\x01\xff 0 1\r\n1\r\nEND\r\n",
    );
    // a CR inside the line is part of the key
    c.expect(b"set a\rb 0 0 1\r\n2\r\n", b"STORED\r\n");
    c.expect(b"get a\rb a\r\n", b"VALUE a\rb 0 1\r\n2\r\nEND\r\n");
}

/// TV-32 touch.
#[test]
fn tv32_touch() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set tt 0 0 1
        > a
        < STORED
        > touch tt 100
        < TOUCHED
        > touch nokey 100
        < NOT_FOUND
        > touch tt
        < ERROR
        > touch tt 100 sync
        < ERROR
        > touch tt 100 async
        < ERROR
        > touch tt -1
        < ERROR
        ",
    );
    // an optional version is accepted and ignored; touch keeps the version
    c.transcript(&format!(
        "
        > touch tt 0 77
        < TOUCHED
        > gets tt
        < VALUE tt 0 1 {}
        < a
        < END
        ",
        v(1)
    ));
    c.send(b"touch tt 100 noreply\r\ntouch nokey 100 noreply\r\n");
    c.expect_silence(200);
    c.in_sync();
}

/// TV-33 gat: key first, reply without END.
#[test]
fn tv33_gat() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > set g 4 0 2
        > hi
        < STORED
        > gat g 100
        < VALUE g 4 2
        < hi
        > gat nokey 100
        < NOT_FOUND
        > gat g
        < ERROR
        > gat g 100 sync
        < ERROR
        > gats 100 g
        < ERROR
        > gets g
        < VALUE g 4 2 {}
        < hi
        < END
        ",
        v(1)
    ));
    c.send(b"gat g 0 noreply\r\ngat nokey 0 noreply\r\n");
    c.expect_silence(200);
    c.in_sync();
}

/// TV-34 absolute time in the past = immediately expired (and gone for add).
#[test]
fn tv34_absolute_time_in_the_past() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set old 0 2592001 1
        > a
        < STORED
        > get old
        < END
        > add old 0 0 1
        > b
        < STORED
        > get old
        < VALUE old 0 1
        < b
        < END
        ",
    );
    // an absolute time in the future is kept (year 2100); `add old` built on
    // the version of the expired record (v(1))
    c.transcript(&format!(
        "
        > set future 0 4102444800 1
        > f
        < STORED
        > dump
        < VALUE future 0 1 {} 4102444800
        < f
        < VALUE old 0 1 {} 0
        < b
        < END
        ",
        v(1),
        v(2)
    ));
}

/// TV-35 (relative expiry) and TV-66 (deleting an expired record) with one
/// sleep: records with exptime 1 are gone 2.1 s later, for every command.
#[test]
fn tv35_tv66_relative_expiry() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set r 0 1 1
        > a
        < STORED
        > set ex 0 1 1
        > a
        < STORED
        > set tch 0 1 1
        > a
        < STORED
        > set inc 0 1 1
        > 5
        < STORED
        > set kept 0 1 1
        > k
        < STORED
        > touch kept 0
        < TOUCHED
        > set long 0 100 1
        > l
        < STORED
        > set hold 0 0 1
        > h
        < STORED
        > delete hold 1
        < DELETED
        > add hold 0 0 1
        > 2
        < NOT_STORED
        > set dk 0 1 1
        > d
        < STORED
        > get r
        < VALUE r 0 1
        < a
        < END
        ",
    );
    let long_expire = c
        .dump("dump\r\n")
        .into_iter()
        .find(|r| r.key == "long")
        .expect("long")
        .expire;
    std::thread::sleep(Duration::from_millis(2100));
    c.transcript(&format!(
        "
        > get r
        < END
        > delete ex
        < NOT_FOUND
        > touch tch 100
        < NOT_FOUND
        > incr inc 1
        < NOT_FOUND
        > gat r 100
        < NOT_FOUND
        > get kept long
        < VALUE kept 0 1
        < k
        < VALUE long 0 1
        < l
        < END
        > add r 0 0 1
        > n
        < STORED
        > gets r
        < VALUE r 0 1 {}
        < n
        < END
        ",
        v(2)
    ));
    // the delete hold of 1 s is over
    c.transcript(
        "
        > add hold 0 0 1
        > 3
        < STORED
        ",
    );
    // dump_key lists records that are expired but not purged yet (§15: `dk`
    // was never read); dump skips (and purges) them (§14.2)
    let mut keys = c.key_lines("dump_key\r\n");
    keys.sort();
    assert_eq!(keys, ["dk", "hold", "kept", "long", "r"]);
    let rec = |key: &str, version: u64, expire: i64, value: &[u8]| DumpRecord {
        key: key.to_string(),
        flags: 0,
        version,
        expire,
        value: value.to_vec(),
    };
    let mut dumped = c.dump("dump\r\n");
    dumped.sort();
    assert_eq!(
        dumped,
        [
            rec("hold", v(2), 0, b"3"),
            rec("kept", v(1), 0, b"k"),
            rec("long", v(1), long_expire, b"l"),
            rec("r", v(2), 0, b"n"),
        ]
    );
    let mut keys = c.key_lines("dump_key\r\n");
    keys.sort();
    assert_eq!(
        keys,
        ["hold", "kept", "long", "r"],
        "dump did not purge the expired record"
    );
}

/// Counters of §8 / §9: `cmd_get` per key, hits and misses, touch counters.
#[test]
fn retrieval_counters() {
    let f = Flared::start();
    let mut c = f.connect();
    c.set("h", 0, b"1");
    c.transcript(
        "
        > get h x h
        < VALUE h 0 1
        < 1
        < VALUE h 0 1
        < 1
        < END
        > gets y
        < END
        > touch h 10
        < TOUCHED
        > touch y 10
        < NOT_FOUND
        ",
    );
    let s = c.stats("");
    let v = |n: &str| {
        s.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(v("cmd_get"), "4");
    assert_eq!(v("get_hits"), "2");
    assert_eq!(v("get_misses"), "2");
    assert_eq!(v("touch_hits"), "1");
    assert_eq!(v("touch_misses"), "1");
    // set + 2 touches
    assert_eq!(v("cmd_set"), "3");
}

/// Commands that read a record purge it when it is expired (§4.2): afterwards
/// `dump_key` (which lists expired-but-unpurged records, §15) no longer shows
/// it. Absolute exptimes in the past make records expired without a sleep.
#[test]
fn reads_purge_expired_records() {
    let f = Flared::start();
    let mut c = f.connect();
    for k in ["g", "gs", "ga", "t", "i", "d", "ctl"] {
        c.expect(
            format!("set {k} 0 2592001 1\r\n1\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    c.set("live", 0, b"1");
    assert_eq!(c.stat("curr_items"), "8");
    c.transcript(
        "
        > get g
        < END
        > gets gs
        < END
        > gat ga 0
        < NOT_FOUND
        > touch t 0
        < NOT_FOUND
        > incr i 1
        < NOT_FOUND
        > decr d 1
        < NOT_FOUND
        > dump_key
        < KEY ctl
        < KEY live
        < END
        ",
    );
    assert_eq!(c.stat("curr_items"), "2");
    // dump skips and purges
    c.transcript(&format!(
        "
        > dump
        < VALUE live 0 1 {} 0
        < 1
        < END
        > dump_key
        < KEY live
        < END
        ",
        v(1)
    ));
    assert_eq!(c.stat("curr_items"), "1");
}

/// `append` / `prepend` on an expired record answer NOT_STORED and purge it
/// (§4.2 lists them among the purging reads).
#[test]
fn append_prepend_purge_expired_records() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set ap 0 2592001 1
        > 1
        < STORED
        > set pp 0 2592001 1
        > 1
        < STORED
        > append ap 0 0 1
        > 2
        < NOT_STORED
        > prepend pp 0 0 1
        > 2
        < NOT_STORED
        > dump_key
        < END
        ",
    );
}
