//! `flare-admin` end to end: the operator's tool (crates/admin) run as a
//! process against a real flarei and real flared nodes. The cluster is set
//! up and changed with flare-admin alone (master, slave, balance, remove,
//! reconstruct), its data dumped, flushed, restored and verified, and the
//! read-only sub-commands (list, stats, summary, part, index, ping) checked
//! against what the daemons themselves say; exit codes (0 success, 1
//! failure, 2 wrong arguments), `--dry-run` and the confirmation prompt
//! leave the node map alone.
//!
//! Every wait is a bounded poll; each flare-admin run is killed and fails
//! the test after [`CMD_LIMIT`].

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flare_e2e::{
    bin_path, expect_value, free_port, rec, run_bounded, run_bounded_with_input, wait_until,
    Cluster, Conn, NodeRec, MAX_LINES, P0, P1, WAIT,
};
use serde_json::Value;

/// The longest one flare-admin run may take (a copy, a reconstruction).
const CMD_LIMIT: Duration = Duration::from_secs(120);

/// The dump file's first line (docs/dump-format.md).
const MAGIC: &[u8] = b"FLARE-DUMP 1\r\n";

// ---- running flare-admin ----

/// `flare-admin -i 127.0.0.1:<index> <args>` (no index taken from the
/// environment).
fn admin_cmd<S: AsRef<std::ffi::OsStr>>(index: u16, args: &[S]) -> Command {
    let mut cmd = Command::new(bin_path("flare-admin"));
    cmd.env_remove("FLARE_INDEX_SERVER")
        .env_remove("FLARE_INDEX_SERVER_PORT")
        .arg("-i")
        .arg(format!("127.0.0.1:{index}"))
        .args(args);
    cmd
}

/// Run flare-admin against the index on `index` (stdin: /dev/null).
fn admin(index: u16, args: &[&str]) -> Output {
    run_bounded(admin_cmd(index, args), CMD_LIMIT)
}

/// Run flare-admin with `input` piped into its stdin (the confirmation),
/// stdout and stderr captured; kill it and fail the test after `limit`.
fn admin_with_stdin(index: u16, args: &[&str], input: &[u8], limit: Duration) -> Output {
    run_bounded_with_input(admin_cmd(index, args), Some(input), limit)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code is `code`; the message shows both outputs.
#[track_caller]
fn expect_code(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: exit status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Run flare-admin and expect exit 0; its stdout.
#[track_caller]
fn admin_ok(index: u16, args: &[&str]) -> String {
    let o = admin(index, args);
    expect_code(&o, 0, &format!("flare-admin {}", args.join(" ")));
    stdout(&o)
}

/// stdout parsed as one JSON document.
#[track_caller]
fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

/// Run `flare-admin --json <args>`, expect exit 0, parse stdout.
#[track_caller]
fn admin_json(index: u16, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = admin(index, &all);
    expect_code(&o, 0, &format!("flare-admin {}", all.join(" ")));
    json_of(&o)
}

// ---- what the daemons say ----

/// The index's record of `key`.
fn record_of(c: &Cluster, key: &str) -> Option<NodeRec> {
    c.records()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, r)| r)
}

/// `stats` value `name` of the node on `port`, as a number.
fn stat_u64(port: u16, name: &str) -> u64 {
    Conn::connect(port).stat(name).parse().expect(name)
}

/// The index's `node_map_version`.
fn map_version(c: &Cluster) -> u64 {
    c.index_conn().map_version()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock")
}

/// A record of a node's `dump` or of a dump file, the key as raw bytes
/// (the harness's readers are text-based).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    key: Vec<u8>,
    flags: u32,
    version: u64,
    expire: i64,
    value: Vec<u8>,
}

impl Rec {
    /// What a restore keeps: everything but the version.
    fn content(&self) -> (Vec<u8>, u32, i64, Vec<u8>) {
        (
            self.key.clone(),
            self.flags,
            self.expire,
            self.value.clone(),
        )
    }
}

