#!/usr/bin/env python3
"""Drive a flared node with a real memcached meta-protocol client.

usage: meta_client.py HOST:PORT [--keep]

Uses meta-memcache (PyPI, RevenueCat's client; installed into the venv of
scripts/install-deps.sh, whose python scripts/env.sh exports as FLARE_PYTHON)
through its CacheClient: set/get/delete, add/replace/append/prepend, touch and
get-with-touch, cas tokens (get_cas, set with a cas token, set_cas, delete with
a token), counters (delta*), noreply, multi_get, unicode (base64) keys, and the
low-level meta_get/meta_set/meta_arithmetic for flags the high-level calls do
not return. A few checks cross over to the text protocol on a raw socket (the
cas token is the version `gets` shows; flags and data are the same record).

meta-memcache 4.3.0 (meta-memcache-socket 0.3.1) holds cas tokens in 32 bits:
a token above 4294967295 comes back as None, and passing one raises. flared's
tokens are record versions, epoch << 40 + n, always above that. So the cas
semantics are checked with raw meta commands (mg c, ms C, md C, ma C) on the
raw socket, and the client's own cas calls only where the server's tokens fit
in 32 bits (memcached's do).

Run by tests/tests/protocol_tools.rs against a standalone flared and against
the proxy node of a two-partition cluster: the keys are the ones the e2e
harness (tests/src/lib.rs, P0 and P1) knows to live on partition 0 and 1 of 2.

With --keep the keys of P0 and P1 are left holding `m-<key>` (a str value,
client flag 0) and nothing else is stored, so that the caller can check where
they landed; without it every key is deleted at the end.

Exits 0 when every check passed, 1 with a message on the first mismatch, 2
when meta-memcache is not installed.
"""
import os
import socket
import sys
import time
import traceback

try:
    from meta_memcache import (
        CacheClient,
        Key,
        Miss,
        RequestFlags,
        ServerAddress,
        SetMode,
        Success,
        Value,
        connection_pool_factory_builder,
    )
    from meta_memcache.protocol import MA_MODE_DEC
except ImportError as e:  # pragma: no cover
    print(
        f"meta_client: cannot import meta_memcache with {sys.executable} ({e}): "
        "run scripts/install-deps.sh and use its venv (FLARE_PYTHON from scripts/env.sh)",
        file=sys.stderr,
    )
    sys.exit(2)

# Keys of partition 0 and partition 1 of 2 (tests/src/lib.rs P0, P1).
P0 = ["bar", "baz", "key0", "key2", "key4", "test_key1", "a"]
P1 = ["foo", "hello", "key1", "key3", "key5", "user:1000"]
# One key of each partition, for the per-operation checks.
PAIR = ["key0", "key1"]
WAIT = 15.0


