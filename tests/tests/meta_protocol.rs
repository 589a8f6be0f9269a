//! memcached 1.6's meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`;
//! memcached's protocol.txt, "Meta Commands"), which flared serves besides
//! Flare 1.3.4's text protocol: on a standalone node (every command, flag
//! and error line, mixed with text commands on one connection), through a
//! proxy in a two-partition cluster (routed to the key's master, checked by
//! dumping that master), and replicated from a master to its slave. The `c`
//! token is the record's version (the 5th field of `gets`).

use std::time::{SystemTime, UNIX_EPOCH};

use flare_e2e::{
    dump_keys, dump_sorted, version, wait_until, Cluster, Conn, DumpRecord, Flared, EPOCH_SHIFT,
    P0, P1, STANDALONE_EPOCH, WAIT,
};

/// The `n`-th version a key gets from writes without an explicit version on
/// a standalone node (epoch 1: 2^40 + n).
fn v(n: u64) -> u64 {
    version(STANDALONE_EPOCH, n)
}

/// Standard base64 (with padding), as meta commands take keys with `b`.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Unix time now, in seconds.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Send `req` and return the one reply line (with CRLF).
fn line(c: &mut Conn, req: &[u8]) -> String {
    c.send(req);
    c.read_line()
}

/// The number after the `flag` character among a reply line's tokens
/// (e.g. `c` in `HD c1099511627777 kfoo`).
#[track_caller]
fn token(reply: &str, flag: char) -> u64 {
    reply
        .split_whitespace()
        .skip(1)
        .find_map(|t| t.strip_prefix(flag).and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no {flag}<number> in {reply:?}"))
}

/// The TTL after `prefix` (`t`, `exp=`) among a reply line's tokens.
#[track_caller]
fn ttl(reply: &str, prefix: &str) -> i64 {
    reply
        .split_whitespace()
        .skip(1)
        .find_map(|t| t.strip_prefix(prefix).and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no {prefix}<ttl> in {reply:?}"))
}

/// The reply shows a TTL left of `set` seconds, or one less: the clock may
/// have passed a second since the TTL was set.
#[track_caller]
fn assert_ttl(reply: &str, prefix: &str, set: i64) {
    let left = ttl(reply, prefix);
    assert!(
        (set - 1..=set).contains(&left),
        "TTL {set} set, {reply:?} answered"
    );
}

/// The record of `key` in a dump, if any.
fn record<'a>(dump: &'a [DumpRecord], key: &str) -> Option<&'a DumpRecord> {
    dump.iter().find(|r| r.key == key)
}

/// The record of `key` in the dump of the node on `port` (which must hold it).
#[track_caller]
fn dumped(port: u16, key: &str) -> DumpRecord {
    let dump = dump_sorted(port);
    record(&dump, key)
        .cloned()
        .unwrap_or_else(|| panic!("{key} not in the dump of port {port}: {dump:?}"))
}

#[test]
fn standalone_get_set_delete() {
    let f = Flared::start();
    let mut c = f.connect();
    // set with a TTL of 0 (none) and client flags; mg returns the flags in
    // request order; the cas is the record's version
    c.transcript(&format!(
        "
        > mn
        < MN
        > ms mk 3 T0 F5 c
        > abc
        < HD c{v1}
        > mg mk v f c s t k O123
        < VA 3 f5 c{v1} s3 t-1 kmk O123
        < abc
        > mg mk
        < HD
        > mg mk k v
        < VA 3 kmk
        < abc
        > mg mk s t h l f
        < HD s3 t-1 h0 l0 f5
        > mg nokey v
        < EN
        > mg nokey v f c k s O7
        < EN
        > me mk
        < ME mk exp=-1 la=0 cas={v1} fetch=no cls=1 size=5
        > me nokey
        < EN
        > gets mk
        < VALUE mk 5 3 {v1}
        < abc
        < END
        ",
        v1 = v(1)
    ));
    // overwrite: the next version, flags back to 0 without F; the
    // proxy hints P and L and the LRU flag u are ignored
    c.transcript(&format!(
        "
        > ms mk 2 c k Pproxy Lpath
        > de
        < HD c{v2} kmk
        > mg mk v c f u Lpath
        < VA 2 c{v2} f0
        < de
        ",
        v2 = v(2)
    ));
    // delete: HD, then NF; the data is gone for text commands too
    c.transcript(
        "
        > md mk k O1
        < HD kmk O1
        > md mk
        < NF
        > mg mk v
        < EN
        > get mk
        < END
        > me mk
        < EN
        ",
    );
    c.in_sync();
}

