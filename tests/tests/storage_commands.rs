//! Storage commands (`set` family, `cas`, `delete`, `incr`/`decr`) against a
//! standalone flared: protocol.md §6, §7, §11, §12 and the test vectors of
//! §35.1 (TV-01 … TV-09), §35.3 (TV-21 … TV-23), §35.4 (TV-24 … TV-27) and
//! §35.5 (TV-28 … TV-31).

use flare_e2e::{version, Flared, STANDALONE_EPOCH};

/// The `n`-th version a key gets from writes without an explicit version on
/// a standalone node (epoch 1: 2^40 + n).
fn v(n: u64) -> u64 {
    version(STANDALONE_EPOCH, n)
}

/// TV-01, TV-02, TV-04, TV-05, TV-06, TV-07 replayed in order on one node
/// (TV-05 relies on `foo` from TV-01).
#[test]
fn tv01_to_tv07_basic_storage() {
    let f = Flared::start();
    let mut c = f.connect();
    // TV-01 set/get
    c.transcript(
        "
        > set foo 5 0 3
        > bar
        < STORED
        > get foo
        < VALUE foo 5 3
        < bar
        < END
        ",
    );
    // TV-02 gets shows the first version of the epoch (2^40 + 1) for a new
    // key, the next one after an overwrite
    c.transcript(&format!(
        "
        > set k 0 0 1
        > a
        < STORED
        > gets k
        < VALUE k 0 1 {}
        < a
        < END
        > set k 0 0 1
        > b
        < STORED
        > gets k
        < VALUE k 0 1 {}
        < b
        < END
        ",
        v(1),
        v(2)
    ));
    // TV-04 empty value
    c.transcript(
        "
        > set e 0 0 0
        >
        < STORED
        > get e
        < VALUE e 0 0
        <
        < END
        ",
    );
    // TV-05 add / replace
    c.transcript(
        "
        > add foo 0 0 1
        > x
        < NOT_STORED
        > add fresh 0 0 1
        > x
        < STORED
        > replace missing 0 0 1
        > x
        < NOT_STORED
        > replace fresh 7 0 1
        > y
        < STORED
        > get fresh
        < VALUE fresh 7 1
        < y
        < END
        ",
    );
    // TV-06 append/prepend keep flags; missing key
    c.transcript(&format!(
        "
        > set ap 3 0 2
        > bb
        < STORED
        > append ap 9 0 2
        > cc
        < STORED
        > prepend ap 9 0 2
        > aa
        < STORED
        > gets ap
        < VALUE ap 3 6 {}
        < aabbcc
        < END
        > append nokey 0 0 1
        > z
        < NOT_STORED
        ",
        v(3)
    ));
    // TV-07 noreply: nothing is sent for the set itself.
    c.send(b"set q 0 0 1 noreply\r\n1\r\n");
    c.expect_silence(200);
    c.transcript(
        "
        > get q
        < VALUE q 0 1
        < 1
        < END
        ",
    );
    // `add` did not overwrite foo, `replace missing` created nothing.
    c.transcript(
        "
        > get foo missing nokey
        < VALUE foo 5 3
        < bar
        < END
        ",
    );
    c.in_sync();
}

/// TV-07 with every storage command: noreply suppresses STORED and NOT_STORED.
#[test]
fn noreply_on_every_storage_command() {
    let f = Flared::start();
    let mut c = f.connect();
    c.send(
        b"set n 1 0 1 noreply\r\na\r\n\
          add n 0 0 1 noreply\r\nb\r\n\
          replace n 2 0 1 noreply\r\nc\r\n\
          append n 0 0 1 noreply\r\nd\r\n\
          prepend n 0 0 1 noreply\r\ne\r\n\
          replace none 0 0 1 noreply\r\nx\r\n\
          cas n 0 0 1 99 noreply\r\ny\r\n\
          cas none 0 0 1 1 noreply\r\ny\r\n",
    );
    c.expect_silence(300);
    // set=v(1), replace=v(2), append=v(3), prepend=v(4); add/cas failed
    // without a reply
    c.transcript(&format!(
        "
        > gets n none
        < VALUE n 2 3 {}
        < ecd
        < END
        ",
        v(4)
    ));
}

/// TV-08: the two bytes after a data block are not checked.
#[test]
fn tv08_trailer_not_checked() {
    let f = Flared::start();
    let mut c = f.connect();
    c.expect(
        b"set t 0 0 3\r\nabcXYget t\r\n",
        b"STORED\r\nVALUE t 0 3\r\nabc\r\nEND\r\n",
    );
    c.in_sync();
}

