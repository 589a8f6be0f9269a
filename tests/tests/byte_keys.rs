//! Keys are bytes (protocol.md §2.2: a key is any word without a space or a
//! NUL): Latin-1 and Shift_JIS keys are common, and such a key must work
//! everywhere a plain ASCII key does — read and written through a proxy, on
//! a pooled forwarding connection shared with other keys, by `keys`,
//! `dump_key` and `dump`, in replication, and in a reconstruction (new slave,
//! partition split) that copies the records with `dump`.
//!
//! Regression: a key that is not UTF-8 used to desynchronise a node's pooled
//! connection to another node (its `VALUE` line was not recognised, so the
//! data block and `END` were taken as the answers to the next requests), and
//! made every reconstruction from a master holding one fail ("non-text dump
//! header").
//!
//! Every reply is compared byte for byte; failure messages show the bytes
//! escaped (`\xe9`).
//!
//! Key placement with the default resolver (`simple` hash, cluster.md §4.3):
//! with two partitions a key whose byte sum (as signed chars) has an odd
//! magnitude lives on partition 0, an even one on partition 1.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flare_e2e::{rec, version, wait_until, Cluster, Conn, NodeRec, FAST_MONITOR, WAIT};

/// "café" in Latin-1 (partition 0 of 2: 99+97+102-23 = 275).
const LATIN1: &[u8] = b"caf\xe9";
/// "テスト" in Shift_JIS (partition 0 of 2: |3·(-125)+101+88+103| = 83).
const SJIS: &[u8] = b"\x83\x65\x83\x58\x83\x67";
/// Two bytes that are never UTF-8 (partition 0 of 2: |-1-2| = 3).
const FFFE: &[u8] = b"\xff\xfe";
/// A plain ASCII key (partition 1 of 2: 532).
const ASCII: &[u8] = b"plain";

/// "été" in Latin-1 (partition 1 of 2: -23+116-23 = 70).
const LATIN1_P1: &[u8] = b"\xe9t\xe9";
/// "日本" in Shift_JIS (partition 1 of 2: |-109-6-106+123| = 98).
const SJIS_P1: &[u8] = b"\x93\xfa\x96\x7b";
/// Never UTF-8 (partition 1 of 2: |-1-2-1| = 4).
const FFFEFF_P1: &[u8] = b"\xff\xfe\xff";
/// A plain ASCII key of partition 0 of 2 (309).
const ASCII_P0: &[u8] = b"bar";

// ---- byte-level helpers (the support library's readers are lossy or
// String-based: a non-UTF-8 key would be mangled or refused) ----

/// The bytes, escaped for failure messages.
fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// The parts, concatenated.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `<cmd> <key> <flags> <exptime> <bytes>[ <extra>]` + data block.
fn storage(cmd: &str, key: &[u8], flags: u32, exptime: u64, data: &[u8], extra: &str) -> Vec<u8> {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" {extra}")
    };
    cat(&[
        cmd.as_bytes(),
        b" ",
        key,
        format!(" {flags} {exptime} {}{extra}\r\n", data.len()).as_bytes(),
        data,
        b"\r\n",
    ])
}

/// `set <key> 0 0 <bytes>` + data block.
fn set(key: &[u8], data: &[u8]) -> Vec<u8> {
    storage("set", key, 0, 0, data, "")
}

/// A request line `<cmd> <key>[ <rest>]\r\n`.
fn line(cmd: &str, key: &[u8], rest: &str) -> Vec<u8> {
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!(" {rest}")
    };
    cat(&[cmd.as_bytes(), b" ", key, rest.as_bytes(), b"\r\n"])
}

/// `get <key> <key> …\r\n` (or `gets`).
fn get_req(cmd: &str, keys: &[&[u8]]) -> Vec<u8> {
    let mut r = cmd.as_bytes().to_vec();
    for k in keys {
        r.push(b' ');
        r.extend_from_slice(k);
    }
    r.extend_from_slice(b"\r\n");
    r
}

/// One `VALUE <key> <flags> <bytes>[ <version>]` block with its data.
fn value(key: &[u8], flags: u32, data: &[u8], version: Option<u64>) -> Vec<u8> {
    let v = version.map(|v| format!(" {v}")).unwrap_or_default();
    cat(&[
        b"VALUE ",
        key,
        format!(" {flags} {}{v}\r\n", data.len()).as_bytes(),
        data,
        b"\r\n",
    ])
}

/// The whole answer to `get <key>` that finds `data` with `flags`.
fn hit(key: &[u8], flags: u32, data: &[u8]) -> Vec<u8> {
    cat(&[&value(key, flags, data, None), b"END\r\n"])
}

