//! Property tests of the protocol crate, through its public API only:
//!
//! 1. requests decode the same however the byte stream is split into reads,
//!    and equal the requests they were encoded from;
//! 2. garbage never panics, decodes the same however it is split, and the
//!    buffer never grows ahead of the bytes that arrived by more than one
//!    reserve step (a declared data size is not reserved up front);
//! 3. the reply framer finds exactly the reply boundaries, and a prefix of a
//!    reply is `Ok(None)`, never a wrong `Some`;
//! 4. a dump stream split anywhere yields exactly its records, then `END`;
//! 5. reply and dump framing are bounded by `ReplyLimits`;
//! 6. `encode_request` output parses back to the same request.

use bytes::{Buf, Bytes, BytesMut};
use flare_proto::client::{
    encode_request, next_dump_item, reply_len, DumpItem, FrameError, ReplyFramer, ReplyKind,
    ReplyLimits,
};
use flare_proto::node::{NodeLine, Role, State, MAX_BALANCE};
use flare_proto::reply;
use flare_proto::request::Store;
use flare_proto::{Decoder, Dialect, Frame, Limits, Parser, Request, StoreKind, WriteOptions};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;

/// How far ahead of the buffered bytes the parser may grow its buffer for a
/// data block still arriving (`DATA_RESERVE_STEP` in `text/mod.rs`).
const RESERVE_STEP: usize = 256 << 10;
/// Allocator / `BytesMut` rounding on top of that.
const CAPACITY_SLACK: usize = 4 << 10;

/// 256 cases per property; `PROPTEST_CASES=n` for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Keep the source tree clean: no proptest-regressions/ directory.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Splitting a byte stream into reads.

/// Where a stream is cut into reads.
#[derive(Clone, Debug)]
enum Split {
    /// Cut at these points (scaled to the stream length).
    Cuts(Vec<Index>),
    /// One byte per read.
    EveryByte,
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        4 => vec(any::<Index>(), 0..12).prop_map(Split::Cuts),
        1 => Just(Split::EveryByte),
    ]
}

fn chunks<'a>(input: &'a [u8], split: &Split) -> Vec<&'a [u8]> {
    match split {
        Split::EveryByte => input.chunks(1).collect(),
        Split::Cuts(points) => {
            let mut cuts: Vec<usize> = points.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.push(0);
            cuts.push(input.len());
            cuts.sort_unstable();
            cuts.dedup();
            cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect()
        }
    }
}

// ---------------------------------------------------------------------------
// Generators shared by the request and reply properties.

/// A request key: any byte but space, CR, LF and NUL (the parser's word
/// separators and line end), 1..=250 bytes.
fn request_key() -> impl Strategy<Value = Bytes> {
    let byte = any::<u8>().prop_map(|b| match b {
        b' ' | b'\r' | b'\n' | 0 => b'_',
        b => b,
    });
    prop_oneof![
        2 => "[a-z0-9:_]{1,12}".prop_map(Bytes::from),
        3 => vec(byte, 1..=250).prop_map(Bytes::from),
    ]
}

/// A key in a reply: any byte but space, CR, LF.
fn reply_key() -> impl Strategy<Value = Bytes> + Clone {
    let byte = any::<u8>().prop_map(|b| match b {
        b' ' | b'\r' | b'\n' => b'_',
        b => b,
    });
    prop_oneof![
        2 => "[a-z0-9:_]{1,12}".prop_map(Bytes::from),
        3 => vec(byte, 1..=250).prop_map(Bytes::from),
    ]
}

/// A data block: arbitrary bytes, with line ends and reply-looking lines inside.
fn data() -> impl Strategy<Value = Bytes> + Clone {
    let part = prop_oneof![
        4 => vec(any::<u8>(), 0..40),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"\r\nEND\r\n".to_vec()),
        1 => Just(b"END\r\n".to_vec()),
        1 => Just(b"VALUE k 0 3\r\n".to_vec()),
        1 => Just(b"get k\r\n".to_vec()),
    ];
    vec(part, 0..8).prop_map(|parts| Bytes::from(parts.concat()))
}

fn small_or_any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0..1000u64, any::<u64>()]
}

/// A non-negative time as the parser reads it (digits only).
fn time() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), 0..5_000_000i64, 0..=i64::MAX]
}

fn options() -> impl Strategy<Value = WriteOptions> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(noreply, sync, asynchronous)| {
        WriteOptions {
            noreply,
            sync,
            asynchronous,
        }
    })
}

fn store_kind() -> impl Strategy<Value = StoreKind> {
    prop_oneof![
        Just(StoreKind::Set),
        Just(StoreKind::Add),
        Just(StoreKind::Replace),
        Just(StoreKind::Append),
        Just(StoreKind::Prepend),
        Just(StoreKind::Cas),
    ]
}

fn store() -> impl Strategy<Value = Store> {
    (
        store_kind(),
        request_key(),
        any::<u32>(),
        time(),
        small_or_any_u64(),
        options(),
        data(),
    )
        .prop_map(
            |(kind, key, flags, exptime, version, options, data)| Store {
                kind,
                key,
                flags,
                exptime,
                version,
                options,
                data,
            },
        )
}