/// TV-08b: with bare LF line ends the trailer still costs two bytes.
#[test]
fn tv08b_bare_lf_costs_two_bytes() {
    let f = Flared::start();
    let mut c = f.connect();
    c.expect(
        b"set lf 0 0 2\nab\nget lf\n  get lf\r\n",
        b"STORED\r\nERROR\r\nVALUE lf 0 2\r\nab\r\nEND\r\n",
    );
    // bare LF request lines are fine on their own
    c.expect(b"get lf\n", b"VALUE lf 0 2\r\nab\r\nEND\r\n");
    c.in_sync();
}

/// TV-09: a data block longer than declared.
#[test]
fn tv09_data_block_longer_than_declared() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set t2 0 0 3
        > abcd
        < STORED
        < ERROR
        > get t2
        < VALUE t2 0 3
        < abc
        < END
        ",
    );
}

/// A data block that arrives later than its command line is waited for.
#[test]
fn data_block_sent_separately() {
    let f = Flared::start();
    let mut c = f.connect();
    c.send(b"set slow 0 0 5\r\n");
    c.expect_silence(200);
    c.send(b"he");
    c.expect_silence(100);
    c.expect(b"llo\r\n", b"STORED\r\n");
    c.transcript(
        "
        > get slow
        < VALUE slow 0 5
        < hello
        < END
        ",
    );
}

/// Binary-safe values: CR, LF, NUL and high bytes inside a data block.
#[test]
fn binary_safe_values() {
    let f = Flared::start();
    let mut c = f.connect();
    let value: Vec<u8> = (0u8..=255).chain(b"\r\nEND\r\n".iter().copied()).collect();
    c.set("bin", 4294967295, &value);
    assert_eq!(c.get("bin"), Some((4294967295, value.clone())));
    let mut expected = format!("VALUE bin 4294967295 {}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    c.expect(b"get bin\r\n", &expected);
}

/// TV-21 cas outcomes.
#[test]
fn tv21_cas_outcomes() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > set c 0 0 1
        > a
        < STORED
        > gets c
        < VALUE c 0 1 {v1}
        < a
        < END
        > cas c 0 0 1 9
        > b
        < EXISTS
        > cas c 0 0 1 {v1}
        > b
        < STORED
        > gets c
        < VALUE c 0 1 {v2}
        < b
        < END
        > cas nokey 0 0 1 1
        > b
        < NOT_FOUND
        ",
        v1 = v(1),
        v2 = v(2)
    ));
    // cas replaces flags and value; the stored version is unique + 1
    c.transcript(&format!(
        "
        > cas c 8 0 3 {v2}
        > xyz
        < STORED
        > gets c
        < VALUE c 8 3 {v3}
        < xyz
        < END
        ",
        v2 = v(2),
        v3 = v(3)
    ));
}

/// TV-22 explicit version ordering on set. The explicit versions are above
/// the standalone epoch floor (2^40), so that the last, version-less `set`
/// builds on the key's current version (`current + 1`) rather than on the floor.
#[test]
fn tv22_explicit_version_ordering() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > set v 0 0 1 {v10}
        > a
        < STORED
        > gets v
        < VALUE v 0 1 {v10}
        < a
        < END
        > set v 0 0 1 {v10}
        > b
        < NOT_STORED
        > set v 0 0 1 {v9}
        > b
        < NOT_STORED
        > set v 0 0 1 {v11}
        > b
        < STORED
        > set v 0 0 1
        > c
        < STORED
        > gets v
        < VALUE v 0 1 {v12}
        < c
        < END
        ",
        v9 = v(9),
        v10 = v(10),
        v11 = v(11),
        v12 = v(12)
    ));
}

/// TV-23 version survives delete via the tombstone.
#[test]
fn tv23_version_survives_delete() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > set d 0 0 1
        > a
        < STORED
        > set d 0 0 1
        > b
        < STORED
        > delete d
        < DELETED
        > set d 0 0 1
        > c
        < STORED
        > gets d
        < VALUE d 0 1 {}
        < c
        < END
        ",
        v(3)
    ));
}