/// Read up to `n` bytes: stops early once what arrived is no longer a prefix
/// of `want` (the mismatch is known), or when the connection closes or stays
/// silent for [`WAIT`]. Never reads past `n` bytes.
fn read_toward(c: &mut Conn, want: &[u8]) -> Vec<u8> {
    let n = want.len();
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n && want.starts_with(&buf[..got]) {
        match c.stream.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    buf.truncate(got);
    buf
}

/// Send `req`; exactly `want` must come back.
#[track_caller]
fn expect_raw(c: &mut Conn, req: &[u8], want: &[u8]) {
    c.send(req);
    let got = read_toward(c, want);
    assert_eq!(esc(&got), esc(want), "reply to {}", esc(req));
}

/// One line through LF, raw.
#[track_caller]
fn line_bytes(c: &mut Conn) -> Vec<u8> {
    let mut l = Vec::new();
    let mut b = [0u8; 1];
    while !l.ends_with(b"\n") {
        assert!(l.len() < 1 << 20, "no LF within 1 MiB: {}", esc(&l));
        match c.stream.read(&mut b) {
            Ok(1) => l.push(b[0]),
            Ok(_) => panic!("connection closed after {}", esc(&l)),
            Err(e) => panic!("reading a line: {e} (got {})", esc(&l)),
        }
    }
    l
}

/// Read exactly `n` bytes, raw.
#[track_caller]
fn bytes(c: &mut Conn, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    if let Err(e) = c.stream.read_exact(&mut v) {
        panic!("reading {n} bytes: {e}");
    }
    v
}

/// A decimal field of a reply line.
#[track_caller]
fn num<T: std::str::FromStr>(field: &[u8]) -> T {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {}", esc(field)))
}

/// Read one whole `get`/`gets` answer as it comes (VALUE blocks up to
/// `END`, or a single other line), raw.
#[track_caller]
fn values_reply(c: &mut Conn) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let l = line_bytes(c);
        out.extend_from_slice(&l);
        if !l.starts_with(b"VALUE ") {
            return out;
        }
        let fields: Vec<&[u8]> = l[..l.len() - 2].split(|&b| b == b' ').collect();
        assert!(
            fields.len() == 4 || fields.len() == 5,
            "VALUE line {}",
            esc(&l)
        );
        let n: usize = num(fields[3]);
        out.extend_from_slice(&bytes(c, n + 2));
    }
}

/// `get <keys>` on `c`: the whole answer, raw.
#[track_caller]
fn get_raw(c: &mut Conn, keys: &[&[u8]]) -> Vec<u8> {
    c.send(&get_req("get", keys));
    values_reply(c)
}

/// `gets <key>` on `c` must find `data` with `flags`: returns the cas unique
/// (checking the rest of the answer byte for byte).
#[track_caller]
fn gets_unique(c: &mut Conn, key: &[u8], flags: u32, data: &[u8]) -> u64 {
    c.send(&get_req("gets", &[key]));
    let head = line_bytes(c);
    let prefix = cat(&[
        b"VALUE ",
        key,
        format!(" {flags} {} ", data.len()).as_bytes(),
    ]);
    let unique = head
        .strip_prefix(prefix.as_slice())
        .and_then(|r| r.strip_suffix(b"\r\n"))
        .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
        .map(num::<u64>)
        .unwrap_or_else(|| {
            panic!(
                "gets {}: first line {}, expected {}<unique>\\r\\n",
                esc(key),
                esc(&head),
                esc(&prefix)
            )
        });
    let rest = cat(&[data, b"\r\nEND\r\n"]);
    let got = read_toward(c, &rest);
    assert_eq!(esc(&got), esc(&rest), "gets {} after its header", esc(key));
    unique
}

/// Send `req` (a `dump_key …`) and return the lines before `END`, raw,
/// sorted.
#[track_caller]
fn key_listing(c: &mut Conn, req: &[u8]) -> Vec<Vec<u8>> {
    c.send(req);
    let mut lines = Vec::new();
    loop {
        let l = line_bytes(c);
        if l == b"END\r\n" {
            break;
        }
        lines.push(l);
    }
    lines.sort();
    lines
}

/// One record of a `dump`, with the key as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RawRecord {
    key: Vec<u8>,
    flags: u32,
    version: u64,
    expire: i64,
    value: Vec<u8>,
}

/// `dump` of node `port`, keys as raw bytes, sorted by key.
#[track_caller]
fn raw_dump(port: u16) -> Vec<RawRecord> {
    let mut c = Conn::connect(port);
    c.send(b"dump\r\n");
    let mut out = Vec::new();
    loop {
        let l = line_bytes(&mut c);
        if l == b"END\r\n" {
            break;
        }
        let fields: Vec<&[u8]> = l
            .strip_prefix(b"VALUE ")
            .and_then(|r| r.strip_suffix(b"\r\n"))
            .unwrap_or_else(|| panic!("dump of {port}: unexpected line {}", esc(&l)))
            .split(|&b| b == b' ')
            .collect();
        assert_eq!(fields.len(), 5, "dump VALUE line {}", esc(&l));
        let n: usize = num(fields[2]);
        let mut data = bytes(&mut c, n + 2);
        assert_eq!(
            esc(&data[n..]),
            "\\r\\n",
            "dump data trailer of {}",
            esc(&l)
        );
        data.truncate(n);
        out.push(RawRecord {
            key: fields[0].to_vec(),
            flags: num(fields[1]),
            version: num(fields[3]),
            expire: num(fields[4]),
            value: data,
        });
    }
    out.sort();
    out
}