#[test]
fn standalone_cas_and_explicit_versions() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > ms ck 1 c
        > a
        < HD c{v1}
        > ms ck 1 C{wrong} c
        > b
        < EX
        > ms nock 1 C{v1}
        > b
        < NF
        > ms ck 1 C{v1} c
        > b
        < HD c{v2}
        > ms ck 1 C{v1} c
        > c
        < EX
        > mg ck v c
        < VA 1 c{v2}
        < b
        > md ck C{v1}
        < EX
        > md nock C{v1}
        < NF
        > ma ck C{v1}
        < EX
        > md ck C{v2} k
        < HD kck
        > mg ck v
        < EN
        ",
        v1 = v(1),
        v2 = v(2),
        wrong = v(1) + 1000
    ));
    // the cas of ms equals the 5th field of text gets, and a text `cas`
    // takes it as well
    let reply = line(&mut c, b"ms ck2 2 F9 c\r\nxy\r\n");
    let cas = token(&reply, 'c');
    assert_eq!(reply, format!("HD c{cas}\r\n"));
    assert_eq!(c.gets("ck2"), Some((9, b"xy".to_vec(), cas)));
    c.expect(
        format!("cas ck2 0 0 2 {cas}\r\nzw\r\n").as_bytes(),
        b"STORED\r\n",
    );
    let (_, _, after_cas) = c.gets("ck2").expect("ck2 after cas");
    assert!(after_cas > cas, "text cas bumps the version");
    c.transcript(&format!(
        "
        > mg ck2 v c f
        < VA 2 c{after_cas} f0
        < zw
        > ms ck2 1 C{cas}
        > q
        < EX
        "
    ));

    // E: an explicit version; text gets shows it, a later write goes on from
    // it, an older explicit version is not stored
    let explicit = v(1) + 1_000_000;
    c.transcript(&format!(
        "
        > ms ev 1 E{explicit} c
        > a
        < HD c{explicit}
        > gets ev
        < VALUE ev 0 1 {explicit}
        < a
        < END
        > ms ev 1 c
        > b
        < HD c{next}
        > ms ev 1 E{older} c
        > c
        < NS
        > mg ev v c
        < VA 1 c{next}
        < b
        > me ev
        < ME ev exp=-1 la=0 cas={next} fetch=no cls=1 size=3
        ",
        next = explicit + 1,
        older = explicit - 5
    ));
    c.in_sync();
}