class Mismatch(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Mismatch(what)


def eq(got, want, what):
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, want {want!r}")


class Text:
    """A raw text-protocol connection for cross-checks."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise Mismatch(f"text connection closed after {self.buf!r}")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise Mismatch("text connection closed in a value")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def gets(self, key):
        """(flags, data, version) or None."""
        self.sock.sendall(b"gets " + key + b"\r\n")
        first = self.line()
        if first == b"END":
            return None
        parts = first.split(b" ")
        check(parts[0] == b"VALUE" and len(parts) == 5, f"gets reply {first!r}")
        data = self.exact(int(parts[3]) + 2)[:-2]
        eq(self.line(), b"END", "gets terminator")
        return int(parts[2]), data, int(parts[4])

    def request(self, req):
        self.sock.sendall(req)
        return self.line()

    def meta(self, line, data=None):
        """Send a meta request line (and its data block); return the reply
        header split at spaces, and the data of a VA reply (else None)."""
        req = line + b"\r\n"
        if data is not None:
            req += data + b"\r\n"
        self.sock.sendall(req)
        parts = self.line().split(b" ")
        value = None
        if parts[0] == b"VA":
            value = self.exact(int(parts[1]) + 2)[:-2]
        return parts, value


def flag(parts, f):
    """The token of return flag `f` (one letter) in a meta reply header."""
    for p in parts[1:]:
        if p[:1] == f:
            return p[1:]
    raise Mismatch(f"no {f!r} flag in {b' '.join(parts)!r}")


def client(host, port):
    return CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host=host, port=port)],
        connection_pool_factory_fn=connection_pool_factory_builder(
            connection_timeout=WAIT, recv_timeout=WAIT
        ),
        raise_on_server_error=True,
    )


def ttl_of(c, key):
    r = c.meta_get(Key(key), flags=RequestFlags(return_ttl=True))
    check(isinstance(r, Success), f"mg {key} t: {r!r}")
    return r.flags.ttl


def run(host, port, keep):
    c = client(host, port)
    t = Text(host, port)
    every = P0 + P1
    for k in every:
        check(c.invalidate(k), f"invalidate {k}")

    # --- misses
    for k in PAIR:
        eq(c.get(k), None, f"get {k} (missing)")
        eq(c.get_cas(k), (None, None), f"get_cas {k} (missing)")
        eq(c.delete(k), False, f"delete {k} (missing)")
        eq(c.touch(k, 100), False, f"touch {k} (missing)")

    # --- set/get of each value type (the serializer's client flags)
    big = os.urandom(200 * 1024)
    values = {
        "bar": b"bytes\r\nwith CRLF and \x00 NUL",
        "foo": "a str: \u00e9t\u00e9",
        "baz": 12345,
        "hello": {"a": [1, 2, 3], "b": "pickled"},
        "key2": big,
        "key3": b"",
    }
    for k, v in values.items():
        check(c.set(k, v, ttl=0), f"set {k}")
    for k, v in values.items():
        eq(c.get(k), v, f"get {k}")
    # the same record through the text protocol: bytes are client flag 16
    eq(t.gets(b"bar")[:2], (16, values["bar"]), "text gets bar after ms")
    eq(t.gets(b"key3")[:2], (16, b""), "text gets key3 (empty value)")
    # random bytes over the compression threshold: zlib (flag 8) + binary (16)
    eq(t.gets(b"key2")[0], 16 | 8, "client flag of the compressed value")

    # --- low-level flags: value, client flag, size, ttl, key, opaque
    r = c.meta_get(
        Key("bar"),
        flags=RequestFlags(
            return_value=True,
            return_client_flag=True,
            return_size=True,
            return_ttl=True,
            return_key=True,
            opaque=b"op42",
        ),
    )
    check(isinstance(r, Value), f"mg bar v f s t k O: {r!r}")
    eq(r.flags.client_flag, 16, "mg f")
    eq(r.flags.size, len(values["bar"]), "mg s")
    eq(r.size, len(values["bar"]), "VA length")
    eq(r.flags.ttl, -1, "mg t of a record without expiry")
    eq(r.flags.opaque, b"op42", "mg O echoed")
    eq(r.value, values["bar"], "mg value")
    r = c.meta_get(Key("nokey"), flags=RequestFlags(return_value=True))
    check(isinstance(r, Miss), f"mg of a missing key: {r!r}")
    # ms with an explicit client flag, read back as text
    r = c.meta_set(Key("key4"), b"raw", flags=RequestFlags(client_flag=16))
    check(isinstance(r, Success), f"ms key4: {r!r}")
    eq(t.gets(b"key4")[:2], (16, b"raw"), "text gets key4")
    parts, _ = t.meta(b"ms key4 4 F16 c", b"raw2")
    eq(parts[0], b"HD", "raw ms key4 c")
    eq(int(flag(parts, b"c")), t.gets(b"key4")[2], "ms c token = the version text gets shows")
    # can the client carry this server's cas tokens (see the docstring)?
    client_cas = int(flag(parts, b"c")) <= 0xFFFFFFFF
    if not client_cas:
        print(
            "meta_client: the server's cas tokens need more than 32 bits: "
            "the client's own cas calls are skipped, raw meta commands check cas"
        )

    # --- ttl: set with ttl, touch, get with touch (gat)
    for k in PAIR:
        check(c.set(k, b"ttl", ttl=1000), f"set {k} ttl")
        ttl = ttl_of(c, k)
        check(ttl is not None and 990 <= ttl <= 1000, f"ttl of {k} after set T1000: {ttl}")
        check(c.touch(k, 500), f"touch {k}")
        ttl = ttl_of(c, k)
        check(ttl is not None and 490 <= ttl <= 500, f"ttl of {k} after touch 500: {ttl}")
        eq(c.get(k, touch_ttl=300), b"ttl", f"get {k} with touch")
        ttl = ttl_of(c, k)
        check(ttl is not None and 290 <= ttl <= 300, f"ttl of {k} after get with touch 300: {ttl}")
        check(c.touch(k, 0), f"touch {k} 0")
        eq(ttl_of(c, k), -1, f"ttl of {k} after touch 0 (no expiry)")
    # expiry: a record with ttl 1 goes away (polled, bounded)
    for k in PAIR:
        check(c.set(k, b"short", ttl=1), f"set {k} ttl 1")
    deadline = time.monotonic() + WAIT
    while any(c.get(k) is not None for k in PAIR):
        check(time.monotonic() < deadline, f"{PAIR} still there {WAIT}s after ttl 1")
        time.sleep(0.1)

    # --- cas, with raw meta commands
    for k in PAIR:
        kb = k.encode()
        check(c.set(k, b"v1", ttl=0), f"set {k} v1")
        parts, v = t.meta(b"mg %s c v" % kb)
        eq((parts[0], v), (b"VA", b"v1"), f"mg {k} c v")
        cas = int(flag(parts, b"c"))
        eq(t.gets(kb)[2], cas, f"mg c token of {k} = the version text gets shows")
        eq(t.meta(b"ms %s 2 F16 C%d" % (kb, cas), b"v2")[0], [b"HD"], f"ms {k} C<current>")
        eq(t.meta(b"ms %s 2 F16 C%d" % (kb, cas), b"v3")[0], [b"EX"], f"ms {k} C<stale>")
        eq(c.get(k), b"v2", f"get {k} after the cas conflict")
        parts, _ = t.meta(b"ms %s 2 F16 c" % kb, b"v4")
        new = int(flag(parts, b"c"))
        check(new != cas, f"ms {k} c: a new token")
        eq(t.gets(kb)[2], new, f"ms c token of {k} = the version text gets shows")
        eq(t.meta(b"md %s C%d" % (kb, cas))[0], [b"EX"], f"md {k} C<stale>")
        eq(c.get(k), b"v4", f"{k} kept after the refused delete")
        eq(t.meta(b"ma %s C%d" % (kb, cas))[0], [b"EX"], f"ma {k} C<stale>")
        eq(t.meta(b"md %s C%d" % (kb, new))[0], [b"HD"], f"md {k} C<current>")
        eq(c.get(k), None, f"get {k} after md")
        eq(t.meta(b"ms %s 2 F16 C%d" % (kb, new), b"v5")[0], [b"NF"], f"ms {k} C<token> (missing)")
        eq(c.get(k), None, f"{k} not created by a cas set")

    # --- cas, with the client's calls
    for k in PAIR if client_cas else []:
        check(c.set(k, b"v1", ttl=0), f"set {k} v1")
        v, cas = c.get_cas(k)
        eq(v, b"v1", f"get_cas {k} value")
        check(isinstance(cas, int) and cas > 0, f"get_cas {k} token: {cas!r}")
        eq(t.gets(k.encode())[2], cas, f"cas token of {k} = the version text gets shows")
        check(c.set(k, b"v2", ttl=0, cas_token=cas), f"set {k} with the current token")
        eq(c.set(k, b"v3", ttl=0, cas_token=cas), False, f"set {k} with a stale token")
        eq(c.get(k), b"v2", f"get {k} after the cas conflict")
        new = c.set_cas(k, b"v4", ttl=0)
        check(isinstance(new, int) and new != cas, f"set_cas {k} token: {new!r}")
        eq(c.get_cas(k), (b"v4", new), f"get_cas {k} after set_cas")
        eq(t.gets(k.encode())[2], new, f"set_cas token of {k} = the version text gets shows")
        eq(c.delete(k, cas_token=cas), False, f"delete {k} with a stale token")
        eq(c.get(k), b"v4", f"{k} kept after the refused delete")
        check(c.delete(k, cas_token=new), f"delete {k} with the current token")
        eq(c.get(k), None, f"get {k} after delete")
        eq(c.set(k, b"v5", ttl=0, cas_token=new), False, f"set {k} with a token when it is missing")
        eq(c.get(k), None, f"{k} not created by a cas set")

    # --- add / replace / append / prepend
    for k in PAIR:
        eq(c.set(k, b"r", ttl=0, set_mode=SetMode.REPLACE), False, f"replace {k} (missing)")
        check(c.set(k, b"mid", ttl=0, set_mode=SetMode.ADD), f"add {k} (missing)")
        eq(c.set(k, b"x", ttl=0, set_mode=SetMode.ADD), False, f"add {k} (present)")
        eq(c.refill(k, b"x", ttl=0), False, f"refill {k} (present)")
        check(c.set(k, b"-end", ttl=0, set_mode=SetMode.APPEND), f"append {k}")
        check(c.set(k, b"start-", ttl=0, set_mode=SetMode.PREPEND), f"prepend {k}")
        eq(c.get(k), b"start-mid-end", f"get {k} after append and prepend")
        check(c.set(k, b"R", ttl=0, set_mode=SetMode.REPLACE), f"replace {k} (present)")
        eq(c.get(k), b"R", f"get {k} after replace")
        check(c.delete(k), f"delete {k}")
        eq(c.delete(k), False, f"delete {k} again")
        eq(c.set(k, b"a", ttl=0, set_mode=SetMode.APPEND), False, f"append {k} (missing)")
        check(c.refill(k, b"refilled", ttl=0), f"refill {k} (missing)")
        eq(c.get(k), b"refilled", f"get {k} after refill")

    # --- counters
    for k in PAIR:
        check(c.invalidate(k), f"invalidate {k}")
        eq(c.delta(k, 1), False, f"delta {k} (missing)")
        eq(c.delta_and_get(k, 1), None, f"delta_and_get {k} (missing)")
        check(c.set(k, 10, ttl=0), f"set {k} 10")
        check(c.delta(k, 5), f"delta {k} +5")
        eq(c.delta_and_get(k, 1), 16, f"delta_and_get {k} +1")
        eq(c.delta_and_get(k, -4), 12, f"delta_and_get {k} -4")
        eq(c.delta_and_get(k, -100), 0, f"decrement of {k} below 0 stops at 0")
        eq(c.get(k), 0, f"get {k} after the counter ops (client flag kept)")
        eq(t.request(f"incr {k} 7\r\n".encode()), b"7", f"text incr {k}")
        eq(c.delta_and_get(k, 3), 10, f"delta_and_get {k} after text incr")
        # ma with a cas token
        cas = t.gets(k.encode())[2]
        if client_cas:
            eq(c.delta(k, 1, cas_token=cas + 1), False, f"delta {k} with a stale token")
            check(c.delta(k, 1, cas_token=cas), f"delta {k} with the current token")
        else:
            eq(t.meta(b"ma %s C%d" % (k.encode(), cas + 1))[0], [b"EX"], f"ma {k} C<stale>")
            eq(t.meta(b"ma %s C%d" % (k.encode(), cas))[0], [b"HD"], f"ma {k} C<current>")
        eq(c.get(k), 11, f"get {k} after delta with cas")
        # ma returns the new value (v) and cas (c)
        r = c.meta_arithmetic(Key(k), flags=RequestFlags(ma_delta_value=2, return_value=True))
        check(isinstance(r, Value), f"ma {k} v: {r!r}")
        eq(int(r.value), 13, f"ma {k} value")
        parts, v = t.meta(b"ma %s v c D0" % k.encode())
        eq((parts[0], v), (b"VA", b"13"), f"ma {k} v c D0")
        eq(t.gets(k.encode())[2], int(flag(parts, b"c")), f"ma c token of {k} = version")
        r = c.meta_arithmetic(
            Key(k), flags=RequestFlags(ma_delta_value=3, mode=MA_MODE_DEC, return_value=True)
        )
        eq(int(r.value), 10, f"ma {k} decrement")
        # a non-numeric value: ma is refused with CLIENT_ERROR (raw: the
        # client would log the error reply as a broken connection)
        check(c.set(k, b"not a number", ttl=0), f"set {k} text")
        reply = t.request(f"ma {k}\r\n".encode())
        check(reply.startswith(b"CLIENT_ERROR "), f"ma on the non-numeric {k}: {reply!r}")
        eq(c.get(k), b"not a number", f"{k} unchanged by the refused ma")
        # autovivify: a missing counter is created with the initial value
        check(c.invalidate(k), f"invalidate {k}")
        eq(
            c.delta_initialize_and_get(k, 1, initial_value=7, initial_ttl=0),
            7,
            f"delta_initialize_and_get {k} (missing: the initial value)",
        )
        eq(
            c.delta_initialize_and_get(k, 2, initial_value=7, initial_ttl=0),
            9,
            f"delta_initialize_and_get {k} (present)",
        )
        check(c.delta_initialize(k, 1, initial_value=7, initial_ttl=0), f"delta_initialize {k}")
        eq(t.gets(k.encode())[1], b"10", f"text gets of the counter {k}")

    # --- noreply (q): nothing comes back, the next reply is in sync
    for k in PAIR:
        check(c.set(k, b"quiet", ttl=0, no_reply=True), f"set {k} noreply")
        eq(c.get(k), b"quiet", f"get {k} after a noreply set")
        c.delete(k, no_reply=True)
        eq(c.get(k), None, f"get {k} after a noreply delete")
        c.set(k, 1, ttl=0)
        c.delta(k, 4, no_reply=True)
        eq(c.get(k), 5, f"get {k} after a noreply delta")
        c.touch(k, 100, no_reply=True)
        ttl = ttl_of(c, k)
        check(ttl is not None and 90 <= ttl <= 100, f"ttl of {k} after a noreply touch: {ttl}")

    # --- multi_get over both partitions, with misses in between
    for k in every:
        check(c.set(k, f"m-{k}", ttl=0), f"set {k}")
    keys = [Key(k) for k in P1 + ["missing1"] + P0 + ["missing2"]]
    got = c.multi_get(keys)
    want = {Key(k): f"m-{k}" for k in P0 + P1}
    want[Key("missing1")] = None
    want[Key("missing2")] = None
    eq(got, want, "multi_get")
    got = c.multi_get_cas(keys)
    for k in P0 + P1:
        v, cas = got[Key(k)]
        eq(v, f"m-{k}", f"multi_get_cas {k}")
        if client_cas:
            eq(t.gets(k.encode())[2], cas, f"multi_get_cas token of {k}")

    # --- keys the client base64-encodes (b flag): non-ASCII; stored as bytes
    for name in ["\u043a\u043b\u044e\u0447", "\u00fcber:\u00e9"]:
        key = Key(name)
        check(c.set(key, b"unicode", ttl=0), f"set {name!r}")
        eq(c.get(key), b"unicode", f"get {name!r}")
        eq(t.gets(name.encode())[:2], (16, b"unicode"), f"text gets of the UTF-8 key {name!r}")
        check(c.delete(key), f"delete {name!r}")
        eq(t.gets(name.encode()), None, f"text gets of {name!r} after delete")

    # --- mn answers MN on the raw connection
    eq(t.request(b"mn\r\n"), b"MN", "mn")

    if not keep:
        for k in every:
            check(c.invalidate(k), f"invalidate {k}")


def main():
    args = sys.argv[1:]
    keep = "--keep" in args
    args = [a for a in args if a != "--keep"]
    if len(args) != 1 or ":" not in args[0]:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, port = args[0].rsplit(":", 1)
    try:
        run(host, int(port), keep)
    except Mismatch as e:
        print(f"meta_client: FAIL against {host}:{port}: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        print(f"meta_client: FAIL against {host}:{port}: exception", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    print(f"meta_client: all checks passed against {host}:{port}")


if __name__ == "__main__":
    main()