/// Records for `(key, value)` pairs, as a fresh `set <key> 0 0` on a master
/// in `epoch` makes them (the first version of the epoch).
fn fresh(epoch: u64, pairs: &[(&[u8], &[u8])]) -> Vec<RawRecord> {
    let mut v: Vec<RawRecord> = pairs
        .iter()
        .map(|(k, d)| RawRecord {
            key: k.to_vec(),
            flags: 0,
            version: version(epoch, 1),
            expire: 0,
            value: d.to_vec(),
        })
        .collect();
    v.sort();
    v
}

/// The keys of records, escaped, for readable comparisons.
fn keys_of(records: &[RawRecord]) -> Vec<String> {
    records.iter().map(|r| esc(&r.key)).collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Wait (at most `limit`) until the index shows node `i` as `want`; on a
/// timeout the failure shows the node's record and the end of its log (a
/// failed copy is logged there).
#[track_caller]
fn wait_record(c: &Cluster, i: usize, want: &NodeRec, limit: Duration) {
    let start = Instant::now();
    loop {
        let now = c.record(i);
        if now.as_ref() == Some(want) {
            return;
        }
        if start.elapsed() > limit {
            let log = c.log(i);
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "node {} is {now:?} after {limit:?}, expected {want:?}; end of its log:\n{}",
                c.key(i),
                tail.join("\n")
            );
        }
        // poll (with the deadline above)
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// index + node 0 (master of partition 0) + node 1 (proxy), with
/// `node_conf` on both nodes.
fn master_and_proxy(node_conf: &str) -> Cluster {
    let mut c = Cluster::start_with(FAST_MONITOR, node_conf, 2);
    c.first_master(0);
    c
}

// ---- 1. reads and writes through a proxy ----

/// set / add / replace / append / prepend / gets + cas / get of byte keys
/// through a proxy; the master holds the same.
#[test]
fn storage_commands_with_byte_keys_through_a_proxy() {
    let c = master_and_proxy("");
    let (a, b) = (0, 1);
    let epoch = c.new_master_epoch(a);
    let mut via = c.conn(b);
    let k = LATIN1;
    expect_raw(&mut via, &set(k, b"abc"), b"STORED\r\n");
    expect_raw(
        &mut via,
        &storage("add", k, 0, 0, b"x", ""),
        b"NOT_STORED\r\n",
    );
    expect_raw(
        &mut via,
        &storage("replace", k, 5, 0, b"def", ""),
        b"STORED\r\n",
    );
    expect_raw(
        &mut via,
        &storage("append", k, 0, 0, b"gh", ""),
        b"STORED\r\n",
    );
    expect_raw(
        &mut via,
        &storage("prepend", k, 0, 0, b"ab", ""),
        b"STORED\r\n",
    );
    expect_raw(&mut via, &get_req("get", &[k]), &hit(k, 5, b"abdefgh"));
    // set, replace, append, prepend: the 4th version of the master's epoch
    let unique = gets_unique(&mut via, k, 5, b"abdefgh");
    assert_eq!(unique, version(epoch, 4));
    expect_raw(
        &mut via,
        &storage("cas", k, 7, 0, b"new", &unique.to_string()),
        b"STORED\r\n",
    );
    expect_raw(
        &mut via,
        &storage("cas", k, 7, 0, b"bad", &unique.to_string()),
        b"EXISTS\r\n",
    );
    expect_raw(&mut via, &get_req("get", &[k]), &hit(k, 7, b"new"));
    expect_raw(
        &mut via,
        &get_req("gets", &[k]),
        &cat(&[&value(k, 7, b"new", Some(version(epoch, 5))), b"END\r\n"]),
    );
    // the other keys: add of an absent key, replace of an absent one, cas
    // of an absent one
    expect_raw(
        &mut via,
        &storage("add", SJIS, 3, 0, b"sjis", ""),
        b"STORED\r\n",
    );
    expect_raw(
        &mut via,
        &storage("replace", FFFE, 0, 0, b"no", ""),
        b"NOT_STORED\r\n",
    );
    expect_raw(
        &mut via,
        &storage("cas", FFFE, 0, 0, b"no", "1"),
        b"NOT_FOUND\r\n",
    );
    expect_raw(&mut via, &set(FFFE, b"\xff"), b"STORED\r\n");
    expect_raw(&mut via, &set(ASCII, b"ascii"), b"STORED\r\n");
    expect_raw(&mut via, &get_req("get", &[SJIS]), &hit(SJIS, 3, b"sjis"));
    expect_raw(&mut via, &get_req("get", &[FFFE]), &hit(FFFE, 0, b"\xff"));
    expect_raw(
        &mut via,
        &get_req("get", &[ASCII]),
        &hit(ASCII, 0, b"ascii"),
    );
    via.in_sync();

    // directly on the master
    let mut on_a = c.conn(a);
    expect_raw(
        &mut on_a,
        &get_req("gets", &[k, SJIS, FFFE, ASCII]),
        &cat(&[
            &value(k, 7, b"new", Some(version(epoch, 5))),
            &value(SJIS, 3, b"sjis", Some(version(epoch, 1))),
            &value(FFFE, 0, b"\xff", Some(version(epoch, 1))),
            &value(ASCII, 0, b"ascii", Some(version(epoch, 1))),
            b"END\r\n",
        ]),
    );
    assert!(raw_dump(c.port(b)).is_empty(), "the proxy stores nothing");
}

/// Multi-key `get` / `gets` through a proxy mixing byte keys, an ASCII key,
/// a missing key and a repeated key: request order, misses omitted.
#[test]
fn multi_get_mixing_byte_and_ascii_keys_through_a_proxy() {
    let c = master_and_proxy("");
    let (a, b) = (0, 1);
    let v1 = Some(version(c.new_master_epoch(a), 1));
    let mut on_a = c.conn(a);
    expect_raw(&mut on_a, &set(LATIN1, b"latin-1"), b"STORED\r\n");
    expect_raw(&mut on_a, &set(SJIS, b"shift_jis"), b"STORED\r\n");
    expect_raw(&mut on_a, &set(FFFE, b"ff fe"), b"STORED\r\n");
    expect_raw(&mut on_a, &set(ASCII, b"ascii"), b"STORED\r\n");
    let keys: [&[u8]; 6] = [ASCII, LATIN1, b"missing", SJIS, FFFE, LATIN1];
    let want = cat(&[
        &value(ASCII, 0, b"ascii", None),
        &value(LATIN1, 0, b"latin-1", None),
        &value(SJIS, 0, b"shift_jis", None),
        &value(FFFE, 0, b"ff fe", None),
        &value(LATIN1, 0, b"latin-1", None),
        b"END\r\n",
    ]);
    let want_gets = cat(&[
        &value(ASCII, 0, b"ascii", v1),
        &value(LATIN1, 0, b"latin-1", v1),
        &value(SJIS, 0, b"shift_jis", v1),
        &value(FFFE, 0, b"ff fe", v1),
        &value(LATIN1, 0, b"latin-1", v1),
        b"END\r\n",
    ]);
    // the master itself, then the proxy (twice: the second round shows the
    // pooled connections are still in sync)
    expect_raw(&mut on_a, &get_req("get", &keys), &want);
    let mut via = c.conn(b);
    for _ in 0..2 {
        expect_raw(&mut via, &get_req("get", &keys), &want);
        expect_raw(&mut via, &get_req("gets", &keys), &want_gets);
        expect_raw(
            &mut via,
            &get_req("get", &[b"missing", b"\xe9"]),
            b"END\r\n",
        );
    }
    via.in_sync();
}

/// incr / decr, touch, gat and delete of byte keys through a proxy; the
/// master holds the result.
#[test]
fn arith_touch_gat_delete_with_byte_keys_through_a_proxy() {
    let c = master_and_proxy("");
    let (a, b) = (0, 1);
    let epoch = c.new_master_epoch(a);
    let mut via = c.conn(b);
    expect_raw(&mut via, &set(SJIS, b"10"), b"STORED\r\n");
    expect_raw(&mut via, &line("incr", SJIS, "5"), b"15\r\n");
    expect_raw(&mut via, &line("decr", SJIS, "3"), b"12\r\n");
    expect_raw(&mut via, &line("incr", FFFEFF_P1, "1"), b"NOT_FOUND\r\n");
    expect_raw(&mut via, &get_req("get", &[SJIS]), &hit(SJIS, 0, b"12"));

    expect_raw(&mut via, &set(FFFE, b"hello"), b"STORED\r\n");
    expect_raw(&mut via, &line("touch", FFFE, "3600"), b"TOUCHED\r\n");
    expect_raw(
        &mut via,
        &line("touch", FFFEFF_P1, "3600"),
        b"NOT_FOUND\r\n",
    );
    let before_gat = unix_now();
    expect_raw(
        &mut via,
        &line("gat", FFFE, "7200"),
        &value(FFFE, 0, b"hello", None),
    );
    expect_raw(&mut via, &line("gat", FFFEFF_P1, "7200"), b"NOT_FOUND\r\n");
    expect_raw(&mut via, &get_req("get", &[FFFE]), &hit(FFFE, 0, b"hello"));

    expect_raw(&mut via, &set(LATIN1, b"x"), b"STORED\r\n");
    expect_raw(&mut via, &set(ASCII, b"y"), b"STORED\r\n");
    expect_raw(&mut via, &line("delete", LATIN1, ""), b"DELETED\r\n");
    expect_raw(&mut via, &get_req("get", &[LATIN1]), b"END\r\n");
    expect_raw(&mut via, &line("delete", LATIN1, ""), b"NOT_FOUND\r\n");
    expect_raw(
        &mut via,
        &get_req("get", &[LATIN1, SJIS, FFFE, ASCII]),
        &cat(&[
            &value(SJIS, 0, b"12", None),
            &value(FFFE, 0, b"hello", None),
            &value(ASCII, 0, b"y", None),
            b"END\r\n",
        ]),
    );
    via.in_sync();

    // on the master: values, versions (touch and gat keep it) and expiry
    let mut on_a = c.conn(a);
    expect_raw(
        &mut on_a,
        &get_req("gets", &[LATIN1, SJIS, FFFE, ASCII]),
        &cat(&[
            &value(SJIS, 0, b"12", Some(version(epoch, 3))),
            &value(FFFE, 0, b"hello", Some(version(epoch, 1))),
            &value(ASCII, 0, b"y", Some(version(epoch, 1))),
            b"END\r\n",
        ]),
    );
    let dump = raw_dump(c.port(a));
    assert_eq!(
        keys_of(&dump),
        vec![esc(ASCII), esc(SJIS), esc(FFFE)],
        "dump of the master"
    );
    let ff = dump.iter().find(|r| r.key == FFFE).expect("\\xff\\xfe");
    assert!(
        ff.expire >= before_gat + 7200 - 2 && ff.expire <= unix_now() + 7200 + 2,
        "expire of \\xff\\xfe after gat 7200 at {before_gat}: {}",
        ff.expire
    );
    let sj = dump.iter().find(|r| r.key == SJIS).expect("sjis");
    assert_eq!(sj.expire, 0);
}

/// `noreply` writes of byte keys through a proxy, then reads through it.
#[test]
fn noreply_writes_of_byte_keys_through_a_proxy() {
    let c = master_and_proxy("");
    let (a, b) = (0, 1);
    let mut via = c.conn(b);
    expect_raw(&mut via, &set(FFFEFF_P1, b"doomed"), b"STORED\r\n");
    let mut batch = Vec::new();
    batch.extend_from_slice(&storage("set", LATIN1, 1, 0, b"one", "noreply"));
    batch.extend_from_slice(&storage("set", SJIS, 2, 0, b"two", "noreply"));
    batch.extend_from_slice(&storage("add", FFFE, 3, 0, b"three", "noreply"));
    batch.extend_from_slice(&storage("set", ASCII, 4, 0, b"four", "noreply"));
    batch.extend_from_slice(&line("delete", FFFEFF_P1, "noreply"));
    via.send(&batch);
    // nothing came back for them
    via.in_sync();
    let keys: [&[u8]; 5] = [LATIN1, SJIS, FFFE, ASCII, FFFEFF_P1];
    let want = cat(&[
        &value(LATIN1, 1, b"one", None),
        &value(SJIS, 2, b"two", None),
        &value(FFFE, 3, b"three", None),
        &value(ASCII, 4, b"four", None),
        b"END\r\n",
    ]);
    // forwarded noreply writes are applied asynchronously: wait on the master
    let mut on_a = c.conn(a);
    wait_until("the noreply writes on the master", WAIT, || {
        get_raw(&mut on_a, &keys) == want
    });
    expect_raw(&mut via, &get_req("get", &keys), &want);
    expect_raw(
        &mut via,
        &get_req("get", &[LATIN1]),
        &hit(LATIN1, 1, b"one"),
    );
    expect_raw(&mut via, &get_req("get", &[SJIS]), &hit(SJIS, 2, b"two"));
    expect_raw(&mut via, &get_req("get", &[FFFE]), &hit(FFFE, 3, b"three"));
    expect_raw(&mut via, &get_req("get", &[ASCII]), &hit(ASCII, 4, b"four"));
    via.in_sync();
}

/// The reported sequence on one forwarding connection, request by request:
/// after a read of a non-UTF-8 key, later requests still get their own
/// replies. (Default `proxy-concurrency`, as reported.)
#[test]
fn reported_sequence_one_by_one_keeps_the_forwarding_connection_in_sync() {
    let c = master_and_proxy("");
    let (a, b) = (0, 1);
    let mut on_a = c.conn(a);
    expect_raw(&mut on_a, &set(b"k2", b"hello"), b"STORED\r\n");
    expect_raw(&mut on_a, &set(LATIN1, b"abc"), b"STORED\r\n");
    let mut via = c.conn(b);
    // read every answer as it comes, then compare the whole transcript: a
    // desynchronised connection shows which reply went where
    let mut got = Vec::new();
    let mut want = Vec::new();
    let steps: Vec<(Vec<u8>, Vec<u8>, bool)> = vec![
        (get_req("get", &[LATIN1]), hit(LATIN1, 0, b"abc"), true),
        (get_req("get", &[b"k2"]), hit(b"k2", 0, b"hello"), true),
        (set(b"k3", b"x"), b"STORED\r\n".to_vec(), false),
        (get_req("get", &[b"k3"]), hit(b"k3", 0, b"x"), true),
        (get_req("get", &[LATIN1]), hit(LATIN1, 0, b"abc"), true),
    ];
    for (req, reply, values) in &steps {
        via.send(req);
        let answer = if *values {
            values_reply(&mut via)
        } else {
            line_bytes(&mut via)
        };
        for (out, r) in [(&mut got, &answer), (&mut want, reply)] {
            out.push(format!("> {}\n< {}", esc(req), esc(r)));
        }
    }
    assert_eq!(got.join("\n"), want.join("\n"));
    via.in_sync();
    expect_raw(&mut on_a, &get_req("get", &[b"k3"]), &hit(b"k3", 0, b"x"));
}

/// The reported sequence pipelined in one write on a proxy with a single
/// pooled connection per destination (so every key shares it).
#[test]
fn reported_sequence_pipelined_keeps_the_forwarding_connection_in_sync() {
    let c = master_and_proxy("proxy-concurrency = 1\n");
    let (a, b) = (0, 1);
    let epoch = c.new_master_epoch(a);
    let mut on_a = c.conn(a);
    expect_raw(&mut on_a, &set(b"k2", b"hello"), b"STORED\r\n");
    expect_raw(&mut on_a, &set(LATIN1, b"abc"), b"STORED\r\n");
    expect_raw(&mut on_a, &set(SJIS, b"sjis"), b"STORED\r\n");
    let mut via = c.conn(b);
    let req = cat(&[
        &get_req("get", &[LATIN1]),
        &get_req("get", &[b"k2"]),
        &set(b"k3", b"x"),
        &get_req("get", &[b"k3"]),
        &get_req("gets", &[SJIS]),
        &line("incr", b"k4", "1"),
        &get_req("get", &[FFFE, b"k2"]),
    ]);
    let want = cat(&[
        &hit(LATIN1, 0, b"abc"),
        &hit(b"k2", 0, b"hello"),
        b"STORED\r\n",
        &hit(b"k3", 0, b"x"),
        &value(SJIS, 0, b"sjis", Some(version(epoch, 1))),
        b"END\r\n",
        b"NOT_FOUND\r\n",
        &hit(b"k2", 0, b"hello"),
    ]);
    expect_raw(&mut via, &req, &want);
    via.in_sync();
    // and once more, one by one on the same connection
    expect_raw(
        &mut via,
        &get_req("get", &[LATIN1]),
        &hit(LATIN1, 0, b"abc"),
    );
    expect_raw(&mut via, &get_req("get", &[b"k3"]), &hit(b"k3", 0, b"x"));
    via.in_sync();
}

// ---- 2. keys, dump_key, dump ----

/// `keys <prefix> <limit>` with byte prefixes and keys (ascending byte
/// order), locally on the master and through a proxy; `dump_key` and `dump`
/// on the master list the raw key bytes.
#[test]
fn keys_dump_key_and_dump_with_byte_keys() {
    let c = master_and_proxy("");
    let (a, b) = (0, 1);
    let epoch = c.new_master_epoch(a);
    let mut on_a = c.conn(a);
    let cafe: &[u8] = b"cafe";
    for (k, v) in [
        (LATIN1, b"1".as_slice()),
        (cafe, b"2"),
        (SJIS, b"3"),
        (FFFE, b"4"),
        (ASCII, b"5"),
    ] {
        expect_raw(&mut on_a, &set(k, v), b"STORED\r\n");
    }
    let key_lines = |keys: &[&[u8]]| -> Vec<u8> {
        let mut v = Vec::new();
        for k in keys {
            v.extend_from_slice(&cat(&[b"KEY ", k, b"\r\n"]));
        }
        v.extend_from_slice(b"END\r\n");
        v
    };
    // (request, answer): "cafe" (0x65) sorts before "caf\xe9"
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"keys caf 10\r\n".to_vec(), key_lines(&[cafe, LATIN1])),
        (b"keys caf 1\r\n".to_vec(), key_lines(&[cafe])),
        (line("keys", LATIN1, "10"), key_lines(&[LATIN1])),
        (b"keys \x83 10\r\n".to_vec(), key_lines(&[SJIS])),
        (line("keys", SJIS, "5"), key_lines(&[SJIS])),
        (b"keys \xff 10\r\n".to_vec(), key_lines(&[FFFE])),
        (b"keys \xfe 10\r\n".to_vec(), key_lines(&[])),
        (
            b"keys \xff caf \x83\x65 10\r\n".to_vec(),
            key_lines(&[FFFE, cafe, LATIN1, SJIS]),
        ),
        (b"keys pl 10\r\n".to_vec(), key_lines(&[ASCII])),
    ];
    let mut via = c.conn(b);
    for conn in [&mut on_a, &mut via] {
        for (req, want) in &cases {
            expect_raw(conn, req, want);
        }
        conn.in_sync();
    }

    // dump_key: one KEY line per stored key (storage order), then END
    let listed = key_listing(&mut on_a, b"dump_key\r\n");
    let mut expected: Vec<Vec<u8>> = [LATIN1, cafe, SJIS, FFFE, ASCII]
        .iter()
        .map(|k| cat(&[b"KEY ", k, b"\r\n"]))
        .collect();
    expected.sort();
    let show = |v: &[Vec<u8>]| v.iter().map(|l| esc(l)).collect::<Vec<_>>();
    assert_eq!(show(&listed), show(&expected), "dump_key on the master");
    on_a.in_sync();
    // dump_key of partition 0 of 1 is the same
    let listed0 = key_listing(&mut on_a, b"dump_key 0 1\r\n");
    assert_eq!(
        show(&listed0),
        show(&expected),
        "dump_key 0 1 on the master"
    );

    // dump: the records with their raw keys
    assert_eq!(
        raw_dump(c.port(a)),
        fresh(
            epoch,
            &[
                (LATIN1, b"1"),
                (cafe, b"2"),
                (SJIS, b"3"),
                (FFFE, b"4"),
                (ASCII, b"5")
            ]
        )
    );
    // the raw bytes of the Latin-1 record, exactly, among the others (the
    // storage order is not specified)
    on_a.send(b"dump\r\n");
    let mut raw = Vec::new();
    loop {
        let l = line_bytes(&mut on_a);
        let end = l == b"END\r\n";
        raw.extend_from_slice(&l);
        if end {
            break;
        }
        let n: usize = num(l[..l.len() - 2]
            .split(|&b| b == b' ')
            .nth(3)
            .expect("bytes"));
        raw.extend_from_slice(&bytes(&mut on_a, n + 2));
    }
    let record = cat(&[
        b"VALUE ",
        LATIN1,
        format!(" 0 1 {} 0\r\n1\r\n", version(epoch, 1)).as_bytes(),
    ]);
    assert!(
        raw.windows(record.len()).any(|w| w == record.as_slice()),
        "dump has no record {}: {}",
        esc(&record),
        esc(&raw)
    );
    on_a.in_sync();
}

