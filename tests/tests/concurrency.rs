//! Concurrency (atomic read-modify-write across connections) and pipelining
//! (many requests in one write; one request in many writes).

use std::io::Write;
use std::time::Duration;

use flare_e2e::{version, Flared, STANDALONE_EPOCH};

/// 50 connections × 1000 `incr cnt 1` on one key: no lost update, and every
/// reply value 1 … 50000 is seen exactly once.
#[test]
fn concurrent_incr_is_atomic() {
    const THREADS: u64 = 50;
    const PER_THREAD: u64 = 1000;
    let f = Flared::start();
    let mut c = f.connect();
    c.set("cnt", 3, b"0");
    let mut all: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut conn = f.connect();
                    let mut seen = Vec::with_capacity(PER_THREAD as usize);
                    for _ in 0..PER_THREAD {
                        conn.send(b"incr cnt 1\r\n");
                        let line = conn.read_line();
                        let n: u64 = line
                            .strip_suffix("\r\n")
                            .and_then(|l| l.parse().ok())
                            .unwrap_or_else(|| panic!("incr reply {line:?}"));
                        seen.push(n);
                    }
                    seen
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    all.sort_unstable();
    let want: Vec<u64> = (1..=THREADS * PER_THREAD).collect();
    assert!(all == want, "incr replies are not exactly 1..=50000");
    c.expect(b"get cnt\r\n", b"VALUE cnt 3 5\r\n50000\r\nEND\r\n");
    // the set, then one version per incr
    let (_, _, got) = c.gets("cnt").unwrap();
    assert_eq!(got, version(STANDALONE_EPOCH, 1 + THREADS * PER_THREAD));
    assert_eq!(c.stat("incr_hits"), (THREADS * PER_THREAD).to_string());
}

/// 10 connections × 200 `append` of a 1-byte marker: final length 2000, each
/// marker exactly 200 times, and each connection's markers in one piece each.
#[test]
fn concurrent_append_is_atomic() {
    const THREADS: u8 = 10;
    const PER_THREAD: usize = 200;
    let f = Flared::start();
    let mut c = f.connect();
    c.set("log", 0, b"");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let f = &f;
            s.spawn(move || {
                let mut conn = f.connect();
                let marker = (b'a' + t) as char;
                for _ in 0..PER_THREAD {
                    conn.expect(
                        format!("append log 0 0 1\r\n{marker}\r\n").as_bytes(),
                        b"STORED\r\n",
                    );
                }
            });
        }
    });
    let (_, value) = c.get("log").unwrap();
    assert_eq!(value.len(), THREADS as usize * PER_THREAD);
    for t in 0..THREADS {
        let n = value.iter().filter(|&&b| b == b'a' + t).count();
        assert_eq!(n, PER_THREAD, "marker {}", (b'a' + t) as char);
    }
}

/// Concurrent writers on different keys and readers: every reader sees either
/// a miss or a complete value of the right length (no torn values).
#[test]
fn concurrent_set_and_get_no_torn_values() {
    let f = Flared::start();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let f = &f;
            s.spawn(move || {
                let mut conn = f.connect();
                for i in 0..200usize {
                    let len = 1 + (i * 37) % 5000;
                    let v = vec![b'0' + t; len];
                    conn.set("shared", u32::from(t), &v);
                }
            });
        }
        for _ in 0..4 {
            let f = &f;
            s.spawn(move || {
                let mut conn = f.connect();
                for _ in 0..200 {
                    if let Some((flags, v)) = conn.get("shared") {
                        let first = v[0];
                        assert!(v.iter().all(|&b| b == first), "torn value");
                        assert_eq!(u32::from(first - b'0'), flags, "flags from another write");
                    }
                }
            });
        }
    });
}

/// Many requests in one write: the replies come back concatenated, in order.
#[test]
fn pipelined_mixed_requests() {
    let f = Flared::start();
    let mut c = f.connect();
    let req: &[u8] = b"set p1 0 0 3\r\nabc\r\n\
        get p1\r\n\
        set p2 1 0 1\r\n5\r\n\
        incr p2 10\r\n\
        delete p1\r\n\
        get p1 p2\r\n\
        append p2 0 0 1\r\n0\r\n\
        gets p2\r\n\
        bogus\r\n\
        set p3 0 0 2 noreply\r\nzz\r\n\
        decr p2 150\r\n\
        delete p1\r\n\
        touch p3 0\r\n\
        version\r\n";
    // p2: set, incr, append = the third version of the epoch
    let reply = format!(
        "STORED\r\n\
        VALUE p1 0 3\r\nabc\r\nEND\r\n\
        STORED\r\n\
        15\r\n\
        DELETED\r\n\
        VALUE p2 1 2\r\n15\r\nEND\r\n\
        STORED\r\n\
        VALUE p2 1 3 {}\r\n150\r\nEND\r\n\
        ERROR\r\n\
        0\r\n\
        NOT_FOUND\r\n\
        TOUCHED\r\n\
        VERSION flare-1.3.4\r\n",
        version(STANDALONE_EPOCH, 3)
    );
    c.expect(req, reply.as_bytes());
    c.expect_silence(100);
}

/// 1000 sets in one write, then 1000 gets in one write.
#[test]
fn pipelined_bulk() {
    let f = Flared::start();
    let mut c = f.connect();
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    let mut replies = Vec::new();
    for i in 0..1000 {
        let v = format!("{i:0>width$}", width = 1 + i % 50);
        sets.extend_from_slice(format!("set b{i} {i} 0 {}\r\n{v}\r\n", v.len()).as_bytes());
        gets.extend_from_slice(format!("get b{i}\r\n").as_bytes());
        replies
            .extend_from_slice(format!("VALUE b{i} {i} {}\r\n{v}\r\nEND\r\n", v.len()).as_bytes());
    }
    c.expect(&sets, "STORED\r\n".repeat(1000).as_bytes());
    c.expect(&gets, &replies);
}

/// Pipelined gets of a large value: the replies exceed the server's batch
/// buffer and still arrive complete and in order.
#[test]
fn pipelined_large_replies() {
    let f = Flared::start();
    let mut c = f.connect();
    let value: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    c.set("large", 2, &value);
    let mut one = b"VALUE large 2 100000\r\n".to_vec();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\nEND\r\n");
    let n = 30;
    let req = "get large\r\n".repeat(n);
    let expected: Vec<u8> = one.iter().copied().cycle().take(one.len() * n).collect();
    c.expect(req.as_bytes(), &expected);
    c.in_sync();
}

/// One request split into 1-byte writes with small pauses.
#[test]
fn request_split_into_single_bytes() {
    let f = Flared::start();
    let mut c = f.connect();
    let req: &[u8] = b"set split 3 0 5\r\nhello\r\nget split\r\nincr nope 1\r\n";
    for &b in req {
        c.stream.write_all(&[b]).expect("write");
        std::thread::sleep(Duration::from_millis(2));
    }
    c.expect(
        b"",
        b"STORED\r\nVALUE split 3 5\r\nhello\r\nEND\r\nNOT_FOUND\r\n",
    );
    // the data block alone in single bytes, CR and LF in separate writes
    c.send(b"append split 0 0 3\r\n");
    for &b in b"abc\r\n" {
        c.stream.write_all(&[b]).expect("write");
        std::thread::sleep(Duration::from_millis(5));
    }
    c.expect(b"", b"STORED\r\n");
    c.expect(b"get split\r\n", b"VALUE split 3 8\r\nhelloabc\r\nEND\r\n");
}