fn node_line() -> impl Strategy<Value = NodeLine> {
    (
        "[a-z0-9.-]{1,15}",
        any::<u16>(),
        0i64..3,
        0i64..4,
        any::<i32>(),
        prop_oneof![0..=MAX_BALANCE, i32::MIN..=MAX_BALANCE],
        any::<i32>(),
    )
        .prop_map(
            |(name, port, role, state, partition, balance, thread_type)| NodeLine {
                name,
                port,
                role: Role::from_number(role).expect("role"),
                state: State::from_number(state).expect("state"),
                partition,
                balance,
                thread_type,
            },
        )
}

fn proxy_list() -> impl Strategy<Value = Vec<String>> {
    vec("[a-z0-9.:]{1,20}", 0..3)
}

// ---------------------------------------------------------------------------
// 1. Well-formed requests under arbitrary splits.

/// A request as sent on the wire, with some freedom in how it is spelled.
#[derive(Clone, Debug)]
struct Wire {
    proxy: Option<Vec<String>>,
    request: Request,
    /// Spaces between tokens.
    sep: usize,
    /// Request lines end with CRLF (else a bare LF).
    crlf: bool,
}

fn wire_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        4 => store().prop_map(Request::Store),
        2 => (vec(request_key(), 1..5), any::<bool>())
            .prop_map(|(keys, with_version)| Request::Get { keys, with_version }),
        1 => (request_key(), time(), small_or_any_u64(), options()).prop_map(
            |(key, time, version, options)| Request::Delete {
                key,
                time,
                version,
                options,
            }
        ),
        1 => (any::<bool>(), request_key(), any::<u64>(), options()).prop_map(
            |(incr, key, delta, options)| Request::Arith {
                incr,
                key,
                delta,
                options,
            }
        ),
        1 => (any::<bool>(), request_key(), time(), small_or_any_u64(), any::<bool>()).prop_map(
            |(gat, key, exptime, version, noreply)| if gat {
                Request::Gat { key, exptime, noreply }
            } else {
                Request::Touch { key, exptime, version, noreply }
            }
        ),
        1 => (small_or_any_u64(), vec(node_line(), 0..4))
            .prop_map(|(version, nodes)| Request::NodeSync { version, nodes }),
    ]
}

fn wire() -> impl Strategy<Value = Wire> {
    (
        option::weighted(0.25, proxy_list()),
        wire_request(),
        1usize..=3,
        prop::bool::weighted(0.8),
    )
        .prop_map(|(proxy, request, sep, crlf)| Wire {
            proxy,
            request,
            sep,
            crlf,
        })
}

fn option_words(o: WriteOptions) -> Vec<Vec<u8>> {
    let mut w = Vec::new();
    if o.noreply {
        w.push(b"noreply".to_vec());
    }
    if o.sync {
        w.push(b"sync".to_vec());
    }
    if o.asynchronous {
        w.push(b"async".to_vec());
    }
    w
}