// ---- 3. replication ----

/// Writes of byte keys on a master (set, incr, touch, delete) reach its
/// active slave.
#[test]
fn byte_key_writes_reach_an_active_slave() {
    let mut c = Cluster::start(2);
    let (m, s) = (0, 1);
    c.first_master(m);
    let epoch = c.new_master_epoch(m);
    c.add_slave(s, 1, 0, WAIT);
    let mut mc = c.conn(m);
    let mut sc = c.conn(s);

    expect_raw(&mut mc, &set(LATIN1, b"abc"), b"STORED\r\n");
    expect_raw(&mut mc, &set(ASCII, b"ascii"), b"STORED\r\n");
    let want = hit(LATIN1, 0, b"abc");
    wait_until("the Latin-1 key on the slave", WAIT, || {
        get_raw(&mut sc, &[LATIN1]) == want
    });

    expect_raw(&mut mc, &set(SJIS, b"41"), b"STORED\r\n");
    expect_raw(&mut mc, &line("incr", SJIS, "1"), b"42\r\n");
    let want = hit(SJIS, 0, b"42");
    wait_until("the incremented Shift_JIS key on the slave", WAIT, || {
        get_raw(&mut sc, &[SJIS]) == want
    });

    expect_raw(&mut mc, &set(FFFE, b"hello"), b"STORED\r\n");
    expect_raw(&mut mc, &line("touch", FFFE, "3600"), b"TOUCHED\r\n");
    let on_master = raw_dump(c.port(m))
        .into_iter()
        .find(|r| r.key == FFFE)
        .expect("\\xff\\xfe on the master");
    assert!(on_master.expire > 0, "{on_master:?}");
    wait_until("the touched \\xff\\xfe record on the slave", WAIT, || {
        raw_dump(c.port(s)).contains(&on_master)
    });

    expect_raw(&mut mc, &line("delete", LATIN1, ""), b"DELETED\r\n");
    wait_until("the Latin-1 key deleted on the slave", WAIT, || {
        get_raw(&mut sc, &[LATIN1]) == b"END\r\n"
    });

    // in the end both hold the same records, byte for byte
    wait_until("same dump on master and slave", WAIT, || {
        raw_dump(c.port(m)) == raw_dump(c.port(s))
    });
    let data = raw_dump(c.port(s));
    assert_eq!(keys_of(&data), vec![esc(ASCII), esc(SJIS), esc(FFFE)]);
    expect_raw(
        &mut sc,
        &get_req("gets", &[LATIN1, SJIS, FFFE, ASCII]),
        &cat(&[
            &value(SJIS, 0, b"42", Some(version(epoch, 2))),
            &value(FFFE, 0, b"hello", Some(version(epoch, 1))),
            &value(ASCII, 0, b"ascii", Some(version(epoch, 1))),
            b"END\r\n",
        ]),
    );
    mc.in_sync();
    sc.in_sync();
}