#[test]
fn standalone_modes_arith_and_touch() {
    let f = Flared::start();
    let mut c = f.connect();
    // ms modes: E add, R replace, A append, P prepend, S set
    c.transcript(
        "
        > ms m 1 ME
        > a
        < HD
        > ms m 1 ME
        > b
        < NS
        > ms nom 1 MR
        > b
        < NS
        > ms m 1 MR F3
        > b
        < HD
        > ms m 2 MA
        > cd
        < HD
        > ms m 2 MP
        > zz
        < HD
        > ms nom 1 MA
        > x
        < NS
        > ms nom 1 Mp
        > x
        < NS
        > mg m v f s
        < VA 5 f3 s5
        < zzbcd
        > ms m 1 MS
        > s
        < HD
        > get m nom
        < VALUE m 0 1
        < s
        < END
        ",
    );
    // ma: NF on a miss, N creates with J, D the delta, MD/M- decrement
    // (never below 0), MI/M+ increment
    c.transcript(&format!(
        "
        > ma cnt
        < NF
        > ma cnt v
        < NF
        > ma cnt N0 J10 v
        < VA 2
        < 10
        > ma cnt D5 v c t
        < VA 2 c{v2} t-1
        < 15
        > ma cnt
        < HD
        > ma cnt MD D100 v
        < VA 1
        < 0
        > ma cnt M- v
        < VA 1
        < 0
        > ma cnt M+ D7 v
        < VA 1
        < 7
        > ma cnt MI k O4 v
        < VA 1 kcnt O4
        < 8
        > incr cnt 2
        < 10
        > ma cnt Md D3 c
        < HD c{v9}
        > get cnt
        < VALUE cnt 0 1
        < 7
        < END
        > ms m 1
        > x
        < HD
        > ma m v
        < CLIENT_ERROR cannot increment or decrement non-numeric value
        ",
        v2 = v(2),
        v9 = v(9)
    ));
    // ma with T sets the TTL; ma N on a miss gives that TTL
    c.transcript(
        "
        > ma cnt T100 t v
        < VA 1 t100
        < 8
        > ma fresh N50 J1 t v
        < VA 1 t50
        < 1
        ",
    );
    // touch with mg T (the version stays), then t shows the TTL left (a
    // second may have passed since); T0 makes it permanent again; a T on a
    // miss is a miss
    c.transcript(&format!(
        "
        > ms tk 2 T0 c
        > tv
        < HD c{v1}
        > mg tk T300 t c v
        < VA 2 t300 c{v1}
        < tv
        ",
        v1 = v(1)
    ));
    let reply = line(&mut c, b"mg tk t\r\n");
    assert_ttl(&reply, "t", 300);
    assert_eq!(reply, format!("HD t{}\r\n", ttl(&reply, "t")));
    let reply = line(&mut c, b"me tk\r\n");
    assert_ttl(&reply, "exp=", 300);
    assert_eq!(
        reply,
        format!(
            "ME tk exp={} la=0 cas={} fetch=no cls=1 size=4\r\n",
            ttl(&reply, "exp="),
            v(1)
        )
    );
    c.transcript(&format!(
        "
        > mg tk T0 t
        < HD t-1
        > mg tk t
        < HD t-1
        > mg notk T30 v
        < EN
        > ms ttl 1 T200 c
        > x
        < HD c{v1}
        ",
        v1 = v(1)
    ));
    let reply = line(&mut c, b"mg ttl t s\r\n");
    assert_ttl(&reply, "t", 200);
    assert_eq!(reply, format!("HD t{} s1\r\n", ttl(&reply, "t")));
    c.transcript(
        "
        > touch ttl 0
        < TOUCHED
        > mg ttl t
        < HD t-1
        ",
    );
    // N on an mg miss creates an empty item and answers W
    c.transcript(&format!(
        "
        > mg viv N30 v c t s
        < VA 0 c{v1} t30 s0 W
        <
        ",
        v1 = v(1)
    ));
    let reply = line(&mut c, b"me viv\r\n");
    assert_ttl(&reply, "exp=", 30);
    c.transcript(
        "
        > get viv
        < VALUE viv 0 0
        <
        < END
        ",
    );
    c.in_sync();
}

#[test]
fn standalone_quiet_pipeline_and_opaque() {
    let f = Flared::start();
    let mut c = f.connect();
    c.set("h1", 0, b"one");
    c.set("h2", 4, b"two");
    // five quiet gets, misses and hits, in one write: only the hits, then MN
    let mut req = Vec::new();
    for (k, o) in [("m1", 1), ("h1", 2), ("m2", 3), ("h2", 4), ("m3", 5)] {
        req.extend_from_slice(format!("mg {k} v k f q O{o}\r\n").as_bytes());
    }
    req.extend_from_slice(b"mn\r\n");
    c.expect(
        &req,
        b"VA 3 kh1 f0 O2\r\none\r\nVA 3 kh2 f4 O4\r\ntwo\r\nMN\r\n",
    );
    // quiet writes: ms hides HD but not NS; md hides HD and NF but not EX;
    // ma hides HD and NF; errors always come
    c.transcript(&format!(
        "
        > ms q1 1 q
        > a
        > ms q1 1 q ME O9
        > b
        > md nothere q
        > md q1 q C{wrong}
        > ms q2 1 q
        > 5
        > ma q2 q
        > ma nothere q
        > ma q1 q
        > md q2 q
        > mg q2 v q
        > mn
        < NS O9
        < EX
        < CLIENT_ERROR cannot increment or decrement non-numeric value
        < MN
        > get q1 q2
        < VALUE q1 0 1
        < a
        < END
        ",
        wrong = v(1) + 77
    ));
    // opaque tokens match pipelined replies to requests, up to 32 bytes
    let long = "o".repeat(32);
    c.transcript(&format!(
        "
        > mg h1 O1 s
        > mg h2 O2 s
        > ms h3 1 O3
        > x
        > md h3 O4
        > mg h1 O{long}
        < HD O1 s3
        < HD O2 s3
        < HD O3
        < HD O4
        < HD O{long}
        > mg h1 O{long}x
        < CLIENT_ERROR opaque token too long
        "
    ));
    c.in_sync();
}

