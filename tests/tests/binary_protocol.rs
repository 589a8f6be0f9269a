//! memcached's binary protocol end to end (issue 11), byte for byte against
//! the real `flared`: every opcode and status, quiet pipelines ending in
//! `NOOP`, text and binary mixed on one connection, malformed headers, and
//! binary requests routed through a proxy and replicated to a slave.

use flare_e2e::{dump_sorted, wait_until, Cluster, Conn, Flared, P0, P1, WAIT};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCREMENT: u8 = 0x05;
const DECREMENT: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const STAT: u8 = 0x10;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const DELETEQ: u8 = 0x14;
const INCREMENTQ: u8 = 0x15;
const QUITQ: u8 = 0x17;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATQ: u8 = 0x1e;
const GATK: u8 = 0x23;

const ENOENT: u16 = 0x01;
const EEXISTS: u16 = 0x02;
const E2BIG: u16 = 0x03;
const EINVAL: u16 = 0x04;
const NOT_STORED: u16 = 0x05;
const DELTA_BADVAL: u16 = 0x06;
const UNKNOWN: u16 = 0x81;

/// A request packet.
fn req(op: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
    let mut p = vec![0x80, op];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.extend_from_slice(&[0, 0, 0]);
    p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&cas.to_be_bytes());
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

