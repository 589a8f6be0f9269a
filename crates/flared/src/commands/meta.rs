//! The meta commands (`mg`, `ms`, `md`, `ma`, `me`) applied to local
//! storage, and the binary protocol's key commands, which are decoded into
//! them (flare_proto::binary). `cas` is the record's version; the routing
//! and replication of [`super::route`] apply as to the text commands.

use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use flare_proto::reply::{put_i64, put_u64};
use flare_proto::request::{MetaCmd, MetaFlags, MetaMode, MetaRequest};
use flare_proto::{absolute_expire, reply};
use flare_storage::{
    ArithOp, ArithOutcome, DeleteOutcome, Record, StoreMode, StoreOutcome, WriteRequest,
};

use super::Applied;
use crate::node::{now, Node};
use crate::recache::{Answer, Hint};
use crate::stats::inc;

pub const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";

/// What a reply line reports about the item.
#[derive(Default)]
struct Item<'a> {
    record: Option<&'a Record>,
    /// The version after the write (ms, ma) when there is no record at hand.
    version: Option<u64>,
    /// The recache protocol's answer (`W`, `X`, `Z`).
    recache: Answer,
}

/// The key as the client sent it (base64 with `b`).
fn put_key(out: &mut BytesMut, m: &MetaRequest) {
    if m.flags.base64 {
        let enc = base64::engine::general_purpose::STANDARD.encode(&m.key);
        out.put_slice(enc.as_bytes());
    } else {
        out.put_slice(&m.key);
    }
}

/// Seconds left before the record expires, -1 for never.
fn ttl_left(r: &Record, now: i64) -> i64 {
    if r.expire == 0 {
        -1
    } else {
        (r.expire - now).max(0)
    }
}

/// Append the return flags, in request order, to a reply line.
fn put_flags(out: &mut BytesMut, m: &MetaRequest, item: &Item<'_>, now: i64) {
    let f = &m.flags;
    let with_key = f.ret.contains(&b'k');
    for &c in &f.ret {
        match (c, item.record) {
            (b'b', _) if with_key => out.put_slice(b" b"),
            (b'k', _) => {
                out.put_slice(b" k");
                put_key(out, m);
            }
            (b'O', _) => {
                out.put_slice(b" O");
                out.put_slice(f.opaque.as_deref().unwrap_or_default());
            }
            (b'c', r) => {
                if let Some(v) = r.map(|r| r.version).or(item.version) {
                    out.put_slice(b" c");
                    put_u64(out, v);
                }
            }
            (b'f', Some(r)) => {
                out.put_slice(b" f");
                put_u64(out, u64::from(r.flags));
            }
            (b's', Some(r)) => {
                out.put_slice(b" s");
                put_u64(out, r.value.len() as u64);
            }
            (b't', Some(r)) => {
                out.put_slice(b" t");
                put_i64(out, ttl_left(r, now));
            }
            // not tracked by a persistent store: never hit / accessed now
            (b'h', Some(_)) => out.put_slice(b" h0"),
            (b'l', Some(_)) => out.put_slice(b" l0"),
            _ => {}
        }
    }
    if item.recache.won {
        out.put_slice(b" W");
    }
    if item.recache.stale {
        out.put_slice(b" X");
    }
    if item.recache.taken {
        out.put_slice(b" Z");
    }
}

/// The codes quiet mode (`q`) hides, per command (protocol.txt): a miss
/// of `mg`; success of `ms`; success and not-found of `md` and `ma`.
/// Errors and other codes always come.
fn hidden_when_quiet(cmd: MetaCmd, code: &[u8]) -> bool {
    match cmd {
        MetaCmd::Get | MetaCmd::Debug => code == b"EN",
        MetaCmd::Set => code == b"HD",
        MetaCmd::Delete | MetaCmd::Arith => code == b"HD" || code == b"NF",
    }
}

/// A status line (`HD`, `NS`, `EX`, `NF`) with the flags that apply
/// (nothing when quiet mode hides it).
fn status(out: &mut BytesMut, code: &[u8], m: &MetaRequest, item: &Item<'_>, now: i64) {
    if m.flags.quiet && hidden_when_quiet(m.cmd, code) {
        return;
    }
    out.put_slice(code);
    put_flags(out, m, item, now);
    out.put_slice(b"\r\n");
}