/// Read `VALUE <key> <flags> <bytes> <version> <expire>` records up to the
/// first other line; returns them and that line (with its CRLF).
fn read_records(r: &mut impl BufRead, what: &str) -> (Vec<Rec>, Vec<u8>) {
    let mut out = Vec::new();
    loop {
        assert!(out.len() < MAX_LINES, "{what}: no end within {MAX_LINES}");
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("{what}: reading a line: {e}"));
        assert!(
            line.ends_with(b"\r\n"),
            "{what}: truncated line {}",
            line.escape_ascii()
        );
        let Some(rest) = line.strip_prefix(b"VALUE ") else {
            return (out, line);
        };
        let f: Vec<&[u8]> = rest[..rest.len() - 2].split(|b| *b == b' ').collect();
        assert_eq!(f.len(), 5, "{what}: VALUE line {}", line.escape_ascii());
        let num = |b: &[u8]| -> i128 {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{what}: bad number in {}", line.escape_ascii()))
        };
        let len = num(f[2]) as usize;
        let mut value = vec![0u8; len + 2];
        r.read_exact(&mut value)
            .unwrap_or_else(|e| panic!("{what}: data of {}: {e}", line.escape_ascii()));
        assert_eq!(&value[len..], b"\r\n", "{what}: data block trailer");
        value.truncate(len);
        out.push(Rec {
            key: f[0].to_vec(),
            flags: num(f[1]) as u32,
            version: num(f[3]) as u64,
            expire: num(f[4]) as i64,
            value,
        });
    }
}

/// `dump` of the whole store of the node on `port`, sorted by key.
fn raw_dump(port: u16) -> Vec<Rec> {
    let mut c = Conn::connect(port);
    c.send(b"dump\r\n");
    let mut r = BufReader::with_capacity(1 << 16, c.stream);
    let (mut recs, last) = read_records(&mut r, &format!("dump of {port}"));
    assert_eq!(last, b"END\r\n", "dump of {port}");
    recs.sort();
    recs
}

/// The keys of records, as flare-admin's JSON shows them (lossy UTF-8).
fn lossy_keys(recs: &[Rec]) -> BTreeSet<String> {
    recs.iter()
        .map(|r| String::from_utf8_lossy(&r.key).into_owned())
        .collect()
}

/// `set <key> <flags> <exptime> <bytes>` + data through `c`, expecting `STORED`.
#[track_caller]
fn set_raw(c: &mut Conn, key: &[u8], flags: u32, exptime: i64, value: &[u8]) {
    let mut req = b"set ".to_vec();
    req.extend_from_slice(key);
    req.extend_from_slice(format!(" {flags} {exptime} {}\r\n", value.len()).as_bytes());
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    c.expect(&req, b"STORED\r\n");
}

/// Wait until the slave on `slave` holds exactly the master's records
/// (versions included).
#[track_caller]
fn wait_replicated(master: u16, slave: u16) {
    wait_until("the slave holds the master's records", WAIT * 2, || {
        raw_dump(master) == raw_dump(slave)
    });
}

/// A list row (or the header) as flare-admin writes it.
fn list_row(node: &str, partition: &str, role: &str, state: &str, balance: &str) -> String {
    format!("{node:<32} {partition:>9} {role:>6} {state:>6} {balance:>7}")
}

/// Index + `n` nodes; node 0 master of partition 0, node 1 its slave with
/// `slave_balance`, node 2 (if any) master of partition 1, the rest proxies;
/// set up with the index's own commands.
fn two_partitions(n: usize, slave_balance: i32) -> Cluster {
    let mut c = Cluster::start(n);
    c.first_master(0);
    c.add_slave(1, slave_balance, 0, WAIT * 2);
    if n > 2 {
        c.add_partition(2, 1, WAIT * 2);
    }
    c.wait_converged(WAIT);
    c
}

// ---- 1. the seed walk-through with flare-admin only ----