#[test]
fn standalone_base64_keys() {
    let f = Flared::start();
    let mut c = f.connect();
    // a base64 key is the decoded key for the text commands
    assert_eq!(b64(b"mkey"), "bWtleQ==");
    c.transcript(&format!(
        "
        > ms bWtleQ== 2 b k c
        > hi
        < HD b kbWtleQ== c{v1}
        > get mkey
        < VALUE mkey 0 2
        < hi
        < END
        > mg bWtleQ== b v k s
        < VA 2 b kbWtleQ== s2
        < hi
        > mg bWtleQ== b v
        < VA 2
        < hi
        > me bWtleQ== b
        < ME bWtleQ== exp=-1 la=0 cas={v1} fetch=no cls=1 size=6
        > set mkey 0 0 3
        > abc
        < STORED
        > mg bWtleQ== b k c v
        < VA 3 b kbWtleQ== c{v2}
        < abc
        > ma {cnt} b N0 J3 v k
        < VA 1 b k{cnt}
        < 3
        > get count
        < VALUE count 0 1
        < 3
        < END
        > md bWtleQ== b k q
        > mg bWtleQ== b v q
        > mn
        < MN
        > get mkey
        < END
        ",
        v1 = v(1),
        v2 = v(2),
        cnt = b64(b"count")
    ));
    // a key that is not UTF-8
    let raw: &[u8] = &[0xff, 0xfe, b'k', 0x80];
    let enc = b64(raw);
    c.transcript(&format!(
        "
        > ms {enc} 1 b c F1
        > x
        < HD c{v1}
        > mg {enc} b k v s f
        < VA 1 b k{enc} s1 f1
        < x
        > me {enc} b
        < ME {enc} exp=-1 la=0 cas={v1} fetch=no cls=1 size=5
        ",
        v1 = v(1)
    ));
    // the text protocol sees the raw bytes
    let mut get = b"get ".to_vec();
    get.extend_from_slice(raw);
    get.extend_from_slice(b"\r\n");
    c.send(&get);
    let mut want = b"VALUE ".to_vec();
    want.extend_from_slice(raw);
    want.extend_from_slice(b" 1 1\r\nx\r\nEND\r\n");
    assert_eq!(c.read_exact(want.len()), want, "text get of a binary key");
    let dump = c.dump("dump\r\n");
    let rec = dump
        .iter()
        .find(|r| r.key == String::from_utf8_lossy(raw))
        .expect("the binary key in the dump");
    assert_eq!((rec.version, rec.value.as_slice()), (v(1), &b"x"[..]));
    c.transcript(&format!(
        "
        > md {enc} b
        < HD
        > mg {enc} b v
        < EN
        "
    ));
    // keys the text protocol cannot carry are refused, data block skipped
    assert_eq!(b64(b"a b"), "YSBi");
    c.transcript(
        "
        > ms YSBi 1 b
        > x
        < CLIENT_ERROR bad command line format
        > mg !!notbase64 b v
        < CLIENT_ERROR bad command line format
        > mg AA== b v
        < CLIENT_ERROR bad command line format
        ",
    );
    c.in_sync();
}

#[test]
fn standalone_error_lines() {
    let f = Flared::start();
    let mut c = f.connect();
    c.set("k", 0, b"12");
    c.transcript(
        "
        > mg k Z
        < CLIENT_ERROR invalid flag
        > mg k v v
        < CLIENT_ERROR duplicate flag
        > mg
        < CLIENT_ERROR bad command line format
        > md
        < CLIENT_ERROR bad command line format
        > mg k Tx
        < CLIENT_ERROR bad token in command line format
        > ma k Dx
        < CLIENT_ERROR bad token in command line format
        > ms k 1 Cx
        > 1
        < CLIENT_ERROR bad token in command line format
        > md k v
        < CLIENT_ERROR invalid flag
        > ms k 1 v
        > 1
        < CLIENT_ERROR invalid flag
        > ma k F1
        < CLIENT_ERROR invalid flag
        > me k v
        < CLIENT_ERROR invalid flag
        ",
    );
    // an ms without a readable length: its next line is read as a command
    c.transcript(
        "
        > ms y abc
        < CLIENT_ERROR bad data chunk
        > ms y
        < CLIENT_ERROR bad data chunk
        > version
        < VERSION flare-1.3.4
        ",
    );
    // a bad mode with a readable length: the data block is skipped (it
    // would be an ERROR line otherwise)
    c.transcript(
        "
        > ms z 2 MX
        > ab
        < CLIENT_ERROR invalid mode for ms STORE
        > mg z v
        < EN
        > ms z 2 MI
        > ab
        < CLIENT_ERROR invalid mode for ms STORE
        > ms z 3 Z
        > get
        < CLIENT_ERROR invalid flag
        > mg k v
        < VA 2
        < 12
        ",
    );
    c.in_sync();
}

