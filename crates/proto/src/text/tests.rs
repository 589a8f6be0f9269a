//! Parser tests, including the framing parts of protocol.md §35 test vectors.

use bytes::BytesMut;

use super::*;
use crate::request::{PartitionFilter, StatsKind, StoreKind};

fn node() -> Parser {
    Parser::new(Dialect::Node)
}

/// Parse everything in `input`; panics if something is left incomplete.
fn all(p: &Parser, input: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(f) = p.parse(&mut buf) {
        let stop = matches!(f, Frame::BinaryRefused | Frame::LineTooLong);
        out.push(f);
        if stop {
            break;
        }
    }
    assert!(buf.is_empty(), "left over: {:?}", buf);
    out
}

fn req(f: &Frame) -> &Request {
    match f {
        Frame::Request { request, .. } => request,
        other => panic!("not a request: {other:?}"),
    }
}

fn one(input: &[u8]) -> Request {
    let frames = all(&node(), input);
    assert_eq!(frames.len(), 1, "{frames:?}");
    req(&frames[0]).clone()
}

#[test]
fn set_with_data_block() {
    match one(b"set foo 5 0 3\r\nbar\r\n") {
        Request::Store(s) => {
            assert_eq!(s.kind, StoreKind::Set);
            assert_eq!(&s.key[..], b"foo");
            assert_eq!(s.flags, 5);
            assert_eq!(&s.data[..], b"bar");
            assert_eq!(s.version, 0);
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn split_at_every_byte() {
    let input: &[u8] = b"set foo 5 0 3 noreply\r\nbar\r\nget foo bar\r\n<h:1,h:2>delete foo 0 7\r\nnode sync 3\r\nNODE h 1 0 0 0 1 16\r\nEND\r\n";
    let expected = all(&node(), input);
    assert_eq!(expected.len(), 4);
    for cut in 0..input.len() {
        let p = node();
        let mut buf = BytesMut::from(&input[..cut]);
        let mut got = Vec::new();
        while let Some(f) = p.parse(&mut buf) {
            got.push(f);
        }
        buf.extend_from_slice(&input[cut..]);
        while let Some(f) = p.parse(&mut buf) {
            got.push(f);
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected, "cut at {cut}");
    }
}

#[test]
fn tv08_trailer_not_checked() {
    let f = all(&node(), b"set t 0 0 3\r\nabcXYget t\r\n");
    assert!(matches!(req(&f[0]), Request::Store(s) if &s.data[..] == b"abc"));
    assert!(matches!(req(&f[1]), Request::Get { keys, .. } if &keys[0][..] == b"t"));
}

#[test]
fn tv08b_bare_lf_costs_two_bytes() {
    let f = all(&node(), b"set lf 0 0 2\nab\nget lf\n  get lf\r\n");
    assert_eq!(f.len(), 3);
    assert!(matches!(req(&f[0]), Request::Store(_)));
    assert_eq!(req(&f[1]), &Request::Error);
    assert!(matches!(req(&f[2]), Request::Get { .. }));
}

#[test]
fn tv09_longer_block() {
    let f = all(&node(), b"set t2 0 0 3\r\nabcd\r\n");
    assert!(matches!(req(&f[0]), Request::Store(s) if &s.data[..] == b"abc"));
    assert_eq!(req(&f[1]), &Request::Error);
}

#[test]
fn parse_errors_leave_data_as_next_line() {
    for line in [
        &b"set foo 0 0 abc\r\nhello\r\n"[..],
        b"set foo 0 -1 1\r\nx\r\n",
        b"set foo 4294967296 0 1\r\nx\r\n",
        b"set foo 0 0 1 later\r\nx\r\n",
        b"set foo 0 0 noreply\r\nx\r\n",
        b"cas foo 0 0 1\r\nx\r\n",
        b"set k 0 0 3abc\r\nx\r\n",
        b"set foo 0 0 1 -1\r\nx\r\n",
        b"set foo 0 0 2147483646\r\nx\r\n",
    ] {
        let f = all(&node(), line);
        assert_eq!(f.len(), 2, "{}", String::from_utf8_lossy(line));
        assert_eq!(req(&f[0]), &Request::Error);
        assert_eq!(req(&f[1]), &Request::Error);
    }
    assert!(
        matches!(one(b"set foo 4294967295 0 1\r\nx\r\n"), Request::Store(s) if s.flags == u32::MAX)
    );
}

#[test]
fn simple_errors() {
    for line in [
        &b"bogus\r\n"[..],
        b"GET foo\r\n",
        b"\r\n",
        b"get\r\n",
        b"get\tfoo\r\n",
        b"delete x -1\r\n",
        b"incr n\r\n",
        b"incr n abc\r\n",
        b"incr n 18446744073709551616\r\n",
        b"incr n 1 2\r\n",
        b"incr n 1-2\r\n",
        b"touch tt\r\n",
        b"touch tt 100 sync\r\n",
        b"ping x\r\n",
        b"verbosity\r\n",
        b"verbosity 1 sync\r\n",
        b"flush_all sync\r\n",
        b"stats cachedump 1\r\n",
        b"stats cachedump x 1\r\n",
        b"stats threads bogus\r\n",
        b"kill abc\r\n",
        b"kill 1 2\r\n",
        b"dump 0 2\r\n",
        b"dump -1\r\n",
        b"keys d\r\n",
        b"keys ap 0\r\n",
        b"show\r\n",
        b"meta\r\n",
        b"node role 127.0.0.1 12121 master 1 0\r\n",
        b"shutdown 127.0.0.1 12121\r\n",
        b"node sync 1 2\r\n",
        b"gats 1 k\r\n",
        b"<127.0.0.1:9999 version\r\n",
        b" <a>version\r\n",
    ] {
        assert_eq!(
            one(line),
            Request::Error,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn accepted_forms() {
    // memcached 1.6 forms (issue 11): quit with arguments closes, version
    // answers whatever follows, `verbosity noreply` is silently accepted
    assert_eq!(one(b"quit x\r\n"), Request::Quit);
    assert_eq!(one(b"version foo bar\r\n"), Request::Version);
    assert_eq!(one(b"version noreply\r\n"), Request::Version);
    assert_eq!(one(b"verbosity noreply\r\n"), Request::Ignored);
    assert_eq!(one(b"verbosity foo bar my\r\n"), Request::Error);
    assert_eq!(
        one(b"stats settings\r\n"),
        Request::Stats(crate::request::StatsKind::Settings)
    );
    assert_eq!(
        one(b"stats cachedump 1 10\r\n"),
        Request::Stats(crate::request::StatsKind::Cachedump { slab: 1, limit: 10 })
    );
    assert_eq!(one(b"quit\r\n"), Request::Quit);
    assert_eq!(
        one(b"flush_all -5\r\n"),
        Request::FlushAll { noreply: false }
    );
    assert_eq!(
        one(b"flush_all 10 noreply\r\n"),
        Request::FlushAll { noreply: true }
    );
    assert_eq!(
        one(b"verbosity 1 noreply\r\n"),
        Request::Verbosity {
            level: 1,
            noreply: true
        }
    );
    assert_eq!(
        one(b"kill -1\r\n"),
        Request::Kill {
            thread_id: u32::MAX
        }
    );
    assert_eq!(
        one(b"stats threads queue\r\n"),
        Request::Stats(StatsKind::ThreadsQueue)
    );
    assert_eq!(
        one(b"stats nodes extra words\r\n"),
        Request::Stats(StatsKind::Nodes)
    );
    assert_eq!(one(b"show variables x\r\n"), Request::ShowVariables);
    assert_eq!(
        one(b"dump xyz\r\n"),
        Request::Dump {
            wait_us: 0,
            filter: None,
            bwlimit_kib: 0
        }
    );
    assert_eq!(
        one(b"dump 0 0 1\r\n"),
        Request::Dump {
            wait_us: 0,
            filter: Some(PartitionFilter {
                partition: 0,
                partition_size: 1
            }),
            bwlimit_kib: 0
        }
    );
    assert!(matches!(
        one(b"incr z -1\r\n"),
        Request::Arith {
            delta: u64::MAX,
            ..
        }
    ));
    assert!(matches!(
        one(b"delete dv 0 4 noreply\r\n"),
        Request::Delete { time: 0, version: 4, options, .. } if options.noreply
    ));
    assert!(
        matches!(one(b"keys ap b 10\r\n"), Request::Keys { prefixes, limit: 10 } if prefixes.len() == 2)
    );
    assert!(matches!(
        one(b"gat g 100\r\n"),
        Request::Gat { exptime: 100, .. }
    ));
}

#[test]
fn proxy_identifier() {
    let f = all(&node(), b"<127.0.0.1:9999>version\r\n<a,,b>  version\r\n");
    match &f[0] {
        Frame::Request { proxy, request } => {
            assert_eq!(proxy.as_deref(), Some(&["127.0.0.1:9999".to_string()][..]));
            assert_eq!(request, &Request::Version);
        }
        other => panic!("{other:?}"),
    }
    match &f[1] {
        Frame::Request { proxy, request } => {
            assert_eq!(proxy.as_ref().map(Vec::len), Some(2));
            assert_eq!(request, &Request::Version);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn node_sync_bodies() {
    let f = all(
        &node(),
        b"node sync 1\r\nNODE bad\r\nEND\r\nnode sync 1\r\nEND\r\nnode sync\r\nEND\r\n",
    );
    assert_eq!(req(&f[0]), &Request::NodeSyncFormatError);
    assert_eq!(req(&f[1]), &Request::Error);
    assert_eq!(
        req(&f[2]),
        &Request::NodeSync {
            version: 1,
            nodes: vec![]
        }
    );
    assert_eq!(
        req(&f[3]),
        &Request::NodeSync {
            version: 0,
            nodes: vec![]
        }
    );
}

#[test]
fn index_dialect() {
    let p = Parser::new(Dialect::Index);
    let f = all(
        &p,
        b"get foo\r\nset foo 0 0 1\r\nx\r\nmeta\r\nnode add 127.0.0.1 12121\r\n",
    );
    assert_eq!(req(&f[0]), &Request::Error);
    assert_eq!(req(&f[1]), &Request::Error);
    assert_eq!(req(&f[2]), &Request::Error);
    assert_eq!(req(&f[3]), &Request::Meta);
    assert!(matches!(req(&f[4]), Request::NodeAdd { port: 12121, .. }));
}

#[test]
fn limits() {
    let p = Parser::with_limits(
        Dialect::Node,
        Limits {
            max_line: 16,
            max_value: 4,
        },
    );
    let mut buf = BytesMut::from(&b"set k 0 0 5\r\nhello\r\nget k\r\n"[..]);
    assert_eq!(p.parse(&mut buf), Some(Frame::TooLarge { skip: 7 }));
    assert_eq!(&buf[..], b"hello\r\nget k\r\n");
    let mut buf = BytesMut::from(&b"get aaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
    assert_eq!(p.parse(&mut buf), Some(Frame::LineTooLong));
    let mut buf = BytesMut::from(&b"get aaaa"[..]);
    assert_eq!(p.parse(&mut buf), None);
    // A 2 GB declared size is refused without allocating it.
    let p = node();
    let mut buf = BytesMut::from(&b"set k 0 0 2147483640\r\n"[..]);
    assert_eq!(
        p.parse(&mut buf),
        Some(Frame::TooLarge { skip: 2147483642 })
    );
}

#[test]
fn keys_longer_than_8191_are_errors() {
    let mut line = b"get ".to_vec();
    line.extend(std::iter::repeat_n(b'b', 8192));
    line.extend_from_slice(b"\r\n");
    assert_eq!(one(&line), Request::Error);
    let mut line = b"get ".to_vec();
    line.extend(std::iter::repeat_n(b'b', 8191));
    line.extend_from_slice(b"\r\n");
    assert!(matches!(one(&line), Request::Get { .. }));
}

#[test]
fn binary_magic() {
    // a node waits for the whole header; the index refuses (TV-57)
    let mut buf = BytesMut::from(&[0x80u8, 0x0b][..]);
    assert_eq!(node().parse(&mut buf), None);
    assert_eq!(
        Parser::new(Dialect::Index).parse(&mut buf),
        Some(Frame::BinaryRefused)
    );
}

/// The meta commands (issue 11): flags typed, return flags in order,
/// memcached's CLIENT_ERROR lines, and the data block of a rejected `ms`
/// consumed when its length is readable.
#[test]
fn meta_commands() {
    use crate::request::{MetaCmd, MetaMode};
    let m = |r: Request| match r {
        Request::MetaOp(m) => m,
        other => panic!("{other:?}"),
    };
    let g = m(one(b"mg foo t v c f k O12 q T30 N5\r\n"));
    assert_eq!((g.cmd, &g.key[..]), (MetaCmd::Get, &b"foo"[..]));
    assert_eq!(g.flags.ret, b"tcfkO");
    assert!(g.flags.value && g.flags.quiet);
    assert_eq!(
        (g.flags.ttl, g.flags.vivify, g.flags.opaque.as_deref()),
        (Some(30), Some(5), Some(&b"12"[..]))
    );
    assert!(g.is_write());
    assert!(!m(one(b"mg foo v\r\n")).is_write());
    let s = m(one(b"ms k 3 F9 T-1 C7 E100 MA I\r\nabc\r\n"));
    assert_eq!(&s.data[..], b"abc");
    assert_eq!(
        (
            s.flags.client_flags,
            s.flags.ttl,
            s.flags.compare,
            s.flags.explicit
        ),
        (Some(9), Some(-1), Some(7), Some(100))
    );
    assert_eq!(s.flags.mode, MetaMode::Append);
    assert!(s.flags.invalidate);
    let a = m(one(b"ma n N0 J5 D3 MD v\r\n"));
    assert_eq!(
        (a.flags.vivify, a.flags.initial, a.flags.delta, a.flags.mode),
        (Some(0), Some(5), Some(3), MetaMode::Decr)
    );
    // base64 keys are decoded; P and L are ignored
    let b = m(one(b"md Zm9v b q Pxx L/path\r\n"));
    assert_eq!((&b.key[..], b.flags.base64), (&b"foo"[..], true));
    assert_eq!(one(b"mn\r\n"), Request::MetaNoop);
    for (line, err) in [
        (&b"mg\r\n"[..], meta::BAD_FORMAT),
        (b"mg k v v\r\n", meta::DUPLICATE_FLAG),
        (b"mg k Z\r\n", meta::INVALID_FLAG),
        (b"md k v\r\n", meta::INVALID_FLAG),
        (b"ma k E5\r\n", meta::INVALID_FLAG),
        (b"mg k N0 E5\r\n", meta::INVALID_FLAG),
        (b"ma k MS\r\n", meta::INVALID_ARITH_MODE),
        (b"mg k Tx\r\n", meta::BAD_TOKEN),
        (b"ms k x\r\n", meta::BAD_CHUNK),
        (b"mg IGE= b\r\n", meta::BAD_FORMAT),
        (
            b"mg k O123456789012345678901234567890123\r\n",
            meta::OPAQUE_TOO_LONG,
        ),
    ] {
        assert_eq!(
            one(line),
            Request::Invalid(err),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    // the block of an `ms` with a bad flag is skipped
    let frames = all(&node(), b"ms k 2 MX\r\nab\r\nmn\r\n");
    assert_eq!(req(&frames[0]), &Request::Invalid(meta::INVALID_MODE));
    assert_eq!(req(&frames[1]), &Request::MetaNoop);
    // the index does not know them
    let frames = all(&Parser::new(Dialect::Index), b"mn\r\n");
    assert_eq!(req(&frames[0]), &Request::Error);
}
