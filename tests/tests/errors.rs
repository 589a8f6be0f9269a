//! Parse errors and limits: protocol.md §2, §3, §33, TV-10 … TV-20, TV-62, and
//! the flare-rs limits (key length, `max-item-size`, `max-line-size`,
//! `max-connection`, `net-read-timeout`, binary requests).

use std::time::{Duration, Instant};

use flare_e2e::{connect_served, Conn, Flared, Flarei};

/// TV-10 … TV-13 and TV-20: one-line errors.
#[test]
fn tv10_to_tv13_tv20_simple_errors() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > bogus
        < ERROR
        > GET foo
        < ERROR
        >
        < ERROR
        > get
        < ERROR
        > gets
        < ERROR
        ",
    );
    // TV-20: TAB is not a separator
    c.expect(b"get\tfoo\r\n", b"ERROR\r\n");
    // a bare LF empty line too
    c.expect(b"\n", b"ERROR\r\n");
    // commands that memcached knows but Flare does not (the meta commands
    // are served: tests/tests/meta_protocol.rs)
    c.transcript(
        "
        > gats 0 foo
        < ERROR
        > getq foo
        < ERROR
        > noop
        < ERROR
        > lru_crawler metadump all
        < ERROR
        > watch
        < ERROR
        > cache_memlimit 100
        < ERROR
        > slabs reassign 1 2
        < ERROR
        > node
        < ERROR
        > node bogus
        < ERROR
        ",
    );
    c.in_sync();
}

/// TV-14 … TV-19: a storage command that fails to parse does not consume its
/// data block, which is then read as a request line.
#[test]
fn tv14_to_tv19_storage_parse_errors() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set foo 0 0 abc
        > hello
        < ERROR
        < ERROR
        > set foo 0 -1 1
        > x
        < ERROR
        < ERROR
        > set foo 4294967296 0 1
        > x
        < ERROR
        < ERROR
        > set foo 4294967295 0 1
        > x
        < STORED
        > set foo 0 0 1 later
        > x
        < ERROR
        < ERROR
        > set foo 0 0 noreply
        > x
        < ERROR
        < ERROR
        > cas foo 0 0 1
        > x
        < ERROR
        < ERROR
        ",
    );
    // further §2.3 / §6.1 rules
    c.transcript(
        "
        > set k 0 0 3abc
        > xyz
        < ERROR
        < ERROR
        > set foo 0 0 1 -1
        > x
        < ERROR
        < ERROR
        > set foo -1 0 1
        > x
        < ERROR
        < ERROR
        > set foo +1 0 1
        > x
        < ERROR
        < ERROR
        > set foo 0 9223372036854775808 1
        > x
        < ERROR
        < ERROR
        > set foo 0 0 1 18446744073709551616
        > x
        < ERROR
        < ERROR
        > set foo 0 0
        < ERROR
        > set
        < ERROR
        > add foo 0 0 1 sync later
        > x
        < ERROR
        < ERROR
        ",
    );
    // the data of a rejected command executes when it is a valid request
    c.transcript(
        "
        > set foo 0 0 bad
        > get foo
        < ERROR
        < VALUE foo 4294967295 1
        < x
        < END
        ",
    );
    // leading zeros are fine, options in any order and repeated
    c.transcript(
        "
        > set z 007 0 001 noreply async noreply sync
        > 1
        > get z
        < VALUE z 7 1
        < 1
        < END
        ",
    );
}

/// Keys: 250 … 8191 bytes work; 8192 bytes and more are `ERROR` (flare-rs
/// instead of TV-62's split), and the data block is then read as a line.
#[test]
fn tv62_key_length_limits() {
    let f = Flared::start();
    let mut c = f.connect();
    for len in [250usize, 251, 1000, 8191] {
        let key = "k".repeat(len);
        c.set(&key, 1, format!("len{len}").as_bytes());
        assert_eq!(
            c.get(&key),
            Some((1, format!("len{len}").into_bytes())),
            "key of {len} bytes"
        );
    }
    // TV-62's request (8191 x 'b' then '7'), now refused
    let long = format!("{}7", "b".repeat(8191));
    c.expect(
        format!("set {long} 0 0 1\r\nx\r\n").as_bytes(),
        b"ERROR\r\nERROR\r\n",
    );
    c.expect(format!("get {long}\r\n").as_bytes(), b"ERROR\r\n");
    c.expect(format!("get a {long}\r\n").as_bytes(), b"ERROR\r\n");
    c.expect(format!("delete {long}\r\n").as_bytes(), b"ERROR\r\n");
    c.expect(format!("incr {long} 1\r\n").as_bytes(), b"ERROR\r\n");
    let huge = "h".repeat(100_000);
    c.expect(
        format!("set {huge} 0 0 2\r\nab\r\n").as_bytes(),
        b"ERROR\r\nERROR\r\n",
    );
    // nothing was stored under the 8191-byte prefix (the original stored it)
    let prefix = "b".repeat(8191);
    c.expect(format!("get {prefix}\r\n").as_bytes(), b"END\r\n");
    c.in_sync();
}