#[test]
fn standalone_mixed_with_text_commands() {
    let f = Flared::start();
    let mut c = f.connect();
    // text writes, meta reads and the other way round, on one connection,
    // pipelined in one write; `ma` refuses a non-numeric value, text `incr`
    // takes it as 0 (as Flare 1.3.4 does)
    c.transcript(&format!(
        "
        > set t1 3 0 2
        > ab
        > mg t1 v f c
        > ms t1 2 F4 c
        > cd
        > gets t1
        > append t1 0 0 1
        > e
        > mg t1 v s
        > ma t1 v
        > incr t1 1
        > mg t1 v c
        > ms n1 1
        > 9
        > incr n1 1
        > ma n1 v c
        > decr n1 3
        > mg n1 v
        > delete n1
        > md n1
        > mn
        < STORED
        < VA 2 f3 c{v1}
        < ab
        < HD c{v2}
        < VALUE t1 4 2 {v2}
        < cd
        < END
        < STORED
        < VA 3 s3
        < cde
        < CLIENT_ERROR cannot increment or decrement non-numeric value
        < 1
        < VA 1 c{v4}
        < 1
        < HD
        < 10
        < VA 2 c{v3}
        < 11
        < 8
        < VA 1
        < 8
        < DELETED
        < NF
        < MN
        ",
        v1 = v(1),
        v2 = v(2),
        v3 = v(3),
        v4 = v(4)
    ));
    c.in_sync();
}