// ---- 4. reconstruction ----

/// A new slave of a master that holds byte keys copies them with `dump`,
/// becomes active, and holds exactly the master's records.
#[test]
fn a_new_slave_copies_byte_keys_and_becomes_active() {
    let mut c = Cluster::start(1);
    let m = 0;
    c.first_master(m);
    let epoch = c.new_master_epoch(m);
    let mut mc = c.conn(m);
    expect_raw(&mut mc, &set(LATIN1, b"latin-1"), b"STORED\r\n");
    expect_raw(
        &mut mc,
        &storage("set", SJIS, 9, 3600, b"sjis", ""),
        b"STORED\r\n",
    );
    expect_raw(
        &mut mc,
        &storage("append", SJIS, 0, 0, b"!", ""),
        b"STORED\r\n",
    );
    expect_raw(&mut mc, &set(FFFE, b"\x00\xff\r\n"), b"STORED\r\n");
    for k in [LATIN1_P1, SJIS_P1, FFFEFF_P1] {
        expect_raw(&mut mc, &set(k, k), b"STORED\r\n");
    }
    for i in 0..20 {
        let k = format!("ascii{i:02}");
        expect_raw(&mut mc, &set(k.as_bytes(), b"v"), b"STORED\r\n");
    }
    let before = raw_dump(c.port(m));
    assert_eq!(before.len(), 26);

    let s = c.add_node("");
    c.wait_converged(WAIT);
    c.role_ok(s, "slave 1 0");
    let tt = c.tt(s);
    wait_record(&c, s, &rec("slave", "active", 0, 0, tt), WAIT);
    c.role_ok(s, "slave 1");
    c.wait_records(&[(s, rec("slave", "active", 0, 1, tt))], WAIT);
    c.wait_converged(WAIT);
    let on_slave = raw_dump(c.port(s));
    assert_eq!(
        keys_of(&on_slave),
        keys_of(&before),
        "keys on the new slave"
    );
    assert_eq!(on_slave, before, "records on the new slave");
    // the slave serves them itself (balance 1)
    let mut sc = c.conn(s);
    expect_raw(
        &mut sc,
        &get_req("gets", &[LATIN1, SJIS, FFFE]),
        &cat(&[
            &value(LATIN1, 0, b"latin-1", Some(version(epoch, 1))),
            &value(SJIS, 9, b"sjis!", Some(version(epoch, 2))),
            &value(FFFE, 0, b"\x00\xff\r\n", Some(version(epoch, 1))),
            b"END\r\n",
        ]),
    );
    // and writes after the copy are replicated as usual
    expect_raw(&mut mc, &set(LATIN1, b"after"), b"STORED\r\n");
    wait_until("same dump on master and slave", WAIT, || {
        raw_dump(c.port(m)) == raw_dump(c.port(s))
    });
}