/// TV-24 … TV-27 (delete) in order.
#[test]
fn tv24_to_tv27_delete() {
    let f = Flared::start();
    let mut c = f.connect();
    // TV-24 delete hit/miss
    c.transcript(
        "
        > set x 0 0 1
        > 1
        < STORED
        > delete x
        < DELETED
        > delete x
        < NOT_FOUND
        ",
    );
    c.send(b"delete x noreply\r\n");
    c.expect_silence(200);
    // TV-25 delete hold blocks add and replace (not set)
    c.transcript(
        "
        > set h 0 0 1
        > 1
        < STORED
        > delete h 100
        < DELETED
        > add h 0 0 1
        > 2
        < NOT_STORED
        > replace h 0 0 1
        > 2
        < NOT_STORED
        > set h 0 0 1
        > 3
        < STORED
        > get h
        < VALUE h 0 1
        < 3
        < END
        ",
    );
    // TV-26 delete with older version is refused
    c.transcript(
        "
        > set dv 0 0 1 5
        > a
        < STORED
        > delete dv 0 4
        < NOT_FOUND
        > get dv
        < VALUE dv 0 1
        < a
        < END
        > delete dv 0 5
        < DELETED
        > get dv
        < END
        ",
    );
    // TV-27 negative delete time
    c.transcript(
        "
        > delete x -1
        < ERROR
        ",
    );
    c.in_sync();
}

/// Issue 11: a record stored after a delete hold ends the hold, even once
/// it has expired (as 1.3.4): `add` then stores. `replace` and `cas` see no
/// live record.
#[test]
fn add_after_a_hold_and_an_expired_set() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set k 0 0 1
        > 1
        < STORED
        > delete k 10000
        < DELETED
        > set k 0 1000000000 1
        > 2
        < STORED
        > replace k 0 0 1
        > 3
        < NOT_STORED
        > cas k 0 0 1 1
        > 3
        < NOT_FOUND
        > add k 0 0 1
        > 4
        < STORED
        > get k
        < VALUE k 0 1
        < 4
        < END
        ",
    );
    // without the expired set in between, the hold still holds (TV-25)
    c.transcript(
        "
        > delete k 10000
        < DELETED
        > add k 0 0 1
        > 5
        < NOT_STORED
        ",
    );
}

/// TV-28 … TV-31 (incr/decr) in order.
#[test]
fn tv28_to_tv31_incr_decr() {
    let f = Flared::start();
    let mut c = f.connect();
    // TV-28 basics
    c.transcript(
        "
        > set n 0 0 2
        > 10
        < STORED
        > incr n 5
        < 15
        > decr n 100
        < 0
        > incr nokey 1
        < NOT_FOUND
        > decr nokey 1
        < NOT_FOUND
        > get nokey
        < END
        ",
    );
    // TV-29 non-numeric value counts as 0; shrinking length
    c.transcript(&format!(
        "
        > set s 0 0 5
        > 12abc
        < STORED
        > incr s 1
        < 13
        > get s
        < VALUE s 0 2
        < 13
        < END
        > set s2 0 0 3
        > abc
        < STORED
        > incr s2 7
        < 7
        > set big 3 0 3
        > 100
        < STORED
        > decr big 91
        < 9
        > gets big
        < VALUE big 3 1 {}
        < 9
        < END
        ",
        v(2)
    ));
    // TV-30 saturation at 2^64-1 and negative delta
    c.transcript(
        "
        > set m 0 0 20
        > 18446744073709551615
        < STORED
        > incr m 1
        < 18446744073709551615
        > set z 0 0 1
        > 5
        < STORED
        > decr z -1
        < 0
        > incr z -1
        < 18446744073709551615
        ",
    );
    // TV-31 syntax errors
    c.transcript(
        "
        > incr n
        < ERROR
        > incr n abc
        < ERROR
        > incr n 18446744073709551616
        < ERROR
        > incr n 1 2
        < ERROR
        > incr n 1-2
        < ERROR
        > decr n --1
        < ERROR
        ",
    );
    // noreply
    c.send(b"incr n 4 noreply\r\n");
    c.expect_silence(200);
    c.transcript(
        "
        > incr n 0
        < 4
        ",
    );
}

/// TV-63 is in admin.rs (flush_all); here: versions across append/prepend/incr.
#[test]
fn versions_of_derived_writes() {
    let f = Flared::start();
    let mut c = f.connect();
    c.set("w", 6, b"1");
    c.transcript(&format!(
        "
        > append w 0 0 1
        > 2
        < STORED
        > prepend w 0 0 1
        > 0
        < STORED
        > incr w 1
        < 13
        > decr w 3
        < 10
        > gets w
        < VALUE w 6 2 {}
        < 10
        < END
        ",
        v(5)
    ));
}