/// Index, master of partition 0 (node 0), master of partition 1 (node 1) and
/// a proxy (node 2): every meta command through the proxy reaches the key's
/// master, whose dump shows what the replies said.
#[test]
fn cluster_meta_commands_through_a_proxy() {
    let mut c = Cluster::start(3);
    c.first_master(0);
    let epoch0 = c.new_master_epoch(0);
    c.add_partition(1, 1, WAIT);
    let proxy = 2;
    let mut p = c.conn(proxy);

    for (owner, other, epoch, keys) in [
        (c.port(0), c.port(1), Some(epoch0), &P0[..]),
        (c.port(1), c.port(0), None, &P1[..]),
    ] {
        let (k1, k2, cnt, kb, miss) = (keys[0], keys[1], keys[2], keys[3], keys[4]);

        // ms: HD with the version the master gave, which its dump shows
        let reply = line(
            &mut p,
            format!("ms {k1} 3 F7 T0 c k O1\r\nabc\r\n").as_bytes(),
        );
        let v1 = token(&reply, 'c');
        assert_eq!(reply, format!("HD c{v1} k{k1} O1\r\n"));
        match epoch {
            Some(e) => assert_eq!(v1, version(e, 1), "the first version of {k1}"),
            // its epoch is the map under which it became master (before
            // the map changes of the activation)
            None => assert_eq!(v1 & ((1 << EPOCH_SHIFT) - 1), 1, "{k1}: {v1}"),
        }
        assert_eq!(
            dumped(owner, k1),
            DumpRecord {
                key: k1.to_string(),
                flags: 7,
                version: v1,
                expire: 0,
                value: b"abc".to_vec(),
            }
        );
        assert!(record(&dump_sorted(other), k1).is_none(), "{k1} misplaced");
        // mg, me, text gets through the proxy
        p.transcript(&format!(
            "
            > mg {k1} v f c s t k O2
            < VA 3 f7 c{v1} s3 t-1 k{k1} O2
            < abc
            > mg {k1} s
            < HD s3
            > me {k1}
            < ME {k1} exp=-1 la=0 cas={v1} fetch=no cls=1 size={size}
            > gets {k1}
            < VALUE {k1} 7 3 {v1}
            < abc
            < END
            > mg {miss} v
            < EN
            > me {miss}
            < EN
            ",
            size = k1.len() + 3
        ));

        // cas: EX on a mismatch, NF without a record, HD on a match
        p.transcript(&format!(
            "
            > ms {k1} 3 C{wrong} c
            > xyz
            < EX
            > ms {miss} 3 C{v1} c
            > xyz
            < NF
            ",
            wrong = v1 + 100
        ));
        let reply = line(&mut p, format!("ms {k1} 3 C{v1} c\r\nxyz\r\n").as_bytes());
        let v2 = token(&reply, 'c');
        assert_eq!(reply, format!("HD c{v2}\r\n"));
        assert!(v2 > v1);
        let r = dumped(owner, k1);
        assert_eq!((r.flags, r.version, r.value), (0, v2, b"xyz".to_vec()));

        // modes
        p.transcript(&format!(
            "
            > ms {k1} 1 ME
            > z
            < NS
            > ms {k2} 2 MR
            > zz
            < NS
            > ms {k2} 2 MA
            > zz
            < NS
            "
        ));
        let mut last = 0;
        for (mode, data, after) in [
            ("ME", "bb", "bb"),
            ("MA", "cc", "bbcc"),
            ("MP", "aa", "aabbcc"),
            ("MR F2", "AAbbcc", "AAbbcc"),
        ] {
            let reply = line(
                &mut p,
                format!("ms {k2} {} {mode} c\r\n{data}\r\n", data.len()).as_bytes(),
            );
            let vn = token(&reply, 'c');
            assert_eq!(reply, format!("HD c{vn}\r\n"), "ms {k2} {mode}");
            assert!(vn > last);
            last = vn;
            p.transcript(&format!(
                "
                > mg {k2} c v
                < VA {len} c{vn}
                < {after}
                ",
                len = after.len()
            ));
        }
        let r = dumped(owner, k2);
        assert_eq!((r.flags, r.version, r.value), (2, last, b"AAbbcc".to_vec()));

        // ma: created by N with J, then decremented
        let reply = line(&mut p, format!("ma {cnt} N0 J10 v c\r\n").as_bytes());
        let vc = token(&reply, 'c');
        assert_eq!(reply, format!("VA 2 c{vc}\r\n"));
        assert_eq!(p.read_line(), "10\r\n");
        let reply = line(&mut p, format!("ma {cnt} MD D4 v c t\r\n").as_bytes());
        let vd = token(&reply, 'c');
        assert_eq!(reply, format!("VA 1 c{vd} t-1\r\n"));
        assert_eq!(p.read_line(), "6\r\n");
        assert!(vd > vc);
        let r = dumped(owner, cnt);
        assert_eq!((r.version, r.value), (vd, b"6".to_vec()));
        p.transcript(&format!(
            "
            > ma {miss} v
            < NF
            > ma {k1} v
            < CLIENT_ERROR cannot increment or decrement non-numeric value
            > ma {cnt} C{vc}
            < EX
            > incr {cnt} 1
            < 7
            "
        ));

        // touch with mg T: the TTL reaches the master (as an absolute time,
        // so a second may pass on the way), the version stays
        let before = unix_now();
        let reply = line(&mut p, format!("mg {k1} T100 t c\r\n").as_bytes());
        let after = unix_now();
        assert_ttl(&reply, "t", 100);
        assert_eq!(reply, format!("HD t{} c{v2}\r\n", ttl(&reply, "t")));
        let r = dumped(owner, k1);
        assert_eq!(r.version, v2);
        assert!(
            (before + 100..=after + 100).contains(&r.expire),
            "expire {} of {k1} after a touch between {before} and {after}",
            r.expire
        );
        // mg N on a miss creates the empty item on the master
        let reply = line(&mut p, format!("mg {miss} N30 s c\r\n").as_bytes());
        let vm = token(&reply, 'c');
        assert_eq!(reply, format!("HD s0 c{vm} W\r\n"));
        let r = dumped(owner, miss);
        assert_eq!((r.version, r.value.len()), (vm, 0));
        assert!(r.expire >= before + 30 && r.expire <= unix_now() + 30);
        p.expect(format!("md {miss}\r\n").as_bytes(), b"HD\r\n");

        // a base64 key
        let enc = b64(kb.as_bytes());
        let reply = line(&mut p, format!("ms {enc} 2 b k c\r\nhi\r\n").as_bytes());
        let vb = token(&reply, 'c');
        assert_eq!(reply, format!("HD b k{enc} c{vb}\r\n"));
        let r = dumped(owner, kb);
        assert_eq!((r.version, r.value), (vb, b"hi".to_vec()));
        p.transcript(&format!(
            "
            > mg {enc} b k v
            < VA 2 b k{enc}
            < hi
            > get {kb}
            < VALUE {kb} 0 2
            < hi
            < END
            "
        ));

        // quiet: the proxy drops what the client would not have seen
        p.transcript(&format!(
            "
            > mg {miss} v q
            > mg {k1} v q O5
            > md {miss} q
            > ma {miss} q
            > ms {k2} 1 q
            > Q
            > ms {k2} 1 q ME
            > R
            > md {k2} q C1
            > ma {cnt} q
            > mg {miss} v q
            > mn
            < VA 3 O5
            < xyz
            < NS
            < EX
            < MN
            > mg {k2} v
            < VA 1
            < Q
            > mg {cnt} v
            < VA 1
            < 8
            "
        ));

        // md: HD, then the master no longer has it
        p.transcript(&format!(
            "
            > md {k2} k O9
            < HD k{k2} O9
            > md {k2}
            < NF
            > mg {k2} v
            < EN
            > md {enc} b q
            > mn
            < MN
            "
        ));
        let dump = dump_sorted(owner);
        assert!(record(&dump, k2).is_none(), "{k2} deleted: {dump:?}");
        assert!(record(&dump, kb).is_none(), "{kb} deleted: {dump:?}");
        let mut want: Vec<String> = [k1, cnt].iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(dump_keys(&dump), want);
    }
    assert!(
        dump_sorted(c.port(proxy)).is_empty(),
        "the proxy stores nothing"
    );
    p.in_sync();
}

