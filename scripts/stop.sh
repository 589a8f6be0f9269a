#!/usr/bin/env bash
# Stop the local cluster started by scripts/run.sh (node first, then index).
set -u
base=/tmp/flare-rs
for pidfile in "$base/node/flared.pid" "$base/index/flarei.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
