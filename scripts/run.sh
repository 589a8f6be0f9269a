#!/usr/bin/env bash
# Install build dependencies, build flare-rs, and start a local standalone
# flared on 127.0.0.1:12121 (data in /tmp/flare-rs/node, log in
# /tmp/flare-rs/flared.log). Stop it with: kill $(cat /tmp/flare-rs/node/flared.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
. scripts/env.sh
cargo build --release --bins
base=/tmp/flare-rs
mkdir -p "$base/node"
cat > "$base/flared.conf" <<CONF
data-dir = $base/node
server-name = 127.0.0.1
server-port = 12121
CONF
if [ -f "$base/node/flared.pid" ] && kill -0 "$(cat "$base/node/flared.pid")" 2>/dev/null; then
    echo "flared already running (pid $(cat "$base/node/flared.pid"))"
else
    "$CARGO_TARGET_DIR/release/flared" -f "$base/flared.conf" --stderr 2>>"$base/flared.log" &
    for _ in $(seq 1 50); do
        (exec 3<>/dev/tcp/127.0.0.1/12121) 2>/dev/null && break
        sleep 0.1
    done
fi
echo "flared is listening on 127.0.0.1:12121 (try: telnet 127.0.0.1 12121)"