/// A master and its slave (partition 0): meta writes on the master reach the
/// slave with the same value, version and expire; a deleted key goes away.
#[test]
fn meta_writes_replicate_to_the_slave() {
    let mut c = Cluster::start(2);
    let (m, s) = (0, 1);
    c.first_master(m);
    let epoch = c.new_master_epoch(m);
    c.add_slave(s, 1, 0, WAIT);
    let mut mc = c.conn(m);
    let (mp, sp) = (c.port(m), c.port(s));

    // poll until the slave's record of `key` is the master's
    let same = |key: &str| -> DumpRecord {
        let want = dumped(mp, key);
        wait_until(
            &format!("{key} on the slave as on the master"),
            WAIT,
            || record(&dump_sorted(sp), key) == Some(&want),
        );
        want
    };

    // ms with c
    let reply = line(&mut mc, b"ms rk 5 F9 c\r\nhello\r\n");
    let v1 = token(&reply, 'c');
    assert_eq!(reply, format!("HD c{v1}\r\n"));
    assert_eq!(v1, version(epoch, 1));
    let r = same("rk");
    assert_eq!(
        (r.flags, r.version, r.expire, r.value),
        (9, v1, 0, b"hello".to_vec())
    );

    // touch with mg T: the expire travels, the version stays
    let before = unix_now();
    mc.transcript(&format!(
        "
        > mg rk T300 t c
        < HD t300 c{v1}
        "
    ));
    let r = same("rk");
    assert_eq!(r.version, v1);
    assert!(r.expire >= before + 300 && r.expire <= unix_now() + 300);

    // ma: created, incremented, with a TTL
    mc.transcript(
        "
        > ma rc N0 J41 v
        < VA 2
        < 41
        ",
    );
    let reply = line(&mut mc, b"ma rc v c\r\n");
    let vc = token(&reply, 'c');
    assert_eq!(reply, format!("VA 2 c{vc}\r\n"));
    assert_eq!(mc.read_line(), "42\r\n");
    let r = same("rc");
    assert_eq!((r.version, r.expire, r.value), (vc, 0, b"42".to_vec()));
    let before = unix_now();
    mc.transcript(
        "
        > ma rc D8 T600 v t
        < VA 2 t600
        < 50
        ",
    );
    let r = same("rc");
    assert!(r.version > vc);
    assert_eq!(r.value, b"50".to_vec());
    assert!(r.expire >= before + 600 && r.expire <= unix_now() + 600);

    // modes, a cas write and a base64 key
    mc.transcript(
        "
        > ms rk 3 MA
        > !!!
        < HD
        > ms rk 2 MP q
        > <<
        > mn
        < MN
        ",
    );
    let r = same("rk");
    assert_eq!((r.flags, r.value.as_slice()), (9, &b"<<hello!!!"[..]));
    let reply = line(
        &mut mc,
        format!("ms {} 3 b C{} c\r\nnew\r\n", b64(b"rk"), r.version).as_bytes(),
    );
    let vn = token(&reply, 'c');
    assert_eq!(reply, format!("HD c{vn}\r\n"));
    let r = same("rk");
    assert_eq!((r.flags, r.version, r.expire), (0, vn, 0));
    assert_eq!(r.value, b"new".to_vec());
    // the slave serves meta reads of what it received
    let mut sc = c.conn(s);
    sc.transcript(&format!(
        "
        > mg rk v c f
        < VA 3 c{vn} f0
        < new
        "
    ));

    // md: the key disappears from the slave
    mc.transcript(
        "
        > md rk
        < HD
        > md rc q
        > mn
        < MN
        ",
    );
    wait_until("rk and rc gone from the slave", WAIT, || {
        let dump = dump_sorted(sp);
        record(&dump, "rk").is_none() && record(&dump, "rc").is_none()
    });
    assert!(dump_sorted(mp).is_empty());
    sc.transcript(
        "
        > mg rk v
        < EN
        ",
    );
}