/// `VA <size> <flags>` + data block, or `HD <flags>` without `v`.
fn hit(out: &mut BytesMut, m: &MetaRequest, item: &Item<'_>, data: &[u8], now: i64) {
    if m.flags.value {
        out.put_slice(b"VA ");
        put_u64(out, data.len() as u64);
        put_flags(out, m, item, now);
        out.put_slice(b"\r\n");
        out.put_slice(data);
        out.put_slice(b"\r\n");
    } else {
        status(out, b"HD", m, item, now);
    }
}

fn miss(out: &mut BytesMut, m: &MetaRequest) {
    if !(m.flags.quiet && hidden_when_quiet(m.cmd, b"EN")) {
        out.put_slice(b"EN\r\n");
    }
}

/// A meta command that only reads: `mg` without `T`/`N`, `me`.
pub fn read(node: &Node, m: &MetaRequest, out: &mut BytesMut) {
    let now = now();
    let c = &node.counters;
    if m.cmd == MetaCmd::Get {
        inc(&c.cmd_get);
    }
    let record = match node.store.get(&m.key, now) {
        Ok(r) => r,
        Err(e) => {
            node.fail_storage(op(m), &e);
            out.extend_from_slice(reply::IO_ERROR);
            return;
        }
    };
    let Some(r) = record else {
        if m.cmd == MetaCmd::Get {
            inc(&c.get_misses);
        }
        return miss(out, m);
    };
    if m.cmd == MetaCmd::Debug {
        return debug(out, m, &r, now);
    }
    inc(&c.get_hits);
    found(node, m, &r, now, out);
}

/// An `mg` hit, with its recache answer.
fn found(node: &Node, m: &MetaRequest, r: &Record, now: i64, out: &mut BytesMut) {
    let item = Item {
        record: Some(r),
        recache: recache(node, m, r, now),
        ..Default::default()
    };
    hit(out, m, &item, &r.value, now);
}

/// The recache answer of an `mg` hit: stale records and `R<ttl>` below the
/// TTL left offer the recache to the first reader (`W`), later readers of
/// the same version see `Z`.
fn recache(node: &Node, m: &MetaRequest, r: &Record, now: i64) -> Answer {
    let wants = m
        .flags
        .recache
        .is_some_and(|t| r.expire != 0 && r.expire - now < t);
    node.hints.read(&m.key, r.version, wants)
}

/// `ME <key> exp=… la=… cas=… fetch=… cls=… size=…`.
fn debug(out: &mut BytesMut, m: &MetaRequest, r: &Record, now: i64) {
    out.put_slice(b"ME ");
    put_key(out, m);
    out.put_slice(b" exp=");
    put_i64(out, ttl_left(r, now));
    out.put_slice(b" la=0 cas=");
    put_u64(out, r.version);
    out.put_slice(b" fetch=no cls=1 size=");
    put_u64(out, (m.key.len() + r.value.len()) as u64);
    out.put_slice(b"\r\n");
}

fn op(m: &MetaRequest) -> &'static str {
    match m.cmd {
        MetaCmd::Get => "mg",
        MetaCmd::Set => "ms",
        MetaCmd::Delete => "md",
        MetaCmd::Arith => "ma",
        MetaCmd::Debug => "me",
    }
}

/// A meta command that writes, on the key's master (or standalone).
pub fn write(node: &Node, m: &MetaRequest, out: &mut BytesMut) -> Option<Applied> {
    let now = now();
    let result = match m.cmd {
        MetaCmd::Get => get_and_touch(node, m, now, out),
        MetaCmd::Set => set(node, m, now, out),
        MetaCmd::Delete => delete(node, m, now, out),
        MetaCmd::Arith => arith(node, m, now, out),
        MetaCmd::Debug => {
            read(node, m, out);
            Ok(None)
        }
    };
    match result {
        Ok(applied) => applied,
        Err(e) => {
            node.fail_storage(op(m), &e);
            out.extend_from_slice(reply::IO_ERROR);
            None
        }
    }
}

type Result<T> = std::result::Result<T, flare_storage::StorageError>;