fn set_extras(flags: u32, exptime: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

fn arith_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    let mut e = delta.to_be_bytes().to_vec();
    e.extend_from_slice(&initial.to_be_bytes());
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

/// A response as read from the wire.
#[derive(Debug, PartialEq, Eq)]
struct Resp {
    op: u8,
    status: u16,
    opaque: u32,
    cas: u64,
    extras: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn read_resp(c: &mut Conn) -> Resp {
    let h = c.read_exact(24);
    assert_eq!(h[0], 0x81, "response magic: {h:?}");
    assert_eq!(h[5], 0, "data type");
    let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let ext_len = usize::from(h[4]);
    let body_len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let body = c.read_exact(body_len);
    Resp {
        op: h[1],
        status: u16::from_be_bytes([h[6], h[7]]),
        opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        cas: u64::from_be_bytes(h[16..24].try_into().expect("8 bytes")),
        extras: body[..ext_len].to_vec(),
        key: body[ext_len..ext_len + key_len].to_vec(),
        value: body[ext_len + key_len..].to_vec(),
    }
}

/// Send a request and read one response.
fn call(c: &mut Conn, packet: &[u8]) -> Resp {
    c.send(packet);
    read_resp(c)
}

/// A status-only response.
fn status(op: u8, status: u16, opaque: u32, message: &[u8]) -> Resp {
    Resp {
        op,
        status,
        opaque,
        cas: 0,
        extras: Vec::new(),
        key: Vec::new(),
        value: message.to_vec(),
    }
}

fn noop(c: &mut Conn, opaque: u32) {
    assert_eq!(
        call(c, &req(NOOP, &[], &[], &[], opaque, 0)),
        status(NOOP, 0, opaque, b"")
    );
}

/// `gets` over text: (flags, value, version).
fn gets(c: &mut Conn, key: &str) -> Option<(u32, Vec<u8>, u64)> {
    c.gets(key)
}

#[test]
fn version_noop_stat_and_mixed_text() {
    let f = Flared::start();
    let mut c = f.connect();
    // TV-51 with memcached's opaque: echoed
    assert_eq!(
        call(&mut c, &req(VERSION, &[], &[], &[], 0xdeadbeef, 0)),
        status(VERSION, 0, 0xdeadbeef, b"flare-1.3.4")
    );
    // TV-56: text and binary on one connection
    c.expect(b"version\r\n", b"VERSION flare-1.3.4\r\n");
    noop(&mut c, 1);
    c.set("mixed", 3, b"text");
    let r = call(&mut c, &req(GET, &[], b"mixed", &[], 2, 0));
    assert_eq!(
        (r.status, &r.extras[..], &r.value[..]),
        (0, &[0, 0, 0, 3][..], &b"text"[..])
    );
    c.in_sync();
    // STAT: one packet per stat, then an empty one
    c.send(&req(STAT, &[], &[], &[], 9, 0));
    let mut names = Vec::new();
    loop {
        let r = read_resp(&mut c);
        assert_eq!((r.op, r.status, r.opaque, r.cas), (STAT, 0, 9, 0));
        if r.key.is_empty() {
            assert!(r.value.is_empty());
            break;
        }
        names.push(String::from_utf8(r.key).expect("name"));
    }
    assert!(names.contains(&"pid".to_string()) && names.contains(&"curr_items".to_string()));
    let r = call(&mut c, &req(STAT, &[], b"bogus", &[], 9, 0));
    assert_eq!((r.op, r.status), (STAT, ENOENT));
}

#[test]
fn storage_opcodes_with_cas() {
    let f = Flared::start();
    let mut c = f.connect();
    // SET answers the record's version as cas; GET returns it
    let r = call(&mut c, &req(SET, &set_extras(7, 0), b"hx", b"val", 1, 0));
    assert_eq!((r.op, r.status, r.opaque), (SET, 0, 1));
    assert!(r.extras.is_empty() && r.key.is_empty() && r.value.is_empty());
    let cas = r.cas;
    assert_ne!(cas, 0);
    assert_eq!(gets(&mut c, "hx"), Some((7, b"val".to_vec(), cas)));
    assert_eq!(
        call(&mut c, &req(GETK, &[], b"hx", &[], 2, 0)),
        Resp {
            op: GETK,
            status: 0,
            opaque: 2,
            cas,
            extras: vec![0, 0, 0, 7],
            key: b"hx".to_vec(),
            value: b"val".to_vec(),
        }
    );
    // cas on SET: wrong -> EEXISTS, right -> stored with a new cas
    assert_eq!(
        call(
            &mut c,
            &req(SET, &set_extras(0, 0), b"hx", b"v2", 3, cas + 1)
        ),
        status(SET, EEXISTS, 3, b"Data exists for key.")
    );
    let r = call(&mut c, &req(SET, &set_extras(0, 0), b"hx", b"v2", 3, cas));
    assert_eq!(r.status, 0);
    assert!(r.cas > cas);
    // cas on a missing key: ENOENT
    assert_eq!(
        call(&mut c, &req(SET, &set_extras(0, 0), b"nokey", b"v", 4, 5)).status,
        ENOENT
    );
    // ADD on an existing key: EEXISTS (memcached); REPLACE on a missing one: ENOENT
    assert_eq!(
        call(&mut c, &req(ADD, &set_extras(0, 0), b"hx", b"v", 5, 0)),
        status(ADD, EEXISTS, 5, b"Data exists for key.")
    );
    assert_eq!(
        call(
            &mut c,
            &req(REPLACE, &set_extras(0, 0), b"nokey", b"v", 6, 0)
        ),
        status(REPLACE, ENOENT, 6, b"Not found")
    );
    assert_eq!(
        call(&mut c, &req(ADD, &set_extras(0, 0), b"new", b"n", 7, 0)).status,
        0
    );
    assert_eq!(
        call(&mut c, &req(REPLACE, &set_extras(0, 0), b"new", b"r", 7, 0)).status,
        0
    );
    // APPEND / PREPEND keep flags; a missing key is NOT_STORED
    c.set("ap", 9, b"mid");
    assert_eq!(call(&mut c, &req(APPEND, &[], b"ap", b">", 8, 0)).status, 0);
    assert_eq!(
        call(&mut c, &req(PREPEND, &[], b"ap", b"<", 8, 0)).status,
        0
    );
    assert_eq!(c.get("ap"), Some((9, b"<mid>".to_vec())));
    assert_eq!(
        call(&mut c, &req(APPEND, &[], b"nokey", b"x", 8, 0)),
        status(APPEND, NOT_STORED, 8, b"Not stored.")
    );
    // DELETE: cas checked, success has cas 0, then ENOENT
    let (_, _, v) = gets(&mut c, "ap").expect("ap");
    assert_eq!(
        call(&mut c, &req(DELETE, &[], b"ap", &[], 9, v + 1)).status,
        EEXISTS
    );
    assert_eq!(
        call(&mut c, &req(DELETE, &[], b"ap", &[], 9, v)),
        status(DELETE, 0, 9, b"")
    );
    assert_eq!(
        call(&mut c, &req(DELETE, &[], b"ap", &[], 9, 0)),
        status(DELETE, ENOENT, 9, b"Not found")
    );
    // an empty value and a 1 MiB one
    assert_eq!(
        call(&mut c, &req(SET, &set_extras(0, 0), b"empty", b"", 1, 0)).status,
        0
    );
    assert_eq!(c.get("empty"), Some((0, Vec::new())));
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        call(&mut c, &req(SET, &set_extras(1, 0), b"big", &big, 1, 0)).status,
        0
    );
    assert_eq!(call(&mut c, &req(GET, &[], b"big", &[], 1, 0)).value, big);
}

#[test]
fn increment_decrement_touch_and_gat() {
    let f = Flared::start();
    let mut c = f.connect();
    // created with the initial value (delta not applied), then counted
    let r = call(
        &mut c,
        &req(INCREMENT, &arith_extras(5, 10, 0), b"n", &[], 1, 0),
    );
    assert_eq!(
        (r.status, r.value.clone()),
        (0, 10u64.to_be_bytes().to_vec())
    );
    assert_ne!(r.cas, 0);
    let r = call(
        &mut c,
        &req(INCREMENT, &arith_extras(5, 10, 0), b"n", &[], 1, 0),
    );
    assert_eq!(r.value, 15u64.to_be_bytes());
    assert_eq!(
        gets(&mut c, "n").map(|g| (g.1, g.2)),
        Some((b"15".to_vec(), r.cas))
    );
    // decrement floors at 0
    let r = call(
        &mut c,
        &req(DECREMENT, &arith_extras(100, 0, 0), b"n", &[], 1, 0),
    );
    assert_eq!(r.value, 0u64.to_be_bytes());
    // exptime 0xffffffff: never created (TV-55's answer)
    assert_eq!(
        call(
            &mut c,
            &req(
                INCREMENT,
                &arith_extras(1, 0, u32::MAX),
                b"nocnt",
                &[],
                2,
                0
            )
        ),
        status(INCREMENT, ENOENT, 2, b"Not found")
    );
    // a value that is not a number
    c.set("word", 0, b"abc");
    assert_eq!(
        call(
            &mut c,
            &req(INCREMENT, &arith_extras(1, 0, 0), b"word", &[], 3, 0)
        )
        .status,
        DELTA_BADVAL
    );
    // an initial value with an expiry
    call(
        &mut c,
        &req(INCREMENT, &arith_extras(1, 7, 100), b"exp", &[], 4, 0),
    );
    let t = c.command("mg exp t");
    let ttl: i64 = t.trim_start_matches("HD t").parse().expect("ttl");
    assert!((98..=100).contains(&ttl), "{t}");

    // TOUCH: flags, no value; GAT: flags and value; GATK: and the key
    c.set("tk", 4, b"tv");
    let r = call(&mut c, &req(TOUCH, &500u32.to_be_bytes(), b"tk", &[], 5, 0));
    assert_eq!(
        (r.status, &r.extras[..], r.value.len()),
        (0, &[0, 0, 0, 4][..], 0)
    );
    let t = c.command("mg tk t");
    assert!(t.starts_with("HD t49") || t.starts_with("HD t500"), "{t}");
    let r = call(&mut c, &req(GAT, &0u32.to_be_bytes(), b"tk", &[], 6, 0));
    assert_eq!(
        (r.status, &r.extras[..], &r.value[..]),
        (0, &[0, 0, 0, 4][..], &b"tv"[..])
    );
    assert_eq!(c.command("mg tk t"), "HD t-1");
    let r = call(&mut c, &req(GATK, &0u32.to_be_bytes(), b"tk", &[], 6, 0));
    assert_eq!((&r.key[..], &r.value[..]), (&b"tk"[..], &b"tv"[..]));
    assert_eq!(
        call(
            &mut c,
            &req(TOUCH, &0u32.to_be_bytes(), b"nokey", &[], 7, 0)
        ),
        status(TOUCH, ENOENT, 7, b"Not found")
    );
}

/// Quiet opcodes answer only failures (for gets: only hits); a pipeline
/// ends with NOOP.
#[test]
fn quiet_pipelines_end_with_noop() {
    let f = Flared::start();
    let mut c = f.connect();
    let mut pipe = Vec::new();
    pipe.extend(req(SETQ, &set_extras(1, 0), b"q1", b"one", 1, 0));
    pipe.extend(req(SETQ, &set_extras(2, 0), b"q2", b"two", 2, 0));
    pipe.extend(req(ADDQ, &set_extras(0, 0), b"q1", b"dup", 3, 0)); // fails: answered
    pipe.extend(req(GETQ, &[], b"missing", &[], 4, 0)); // miss: silent
    pipe.extend(req(GETKQ, &[], b"q2", &[], 5, 0)); // hit: answered
    pipe.extend(req(GATQ, &0u32.to_be_bytes(), b"missing", &[], 6, 0));
    pipe.extend(req(INCREMENTQ, &arith_extras(1, 0, 0), b"qn", &[], 7, 0));
    pipe.extend(req(DELETEQ, &[], b"q1", &[], 8, 0));
    pipe.extend(req(DELETEQ, &[], b"q1", &[], 9, 0)); // second: ENOENT answered
    pipe.extend(req(NOOP, &[], &[], &[], 10, 0));
    c.send(&pipe);
    assert_eq!(
        read_resp(&mut c),
        status(ADDQ, EEXISTS, 3, b"Data exists for key.")
    );
    let r = read_resp(&mut c);
    assert_eq!(
        (
            r.op,
            r.status,
            r.opaque,
            &r.key[..],
            &r.value[..],
            &r.extras[..]
        ),
        (GETKQ, 0, 5, &b"q2"[..], &b"two"[..], &[0, 0, 0, 2][..])
    );
    assert_eq!(read_resp(&mut c), status(DELETEQ, ENOENT, 9, b"Not found"));
    assert_eq!(read_resp(&mut c), status(NOOP, 0, 10, b""));
    // the quiet writes happened
    assert_eq!(c.get("q1"), None);
    assert_eq!(c.get("qn"), Some((0, b"0".to_vec())));
    // FLUSH empties the node
    assert_eq!(
        call(&mut c, &req(FLUSH, &[], &[], &[], 11, 0)),
        status(FLUSH, 0, 11, b"")
    );
    assert_eq!(c.get("q2"), None);
}

#[test]
fn quit_and_quitq_close() {
    let f = Flared::start();
    let mut c = f.connect();
    assert_eq!(
        call(&mut c, &req(QUIT, &[], &[], &[], 1, 0)),
        status(QUIT, 0, 1, b"")
    );
    c.expect_closed();
    let mut c = f.connect();
    c.send(&req(QUITQ, &[], &[], &[], 1, 0));
    c.expect_closed();
}

/// Malformed packets get an error packet and the connection goes on; a
/// body beyond the value limit is skipped without being buffered.
#[test]
fn malformed_headers_are_answered_and_bounded() {
    let f = Flared::start_with("max-item-size = 1024\n", &[]);
    let mut c = f.connect();
    // SET without extras, GET with a value, keys the text protocol cannot carry
    assert_eq!(
        call(&mut c, &req(SET, &[], b"k", b"v", 1, 0)).status,
        EINVAL
    );
    assert_eq!(
        call(&mut c, &req(GET, &[], b"k", b"v", 2, 0)).status,
        EINVAL
    );
    assert_eq!(
        call(&mut c, &req(GET, &[], b"a b", &[], 3, 0)).status,
        EINVAL
    );
    assert_eq!(
        call(&mut c, &req(GET, &[], b"a\nb", &[], 3, 0)).status,
        EINVAL
    );
    assert_eq!(call(&mut c, &req(GET, &[], b"", &[], 4, 0)).status, EINVAL);
    // key length beyond the body
    let mut lie = req(GET, &[], b"key", &[], 5, 0);
    lie[2..4].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(call(&mut c, &lie).status, EINVAL);
    // unknown opcode: the opcode is echoed with UNKNOWN_COMMAND
    assert_eq!(
        call(&mut c, &req(0x20, &[], &[], &[], 6, 0)),
        status(0x20, UNKNOWN, 6, b"Unknown command")
    );
    noop(&mut c, 7);
    // a value over max-item-size: E2BIG, its body skipped, the stream goes on
    let big = vec![b'x'; 4096];
    let mut p = req(SET, &set_extras(0, 0), b"big", &big, 8, 0);
    p.extend(req(NOOP, &[], &[], &[], 9, 0));
    c.send(&p);
    assert_eq!(read_resp(&mut c), status(SET, E2BIG, 8, b"Too large."));
    assert_eq!(read_resp(&mut c), status(NOOP, 0, 9, b""));
    // a body length of 4 GiB: answered at once, nothing buffered
    let mut huge = req(SET, &set_extras(0, 0), b"h", b"", 10, 0);
    huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(call(&mut c, &huge), status(SET, E2BIG, 10, b"Too large."));
    drop(c);
    // the node is fine
    let mut c = f.connect();
    noop(&mut c, 11);
}

/// A binary request is routed like its text equivalent: through a proxy
/// to the master of each partition, the answer coming back in binary.
#[test]
fn through_a_proxy_of_two_partitions() {
    let mut c = Cluster::start(3);
    c.first_master(0);
    c.add_partition(1, 1, WAIT);
    let mut via = c.conn(2);
    let mut cas = Vec::new();
    for (i, k) in P0.iter().chain(P1.iter()).enumerate() {
        let value = format!("bin-{k}");
        let r = call(
            &mut via,
            &req(
                SET,
                &set_extras(i as u32, 0),
                k.as_bytes(),
                value.as_bytes(),
                i as u32,
                0,
            ),
        );
        assert_eq!((r.op, r.status, r.opaque), (SET, 0, i as u32), "{k}");
        assert_ne!(r.cas, 0);
        cas.push(r.cas);
    }
    for (i, k) in P0.iter().chain(P1.iter()).enumerate() {
        let r = call(
            &mut via,
            &req(GETK, &[], k.as_bytes(), &[], 100 + i as u32, 0),
        );
        assert_eq!(
            r,
            Resp {
                op: GETK,
                status: 0,
                opaque: 100 + i as u32,
                cas: cas[i],
                extras: (i as u32).to_be_bytes().to_vec(),
                key: k.as_bytes().to_vec(),
                value: format!("bin-{k}").into_bytes(),
            }
        );
    }
    // each key lives on its partition's master, with the version the
    // client was told
    for (port, keys) in [(c.port(0), &P0[..]), (c.port(1), &P1[..])] {
        let dump = dump_sorted(port);
        let mut names: Vec<&str> = dump.iter().map(|d| d.key.as_str()).collect();
        names.sort();
        let mut want = keys.to_vec();
        want.sort();
        assert_eq!(names, want);
        for d in &dump {
            let i = P0
                .iter()
                .chain(P1.iter())
                .position(|k| *k == d.key)
                .expect("key");
            assert_eq!(
                (d.version, &d.value[..]),
                (cas[i], format!("bin-{}", d.key).as_bytes())
            );
        }
    }
    // increment, quiet delete, a miss, through the proxy
    let r = call(
        &mut via,
        &req(INCREMENT, &arith_extras(2, 40, 0), b"key0", &[], 1, 0),
    );
    assert_eq!(r.status, DELTA_BADVAL, "bin-key0 is not a number");
    let r = call(
        &mut via,
        &req(INCREMENT, &arith_extras(2, 40, 0), b"hits1", &[], 1, 0),
    );
    assert_eq!(
        (r.status, r.value.clone()),
        (0, 40u64.to_be_bytes().to_vec())
    );
    let mut pipe = req(DELETEQ, &[], b"foo", &[], 2, 0);
    pipe.extend(req(GETQ, &[], b"foo", &[], 3, 0));
    pipe.extend(req(NOOP, &[], &[], &[], 4, 0));
    via.send(&pipe);
    assert_eq!(read_resp(&mut via), status(NOOP, 0, 4, b""));
    assert_eq!(via.get("foo"), None);
}

/// A binary write on a master reaches its slave as the same record.
#[test]
fn replicated_to_a_slave() {
    let mut c = Cluster::start(2);
    c.first_master(0);
    c.add_slave(1, 1, 0, WAIT);
    let mut m = c.conn(0);
    let r = call(&mut m, &req(SET, &set_extras(5, 0), b"rk", b"rv", 1, 0));
    assert_eq!(r.status, 0);
    let r2 = call(&mut m, &req(APPEND, &[], b"rk", b"+", 2, r.cas));
    assert_eq!(r2.status, 0);
    let r3 = call(
        &mut m,
        &req(INCREMENT, &arith_extras(1, 5, 0), b"rn", &[], 3, 0),
    );
    assert_eq!(r3.status, 0);
    let want = |d: &[flare_e2e::DumpRecord]| {
        let get = |k: &str| {
            d.iter()
                .find(|r| r.key == k)
                .map(|r| (r.flags, r.value.clone(), r.version))
        };
        get("rk") == Some((5, b"rv+".to_vec(), r2.cas))
            && get("rn") == Some((0, b"5".to_vec(), r3.cas))
    };
    wait_until("the slave has both records", WAIT, || {
        want(&dump_sorted(c.port(1)))
    });
    assert_eq!(call(&mut m, &req(DELETE, &[], b"rk", &[], 4, 0)).status, 0);
    wait_until("the slave deleted rk", WAIT, || {
        dump_sorted(c.port(1)).iter().all(|r| r.key != "rk")
    });
}

/// Server errors reach a binary client as INTERNAL_ERROR (0x84) with the
/// error's text, and a miss stays a miss: a node of a cluster without any
/// master (TV-50 in binary).
#[test]
fn server_errors_are_internal_errors_with_their_text() {
    let mut c = Cluster::start(1);
    c.wait_converged(WAIT);
    let mut a = c.conn(0);
    assert_eq!(
        call(&mut a, &req(SET, &set_extras(0, 0), b"foo", b"x", 1, 0)),
        status(SET, 0x84, 1, b"no partition available")
    );
    // quiet does not hide an error
    let mut pipe = req(SETQ, &set_extras(0, 0), b"foo", b"x", 2, 0);
    pipe.extend(req(NOOP, &[], &[], &[], 3, 0));
    a.send(&pipe);
    assert_eq!(
        read_resp(&mut a),
        status(SETQ, 0x84, 2, b"no partition available")
    );
    assert_eq!(read_resp(&mut a), status(NOOP, 0, 3, b""));
    assert_eq!(
        call(&mut a, &req(GET, &[], b"foo", &[], 4, 0)),
        status(GET, ENOENT, 4, b"Not found")
    );
    assert_eq!(
        call(&mut a, &req(DELETE, &[], b"foo", &[], 5, 0)),
        status(DELETE, 0x84, 5, b"no partition available")
    );
    // VERBOSITY is accepted
    assert_eq!(
        call(&mut a, &req(0x1b, &1u32.to_be_bytes(), &[], &[], 6, 0)),
        status(0x1b, 0, 6, b"")
    );
}
