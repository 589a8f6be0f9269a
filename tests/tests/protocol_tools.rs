//! Real client programs against flared over the memcached protocols other
//! than the text one, each against a standalone flared and against the proxy
//! node of a two-partition cluster (index, the masters of partitions 0 and 1,
//! and a proxy node):
//!
//! * libmemcached's `memccp`, `memccat` and `memcrm` with `--binary` (the
//!   memcached binary protocol: SET, GETK, DELETE, QUIT): files copied in,
//!   read back byte for byte, checked with the text protocol on every node
//!   and, in the cluster, on the partition each key belongs to; then removed.
//! * the meta-memcache Python client (memcached 1.6 meta protocol) running
//!   `tests/python/meta_client.py`, which checks the results itself; then the
//!   keys it leaves are checked where they landed.
//!
//! The programs come from `scripts/install-deps.sh` (Debian's
//! libmemcached-tools, and a venv with meta-memcache whose python
//! `scripts/env.sh` exports as `FLARE_PYTHON`). The tests fail, rather than
//! skip, without them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use flare_e2e::{
    bin_path, dump_keys, dump_sorted, run_bounded, Cluster, Conn, Flared, P0, P1, WAIT,
};

/// How long one run of a libmemcached tool may take.
const TOOL_LIMIT: Duration = Duration::from_secs(60);
/// How long the meta client script may take.
const SCRIPT_LIMIT: Duration = Duration::from_secs(180);

/// Nodes of [`two_partitions`].
const MASTER0: usize = 0;
const MASTER1: usize = 1;
const PROXY: usize = 2;

/// An index, node 0 the master of partition 0, node 1 the master of the
/// partition 1 added after it, node 2 a proxy; every node knows the map.
fn two_partitions() -> Cluster {
    let mut c = Cluster::start(3);
    c.first_master(MASTER0);
    c.add_partition(MASTER1, 1, WAIT);
    c
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    v.sort();
    v
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---- libmemcached's tools, binary protocol ----

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The files the tools copy: the file name is the key (memccp uses the base
/// name), on both partitions of two.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("bar", b"plain text".to_vec()),
        ("baz", Vec::new()),
        (
            "foo",
            b"a line\r\nEND\r\nVALUE x 0 1\r\n\0\xff binary".to_vec(),
        ),
        ("key0", b"0".to_vec()),
        ("key1", vec![0u8; 4096]),
        // ~200 KiB of random bytes on each partition
        ("key2", random_bytes(200 * 1024, 2)),
        ("key3", random_bytes(200 * 1024 + 13, 3)),
        ("test_key1", random_bytes(1000, 4)),
        ("user:1000", b"{\"name\": \"flare\"}\n".to_vec()),
    ]
}

/// `tool --binary --servers=127.0.0.1:<port> <args>`, bounded.
fn tool(name: &str, port: u16, args: &[OsString]) -> Output {
    if let Err(e) = Command::new(name).arg("--version").output() {
        panic!("{name}: {e}: install libmemcached-tools (scripts/install-deps.sh)");
    }
    let mut cmd = Command::new(name);
    cmd.arg("--binary")
        .arg(format!("--servers=127.0.0.1:{port}"))
        .args(args);
    run_bounded(cmd, TOOL_LIMIT)
}

fn keys_of(files: &[(&str, Vec<u8>)]) -> Vec<OsString> {
    files.iter().map(|(k, _)| OsString::from(k)).collect()
}

/// What `memccat` prints for a value: the bytes, then a newline.
fn catted(value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    v.push(b'\n');
    v
}