/// `mg` with `T` (touch on hit) and/or `N` (create an empty item on miss).
fn get_and_touch(
    node: &Node,
    m: &MetaRequest,
    now: i64,
    out: &mut BytesMut,
) -> Result<Option<Applied>> {
    let c = &node.counters;
    inc(&c.cmd_get);
    if let Some(ttl) = m.flags.ttl {
        let expire = absolute_expire(ttl, now);
        return Ok(match node.store.touch(&m.key, expire, now)? {
            Some(r) => {
                inc(&c.get_hits);
                inc(&c.touch_hits);
                found(node, m, &r, now, out);
                Some(Applied::Touch(m.key.clone(), expire, r.version))
            }
            None => {
                inc(&c.get_misses);
                inc(&c.touch_misses);
                vivify(node, m, now, out)?
            }
        });
    }
    match node.store.get(&m.key, now)? {
        Some(r) => {
            inc(&c.get_hits);
            found(node, m, &r, now, out);
            Ok(None)
        }
        None => {
            inc(&c.get_misses);
            vivify(node, m, now, out)
        }
    }
}

/// A miss of `mg`: with `N<ttl>`, create an empty item and answer `W`.
fn vivify(node: &Node, m: &MetaRequest, now: i64, out: &mut BytesMut) -> Result<Option<Applied>> {
    let Some(ttl) = m.flags.vivify else {
        miss(out, m);
        return Ok(None);
    };
    let w = WriteRequest {
        key: &m.key,
        flags: 0,
        expire: absolute_expire(ttl, now),
        value: b"",
        version: 0,
    };
    match node.store.store(StoreMode::Add, w, now)? {
        StoreOutcome::Stored { version } => {
            node.hints.set(
                &m.key,
                Hint {
                    version,
                    stale: false,
                    win_sent: true,
                },
            );
            let r = node.store.peek(&m.key)?;
            let item = Item {
                record: r.as_ref(),
                recache: Answer {
                    won: true,
                    ..Default::default()
                },
                ..Default::default()
            };
            hit(out, m, &item, b"", now);
            Ok(Some(Applied::Record(m.key.clone())))
        }
        // held by a delete: a plain miss
        _ => {
            miss(out, m);
            Ok(None)
        }
    }
}

fn set(node: &Node, m: &MetaRequest, now: i64, out: &mut BytesMut) -> Result<Option<Applied>> {
    let c = &node.counters;
    inc(&c.cmd_set);
    let f: &MetaFlags = &m.flags;
    let mode = match f.mode {
        MetaMode::Add => StoreMode::Add,
        MetaMode::Replace => StoreMode::Replace,
        MetaMode::Append => StoreMode::Append,
        MetaMode::Prepend => StoreMode::Prepend,
        _ => StoreMode::Set,
    };
    let w = WriteRequest {
        key: &m.key,
        flags: f.client_flags.unwrap_or(0),
        expire: absolute_expire(f.ttl.unwrap_or(0), now),
        value: &m.data,
        version: f.explicit.unwrap_or(0),
    };
    let none = Item::default();
    let mut outcome = node.store.store_if(mode, w, f.compare, now)?;
    let mut stale = false;
    if let (StoreOutcome::Exists, Some(unique), true) = (outcome, f.compare, f.invalidate) {
        // `I`: a cas older than the record's is accepted, and the stored
        // record is marked stale
        if node.store.peek(&m.key)?.is_some_and(|r| unique < r.version) {
            outcome = node.store.store_if(mode, w, None, now)?;
            stale = true;
        }
    }
    Ok(match outcome {
        StoreOutcome::Stored { version } => {
            if stale {
                node.hints.set(
                    &m.key,
                    Hint {
                        version,
                        stale: true,
                        win_sent: false,
                    },
                );
            }
            inc(&c.total_items);
            if f.compare.is_some() {
                inc(&c.cas_hits);
            }
            let item = Item {
                version: Some(version),
                ..Default::default()
            };
            status(out, b"HD", m, &item, now);
            Some(Applied::Record(m.key.clone()))
        }
        StoreOutcome::NotStored => {
            status(out, b"NS", m, &none, now);
            None
        }
        StoreOutcome::Exists => {
            inc(&c.cas_badval);
            status(out, b"EX", m, &none, now);
            None
        }
        StoreOutcome::NotFound => {
            inc(&c.cas_misses);
            status(out, b"NF", m, &none, now);
            None
        }
    })
}