/// An index and four proxies become two partitions (a master with a slave,
/// a master) with flare-admin alone; data written before the second
/// partition stays readable through every node; a balance change, a
/// graceful stop and `remove --wait`; `list` byte for byte.
#[test]
fn seed_walk_through_with_flare_admin_only() {
    let mut c = Cluster::start(4);
    let idx = c.index.port;
    let k: Vec<String> = (0..4).map(|i| c.key(i)).collect();
    let tt: Vec<i32> = (0..4).map(|i| c.tt(i)).collect();

    // the first partition's master (it may go straight to active)
    let out = admin_ok(
        idx,
        &["--force", "master", "--activate", &format!("{}:1:0", k[0])],
    );
    assert!(out.contains(&format!("{}: active", k[0])), "{out}");
    assert_eq!(
        record_of(&c, &k[0]),
        Some(rec("master", "active", 0, 1, tt[0])),
        "after `master --activate`: {out}"
    );

    // a slave: exit 0 only once it copied and is active with its balance
    let out = admin_ok(idx, &["--force", "slave", &format!("{}:1:0", k[1])]);
    assert_eq!(
        record_of(&c, &k[1]),
        Some(rec("slave", "active", 0, 1, tt[1])),
        "after `slave`: {out}"
    );
    c.wait_converged(WAIT);

    // data through a proxy, readable through every node
    let keys: Vec<String> = (0..200).map(|i| format!("seed-{i:03}")).collect();
    let mut w = c.conn(3);
    for key in &keys {
        w.set(key, 0, format!("v-{key}").as_bytes());
    }
    wait_replicated(c.port(0), c.port(1));
    assert_eq!(raw_dump(c.port(0)).len(), keys.len());
    for i in 0..4 {
        let mut r = c.conn(i);
        for key in &keys {
            expect_value(&mut r, key, format!("v-{key}").as_bytes());
        }
    }

    // the second partition: copied, ready, activated
    let out = admin_ok(
        idx,
        &["--force", "master", "--activate", &format!("{}:1:1", k[2])],
    );
    assert_eq!(
        record_of(&c, &k[2]),
        Some(rec("master", "active", 1, 1, tt[2])),
        "after the second `master --activate`: {out}"
    );
    c.wait_converged(WAIT);
    let on_p1 = raw_dump(c.port(2));
    assert!(
        !on_p1.is_empty() && on_p1.len() < keys.len(),
        "the new partition took some of the keys: {}",
        on_p1.len()
    );
    for i in 0..4 {
        let mut r = c.conn(i);
        for key in &keys {
            expect_value(&mut r, key, format!("v-{key}").as_bytes());
        }
    }

    // balance
    admin_ok(idx, &["--force", "balance", &format!("{}:2", k[1])]);
    assert_eq!(
        record_of(&c, &k[1]),
        Some(rec("slave", "active", 0, 2, tt[1]))
    );
    c.wait_converged(WAIT);

    // list, byte for byte: proxies (partition "-") first, then by
    // partition, role word and node
    let header = list_row("node", "partition", "role", "state", "balance");
    assert_eq!(
        header,
        format!(
            "{:<32} {:>9} {:>6} {:>6} {:>7}",
            "node", "partition", "role", "state", "balance"
        )
    );
    let want = [
        header.clone(),
        list_row(&k[3], "-", "proxy", "active", "0"),
        list_row(&k[0], "0", "master", "active", "1"),
        list_row(&k[1], "0", "slave", "active", "2"),
        list_row(&k[2], "1", "master", "active", "1"),
    ]
    .map(|l| format!("{l}\n"))
    .concat();
    assert_eq!(admin_ok(idx, &["list"]), want);

    // a graceful stop of the proxy, then remove --wait
    let status = c.nodes[3].terminate();
    assert!(status.success(), "flared exit: {status}");
    let out = admin_ok(idx, &["--force", "remove", "--wait", &k[3]]);
    assert!(out.contains(&format!("{}: removed", k[3])), "{out}");
    let records = c.records();
    assert!(
        records.iter().all(|(key, _)| key != &k[3]),
        "{} still in the map: {records:?}",
        k[3]
    );
    let want = [
        header,
        list_row(&k[0], "0", "master", "active", "1"),
        list_row(&k[1], "0", "slave", "active", "2"),
        list_row(&k[2], "1", "master", "active", "1"),
    ]
    .map(|l| format!("{l}\n"))
    .concat();
    assert_eq!(admin_ok(idx, &["list"]), want);
}

