//! Binary framing and reply encoding, byte for byte.

use bytes::BytesMut;

use super::*;
use crate::text::{Frame, Limits, Parser};
use crate::Dialect;

/// A request packet.
fn packet(op: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
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

fn decode_one(bytes: &[u8]) -> (BinContext, Request) {
    let mut buf = BytesMut::from(bytes);
    match Parser::new(Dialect::Node).parse(&mut buf) {
        Some(Frame::Binary { ctx, request }) => {
            assert!(buf.is_empty(), "left over {buf:?}");
            (ctx, request)
        }
        other => panic!("{other:?}"),
    }
}

fn meta_of(r: &Request) -> &MetaRequest {
    match r {
        Request::MetaOp(m) => m,
        other => panic!("{other:?}"),
    }
}

fn reply(ctx: &BinContext, text: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_reply(ctx, text, &mut out);
    out.to_vec()
}

/// A response packet.
fn response(
    op: u8,
    status: u16,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x81, op];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.push(0);
    p.extend_from_slice(&status.to_be_bytes());
    p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&cas.to_be_bytes());
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

#[test]
fn version_echoes_the_opaque() {
    let (ctx, req) = decode_one(&packet(opcode::VERSION, &[], &[], &[], 0xdeadbeef, 0));
    assert_eq!(req, Request::Version);
    assert_eq!(
        reply(&ctx, b"VERSION flare-1.3.4\r\n"),
        response(opcode::VERSION, 0, 0xdeadbeef, 0, &[], &[], b"flare-1.3.4")
    );
}

#[test]
fn getk_is_mg_with_flags_cas_and_value() {
    let (ctx, req) = decode_one(&packet(opcode::GETK, &[], b"hx", &[], 7, 0));
    let m = meta_of(&req);
    assert_eq!((m.cmd, &m.key[..]), (MetaCmd::Get, &b"hx"[..]));
    assert!(m.flags.value && m.flags.ret == b"fc" && !m.is_write());
    assert_eq!(
        reply(&ctx, b"VA 3 f7 c42\r\nval\r\n"),
        response(opcode::GETK, 0, 7, 42, &[0, 0, 0, 7], b"hx", b"val")
    );
    // a miss of GETK carries the key; GETKQ says nothing
    assert_eq!(
        reply(&ctx, b"EN\r\n"),
        response(opcode::GETK, 1, 7, 0, &[], b"hx", b"Not found")
    );
    let (ctx, _) = decode_one(&packet(opcode::GETKQ, &[], b"hx", &[], 7, 0));
    assert!(reply(&ctx, b"EN\r\n").is_empty());
}

#[test]
fn storage_opcodes_map_to_ms_modes_and_statuses() {
    let extras = [0, 0, 0, 5, 0, 0, 0, 100];
    for (op, mode, ns_status) in [
        (opcode::SET, MetaMode::Set, status::NOT_STORED),
        (opcode::ADD, MetaMode::Add, status::KEY_EEXISTS),
        (opcode::REPLACE, MetaMode::Replace, status::KEY_ENOENT),
    ] {
        let (ctx, req) = decode_one(&packet(op, &extras, b"k", b"v", 1, 9));
        let m = meta_of(&req);
        assert_eq!(m.flags.mode, mode);
        assert_eq!(m.flags.client_flags, Some(5));
        assert_eq!(m.flags.ttl, Some(100));
        assert_eq!(m.flags.compare, Some(9));
        assert_eq!(&m.data[..], b"v");
        assert_eq!(
            reply(&ctx, b"HD c10\r\n"),
            response(op, 0, 1, 10, &[], &[], &[])
        );
        assert_eq!(reply(&ctx, b"NS\r\n")[6..8], ns_status.to_be_bytes());
        assert_eq!(
            reply(&ctx, b"EX\r\n")[6..8],
            status::KEY_EEXISTS.to_be_bytes()
        );
        assert_eq!(
            reply(&ctx, b"NF\r\n")[6..8],
            status::KEY_ENOENT.to_be_bytes()
        );
    }
    // quiet: success unanswered, failure answered
    let (ctx, _) = decode_one(&packet(opcode::SETQ, &extras, b"k", b"v", 1, 0));
    assert!(reply(&ctx, b"HD c10\r\n").is_empty());
    assert_eq!(
        reply(&ctx, b"EX\r\n")[6..8],
        status::KEY_EEXISTS.to_be_bytes()
    );
    // append: no extras, missing key is NOT_STORED
    let (ctx, req) = decode_one(&packet(opcode::APPEND, &[], b"k", b"v", 1, 0));
    assert_eq!(meta_of(&req).flags.mode, MetaMode::Append);
    assert_eq!(
        reply(&ctx, b"NS\r\n")[6..8],
        status::NOT_STORED.to_be_bytes()
    );
}

#[test]
fn increment_with_initial_value_and_expiry() {
    let mut extras = Vec::new();
    extras.extend_from_slice(&3u64.to_be_bytes());
    extras.extend_from_slice(&10u64.to_be_bytes());
    extras.extend_from_slice(&60u32.to_be_bytes());
    let (ctx, req) = decode_one(&packet(opcode::INCREMENT, &extras, b"n", &[], 2, 0));
    let m = meta_of(&req);
    assert_eq!(
        (m.flags.delta, m.flags.initial, m.flags.vivify, m.flags.mode),
        (Some(3), Some(10), Some(60), MetaMode::Incr)
    );
    assert_eq!(
        reply(&ctx, b"VA 2 c5\r\n13\r\n"),
        response(opcode::INCREMENT, 0, 2, 5, &[], &[], &13u64.to_be_bytes())
    );
    assert_eq!(
        reply(
            &ctx,
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        )[6..8],
        status::DELTA_BADVAL.to_be_bytes()
    );
    // exptime 0xffffffff: never create
    extras[16..].copy_from_slice(&u32::MAX.to_be_bytes());
    let (_, req) = decode_one(&packet(opcode::DECREMENT, &extras, b"n", &[], 2, 0));
    let m = meta_of(&req);
    assert_eq!((m.flags.vivify, m.flags.mode), (None, MetaMode::Decr));
}