/// Copy the files in through `port` with memccp, read them back with
/// memccat, check each value with a text `get` through every port of
/// `readers` and (when given) placement with `dump` on the masters of
/// partitions 0 and 1 (and that the nodes of `stores_nothing` store
/// nothing), then remove them with memcrm.
fn binary_tools_round_trip(
    port: u16,
    readers: &[u16],
    masters: Option<[u16; 2]>,
    stores_nothing: &[u16],
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = files();
    let paths: Vec<OsString> = files
        .iter()
        .map(|(k, v)| {
            let p = dir.path().join(k);
            std::fs::write(&p, v).expect("write file");
            p.into_os_string()
        })
        .collect();
    let keys = keys_of(&files);

    // copy in, in one run
    let out = tool("memccp", port, &paths);
    assert!(out.status.success(), "memccp: {}", show(&out));
    // with flags
    let flagged = dir.path().join("hello");
    std::fs::write(&flagged, b"with flags").expect("write file");
    let mut args = vec![OsString::from("--flags=4242")];
    args.push(flagged.into_os_string());
    let out = tool("memccp", port, &args);
    assert!(out.status.success(), "memccp --flags: {}", show(&out));

    // read back, one key a run and all keys in one run
    for (k, v) in &files {
        let out = tool("memccat", port, &[OsString::from(k)]);
        assert!(out.status.success(), "memccat {k}: {}", show(&out));
        assert!(
            out.stdout == catted(v),
            "memccat {k}: {} bytes back, {} stored (first bytes {:?})",
            out.stdout.len(),
            v.len(),
            &out.stdout[..out.stdout.len().min(64)]
        );
    }
    let out = tool("memccat", port, &keys);
    assert!(out.status.success(), "memccat (all keys): {}", show(&out));
    let want: Vec<u8> = files.iter().flat_map(|(_, v)| catted(v)).collect();
    assert!(
        out.stdout == want,
        "memccat of every key: {} bytes back, {} expected",
        out.stdout.len(),
        want.len()
    );
    let out = tool(
        "memccat",
        port,
        &[OsString::from("--flags"), OsString::from("hello")],
    );
    assert!(
        out.status.success(),
        "memccat --flags hello: {}",
        show(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "4242\nwith flags\n",
        "memccat --flags hello"
    );

    // the same records through the text protocol, on every node
    for &r in readers {
        let mut c = Conn::connect(r);
        for (k, v) in &files {
            assert_eq!(c.get(k), Some((0, v.clone())), "text get {k} on port {r}");
        }
        assert_eq!(
            c.get("hello"),
            Some((4242, b"with flags".to_vec())),
            "text get hello on port {r}"
        );
    }
    // where they are stored
    let mut all: Vec<&str> = files.iter().map(|(k, _)| *k).collect();
    all.push("hello");
    if let Some([m0, m1]) = masters {
        let p0: Vec<&str> = all.iter().copied().filter(|k| P0.contains(k)).collect();
        let p1: Vec<&str> = all.iter().copied().filter(|k| P1.contains(k)).collect();
        assert_eq!(p0.len() + p1.len(), all.len(), "every key is in P0 or P1");
        let (d0, d1) = (dump_sorted(m0), dump_sorted(m1));
        assert_eq!(dump_keys(&d0), sorted(&p0), "keys on partition 0");
        assert_eq!(dump_keys(&d1), sorted(&p1), "keys on partition 1");
        for (k, v) in &files {
            let r = d0.iter().chain(d1.iter()).find(|r| r.key == *k);
            assert_eq!(r.map(|r| &r.value), Some(v), "{k} as its master stores it");
        }
    } else {
        assert_eq!(dump_keys(&dump_sorted(port)), sorted(&all), "stored keys");
    }
    for &p in stores_nothing {
        assert!(dump_sorted(p).is_empty(), "port {p} stores nothing");
    }

    // remove, in one run; then they are gone everywhere
    let mut keys = keys;
    keys.push(OsString::from("hello"));
    let out = tool("memcrm", port, &keys);
    assert!(out.status.success(), "memcrm: {}", show(&out));
    for (k, _) in &files {
        let out = tool("memccat", port, &[OsString::from(k)]);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "memccat {k} after memcrm: {}",
            show(&out)
        );
    }
    for &r in readers {
        let mut c = Conn::connect(r);
        for k in &all {
            assert_eq!(c.get(k), None, "text get {k} on port {r} after memcrm");
        }
    }
    // removing a missing key fails
    let out = tool("memcrm", port, &[OsString::from("bar")]);
    assert!(
        !out.status.success(),
        "memcrm of a missing key: {}",
        show(&out)
    );
    for p in masters.map(|m| m.to_vec()).unwrap_or_else(|| vec![port]) {
        assert!(dump_sorted(p).is_empty(), "port {p} after memcrm");
    }
}

#[test]
fn libmemcached_binary_tools_on_a_standalone_node() {
    let f = Flared::start();
    binary_tools_round_trip(f.port, &[f.port], None, &[]);
    Conn::connect(f.port).in_sync();
}

#[test]
fn libmemcached_binary_tools_through_a_proxy_node() {
    let c = two_partitions();
    let ports = [c.port(MASTER0), c.port(MASTER1), c.port(PROXY)];
    binary_tools_round_trip(
        c.port(PROXY),
        &ports,
        Some([c.port(MASTER0), c.port(MASTER1)]),
        &[c.port(PROXY)],
    );
}

// ---- meta-memcache (meta protocol) ----

/// The python with meta-memcache: `$FLARE_PYTHON` (scripts/env.sh), else the
/// venv scripts/install-deps.sh makes in the cargo target dir, else `python3`
/// (the script then says what is missing).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FLARE_PYTHON") {
        return PathBuf::from(p);
    }
    let flared = bin_path("flared");
    let venv = flared
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("pyvenv/bin/python"));
    match venv {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("python3"),
    }
}

/// Run tests/python/meta_client.py against `port` with `--keep`, and check
/// that it passed.
fn meta_client(port: u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/meta_client.py");
    let py = python();
    let mut cmd = Command::new(&py);
    cmd.arg(&script)
        .arg(format!("127.0.0.1:{port}"))
        .arg("--keep");
    let out = run_bounded(cmd, SCRIPT_LIMIT);
    assert!(
        out.status.success(),
        "{} {}: {}",
        py.display(),
        script.display(),
        show(&out)
    );
}

/// What meta_client.py --keep leaves: `m-<key>` (client flag 0) for every
/// key of P0 and P1.
#[track_caller]
fn expect_kept(c: &mut Conn) {
    for k in P0.iter().chain(P1.iter()) {
        assert_eq!(
            c.get(k),
            Some((0, format!("m-{k}").into_bytes())),
            "text get {k} after the meta client"
        );
    }
}

#[test]
fn meta_client_on_a_standalone_node() {
    let f = Flared::start();
    meta_client(f.port);
    let mut c = f.connect();
    expect_kept(&mut c);
    let mut all: Vec<&str> = P0.iter().chain(P1.iter()).copied().collect();
    all.sort();
    assert_eq!(dump_keys(&dump_sorted(f.port)), sorted(&all));
    c.in_sync();
}

#[test]
fn meta_client_through_a_proxy_node() {
    let c = two_partitions();
    meta_client(c.port(PROXY));
    for i in [MASTER0, MASTER1, PROXY] {
        expect_kept(&mut c.conn(i));
    }
    assert_eq!(dump_keys(&dump_sorted(c.port(MASTER0))), sorted(&P0));
    assert_eq!(dump_keys(&dump_sorted(c.port(MASTER1))), sorted(&P1));
    assert!(
        dump_sorted(c.port(PROXY)).is_empty(),
        "the proxy stores nothing"
    );
}