fn num(n: impl ToString) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// The test's own encoder (independent of `client::encode_request`).
fn encode_wire(w: &Wire, out: &mut Vec<u8>) {
    let eol: &[u8] = if w.crlf { b"\r\n" } else { b"\n" };
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    match &w.request {
        Request::Store(s) => {
            words.push(s.kind.name().into());
            words.push(s.key.to_vec());
            words.push(num(s.flags));
            words.push(num(s.exptime));
            words.push(num(s.data.len()));
            if s.version > 0 || s.kind == StoreKind::Cas {
                words.push(num(s.version));
            }
            words.extend(option_words(s.options));
            body.extend_from_slice(&s.data);
            body.extend_from_slice(b"\r\n");
        }
        Request::Get { keys, with_version } => {
            words.push(if *with_version { "gets" } else { "get" }.into());
            words.extend(keys.iter().map(|k| k.to_vec()));
        }
        Request::Delete {
            key,
            time,
            version,
            options,
        } => {
            words.push(b"delete".to_vec());
            words.push(key.to_vec());
            if *time > 0 || *version > 0 {
                words.push(num(time));
            }
            if *version > 0 {
                words.push(num(version));
            }
            words.extend(option_words(*options));
        }
        Request::Arith {
            incr,
            key,
            delta,
            options,
        } => {
            words.push(if *incr { "incr" } else { "decr" }.into());
            words.push(key.to_vec());
            words.push(num(delta));
            words.extend(option_words(*options));
        }
        Request::Touch {
            key,
            exptime,
            noreply,
            ..
        }
        | Request::Gat {
            key,
            exptime,
            noreply,
        } => {
            let gat = matches!(w.request, Request::Gat { .. });
            words.push(if gat { "gat" } else { "touch" }.into());
            words.push(key.to_vec());
            words.push(num(exptime));
            if let Request::Touch { version, .. } = &w.request {
                if *version > 0 {
                    words.push(num(version));
                }
            }
            if *noreply {
                words.push(b"noreply".to_vec());
            }
        }
        Request::NodeSync { version, nodes } => {
            words.push(b"node".to_vec());
            words.push(b"sync".to_vec());
            if *version > 0 {
                words.push(num(version));
            }
            for n in nodes {
                body.extend_from_slice(
                    format!(
                        "NODE {} {} {} {} {} {} {}",
                        n.name,
                        n.port,
                        n.role.number(),
                        n.state.number(),
                        n.partition,
                        n.balance,
                        n.thread_type
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(eol);
            }
            body.extend_from_slice(b"END");
            body.extend_from_slice(eol);
        }
        other => unreachable!("not generated: {other:?}"),
    }
    if let Some(p) = &w.proxy {
        out.push(b'<');
        out.extend_from_slice(p.join(",").as_bytes());
        out.push(b'>');
    }
    out.extend_from_slice(&words.join(&b" ".repeat(w.sep)[..]));
    out.extend_from_slice(eol);
    out.extend_from_slice(&body);
}

/// What a connection does with a byte stream: append each read to its
/// buffer, decode until `None`, skip the data block of a `TooLarge`, stop at a
/// fatal frame. Checks progress and the capacity bound after every call.
struct Fed {
    frames: Vec<Frame>,
    rest: Vec<u8>,
    stopped: bool,
}

fn feed(parser: Parser, reads: &[&[u8]]) -> Fed {
    let mut dec = Decoder::new(parser);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0usize;
    let mut skip = 0u64;
    for read in reads {
        fed += read.len();
        let skipped = skip.min(read.len() as u64) as usize;
        skip -= skipped as u64;
        buf.extend_from_slice(&read[skipped..]);
        loop {
            let before = buf.len();
            let frame = dec.decode(&mut buf);
            assert!(
                buf.capacity() <= fed + RESERVE_STEP + CAPACITY_SLACK,
                "capacity {} after {} bytes fed (buffered {})",
                buf.capacity(),
                fed,
                buf.len()
            );
            let Some(frame) = frame else { break };
            let fatal = matches!(frame, Frame::BinaryRefused | Frame::LineTooLong);
            if !fatal {
                assert!(buf.len() < before, "{frame:?} consumed nothing");
            }
            if let Frame::TooLarge { skip: n } | Frame::BinaryTooLarge { skip: n, .. } = frame {
                let now = n.min(buf.len() as u64);
                buf.advance(now as usize);
                skip = n - now;
            }
            frames.push(frame);
            if fatal {
                return Fed {
                    frames,
                    rest: buf.to_vec(),
                    stopped: true,
                };
            }
        }
    }
    Fed {
        frames,
        rest: buf.to_vec(),
        stopped: false,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn requests_decode_the_same_however_split(
        wires in vec(wire(), 1..8),
        split in split(),
    ) {
        let mut input = Vec::new();
        for w in &wires {
            encode_wire(w, &mut input);
        }
        let model: Vec<Frame> = wires
            .iter()
            .map(|w| Frame::Request {
                proxy: w.proxy.clone(),
                request: w.request.clone(),
            })
            .collect();
        let parser = Parser::new(Dialect::Node);

        // Whole buffer, stateless parser.
        let mut buf = BytesMut::from(&input[..]);
        let mut stateless = Vec::new();
        while let Some(f) = parser.parse(&mut buf) {
            stateless.push(f);
        }
        prop_assert!(buf.is_empty(), "left over: {:?}", buf);
        prop_assert_eq!(&stateless, &model);

        // Whole buffer and split reads, decoder.
        let whole = feed(parser, &[&input]);
        prop_assert_eq!(&whole.frames, &model);
        let split = feed(parser, &chunks(&input, &split));
        prop_assert_eq!(&split.frames, &model);
        prop_assert!(split.rest.is_empty() && !split.stopped);
    }
}

// ---------------------------------------------------------------------------
// 2. Garbage.

const GARBAGE_TOKENS: &[&[u8]] = &[
    b"set ",
    b"add ",
    b"cas ",
    b"get ",
    b"gets ",
    b"delete ",
    b"incr ",
    b"decr ",
    b"touch ",
    b"gat ",
    b"keys ",
    b"dump ",
    b"dump_key ",
    b"stats ",
    b"flush_all ",
    b"verbosity ",
    b"kill ",
    b"quit",
    b"noreply",
    b"sync",
    b"node sync ",
    b"node sync 1\r\n",
    b"node add ",
    b"node role ",
    b"node state ",
    b"shutdown ",
    b"meta",
    b"NODE h 1 0 0 0 1 16\r\n",
    b"NODE h 1 0 0 0 70000 16\r\n",
    b"END\r\n",
    b"END",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"<a,b>",
    b"<",
    b">",
    b"\x80",
    b"\0",
    b"-",
    b"0",
    b" 0",
    b" 1",
    b" 67108864",
    b" 2147483645",
    b"set k 0 0 67108864\r\n",
    b"set k 0 0 67108865\r\n",
    b"set k 0 0 2147483645\r\n",
    b"set k 0 0 5\r\nhello\r\n",
    b"cas k 0 0 3 1\r\nabc\r\n",
    b"get k\r\n",
];

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        3 => vec(any::<u8>(), 0..16),
        4 => prop::sample::select(GARBAGE_TOKENS).prop_map(<[u8]>::to_vec),
        // Whole well-formed requests, so that garbage also meets data blocks
        // and `node sync` bodies in every state.
        3 => wire().prop_map(|w| {
            let mut out = Vec::new();
            encode_wire(&w, &mut out);
            out
        }),
        1 => any::<u64>().prop_map(num),
        1 => (any::<u8>(), 0usize..600).prop_map(|(b, n)| vec![b; n]),
        1 => vec(prop::sample::select(&b"a 0-\r\n"[..]), 0..300),
        2 => binary_packet(),
    ];
    vec(part, 0..32).prop_map(|parts| parts.concat())
}

fn garbage_parser() -> impl Strategy<Value = Parser> {
    (
        prop_oneof![3 => Just(Dialect::Node), 1 => Just(Dialect::Index)],
        prop_oneof![16usize..=512, 1024usize..=4096],
        prop_oneof![
            2 => Just(Limits::default().max_value),
            1 => 0usize..64,
            1 => Just(1usize << 20),
        ],
    )
        .prop_map(|(dialect, max_line, max_value)| {
            Parser::with_limits(
                dialect,
                Limits {
                    max_line,
                    max_value,
                },
            )
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn garbage_never_panics_and_stays_bounded(
        input in garbage(),
        parser in garbage_parser(),
        split in split(),
    ) {
        let whole = feed(parser, &[&input]);
        let split = feed(parser, &chunks(&input, &split));
        prop_assert_eq!(&split.frames, &whole.frames);
        prop_assert_eq!(split.stopped, whole.stopped);
        if !whole.stopped {
            prop_assert_eq!(&split.rest, &whole.rest);
        }
    }

    /// A declared size is never reserved ahead of the data: the header alone,
    /// then the data trickling in.
    #[test]
    fn declared_size_is_not_reserved(
        declared in prop_oneof![Just(64usize << 20), 1usize << 20..=64 << 20],
        header_split in split(),
        data_reads in vec(1usize..5000, 0..40),
    ) {
        let header = format!("set k 0 0 {declared}\r\n").into_bytes();
        let mut reads: Vec<Vec<u8>> =
            chunks(&header, &header_split).into_iter().map(<[u8]>::to_vec).collect();
        reads.extend(data_reads.iter().map(|&n| vec![b'x'; n]));
        let reads: Vec<&[u8]> = reads.iter().map(Vec::as_slice).collect();
        let fed = feed(Parser::new(Dialect::Node), &reads);
        prop_assert!(fed.frames.is_empty());
    }
}

// ---------------------------------------------------------------------------
// 3. Reply framing.

/// One reply as a peer sends it, and the kind of request it answers.
fn reply() -> impl Strategy<Value = (ReplyKind, Vec<u8>)> {
    let line_reply = prop_oneof![
        prop::sample::select(vec![
            reply::STORED,
            reply::NOT_STORED,
            reply::EXISTS,
            reply::NOT_FOUND,
            reply::DELETED,
            reply::TOUCHED,
            reply::OK,
            reply::END,
            reply::ERROR,
            reply::IO_ERROR,
            reply::TOO_LARGE,
            reply::PROXY_ERROR,
            reply::FORMAT_ERROR,
        ])
        .prop_map(<[u8]>::to_vec),
        any::<u64>().prop_map(|n| {
            let mut out = BytesMut::new();
            reply::number_line(&mut out, n);
            out.to_vec()
        }),
        "[ -~]{0,40}".prop_map(|text| {
            let mut out = BytesMut::new();
            reply::line(&mut out, text);
            out.to_vec()
        }),
    ];
    let end_or_error = prop::sample::select(vec![
        reply::END,
        reply::END,
        reply::END,
        reply::ERROR,
        reply::IO_ERROR,
        reply::FORMAT_ERROR,
    ]);
    let value = (reply_key(), any::<u32>(), data(), option::of(any::<u64>()));
    prop_oneof![
        2 => line_reply.clone().prop_map(|l| (ReplyKind::Line, l)),
        3 => (vec(value.clone(), 0..4), end_or_error.clone()).prop_map(|(values, end)| {
            let mut out = BytesMut::new();
            for (key, flags, data, version) in values {
                reply::value(&mut out, &key, flags, &data, version);
            }
            out.extend_from_slice(end);
            (ReplyKind::Values, out.to_vec())
        }),
        2 => prop_oneof![
            value.prop_map(|(key, flags, data, version)| {
                let mut out = BytesMut::new();
                reply::value(&mut out, &key, flags, &data, version);
                out.to_vec()
            }),
            line_reply,
        ]
        .prop_map(|r| (ReplyKind::ValueOrLine, r)),
        2 => (vec(reply_key(), 0..6), end_or_error.clone()).prop_map(|(keys, end)| {
            let mut out = BytesMut::new();
            for key in keys {
                reply::key_line(&mut out, &key);
            }
            out.extend_from_slice(end);
            (ReplyKind::Keys, out.to_vec())
        }),
        2 => (vec(("[a-z0-9_:]{1,20}", "[ -~]{0,30}"), 0..6), end_or_error).prop_map(
            |(stats, end)| {
                let mut out = BytesMut::new();
                for (name, value) in stats {
                    reply::stat(&mut out, &name, value);
                }
                out.extend_from_slice(end);
                (ReplyKind::Block, out.to_vec())
            }
        ),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reply_framer_finds_exact_boundaries(
        replies in vec(reply(), 1..8),
        split in split(),
    ) {
        let stream: Vec<u8> = replies.iter().flat_map(|(_, r)| r.iter().copied()).collect();

        // One-shot form on the whole remainder at each boundary, and on
        // strict prefixes of the reply.
        let mut off = 0;
        for (kind, r) in &replies {
            prop_assert_eq!(reply_len(&stream[off..], *kind), Some(r.len()));
            for cut in [0, 1, r.len() / 2, r.len().saturating_sub(2), r.len() - 1] {
                if cut < r.len() {
                    prop_assert_eq!(reply_len(&r[..cut], *kind), None);
                }
            }
            off += r.len();
        }

        // Incremental: one framer per reply, kept while the buffer grows.
        let limits = ReplyLimits::default();
        let mut buf = BytesMut::new();
        let mut next = 0;
        let mut framer = ReplyFramer::new(replies[0].0, limits);
        for read in chunks(&stream, &split) {
            buf.extend_from_slice(read);
            while next < replies.len() {
                let want = replies[next].1.len();
                let got = framer.frame(&buf);
                if buf.len() >= want {
                    prop_assert_eq!(got, Ok(Some(want)), "reply {}", next);
                    buf.advance(want);
                    next += 1;
                    if let Some((kind, _)) = replies.get(next) {
                        framer = ReplyFramer::new(*kind, limits);
                    }
                } else {
                    prop_assert_eq!(got, Ok(None), "prefix of reply {}", next);
                    break;
                }
            }
        }
        prop_assert_eq!(next, replies.len());
        prop_assert!(buf.is_empty());
    }
}

// ---------------------------------------------------------------------------
// 4. Dump streams.

fn refusal() -> impl Strategy<Value = Option<Vec<u8>>> {
    option::weighted(
        0.2,
        prop_oneof![
            Just(b"SERVER_ERROR iteration canceled".to_vec()),
            Just(b"ERROR".to_vec()),
            "[A-Z_]{1,12}( [ -~]{0,20})?".prop_map(String::into_bytes),
        ]
        .prop_filter("not END", |l| l != b"END"),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn dump_stream_yields_its_records(
        records in vec((reply_key(), any::<u32>(), data(), any::<u64>(), any::<i64>()), 0..8),
        refused in refusal(),
        split in split(),
    ) {
        let mut stream = BytesMut::new();
        let mut expected = Vec::new();
        for (key, flags, value, version, expire) in &records {
            let before = stream.len();
            reply::dump_value(&mut stream, key, *flags, value, *version, *expire);
            expected.push(DumpItem::Record {
                key: key.clone(),
                flags: *flags,
                version: *version,
                expire: *expire,
                value: value.clone(),
                len: stream.len() - before,
            });
        }
        match &refused {
            Some(line) => {
                stream.extend_from_slice(line);
                stream.extend_from_slice(b"\r\n");
                expected.push(DumpItem::Refused(Bytes::from(line.clone())));
            }
            None => {
                stream.extend_from_slice(reply::END);
                expected.push(DumpItem::End);
            }
        }

        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for read in chunks(&stream, &split) {
            buf.extend_from_slice(read);
            while let Some(item) = next_dump_item(&mut buf, ReplyLimits::default())
                .map_err(|e| TestCaseError::fail(format!("{e}")))?
            {
                got.push(item);
            }
        }
        prop_assert_eq!(got, expected);
        prop_assert!(buf.is_empty());
    }
}

// ---------------------------------------------------------------------------
// 5. Bounds.

fn reply_kind() -> impl Strategy<Value = ReplyKind> {
    prop_oneof![
        Just(ReplyKind::Line),
        Just(ReplyKind::Values),
        Just(ReplyKind::ValueOrLine),
        Just(ReplyKind::Keys),
        Just(ReplyKind::Block),
        Just(ReplyKind::Meta),
    ]
}

/// Complete lines that keep a reply of `kind` open (short, so within any
/// `max_line` >= 64).
fn open_lines(kind: ReplyKind) -> BoxedStrategy<Vec<u8>> {
    let short_key = "[a-z0-9]{1,16}";
    match kind {
        ReplyKind::Values => vec((short_key, data()), 0..3)
            .prop_map(|vs| {
                let mut out = BytesMut::new();
                for (k, d) in vs {
                    reply::value(&mut out, k.as_bytes(), 0, &d, None);
                }
                out.to_vec()
            })
            .boxed(),
        ReplyKind::Keys => vec(short_key, 0..4)
            .prop_map(|ks| {
                let mut out = BytesMut::new();
                for k in ks {
                    reply::key_line(&mut out, k.as_bytes());
                }
                out.to_vec()
            })
            .boxed(),
        ReplyKind::Block => vec((short_key, "[a-z0-9]{0,16}"), 0..4)
            .prop_map(|ss| {
                let mut out = BytesMut::new();
                for (k, v) in ss {
                    reply::stat(&mut out, &k, v);
                }
                out.to_vec()
            })
            .boxed(),
        ReplyKind::Line | ReplyKind::ValueOrLine | ReplyKind::Meta => Just(Vec::new()).boxed(),
    }
}

fn no_lf(len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(
        any::<u8>().prop_map(|b| if b == b'\n' { b'x' } else { b }),
        len,
    )
}

proptest! {
    #![proptest_config(config())]

    /// A line without LF longer than `max_line` is an error as soon as its
    /// `max_line + 1`-th byte is buffered, never a wait.
    #[test]
    fn framer_refuses_long_lines(
        (kind, prefix, max_line, long) in (reply_kind(), 64usize..=512).prop_flat_map(
            |(k, max_line)| {
                (
                    Just(k),
                    open_lines(k),
                    Just(max_line),
                    (max_line + 1..=max_line + 300).prop_flat_map(no_lf),
                )
            }
        ),
        split in split(),
    ) {
        let limits = ReplyLimits { max_line, max_reply: 1 << 20 };
        let stream = [&prefix[..], &long[..]].concat();
        let mut framer = ReplyFramer::new(kind, limits);
        let mut buf = BytesMut::new();
        let mut failed = false;
        for read in chunks(&stream, &split) {
            buf.extend_from_slice(read);
            let got = framer.frame(&buf);
            if buf.len().saturating_sub(prefix.len()) > max_line {
                prop_assert_eq!(got, Err(FrameError::LineTooLong(max_line)));
                failed = true;
                break;
            }
            prop_assert_eq!(got, Ok(None));
        }
        prop_assert!(failed);

        // The same for a dump stream (its records are lines too).
        let mut dump = BytesMut::new();
        let mut failed = false;
        for read in chunks(&long, &split) {
            dump.extend_from_slice(read);
            let got = next_dump_item(&mut dump, limits);
            if dump.len() > max_line {
                prop_assert_eq!(got, Err(FrameError::LineTooLong(max_line)));
                failed = true;
                break;
            }
            prop_assert_eq!(got, Ok(None));
        }
        prop_assert!(failed);
    }

    /// A line of exactly `max_line` bytes is still accepted.
    #[test]
    fn framer_accepts_lines_at_the_limit(line in (1usize..=300).prop_flat_map(no_lf)) {
        let limits = ReplyLimits { max_line: line.len(), max_reply: 1 << 20 };
        let stream = [&line[..], b"\n"].concat();
        prop_assert_eq!(
            ReplyFramer::new(ReplyKind::Line, limits).frame(&stream),
            Ok(Some(stream.len()))
        );
    }

    /// A VALUE header declaring more than `max_reply` is refused once the
    /// header line is complete, before any data arrives.
    #[test]
    fn framer_refuses_oversized_values(
        values_kind in any::<bool>(),
        prefix in open_lines(ReplyKind::Values),
        headroom in 1usize..=4096,
        over in prop_oneof![
            3 => 0usize..=8 << 10,
            1 => Just(usize::MAX),
        ],
        data_len in 0usize..64,
        split in split(),
    ) {
        let kind = if values_kind { ReplyKind::Values } else { ReplyKind::ValueOrLine };
        let prefix = if kind == ReplyKind::Values { prefix } else { Vec::new() };
        // The blocks before fit; the last one declares at least `max_reply`.
        let max_reply = prefix.len() + headroom;
        let declared = max_reply.saturating_add(over);
        let header = format!("VALUE k 0 {declared}\r\n").into_bytes();
        let header_end = prefix.len() + header.len();
        let stream = [&prefix[..], &header[..], &vec![b'v'; data_len]].concat();
        let limits = ReplyLimits { max_line: 1024, max_reply };
        let mut framer = ReplyFramer::new(kind, limits);
        let mut buf = BytesMut::new();
        let mut failed = false;
        for read in chunks(&stream, &split) {
            buf.extend_from_slice(read);
            let got = framer.frame(&buf);
            if buf.len() >= header_end {
                prop_assert_eq!(got, Err(FrameError::TooLarge(max_reply)));
                failed = true;
                break;
            }
            prop_assert_eq!(got, Ok(None));
        }
        prop_assert!(failed);

        // A dump record declaring too much: refused, and nothing reserved.
        let header = format!("VALUE k 0 {declared} 1 0\r\n").into_bytes();
        let mut dump = BytesMut::from(&header[..]);
        prop_assert_eq!(
            next_dump_item(&mut dump, limits),
            Err(FrameError::TooLarge(max_reply))
        );
        prop_assert!(dump.capacity() <= header.len() + CAPACITY_SLACK);
    }

    /// KEY / STAT lines adding up to more than `max_reply` are refused by the
    /// time `max_reply + max_line + 1` bytes are buffered.
    #[test]
    fn framer_refuses_oversized_line_lists(
        keys in any::<bool>(),
        max_reply in 16usize..=1024,
        max_line in 64usize..=256,
        split in split(),
    ) {
        let (kind, mut stream) = (if keys { ReplyKind::Keys } else { ReplyKind::Block }, BytesMut::new());
        let mut i = 0u32;
        while stream.len() <= max_reply + max_line + 1 {
            if keys {
                reply::key_line(&mut stream, format!("key{i}").as_bytes());
            } else {
                reply::stat(&mut stream, &format!("s{i}"), i);
            }
            i += 1;
        }
        stream.extend_from_slice(reply::END);
        let limits = ReplyLimits { max_line, max_reply };
        let mut framer = ReplyFramer::new(kind, limits);
        let mut buf = BytesMut::new();
        let mut failed = false;
        for read in chunks(&stream, &split) {
            buf.extend_from_slice(read);
            match framer.frame(&buf) {
                Ok(None) => prop_assert!(buf.len() < max_reply + max_line + 1),
                Err(e) => {
                    prop_assert_eq!(e, FrameError::TooLarge(max_reply));
                    failed = true;
                    break;
                }
                Ok(Some(n)) => prop_assert!(false, "framed {} bytes past max_reply", n),
            }
        }
        prop_assert!(failed);
    }
}

// ---------------------------------------------------------------------------
// 6. `encode_request` round trip.

/// A meta request with a valid set of flags for its command.
fn meta_request() -> impl Strategy<Value = Request> {
    use flare_proto::request::{MetaCmd, MetaFlags, MetaMode, MetaRequest};
    (
        prop::sample::select(&[MetaCmd::Get, MetaCmd::Set, MetaCmd::Delete, MetaCmd::Arith][..]),
        vec(any::<u8>(), 1..20),
        any::<bool>(),
        prop::sample::subsequence(&b"cfkstO"[..], 0..=6).prop_shuffle(),
        (any::<bool>(), any::<bool>(), option::of(-5i64..5_000_000)),
        (
            option::of(any::<u64>()),
            option::of(1u64..u64::MAX),
            option::of(any::<u32>()),
        ),
        vec(any::<u8>(), 0..40),
    )
        .prop_map(
            |(cmd, raw_key, base64, ret, (value, quiet, ttl), (compare, explicit, cf), data)| {
                // keys that can travel as text; any byte with b
                let key: Vec<u8> = if base64 {
                    raw_key
                        .into_iter()
                        .map(|b| {
                            if matches!(b, b' ' | 0 | b'\n') {
                                b'x'
                            } else {
                                b
                            }
                        })
                        .collect()
                } else {
                    raw_key.into_iter().map(|b| b'a' + b % 26).collect()
                };
                let mut f = MetaFlags {
                    base64,
                    quiet,
                    ttl,
                    compare,
                    ..Default::default()
                };
                let allowed: &[u8] = match cmd {
                    MetaCmd::Get => b"cfkstO",
                    MetaCmd::Set => b"ckO",
                    MetaCmd::Delete => b"kO",
                    _ => b"ctkO",
                };
                f.ret = ret.into_iter().filter(|c| allowed.contains(c)).collect();
                if base64 {
                    f.ret.push(b'b');
                }
                if f.ret.contains(&b'O') {
                    f.opaque = Some(Bytes::from_static(b"op1"));
                }
                match cmd {
                    MetaCmd::Get => {
                        f.value = value;
                        f.compare = None;
                    }
                    MetaCmd::Set => {
                        f.explicit = explicit;
                        f.client_flags = cf;
                        f.mode = MetaMode::Append;
                    }
                    MetaCmd::Delete => f.explicit = explicit,
                    _ => {
                        f.value = value;
                        f.delta = Some(3);
                        f.initial = Some(9);
                        f.vivify = Some(0);
                        f.mode = MetaMode::Decr;
                    }
                }
                if cmd == MetaCmd::Delete {
                    f.ttl = None;
                }
                let data = if cmd == MetaCmd::Set {
                    Bytes::from(data)
                } else {
                    Bytes::new()
                };
                Request::MetaOp(Box::new(MetaRequest {
                    cmd,
                    key: Bytes::from(key),
                    flags: f,
                    data,
                }))
            },
        )
}

fn forwarded_request() -> impl Strategy<Value = (Request, ReplyKind)> {
    prop_oneof![
        2 => meta_request().prop_map(|r| (r, ReplyKind::Meta)),
        4 => store().prop_map(|s| (Request::Store(s), ReplyKind::Line)),
        2 => (vec(request_key(), 1..5), any::<bool>()).prop_map(|(keys, with_version)| {
            (Request::Get { keys, with_version }, ReplyKind::Values)
        }),
        1 => (request_key(), time(), small_or_any_u64(), options()).prop_map(
            |(key, time, version, options)| {
                (
                    Request::Delete { key, time, version, options },
                    ReplyKind::Line,
                )
            }
        ),
        1 => (any::<bool>(), request_key(), any::<u64>(), options()).prop_map(
            |(incr, key, delta, options)| {
                (Request::Arith { incr, key, delta, options }, ReplyKind::Line)
            }
        ),
        1 => (any::<bool>(), request_key(), time(), any::<bool>()).prop_map(
            |(gat, key, exptime, noreply)| {
                if gat {
                    (Request::Gat { key, exptime, noreply }, ReplyKind::ValueOrLine)
                } else {
                    (Request::Touch { key, exptime, version: 0, noreply }, ReplyKind::Line)
                }
            }
        ),
        1 => (vec(request_key(), 1..4), 1..=i32::MAX as u32).prop_map(|(prefixes, limit)| {
            (Request::Keys { prefixes, limit }, ReplyKind::Keys)
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn encoded_requests_parse_back(
        (request, kind) in forwarded_request(),
        proxy in option::of(proxy_list()),
    ) {
        let mut out = BytesMut::new();
        prop_assert_eq!(encode_request(&mut out, proxy.as_deref(), &request), Some(kind));
        let frame = Parser::new(Dialect::Node).parse(&mut out);
        prop_assert_eq!(frame, Some(Frame::Request { proxy, request }));
        prop_assert!(out.is_empty(), "left over: {:?}", out);
    }
}

// ---------------------------------------------------------------------------
// 7. Binary frames (issue 11).

/// A binary request packet with arbitrary header fields: lengths that agree
/// or lie (key + extras beyond the body, bodies beyond any limit), any
/// opcode, a body of up to 64 bytes whatever the header says.
fn binary_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            3 => prop::sample::select(&[0x00u8, 0x01, 0x02, 0x04, 0x05, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x10, 0x11, 0x1c, 0x1d, 0x23][..]),
            1 => any::<u8>(),
        ],
        prop_oneof![3 => 0u16..12, 1 => any::<u16>()],
        prop_oneof![3 => prop::sample::select(&[0u8, 4, 8, 20][..]), 1 => any::<u8>()],
        any::<u32>(),
        any::<u64>(),
        vec(any::<u8>(), 0..64),
        prop_oneof![
            4 => Just(None),
            1 => any::<u32>().prop_map(Some),
            1 => (0u32..1 << 20).prop_map(Some),
        ],
    )
        .prop_map(|(op, key_len, ext_len, opaque, cas, body, lie)| {
            let body_len = lie.unwrap_or(body.len() as u32);
            let mut p = vec![0x80, op];
            p.extend_from_slice(&key_len.to_be_bytes());
            p.push(ext_len);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(&body_len.to_be_bytes());
            p.extend_from_slice(&opaque.to_be_bytes());
            p.extend_from_slice(&cas.to_be_bytes());
            p.extend_from_slice(&body);
            p
        })
}

/// A well-formed packet of a key command and the request it stands for.
fn binary_get_or_set() -> impl Strategy<Value = (Vec<u8>, Bytes, Option<Bytes>)> {
    (
        vec(prop::sample::select(&b"abcXYZ019_:-\r\t"[..]), 1..40),
        option::of(vec(any::<u8>(), 0..300)),
        any::<u32>(),
    )
        .prop_map(|(key, value, opaque)| {
            let (op, extras): (u8, Vec<u8>) = match &value {
                None => (0x0c, Vec::new()),
                Some(_) => (0x01, vec![0, 0, 0, 7, 0, 0, 0, 0]),
            };
            let v = value.clone().unwrap_or_default();
            let body_len = (extras.len() + key.len() + v.len()) as u32;
            let mut p = vec![0x80, op];
            p.extend_from_slice(&(key.len() as u16).to_be_bytes());
            p.push(extras.len() as u8);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(&body_len.to_be_bytes());
            p.extend_from_slice(&opaque.to_be_bytes());
            p.extend_from_slice(&[0; 8]);
            p.extend_from_slice(&extras);
            p.extend_from_slice(&key);
            p.extend_from_slice(&v);
            (p, Bytes::from(key), value.map(Bytes::from))
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn binary_frames_never_panic_and_stay_bounded(
        packets in vec(binary_packet(), 1..6),
        max_value in prop_oneof![Just(Limits::default().max_value), 0usize..64],
        split in split(),
    ) {
        let input = packets.concat();
        let parser = Parser::with_limits(Dialect::Node, Limits { max_line: 4096, max_value });
        let whole = feed(parser, &[&input]);
        let split = feed(parser, &chunks(&input, &split));
        prop_assert_eq!(&split.frames, &whole.frames);
        // every response can be encoded, whatever the request was
        for f in &whole.frames {
            if let Frame::Binary { ctx, .. } = f {
                let mut out = BytesMut::new();
                flare_proto::binary::encode_reply(ctx, b"SERVER_ERROR x\r\n", &mut out);
                // only QUITQ says nothing, even about an error
                prop_assert!(out.first() == Some(&0x81) || ctx.opcode == 0x17);
            }
        }
    }

    #[test]
    fn binary_key_commands_decode_however_split(
        cmds in vec(binary_get_or_set(), 1..6),
        split in split(),
    ) {
        let input: Vec<u8> = cmds.iter().flat_map(|(p, _, _)| p.clone()).collect();
        let fed = feed(Parser::new(Dialect::Node), &chunks(&input, &split));
        prop_assert_eq!(fed.frames.len(), cmds.len());
        for (frame, (_, key, value)) in fed.frames.iter().zip(&cmds) {
            let Frame::Binary { ctx, request: Request::MetaOp(m) } = frame else {
                return Err(TestCaseError::fail(format!("{frame:?}")));
            };
            prop_assert_eq!(&ctx.key, key);
            prop_assert_eq!(&m.key, key);
            match value {
                None => prop_assert!(m.flags.value),
                Some(v) => {
                    prop_assert_eq!(&m.data, v);
                    prop_assert_eq!(m.flags.client_flags, Some(7));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A meta reply (`VA <n> <flags>` + block, or one status line) is
    /// framed exactly, and none of its prefixes is taken for a reply.
    #[test]
    fn meta_replies_are_framed_exactly(
        data in vec(any::<u8>(), 0..300),
        with_value in any::<bool>(),
        next in vec(any::<u8>(), 0..20),
    ) {
        let mut reply = Vec::new();
        if with_value {
            reply.extend_from_slice(format!("VA {} f1 c9 kx\r\n", data.len()).as_bytes());
            reply.extend_from_slice(&data);
            reply.extend_from_slice(b"\r\n");
        } else {
            reply.extend_from_slice(b"HD c9 Oab\r\n");
        }
        for cut in 0..reply.len() {
            prop_assert_eq!(reply_len(&reply[..cut], ReplyKind::Meta), None);
        }
        let mut stream = reply.clone();
        stream.extend_from_slice(&next);
        prop_assert_eq!(reply_len(&stream, ReplyKind::Meta), Some(reply.len()));
    }
}