#[test]
fn malformed_packets_are_answered_not_fatal() {
    let einval = |bytes: &[u8]| {
        let (ctx, req) = decode_one(bytes);
        assert!(matches!(req, Request::Invalid(_)), "{req:?}");
        let mut out = BytesMut::new();
        if let Request::Invalid(line) = req {
            encode_reply(&ctx, line.as_bytes(), &mut out);
        }
        assert_eq!(out[6..8], status::EINVAL.to_be_bytes());
    };
    // SET without its extras, GET with extras, a key with a space, an
    // empty key, key + extras longer than the body
    einval(&packet(opcode::SET, &[], b"k", b"v", 0, 0));
    einval(&packet(opcode::GET, &[0; 4], b"k", &[], 0, 0));
    einval(&packet(opcode::GET, &[], b"a b", &[], 0, 0));
    einval(&packet(opcode::GET, &[], b"", &[], 0, 0));
    let mut lie = packet(opcode::GET, &[], b"key", &[], 0, 0);
    lie[2..4].copy_from_slice(&10u16.to_be_bytes());
    einval(&lie);
    // unknown opcode: UNKNOWN_COMMAND with the opcode echoed
    let (ctx, req) = decode_one(&packet(0x20, &[], &[], &[], 3, 0));
    assert_eq!(req, Request::Error);
    assert_eq!(
        reply(&ctx, b"ERROR\r\n"),
        response(
            0x20,
            status::UNKNOWN_COMMAND,
            3,
            0,
            &[],
            &[],
            b"Unknown command"
        )
    );
}

#[test]
fn huge_bodies_are_skipped_not_buffered() {
    let parser = Parser::with_limits(
        Dialect::Node,
        Limits {
            max_line: 1024,
            max_value: 100,
        },
    );
    let mut p = packet(opcode::SET, &[0; 8], b"k", &[], 5, 0);
    p[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut buf = BytesMut::from(&p[..]);
    match parser.parse(&mut buf) {
        Some(Frame::BinaryTooLarge { ctx, skip }) => {
            assert_eq!(skip, u64::from(u32::MAX));
            assert_eq!(ctx.opaque, 5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(buf.len(), 9, "only the header was consumed");
    assert!(buf.capacity() < 4096);
    // a value over the limit in a body small enough to take in: dropped
    let p = packet(opcode::SET, &[0; 8], b"k", &[b'x'; 101], 6, 0);
    let mut buf = BytesMut::from(&p[..]);
    match parser.parse(&mut buf) {
        Some(Frame::BinaryTooLarge { ctx, skip: 0 }) => assert_eq!(ctx.opaque, 6),
        other => panic!("{other:?}"),
    }
    assert!(buf.is_empty());
}

#[test]
fn incomplete_until_the_last_byte() {
    let p = packet(opcode::SET, &[0; 8], b"key", b"value", 0, 0);
    let parser = Parser::new(Dialect::Node);
    for cut in 0..p.len() {
        let mut buf = BytesMut::from(&p[..cut]);
        assert_eq!(parser.parse(&mut buf), None, "cut at {cut}");
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn stat_lines_become_packets() {
    let (ctx, req) = decode_one(&packet(opcode::STAT, &[], b"items", &[], 4, 0));
    assert_eq!(req, Request::Stats(StatsKind::Items));
    let mut want = response(opcode::STAT, 0, 4, 0, &[], b"pid", b"12");
    want.extend(response(
        opcode::STAT,
        0,
        4,
        0,
        &[],
        b"version",
        b"flare-1.3.4",
    ));
    want.extend(response(opcode::STAT, 0, 4, 0, &[], &[], &[]));
    assert_eq!(
        reply(&ctx, b"STAT pid 12\r\nSTAT version flare-1.3.4\r\nEND\r\n"),
        want
    );
    let (ctx, req) = decode_one(&packet(opcode::STAT, &[], b"bogus", &[], 4, 0));
    let Request::Invalid(line) = req else {
        panic!("{req:?}")
    };
    assert_eq!(
        reply(&ctx, line.as_bytes())[6..8],
        status::KEY_ENOENT.to_be_bytes()
    );
}

#[test]
fn quit_noop_flush() {
    let (ctx, req) = decode_one(&packet(opcode::QUIT, &[], &[], &[], 1, 0));
    assert_eq!(req, Request::Quit);
    assert_eq!(
        reply(&ctx, b""),
        response(opcode::QUIT, 0, 1, 0, &[], &[], &[])
    );
    let (ctx, _) = decode_one(&packet(opcode::QUITQ, &[], &[], &[], 1, 0));
    assert!(reply(&ctx, b"").is_empty());
    let (ctx, req) = decode_one(&packet(opcode::NOOP, &[], &[], &[], 1, 0));
    assert_eq!(req, Request::Noop);
    assert_eq!(
        reply(&ctx, b"OK\r\n"),
        response(opcode::NOOP, 0, 1, 0, &[], &[], &[])
    );
    assert_eq!(
        reply(&ctx, b"SERVER_ERROR storage error\r\n"),
        response(opcode::NOOP, 0x84, 1, 0, &[], &[], b"storage error")
    );
    let (ctx, req) = decode_one(&packet(opcode::FLUSHQ, &[0; 4], &[], &[], 1, 0));
    assert_eq!(req, Request::FlushAll { noreply: false });
    assert!(reply(&ctx, b"OK\r\n").is_empty());
}
