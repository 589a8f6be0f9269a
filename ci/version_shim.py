#!/usr/bin/env python3
"""A byte-forwarding TCP shim used only to run libmemcached's memccapable
against flared.

memccapable (libmemcached-awesome) reads the first character after "VERSION "
and treats anything above '1' as "memcached >= 1.6", whose `version foo bar`
answers VERSION. Flare answers `VERSION flare-1.3.4` ('f' > '1') while keeping
the 1.4-era rule that `version <args>` is an ERROR (protocol.md TV-36), so every
memccapable test that uses `version` as a sync point would fail for that reason
alone. This shim rewrites only that reply line, `VERSION flare-1.3.4` ->
`VERSION 1.3.4`, and forwards every other byte unchanged, in both directions.

usage: version_shim.py LISTEN_PORT TARGET_PORT   (loopback only)
"""
import socket
import sys
import threading

SEARCH = b"VERSION flare-"
REPLACE = b"VERSION "


def pump(src, dst, rewrite):
    pending = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if rewrite:
                data = pending + data
                # keep a tail that could be the start of SEARCH split across reads
                keep = 0
                for k in range(1, len(SEARCH)):
                    if data.endswith(SEARCH[:k]):
                        keep = k
                pending = data[len(data) - keep:] if keep else b""
                data = data[: len(data) - keep] if keep else data
                data = data.replace(SEARCH, REPLACE)
            dst.sendall(data)
        if pending:
            dst.sendall(pending)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(16)
    while True:
        client, _ = srv.accept()
        upstream = socket.create_connection(("127.0.0.1", target_port))
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, True), daemon=True).start()


if __name__ == "__main__":
    main()