// ---- 2. dump, restore, verify ----

/// Byte keys, a 1 MiB value, flags and an absolute expiry survive `dump`,
/// `flush_all` everywhere and `restore` through a proxy; `verify` is clean
/// afterwards and reports a flushed slave's keys as missing.
#[test]
fn dump_restore_verify_round_trip() {
    let c = two_partitions(4, 1);
    let idx = c.index.port;
    let (m0, s0, m1, proxy) = (c.port(0), c.port(1), c.port(2), c.port(3));

    let expire = unix_now() + 3600;
    let mut w = c.conn(3);
    let mut written: Vec<(Vec<u8>, u32, i64, Vec<u8>)> = Vec::new();
    for i in 0..60u32 {
        let flags = [0, 1, 42, 65535, u32::MAX][i as usize % 5];
        written.push((
            format!("rt-{i}").into_bytes(),
            flags,
            0,
            format!("value {i}\r\nwith CRLF").into_bytes(),
        ));
    }
    written.push((b"k\xff\xfe1".to_vec(), 7, 0, b"not utf-8 key".to_vec()));
    written.push((b"\x80\x81key".to_vec(), 8, 0, vec![0, 1, 2, 255, 254]));
    written.push((b"caf\xe9".to_vec(), 9, 0, b"latin-1".to_vec()));
    written.push((
        b"big".to_vec(),
        1234,
        0,
        (0..1 << 20).map(|i: u32| (i % 251) as u8).collect(),
    ));
    written.push((b"expires".to_vec(), 5, expire, b"in an hour".to_vec()));
    written.push((b"empty".to_vec(), 3, 0, Vec::new()));
    for (key, flags, exp, value) in &written {
        set_raw(&mut w, key, *flags, *exp, value);
    }

    let masters = || {
        let mut all = raw_dump(m0);
        all.extend(raw_dump(m1));
        all.sort();
        all
    };
    let before = masters();
    let mut want: Vec<_> = written.clone();
    want.sort();
    assert_eq!(
        before.iter().map(Rec::content).collect::<Vec<_>>(),
        want,
        "the masters hold what was written"
    );
    assert!(!raw_dump(m0).is_empty() && !raw_dump(m1).is_empty());

    // dump
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("all.dump");
    let file_arg = file.to_str().expect("utf-8 path");
    let out = admin_ok(idx, &["dump", "-o", file_arg]);
    let bytes = std::fs::read(&file).expect("the dump file");
    assert!(bytes.starts_with(MAGIC), "{out}");
    let trailer = format!("END {}\r\n", before.len());
    assert!(
        bytes.ends_with(trailer.as_bytes()),
        "the file ends with {trailer:?}: {:?}",
        bytes[bytes.len().saturating_sub(40)..]
            .escape_ascii()
            .to_string()
    );
    let mut r = &bytes[MAGIC.len()..];
    let (mut in_file, last) = read_records(&mut r, "the dump file");
    assert_eq!(last, trailer.as_bytes());
    assert!(r.is_empty(), "bytes after the trailer");
    in_file.sort();
    assert_eq!(in_file, before, "the file holds the masters' records");
    assert!(
        !tmp.path().join("all.dump.part").exists(),
        "no temporary file is left"
    );

    // every node flushed (flush_all is not forwarded, so each one)
    for i in 0..4 {
        assert_eq!(
            c.conn(i).command("flush_all"),
            "OK",
            "flush_all on node {i}"
        );
    }
    assert_eq!(c.conn(3).get("rt-1"), None, "flushed");
    for port in [m0, s0, m1] {
        assert!(raw_dump(port).is_empty(), "node {port} is empty");
    }

    // restore through the proxy
    let out = admin_ok(idx, &["--force", "restore", "-i", file_arg, &c.key(3)]);
    assert!(
        out.contains(&format!(
            "{} records restored through 127.0.0.1:{proxy}",
            before.len()
        )),
        "{out}"
    );
    let after = masters();
    assert_eq!(
        after.iter().map(Rec::content).collect::<Vec<_>>(),
        before.iter().map(Rec::content).collect::<Vec<_>>(),
        "keys, flags, values and expiry are back"
    );

    // verify: clean once the slave has the restored records
    wait_replicated(m0, s0);
    let o = admin(idx, &["verify"]);
    expect_code(&o, 0, "verify");
    assert!(stdout(&o).ends_with("OK\n"), "{}", stdout(&o));
    let o = admin(idx, &["--json", "verify"]);
    expect_code(&o, 0, "--json verify");
    let v = json_of(&o);
    assert_eq!(v["ok"], Value::Bool(true), "{v}");
    assert_eq!(v["partitions"], 2, "{v}");
    assert_eq!(v["records"], before.len() as u64, "{v}");

    // the slave flushed alone: its keys are missing
    let on_master = raw_dump(m0);
    assert_eq!(c.conn(1).command("flush_all"), "OK");
    let o = admin(idx, &["--json", "verify"]);
    expect_code(&o, 1, "--json verify with a flushed slave");
    let v = json_of(&o);
    assert_eq!(v["ok"], Value::Bool(false), "{v}");
    let missing = v["missing_on_slave"].as_array().expect("missing_on_slave");
    let slave_key = c.key(1);
    assert!(
        missing.iter().all(|m| m["node"] == slave_key.as_str()),
        "{v}"
    );
    let missing_keys: BTreeSet<String> = missing
        .iter()
        .map(|m| m["key"].as_str().expect("key").to_string())
        .collect();
    assert_eq!(missing_keys, lossy_keys(&on_master), "{v}");
    for field in ["misplaced", "extra_on_slave", "differs_on_slave"] {
        assert_eq!(v[field], Value::Array(Vec::new()), "{field}: {v}");
    }
}