/// Explicit versions (§4.3) on add/replace/append and delete, and tombstones
/// created by a versioned delete of a missing key. The explicit versions are
/// above the standalone epoch floor (2^40), so that a later version-less write
/// builds on them (`current + 1`) rather than on the floor.
#[test]
fn explicit_versions_and_tombstones() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > add av 0 0 1 {v5}
        > a
        < STORED
        > gets av
        < VALUE av 0 1 {v5}
        < a
        < END
        > replace av 0 0 1 {v5}
        > b
        < NOT_STORED
        > replace av 0 0 1 {v8}
        > b
        < STORED
        > append av 0 0 1 {v8}
        > c
        < NOT_STORED
        > append av 0 0 1 {v9}
        > c
        < STORED
        > gets av
        < VALUE av 0 2 {v9}
        < bc
        < END
        > delete av 0 {v10}
        < DELETED
        > set av 0 0 1
        > d
        < STORED
        > gets av
        < VALUE av 0 1 {v11}
        < d
        < END
        ",
        v5 = v(5),
        v8 = v(8),
        v9 = v(9),
        v10 = v(10),
        v11 = v(11)
    ));
    // a versioned delete of a missing key records a tombstone with that version
    c.transcript(&format!(
        "
        > delete ghost 0 {v41}
        < NOT_FOUND
        > set ghost 0 0 1
        > g
        < STORED
        > gets ghost
        < VALUE ghost 0 1 {v42}
        < g
        < END
        > delete ghost 0 {v3}
        < NOT_FOUND
        > delete ghost 0 0
        < DELETED
        ",
        v3 = v(3),
        v41 = v(41),
        v42 = v(42)
    ));
    // delete with time 0 = no hold
    c.transcript(
        "
        > set nh 0 0 1
        > 1
        < STORED
        > delete nh 0
        < DELETED
        > add nh 0 0 1
        > 2
        < STORED
        ",
    );
}

/// A delete hold (§4.5) blocks add/replace/append/prepend/touch; `cas` is
/// compared with the tombstone's version.
#[test]
fn delete_hold_and_cas() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > set h 0 0 1
        > 1
        < STORED
        > set h 0 0 1
        > 2
        < STORED
        > delete h 1000
        < DELETED
        > append h 0 0 1
        > x
        < NOT_STORED
        > prepend h 0 0 1
        > x
        < NOT_STORED
        > replace h 0 0 1
        > x
        < NOT_STORED
        > touch h 0
        < NOT_FOUND
        > incr h 1
        < NOT_FOUND
        > get h
        < END
        > cas h 0 0 1 {v1}
        > x
        < EXISTS
        > cas h 0 0 1 {v2}
        > y
        < STORED
        > gets h
        < VALUE h 0 1 {v3}
        < y
        < END
        ",
        v1 = v(1),
        v2 = v(2),
        v3 = v(3)
    ));
}

/// incr/decr keep flags and expiry; value parsing of §11.2.
#[test]
fn incr_value_rules() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set sp 9 0 3
        >  12
        < STORED
        > incr sp 5
        < 5
        > set neg 0 0 2
        > -5
        < STORED
        > incr neg 1
        < 1
        > set empty 0 0 0
        >
        < STORED
        > incr empty 3
        < 3
        > set huge 0 0 21
        > 184467440737095516150
        < STORED
        > incr huge 1
        < 1
        > set pad 0 0 4
        > 0042
        < STORED
        > decr pad 2
        < 40
        > get sp pad
        < VALUE sp 9 1
        < 5
        < VALUE pad 0 2
        < 40
        < END
        ",
    );
    // incr keeps the expiry (dump shows it)
    c.expect(b"set exp 0 4102444800 1\r\n1\r\n", b"STORED\r\n");
    c.expect(b"incr exp 1\r\n", b"2\r\n");
    c.expect(
        b"dump_key\r\n",
        b"KEY empty\r\nKEY exp\r\nKEY huge\r\nKEY neg\r\nKEY pad\r\nKEY sp\r\nEND\r\n",
    );
    let recs = c.dump("dump\r\n");
    let exp = recs.iter().find(|r| r.key == "exp").unwrap();
    assert_eq!(
        (exp.expire, exp.version, &exp.value[..]),
        (4102444800, v(2), &b"2"[..])
    );
}

/// A small cas unique never matches by chance (memcached behaviour,
/// docs/replication.md §1.1): right after the first `set` of a key its unique
/// is 2^40 + 1, so `cas k 0 0 1 1` answers `EXISTS` and changes nothing; the
/// unique `gets` shows does match. Likewise a small explicit version is older
/// than any version a standalone node issued (`NOT_STORED`).
#[test]
fn small_cas_unique_does_not_match_a_new_key() {
    assert_eq!(v(1), 1099511627777);
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set k 0 0 1
        > a
        < STORED
        > cas k 0 0 1 1
        > b
        < EXISTS
        > set k 0 0 1 5
        > b
        < NOT_STORED
        > gets k
        < VALUE k 0 1 1099511627777
        < a
        < END
        > cas k 0 0 1 1099511627777
        > c
        < STORED
        > gets k
        < VALUE k 0 1 1099511627778
        < c
        < END
        ",
    );
}
