#!/usr/bin/env bash
# The text and binary protocols side by side, measured with an independent
# load generator (libmemcached's memcaslap: 9 gets to 1 set, 100-byte
# values), against a standalone flared and memcached in the same run.
# Prints a markdown table of transactions per second.
#
#   bench/protocols.sh                     # ~1 minute
#   DURATION=30 CONNS=64 bench/protocols.sh
#
# Environment (defaults): CARGO_TARGET_DIR (scripts/env.sh), DURATION (10 s
# per run), CONNS (32), THREADS (2 memcaslap threads), MC_THREADS (2).
# Loopback only; both servers are stopped on exit; every run is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/env.sh"
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
MC_THREADS=${MC_THREADS:-2}
command -v memcaslap >/dev/null || { echo "protocols.sh: memcaslap not found (apt-get install libmemcached-tools)" >&2; exit 1; }
command -v memcached >/dev/null || { echo "protocols.sh: memcached not found (apt-get install memcached)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
fport=$(free_port)
mport=$(free_port)
printf 'data-dir = %s\nserver-name = 127.0.0.1\nserver-port = %s\n' "$work" "$fport" > "$work/flared.conf"
"$FLARE_BIN_DIR/flared" -f "$work/flared.conf" --stderr 2>"$work/flared.log" &
fpid=$!
memcached -u nobody -l 127.0.0.1 -p "$mport" -U 0 -t "$MC_THREADS" -m 1024 &
mpid=$!
trap 'kill $fpid $mpid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$fport") 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/"$mport") 2>/dev/null && break
    sleep 0.1
done
tps() {
    timeout $((DURATION + 60)) memcaslap -s "127.0.0.1:$1" -T "$THREADS" -c "$CONNS" -t "${DURATION}s" -X 100 $2 2>&1 |
        sed -nE 's/^Run time: .*TPS: ([0-9]+).*/\1/p'
}
echo "| protocol | flared TPS | memcached TPS | ratio |"
echo "|---|---:|---:|---:|"
for proto in text binary; do
    flag=""
    [ "$proto" = binary ] && flag="-B"
    f=$(tps "$fport" "$flag")
    m=$(tps "$mport" "$flag")
    echo "| $proto | $f | $m | $(python3 -c "print(f'{$f/$m:.2f}')") |"
done