/// The recache protocol (stale-while-revalidate) on the key's master:
/// `md I` keeps the record with a new version and marks it stale; the
/// first reader wins the recache (`W X`), later ones see `Z`; a new write
/// ends it. `R` wins when the TTL left is below it; `mg N` hands out `W`
/// once; `ms I` with an older cas stores and marks stale.
#[test]
fn standalone_recache_protocol() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > ms s 2 T0
        > ab
        < HD
        > md s I T30
        < HD
        > mg s v
        < VA 2 W X
        < ab
        > mg s v
        < VA 2 X Z
        < ab
        > ms s 2
        > cd
        < HD
        > mg s v
        < VA 2
        < cd
        > ms r 1 T10
        > r
        < HD
        > mg r R30 v
        < VA 1 W
        < r
        > mg r R30 v
        < VA 1 Z
        < r
        > mg nv N30 s
        < HD s0 W
        > mg nv s
        < HD s0 Z
        > md nokey I
        < NF
        ",
    );
    // md I gave the record a new version: the old cas token fails
    let old = token(&line(&mut c, b"mg s c\r\n"), 'c');
    c.transcript(
        "
        > md s I
        < HD
        ",
    );
    let new = token(&line(&mut c, b"mg s c\r\n"), 'c');
    assert!(new > old, "{new} > {old}");
    c.expect(format!("ms s 1 C{old}\r\nx\r\n").as_bytes(), b"EX\r\n");
    // ms I with the older cas: stored, and stale
    c.expect(format!("ms s 1 C{old} I\r\nx\r\n").as_bytes(), b"HD\r\n");
    c.expect(b"mg s v\r\n", b"VA 1 W X\r\nx\r\n");
    // md I with T set the TTL
    c.expect(b"md s I T100\r\n", b"HD\r\n");
    assert_ttl(&line(&mut c, b"mg s t\r\n"), "t", 100);
}

/// The recache marks live on the key's master: an `mg` with `R` sent to
/// the slave is served by the master and sees them.
#[test]
fn recache_marks_are_served_by_the_master() {
    let mut c = Cluster::start(2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    let mut mc = c.conn(m);
    mc.expect(b"ms sw 2 T0\r\nab\r\n", b"HD\r\n");
    mc.expect(b"md sw I\r\n", b"HD\r\n");
    // the slave has the new version before anyone reads through it
    let want = dumped(c.port(m), "sw");
    wait_until("the slave has the invalidated record", WAIT, || {
        record(&dump_sorted(c.port(s)), "sw") == Some(&want)
    });
    let mut sc = c.conn(s);
    sc.expect(b"mg sw v R1\r\n", b"VA 2 W X\r\nab\r\n");
    sc.expect(b"mg sw v R1\r\n", b"VA 2 X Z\r\nab\r\n");
}
