#!/usr/bin/env bash
# Install build dependencies, build flare-rs, and start a local cluster on
# loopback: flarei on 127.0.0.1:12120 and one flared on 127.0.0.1:12121, made
# the master of partition 0, so that `telnet 127.0.0.1 12121` works at once.
# Data and logs live in /tmp/flare-rs. Stop with: bash scripts/stop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
. scripts/env.sh
cargo build --release --bins
base=/tmp/flare-rs
mkdir -p "$base/index" "$base/node"
cat > "$base/flarei.conf" <<CONF
data-dir = $base/index
server-name = 127.0.0.1
server-port = 12120
monitor-interval = 1
monitor-threshold = 3
CONF
cat > "$base/flared.conf" <<CONF
data-dir = $base/node
index-servers = 127.0.0.1:12120
server-name = 127.0.0.1
server-port = 12121
CONF

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 (see $base/*.log)" >&2
    return 1
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The daemons get no descriptor of ours (stdin, stdout): `run.sh | tail`
# returns once the cluster is up instead of waiting for them to exit.
if ! alive "$base/index/flarei.pid"; then
    "$CARGO_TARGET_DIR/release/flarei" -f "$base/flarei.conf" --stderr </dev/null >/dev/null 2>>"$base/flarei.log" &
fi
wait_port 12120
# A node that died without telling the index is refused until the index has
# marked it down (monitor-threshold x monitor-interval): retry for a while.
for _ in $(seq 1 20); do
    alive "$base/node/flared.pid" && break
    "$CARGO_TARGET_DIR/release/flared" -f "$base/flared.conf" --stderr </dev/null >/dev/null 2>>"$base/flared.log" &
    node=$!
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/12121) 2>/dev/null && [ -f "$base/node/flared.pid" ] && break
        kill -0 "$node" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$node" 2>/dev/null && break
    sleep 1
done
wait_port 12121

# Make the node the master of partition 0 unless it already is.
exec 3<>/dev/tcp/127.0.0.1/12120
printf 'stats nodes\r\n' >&3
role=""
while IFS= read -r -t 5 line <&3; do
    line=${line%$'\r'}
    [ "$line" = END ] && break
    case "$line" in "STAT 127.0.0.1:12121:role "*) role=${line##* } ;; esac
done
if [ "$role" != master ]; then
    printf 'node role 127.0.0.1 12121 master 1 0\r\n' >&3
    IFS= read -r -t 5 reply <&3
    echo "node role 127.0.0.1 12121 master 1 0 -> ${reply%$'\r'}"
fi
exec 3>&-
# The node learns its role from the index's node sync: wait until it serves.
for _ in $(seq 1 50); do
    exec 4<>/dev/tcp/127.0.0.1/12121
    printf 'set flare-rs-ready 0 0 1\r\n1\r\n' >&4
    IFS= read -r -t 5 reply <&4 || reply=""
    exec 4>&-
    [ "${reply%$'\r'}" = STORED ] && break
    sleep 0.1
done
echo "flarei: 127.0.0.1:12120   flared: 127.0.0.1:12121 (master of partition 0)"
echo "try: telnet 127.0.0.1 12121    stop: bash scripts/stop.sh"