/// A second partition's master copies its share of a partition holding byte
/// keys, becomes active, and every key stays readable with its value through
/// a proxy (and through both masters).
#[test]
fn a_partition_split_with_byte_keys_completes_and_keeps_every_key() {
    let mut c = Cluster::start(3);
    let (m0, p, m1) = (0, 1, 2);
    c.first_master(m0);
    // the copies keep the versions m0 issued
    let epoch = c.new_master_epoch(m0);
    let p0: [&[u8]; 4] = [LATIN1, SJIS, FFFE, ASCII_P0];
    let p1: [&[u8]; 4] = [LATIN1_P1, SJIS_P1, FFFEFF_P1, ASCII];
    let value_of = |k: &[u8]| cat(&[b"v-", k]);
    let mut via = c.conn(p);
    for k in p0.iter().chain(p1.iter()) {
        expect_raw(&mut via, &set(k, &value_of(k)), b"STORED\r\n");
    }
    let all: Vec<(&[u8], Vec<u8>)> = p0
        .iter()
        .chain(p1.iter())
        .map(|k| (*k, value_of(k)))
        .collect();
    let pairs: Vec<(&[u8], &[u8])> = all.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    assert_eq!(raw_dump(c.port(m0)), fresh(epoch, &pairs));

    // the new partition (as Cluster::add_partition, with the log on failure)
    c.role_ok(m1, "master 1 1");
    let tt = c.tt(m1);
    wait_record(&c, m1, &rec("master", "ready", 1, 1, tt), WAIT);
    c.state_ok(m1, "active");
    c.wait_records(&[(m1, rec("master", "active", 1, 1, tt))], WAIT);
    c.wait_converged(WAIT);

    // placement: partition 1's keys were copied to the new master, and the
    // old master drops them in the background
    let p1_pairs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .filter(|(k, _)| p1.contains(k))
        .copied()
        .collect();
    let p0_pairs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .filter(|(k, _)| p0.contains(k))
        .copied()
        .collect();
    assert_eq!(
        raw_dump(c.port(m1)),
        fresh(epoch, &p1_pairs),
        "the new master"
    );
    let want_m0 = fresh(epoch, &p0_pairs);
    wait_until("the moved keys dropped from the old master", WAIT, || {
        raw_dump(c.port(m0)) == want_m0
    });

    // every key, through the proxy and through both masters
    let keys: Vec<&[u8]> = all.iter().map(|(k, _)| *k).collect();
    let mut want_all = Vec::new();
    for (k, v) in &all {
        want_all.extend_from_slice(&value(k, 0, v, None));
    }
    want_all.extend_from_slice(b"END\r\n");
    let mut via = c.conn(p);
    for (k, v) in &all {
        expect_raw(&mut via, &get_req("get", &[k]), &hit(k, 0, v));
    }
    expect_raw(&mut via, &get_req("get", &keys), &want_all);
    for i in [m0, m1] {
        let mut conn = c.conn(i);
        expect_raw(&mut conn, &get_req("get", &keys), &want_all);
        conn.in_sync();
    }
    // writes go on: each lands on its partition's master
    expect_raw(&mut via, &set(LATIN1_P1, b"new"), b"STORED\r\n");
    expect_raw(&mut via, &set(LATIN1, b"new"), b"STORED\r\n");
    expect_raw(
        &mut c.conn(m1),
        &get_req("get", &[LATIN1_P1]),
        &hit(LATIN1_P1, 0, b"new"),
    );
    expect_raw(
        &mut c.conn(m0),
        &get_req("get", &[LATIN1]),
        &hit(LATIN1, 0, b"new"),
    );
    via.in_sync();
}