/// Values above 1 MB work (no memcached 1 MB limit): 2 MB set + get.
#[test]
fn two_megabyte_value() {
    let f = Flared::start();
    let mut c = f.connect();
    let value: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    c.set("big", 9, &value);
    let mut expected = format!("VALUE big 9 {}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    c.expect(b"get big\r\n", &expected);
    // and appending to it
    c.expect(b"append big 0 0 3\r\nxyz\r\n", b"STORED\r\n");
    let (flags, got) = c.get("big").expect("big");
    assert_eq!(flags, 9);
    assert_eq!(got.len(), value.len() + 3);
    assert_eq!(&got[value.len()..], b"xyz");
    assert!(got[..value.len()] == value[..]);
}

/// A declared size above `max-item-size`: `SERVER_ERROR object too large for
/// cache`, the block is skipped, the connection stays in sync.
#[test]
fn max_item_size() {
    let f = Flared::start_with("max-item-size = 1000", &[]);
    let mut c = f.connect();
    c.set("ok", 0, &[b'a'; 1000]);
    let mut req = b"set big 0 0 1001\r\n".to_vec();
    req.extend_from_slice(&[b'b'; 1001]);
    req.extend_from_slice(b"\r\nget big\r\n");
    c.expect(&req, b"SERVER_ERROR object too large for cache\r\nEND\r\n");
    // the skipped block arrives in pieces
    c.send(b"append ok 0 0 5000\r\n");
    c.send(&[b'c'; 3000]);
    std::thread::sleep(Duration::from_millis(50));
    c.send(&[b'c'; 2000]);
    std::thread::sleep(Duration::from_millis(50));
    c.expect(
        b"\r\nversion\r\n",
        b"SERVER_ERROR object too large for cache\r\nVERSION flare-1.3.4\r\n",
    );
    // with noreply the error is still sent
    let mut req = b"set big2 0 0 2000 noreply\r\n".to_vec();
    req.extend_from_slice(&[b'd'; 2000]);
    req.extend_from_slice(b"\r\n");
    c.expect(&req, b"SERVER_ERROR object too large for cache\r\n");
    let (_, v) = c.get("ok").expect("ok");
    assert_eq!(v, vec![b'a'; 1000]);
    c.expect(b"get big big2\r\n", b"END\r\n");
}

/// A 2 GB declared size is refused at once (nothing is allocated) with the
/// default `max-item-size`; sizes >= 2147483646 are parse errors.
#[test]
fn huge_declared_sizes() {
    let f = Flared::start();
    let mut c = f.connect();
    let t = Instant::now();
    c.expect(
        b"set k 0 0 2147483640\r\n",
        b"SERVER_ERROR object too large for cache\r\n",
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    drop(c);
    let rss = rss_kib(f.pid());
    assert!(
        rss < 512 * 1024,
        "flared uses {rss} KiB after a 2 GB declared size"
    );

    let mut c = f.connect();
    c.transcript(
        "
        > set k 0 0 2147483646
        < ERROR
        > set k 0 0 2147483647
        < ERROR
        > set k 0 0 2147483648
        < ERROR
        > set k 0 0 99999999999999999999999
        < ERROR
        > get k
        < END
        ",
    );
    let mut c = f.connect();
    c.expect(
        b"set k 0 0 2147483645\r\n",
        b"SERVER_ERROR object too large for cache\r\n",
    );
    drop(c);
    let mut c = f.connect();
    c.in_sync();
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A request line longer than `max-line-size` without a newline:
/// `CLIENT_ERROR line too long`, then the connection is closed.
#[test]
fn max_line_size() {
    let f = Flared::start_with("max-line-size = 4096", &[]);
    let mut c = f.connect();
    // lines up to the limit are fine
    let key = "l".repeat(4000);
    c.expect(format!("get {key}\r\n").as_bytes(), b"END\r\n");
    c.send(&[b'a'; 5000]);
    c.expect(b"", b"CLIENT_ERROR line too long\r\n");
    c.expect_closed();
    // a long line that does end in LF, but beyond the limit
    let mut c = f.connect();
    let mut req = b"get ".to_vec();
    req.extend_from_slice(&[b'k'; 6000]);
    req.extend_from_slice(b"\r\n");
    c.send(&req);
    c.expect(b"", b"CLIENT_ERROR line too long\r\n");
    c.expect_closed();
    // the server still serves new connections
    let mut c = f.connect();
    c.in_sync();
}

/// `max-connection = N`: the N+1th connection is closed without any byte;
/// once one closes a new one is served.
#[test]
fn max_connection() {
    let f = Flared::start_with("max-connection = 3", &[]);
    let c1 = connect_served(f.port);
    let mut c2 = connect_served(f.port);
    let mut c3 = connect_served(f.port);
    for _ in 0..3 {
        let mut extra = Conn::connect(f.port);
        let t = Instant::now();
        extra.expect_closed();
        assert!(t.elapsed() < Duration::from_secs(2));
    }
    c2.in_sync();
    c3.in_sync();
    drop(c1);
    // served again once c1 is gone (retries while the server notices the close)
    let mut c4 = connect_served(f.port);
    c4.in_sync();
    let mut extra = Conn::connect(f.port);
    extra.expect_closed();
    c3.in_sync();
    let s = c3.stat("curr_connections");
    assert_eq!(s, "3");
}

/// `net-read-timeout = 1`: an idle connection is closed silently after about a
/// second, also in the middle of a data block or of a line.
#[test]
fn net_read_timeout() {
    let f = Flared::start_with("net-read-timeout = 1", &[]);
    let mut idle = f.connect();
    idle.in_sync();
    let mut mid_block = f.connect();
    mid_block.send(b"set k 0 0 10\r\nabc");
    let mut mid_line = f.connect();
    mid_line.send(b"get k");
    let limit = Duration::from_secs(6);
    for (name, c) in [
        ("idle", &mut idle),
        ("mid-block", &mut mid_block),
        ("mid-line", &mut mid_line),
    ] {
        let took = c.wait_closed(limit);
        assert!(
            took < Duration::from_secs(4),
            "{name}: closed after {took:?}"
        );
    }
    let mut c = f.connect();
    c.expect(b"get k\r\n", b"END\r\n");
    // a connection that keeps talking is not closed
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        c.in_sync();
    }
}

/// An active connection is not closed by the default timeout in between.
#[test]
fn idle_timeout_is_per_read() {
    let f = Flared::start_with("net-read-timeout = 1", &[]);
    let mut c = f.connect();
    let t = Instant::now();
    c.send(b"set k 0 0 4\r\nab");
    std::thread::sleep(Duration::from_millis(600));
    c.send(b"c");
    std::thread::sleep(Duration::from_millis(600));
    c.expect(b"d\r\n", b"STORED\r\n");
    assert!(t.elapsed() >= Duration::from_millis(1200));
    c.in_sync();
}

/// TV-57: the index does not speak the binary protocol: a binary request
/// closes the connection, after the replies to earlier pipelined text
/// requests. (Nodes serve it: tests/tests/binary_protocol.rs.)
#[test]
fn binary_request_to_the_index_closes_connection() {
    let f = Flarei::start();
    let mut c = f.connect();
    // TV-51's VERSION request
    let mut req = vec![0x80u8, 0x0b];
    req.extend_from_slice(&[0u8; 8]);
    req.extend_from_slice(&[0, 0, 0xde, 0xad, 0xbe, 0xef]);
    req.extend_from_slice(&[0u8; 8]);
    assert_eq!(req.len(), 24);
    c.send(&req);
    c.expect_closed();
    // after text requests on the same connection: the text replies come first
    let mut c = f.connect();
    let mut mixed = b"ping\r\nversion\r\n".to_vec();
    mixed.extend_from_slice(&req);
    c.send(&mixed);
    c.expect(b"", b"OK\r\nVERSION flare-1.3.4\r\n");
    c.expect_closed();
    f.connect().expect(b"ping\r\n", b"OK\r\n");
}

/// `failpoint` exists only in the fault-injection builds: the release
/// daemons answer it like any unknown command.
#[test]
fn release_builds_have_no_failpoints() {
    let f = Flared::start();
    f.connect().expect(
        b"failpoint replication::send return(fail)\r\n",
        b"ERROR\r\n",
    );
    let i = Flarei::start();
    i.connect()
        .expect(b"failpoint persist::save return(fail)\r\n", b"ERROR\r\n");
}