// ---- 3. JSON and the stats table ----

/// `--json list`, `--json stats`, `--json summary` and `--json part` carry
/// what the index and the nodes say; `stats`' header and `part` of a byte
/// key, byte for byte.
#[test]
fn json_outputs_and_stats_header() {
    let c = two_partitions(4, 1);
    let idx = c.index.port;
    let mut keys: Vec<String> = P0.iter().chain(P1.iter()).map(|k| k.to_string()).collect();
    keys.extend((0..40).map(|i| format!("json-{i}")));
    let mut w = c.conn(3);
    for key in &keys {
        w.set(key, 0, b"x");
    }
    let byte_key: &[u8] = b"k\xff\xfe1";
    set_raw(&mut w, byte_key, 0, 0, b"y");
    wait_replicated(c.port(0), c.port(1));
    let records: BTreeMap<String, NodeRec> = c.records().into_iter().collect();
    let items = |port: u16| stat_u64(port, "curr_items");

    // list
    let list = admin_json(idx, &["list"]);
    let rows = list.as_array().expect("an array");
    assert_eq!(rows.len(), 4, "{list}");
    for row in rows {
        let node = row["node"].as_str().expect("node");
        let r = &records[node];
        let port = row["port"].as_u64().expect("port") as u16;
        assert_eq!(node, format!("127.0.0.1:{port}"));
        assert_eq!(row["host"], "127.0.0.1");
        assert_eq!(row["role"], r.role.as_str(), "{row}");
        assert_eq!(row["state"], r.state.as_str(), "{row}");
        assert_eq!(row["balance"], r.balance, "{row}");
        assert_eq!(row["thread_type"], r.thread_type, "{row}");
        if r.role == "proxy" {
            assert_eq!(row["partition"], Value::Null, "{row}");
        } else {
            assert_eq!(row["partition"], r.partition, "{row}");
        }
        assert_eq!(row["items"], items(port), "{row}");
        assert!(row["uptime"].is_u64(), "{row}");
    }
    let order: Vec<&str> = rows
        .iter()
        .map(|r| r["node"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(order, [c.key(3), c.key(0), c.key(1), c.key(2)]);

    // stats
    let stats = admin_json(idx, &["stats"]);
    let rows = stats.as_array().expect("an array");
    assert_eq!(rows.len(), 4, "{stats}");
    for row in rows {
        let node = row["node"].as_str().expect("node");
        let r = &records[node];
        let port: u16 = node
            .rsplit_once(':')
            .expect("host:port")
            .1
            .parse()
            .expect("port");
        assert_eq!(row["role"], r.role.as_str(), "{row}");
        assert_eq!(row["state"], r.state.as_str(), "{row}");
        assert_eq!(row["partition"], r.partition, "{row}");
        assert_eq!(row["balance"], r.balance, "{row}");
        assert_eq!(row["reachable"], true, "{row}");
        assert_eq!(row["items"], items(port), "{row}");
        let version = Conn::connect(port).stat("version");
        assert_eq!(row["version"], version.as_str(), "{row}");
        assert!(row["conn"].as_u64().is_some_and(|n| n >= 1), "{row}");
    }

    // summary
    let summary = admin_json(idx, &["summary"]);
    let total = items(c.port(0)) + items(c.port(2));
    assert_eq!(total, keys.len() as u64 + 1);
    let bytes = stat_u64(c.port(0), "bytes") + stat_u64(c.port(2), "bytes");
    assert_eq!(
        summary,
        serde_json::json!({
            "partitions": 2, "nodes": 4, "masters": 2, "slaves": 1, "proxies": 1,
            "items": total, "bytes": bytes, "unreachable": [],
        })
    );

    // part: the partition where each key is stored, and its master
    let on_p0: BTreeSet<Vec<u8>> = raw_dump(c.port(0)).into_iter().map(|r| r.key).collect();
    let on_p1: BTreeSet<Vec<u8>> = raw_dump(c.port(2)).into_iter().map(|r| r.key).collect();
    let mut args = vec!["part"];
    args.extend(keys.iter().map(String::as_str));
    let part = admin_json(idx, &args);
    let rows = part.as_array().expect("an array");
    assert_eq!(rows.len(), keys.len());
    for (row, key) in rows.iter().zip(&keys) {
        assert_eq!(row["key"], key.as_str());
        let (p, master) = if on_p0.contains(key.as_bytes()) {
            (0, c.key(0))
        } else {
            assert!(on_p1.contains(key.as_bytes()), "{key} is stored");
            (1, c.key(2))
        };
        assert_eq!(row["partition"], p, "{row}");
        assert_eq!(row["master"], master.as_str(), "{row}");
    }
    for key in P0 {
        assert!(on_p0.contains(key.as_bytes()), "{key}");
    }
    for key in P1 {
        assert!(on_p1.contains(key.as_bytes()), "{key}");
    }
    // a byte key, as given, in text
    let (p, master) = if on_p0.contains(byte_key) {
        (0, c.key(0))
    } else {
        assert!(on_p1.contains(byte_key));
        (1, c.key(2))
    };
    let o = run_bounded(
        admin_cmd(
            idx,
            &[
                OsString::from("part"),
                OsString::from_vec(byte_key.to_vec()),
            ],
        ),
        CMD_LIMIT,
    );
    expect_code(&o, 0, "part <byte key>");
    let mut want = byte_key.to_vec();
    want.extend_from_slice(format!(" {p} {master}\n").as_bytes());
    assert_eq!(
        o.stdout.escape_ascii().to_string(),
        want.escape_ascii().to_string()
    );

    // the stats table: flare-tools' header, one row per node
    let text = admin_ok(idx, &["stats"]);
    let width = (0..4).map(|i| c.key(i).len()).max().unwrap_or(0).max(25);
    assert_eq!(width, 25);
    let header = format!(
        "{:<25} {:>6} {:>6} {:>9} {:>7} {:>8} {:>4} {:>6} {:>3} {:>4} {:>6} {:>7}",
        "hostname:port",
        "state",
        "role",
        "partition",
        "balance",
        "items",
        "conn",
        "behind",
        "hit",
        "size",
        "uptime",
        "version"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first().copied(), Some(header.as_str()), "{text}");
    assert_eq!(lines.len(), 5, "{text}");
    // rows: by partition, role word and node
    let firsts: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(firsts, [c.key(3), c.key(0), c.key(1), c.key(2)], "{text}");
    let m0 = lines[2];
    assert!(
        m0.starts_with(&format!(
            "{:<25} {:>6} {:>6} {:>9} {:>7} {:>8} ",
            c.key(0),
            "active",
            "master",
            0,
            1,
            items(c.port(0))
        )),
        "{m0:?}"
    );
}

// ---- 4. exit codes and safety ----

/// Wrong arguments exit 2, an unreachable index 1 naming it; `--dry-run`
/// and a "no" at the prompt change nothing, a "yes" applies.
#[test]
fn exit_codes_dry_run_and_confirmation() {
    let c = Cluster::start(2);
    let idx = c.index.port;
    let k0 = c.key(0);
    let tt0 = c.tt(0);

    // a malformed node: 2, one line naming it
    let o = admin(idx, &["master", "n1:abc:1:0"]);
    expect_code(&o, 2, "master n1:abc:1:0");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("n1:abc:1:0"), "{err}");
    assert!(o.stdout.is_empty(), "{}", stdout(&o));

    // an unknown sub-command: 2
    let o = admin(idx, &["frobnicate"]);
    expect_code(&o, 2, "frobnicate");

    // an index that does not run: 1, naming it
    let dead = free_port();
    let o = admin(dead, &["list"]);
    expect_code(&o, 1, "list without an index");
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{dead}")),
        "{}",
        stderr(&o)
    );
    // the same with -p
    let o = run_bounded(
        {
            let mut cmd = Command::new(bin_path("flare-admin"));
            cmd.env_remove("FLARE_INDEX_SERVER")
                .env_remove("FLARE_INDEX_SERVER_PORT")
                .args(["-i", "127.0.0.1", "-p", &dead.to_string(), "list"]);
            cmd
        },
        CMD_LIMIT,
    );
    expect_code(&o, 1, "list -p <dead>");
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{dead}")),
        "{}",
        stderr(&o)
    );

    let proxy = rec("proxy", "active", -1, 0, tt0);
    let v0 = map_version(&c);
    let spec = format!("{k0}:1:0");

    // --dry-run: the plan, nothing changed
    let o = admin(idx, &["--dry-run", "master", &spec]);
    expect_code(&o, 0, "--dry-run master");
    let out = stdout(&o);
    assert!(out.starts_with("plan:\n"), "{out}");
    assert!(
        out.contains(&format!("node role 127.0.0.1 {} master 1 0", c.port(0))),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert_eq!(map_version(&c), v0);
    assert_eq!(record_of(&c, &k0), Some(proxy.clone()));

    // no at the prompt: aborted, nothing changed
    let o = admin_with_stdin(idx, &["master", &spec], b"n\n", CMD_LIMIT);
    expect_code(&o, 1, "master, answered n");
    assert!(stderr(&o).contains("aborted"), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("commit these changes? (y/n)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(map_version(&c), v0);
    assert_eq!(record_of(&c, &k0), Some(proxy.clone()));
    // no answer at all (stdin closed) aborts too
    let o = admin(idx, &["master", &spec]);
    expect_code(&o, 1, "master, stdin closed");
    assert_eq!(map_version(&c), v0);

    // yes: applied
    let o = admin_with_stdin(idx, &["master", "--activate", &spec], b"y\n", CMD_LIMIT);
    expect_code(&o, 0, "master, answered y");
    assert_eq!(record_of(&c, &k0), Some(rec("master", "active", 0, 1, tt0)));
    assert!(map_version(&c) > v0);

    // a precondition that does not hold: 1, nothing changed
    let v1 = map_version(&c);
    let o = admin(idx, &["--force", "master", &format!("{}:1:0", c.key(1))]);
    expect_code(&o, 1, "a second master of partition 0");
    assert!(
        stderr(&o).contains("already has a master"),
        "{}",
        stderr(&o)
    );
    assert_eq!(map_version(&c), v1);
}

// ---- 5. reconstruct ----

/// `reconstruct --unsafe` of a slave: it copies its partition anew and ends
/// an active slave with its balance and the master's records. Without
/// `--unsafe` (no other slave) it is refused and nothing changes.
#[test]
fn reconstruct_a_slave() {
    let c = two_partitions(2, 3);
    let idx = c.index.port;
    let (m, s) = (c.port(0), c.port(1));
    let ks = c.key(1);
    let tt = c.tt(1);
    let mut w = c.conn(0);
    for i in 0..150 {
        w.set(&format!("rc-{i}"), i, format!("value {i}").as_bytes());
    }
    wait_replicated(m, s);

    let v0 = map_version(&c);
    let o = admin(idx, &["--force", "reconstruct", &ks]);
    expect_code(&o, 1, "reconstruct without --unsafe");
    assert!(stderr(&o).contains("--unsafe"), "{}", stderr(&o));
    assert_eq!(map_version(&c), v0);

    let out = admin_ok(idx, &["--force", "reconstruct", "--unsafe", &ks]);
    assert_eq!(
        record_of(&c, &ks),
        Some(rec("slave", "active", 0, 3, tt)),
        "after reconstruct: {out}"
    );
    assert_eq!(raw_dump(m).len(), 150);
    wait_replicated(m, s);
}

// ---- 6. index ----

/// `index` prints the index's saved `flare.xml` byte for byte;
/// `--increment` adds to its version; `-o` writes the same to a file.
#[test]
fn index_matches_the_state_file() {
    let c = two_partitions(3, 1);
    let idx = c.index.port;
    let mut printed = String::new();
    wait_until("flare-admin index equals flare.xml", WAIT, || {
        printed = admin_ok(idx, &["index"]);
        std::fs::read_to_string(c.index.state_file()).is_ok_and(|f| f == printed)
    });
    let v = map_version(&c);
    assert!(
        printed.contains(&format!("<version>{v}</version>\n")),
        "{printed}"
    );
    let bumped = admin_ok(idx, &["index", "--increment", "5"]);
    assert_eq!(
        bumped,
        printed.replace(
            &format!("<version>{v}</version>"),
            &format!("<version>{}</version>", v + 5)
        )
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("flare.xml");
    let out = admin_ok(idx, &["index", "-o", file.to_str().expect("utf-8")]);
    assert_eq!(out, "");
    assert_eq!(std::fs::read_to_string(&file).expect("written"), printed);
}

// ---- 7. ping ----

/// `ping` of a live node (and of the index) prints `alive` and exits 0; a
/// dead port exits 1 and names it.
#[test]
fn ping_live_and_dead() {
    let c = Cluster::start(1);
    let idx = c.index.port;
    let node = c.key(0);
    assert_eq!(admin_ok(idx, &["ping", &node]), "alive\n");
    assert_eq!(admin_ok(idx, &["ping"]), "alive\n");
    let dead = format!("127.0.0.1:{}", free_port());
    let o = admin(idx, &["ping", &dead]);
    expect_code(&o, 1, "ping of a dead port");
    assert!(
        stdout(&o).starts_with(&format!("{dead} dead")),
        "{}",
        stdout(&o)
    );
    let o = admin(idx, &["--json", "ping", &node, &dead]);
    expect_code(&o, 1, "--json ping with a dead port");
    let v = json_of(&o);
    assert_eq!(v[0]["node"], node.as_str(), "{v}");
    assert_eq!(v[0]["alive"], true, "{v}");
    assert_eq!(v[1]["node"], dead.as_str(), "{v}");
    assert_eq!(v[1]["alive"], false, "{v}");
}