fn delete(node: &Node, m: &MetaRequest, now: i64, out: &mut BytesMut) -> Result<Option<Applied>> {
    let c = &node.counters;
    let f = &m.flags;
    let version = f.explicit.unwrap_or(0);
    if f.invalidate {
        return invalidate(node, m, now, out);
    }
    let outcome = match f.compare {
        Some(unique) => node.store.delete_if(&m.key, unique, version, now)?,
        None => node.store.delete(&m.key, 0, version, now)?,
    };
    let none = Item::default();
    Ok(match outcome {
        DeleteOutcome::Deleted { version } => {
            inc(&c.delete_hits);
            status(out, b"HD", m, &none, now);
            Some(Applied::Delete(m.key.clone(), 0, version))
        }
        DeleteOutcome::NotFound => {
            inc(&c.delete_misses);
            status(out, b"NF", m, &none, now);
            None
        }
        DeleteOutcome::Exists => {
            inc(&c.delete_misses);
            status(out, b"EX", m, &none, now);
            None
        }
    })
}

/// `md <key> I [T<ttl>] [C<cas>]`: instead of deleting, mark the record
/// stale and give it a new version (so earlier cas tokens fail), keeping
/// its value; `T` sets a new TTL. The new version replicates like any
/// write; the stale mark is a hint of this node (crate::recache).
fn invalidate(
    node: &Node,
    m: &MetaRequest,
    now: i64,
    out: &mut BytesMut,
) -> Result<Option<Applied>> {
    let c = &node.counters;
    let f = &m.flags;
    let none = Item::default();
    let Some(r) = node.store.get(&m.key, now)? else {
        inc(&c.delete_misses);
        status(out, b"NF", m, &none, now);
        return Ok(None);
    };
    let w = WriteRequest {
        key: &m.key,
        flags: r.flags,
        expire: f.ttl.map_or(r.expire, |t| absolute_expire(t, now)),
        value: &r.value,
        version: 0,
    };
    Ok(
        match node.store.store_if(StoreMode::Replace, w, f.compare, now)? {
            StoreOutcome::Stored { version } => {
                inc(&c.delete_hits);
                node.hints.set(
                    &m.key,
                    Hint {
                        version,
                        stale: true,
                        win_sent: false,
                    },
                );
                status(out, b"HD", m, &none, now);
                Some(Applied::Record(m.key.clone()))
            }
            StoreOutcome::Exists => {
                status(out, b"EX", m, &none, now);
                None
            }
            StoreOutcome::NotStored | StoreOutcome::NotFound => {
                inc(&c.delete_misses);
                status(out, b"NF", m, &none, now);
                None
            }
        },
    )
}

fn arith(node: &Node, m: &MetaRequest, now: i64, out: &mut BytesMut) -> Result<Option<Applied>> {
    let c = &node.counters;
    let f = &m.flags;
    let incr = f.mode != MetaMode::Decr;
    let (hits, misses) = if incr {
        (&c.incr_hits, &c.incr_misses)
    } else {
        (&c.decr_hits, &c.decr_misses)
    };
    let op = ArithOp {
        delta: f.delta.unwrap_or(1),
        incr,
        strict: true,
        create: f
            .vivify
            .map(|ttl| (f.initial.unwrap_or(0), 0, absolute_expire(ttl, now))),
        compare: f.compare,
        expire: f.ttl.map(|ttl| absolute_expire(ttl, now)),
    };
    let none = Item::default();
    Ok(match node.store.arith_with(&m.key, op, now)? {
        ArithOutcome::Value { value, .. } => {
            inc(hits);
            let r = node.store.peek(&m.key)?;
            let item = Item {
                record: r.as_ref(),
                ..Default::default()
            };
            if f.value {
                hit(out, m, &item, value.to_string().as_bytes(), now);
            } else {
                status(out, b"HD", m, &item, now);
            }
            Some(Applied::Record(m.key.clone()))
        }
        ArithOutcome::NotFound => {
            inc(misses);
            status(out, b"NF", m, &none, now);
            None
        }
        ArithOutcome::NonNumeric => {
            out.extend_from_slice(NON_NUMERIC);
            None
        }
        ArithOutcome::Exists => {
            status(out, b"EX", m, &none, now);
            None
        }
    })
}

/// Relay a forwarded meta answer to a client that asked for quiet mode:
/// the codes it would not have seen from a local execution are dropped
/// (the forwarded request itself is never quiet, so the pooled connection
/// always gets an answer).
pub fn relay_quiet(cmd: MetaCmd, answer: &[u8], out: &mut BytesMut) {
    let code = answer.get(..2).unwrap_or_default();
    let whole_code = matches!(answer.get(2), Some(b' ' | b'\r' | b'\n'));
    if !(whole_code && hidden_when_quiet(cmd, code)) {
        out.extend_from_slice(answer);
    }
}
