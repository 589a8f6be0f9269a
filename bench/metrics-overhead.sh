#!/usr/bin/env bash
# What the Prometheus metrics cost a node: a flared built before them (BASE)
# against the current one (NEW, with metrics-port on and scraped every
# second as Prometheus would), and memcached as the reference, in one run.
# For each workload and round, each server gets the same flare-bench load
# (and, for 90/10, libmemcached's memcaslap), in alternation; the report
# gives the medians of ops/s, p99 and server CPU per request.
#
#   BASE=/path/to/old/flared bash bench/metrics-overhead.sh
#
# Environment (defaults): BASE (required), NEW ($FLARE_BIN_DIR/flared),
# ROUNDS (3), DURATION (10 s), CONNS (32), KEYS (100000), SIZE (100).
# Everything on 127.0.0.1, free ports, a temporary directory; every
# process started here is stopped on exit, by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BASE=${BASE:?set BASE to a flared binary built before the metrics}
NEW=${NEW:-$FLARE_BIN_DIR/flared}
BENCH=${BENCH:-$FLARE_BIN_DIR/flare-bench}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
KEYS=${KEYS:-100000}
SIZE=${SIZE:-100}
SETTLE_TICKS=${SETTLE_TICKS:-5}
SETTLE_MAX=${SETTLE_MAX:-30}

log() { echo "metrics-overhead.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
# shellcheck source=bench/common.sh
. bench/common.sh
for b in "$BASE" "$NEW" "$BENCH"; do [ -x "$b" ] || die "$b is not an executable"; done
for c in memcached memcaslap jq curl; do command -v "$c" >/dev/null || die "$c not found (Debian: memcached, libmemcached-tools, jq, curl)"; done

WORK=$(mktemp -d /tmp/metrics-overhead.XXXXXX)
PIDS=()
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
CLK_TCK=$(getconf CLK_TCK)

# start NAME BINARY PORT [CONF LINES]: a standalone flared; sets STARTED_PID
start() {
    local dir=$WORK/$1
    mkdir -p "$dir/data"
    printf 'data-dir = %s\nserver-name = 127.0.0.1\nserver-port = %s\nmax-connection = %s\n%s' \
        "$dir/data" "$3" $((CONNS + 64)) "${4:-}" >"$dir/flared.conf"
    "$2" -f "$dir/flared.conf" --stderr >"$dir/flared.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_port "$STARTED_PID" "$3" || die "$1 did not start: $(tail -5 "$dir/flared.log")"
}

declare -A PORT PID
PORT[base]=$(free_port)
PORT[new]=$(free_port)
PORT[memcached]=$(free_port)
MPORT=$(free_port)
start base "$BASE" "${PORT[base]}"
PID[base]=$STARTED_PID
start new "$NEW" "${PORT[new]}" "metrics-port = $MPORT
metrics-address = 127.0.0.1
"
PID[new]=$STARTED_PID
user=()
[ "$(id -u)" = 0 ] && user=(-u nobody)
memcached "${user[@]}" -l 127.0.0.1 -p "${PORT[memcached]}" -t 2 -m 1024 >"$WORK/memcached.log" 2>&1 &
PID[memcached]=$!
PIDS+=("${PID[memcached]}")
wait_port "${PID[memcached]}" "${PORT[memcached]}" || die "memcached did not start"
# a scraper, as Prometheus: every second, bounded by the run
(
    end=$((SECONDS + 3600))
    while [ $SECONDS -lt $end ]; do
        curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$MPORT/metrics" || true
        sleep 1
    done
) &
PIDS+=($!)
SERVERS=(base new memcached)
for s in "${SERVERS[@]}"; do
    "$BENCH" preload -p "${PORT[$s]}" -k "$KEYS" --value-size "$SIZE" -c 16 --pipeline 16 \
        --duration 120 --json >/dev/null || die "preload of $s failed"
done
log "servers: base ${PORT[base]}, new ${PORT[new]} (metrics $MPORT), memcached ${PORT[memcached]}"

ROWS=$WORK/rows.tsv # tool workload server ops/s p99_us cpu_us/op
: >"$ROWS"
cpu_per_op() { # before after ops
    awk -v t=$(($2 - $1)) -v hz="$CLK_TCK" -v n="$3" 'BEGIN { if (n > 0) printf "%.2f", t / hz / n * 1e6; else print "nan" }'
}
for round in $(seq "$ROUNDS"); do
    for w in "get|1" "set|0" "90/10|0.9"; do
        IFS='|' read -r name gr <<<"$w"
        for s in "${SERVERS[@]}"; do
            before=$(cpu_ticks "${PID[$s]}")
            out=$("$BENCH" run -p "${PORT[$s]}" -k "$KEYS" --value-size "$SIZE" --get-ratio "$gr" \
                -c "$CONNS" --duration "$DURATION" --seed "$round" --json) || die "flare-bench failed on $s"
            after=$(cpu_ticks "${PID[$s]}")
            ops=$(jq '.total.ops' <<<"$out")
            [ "$(jq '.total.errors + .total.wrong_items' <<<"$out")" = 0 ] || die "errors on $s: $out"
            printf 'flare-bench\t%s\t%s\t%s\t%s\t%s\n' "$name" "$s" "$(jq '.total.ops_per_s' <<<"$out")" \
                "$(jq '.total.p99_us' <<<"$out")" "$(cpu_per_op "$before" "$after" "$ops")" >>"$ROWS"
            settle "${PID[$s]}"
        done
    done
    for s in "${SERVERS[@]}"; do
        before=$(cpu_ticks "${PID[$s]}")
        out=$(timeout $((DURATION + 60)) memcaslap -s "127.0.0.1:${PORT[$s]}" -T 2 -c "$CONNS" \
            -t "${DURATION}s" -X "$SIZE" 2>&1) || die "memcaslap failed on $s: $out"
        after=$(cpu_ticks "${PID[$s]}")
        # the last "Run time" line: ... TPS: <n> ...
        tps=$(sed -nE 's/^Run time: .*TPS: ([0-9]+).*/\1/p' <<<"$out" | tail -1)
        [ -n "$tps" ] || die "no TPS in memcaslap's output: $out"
        printf 'memcaslap\t90/10\t%s\t%s\t-\t%s\n' "$s" "$tps" \
            "$(cpu_per_op "$before" "$after" $((tps * DURATION)))" >>"$ROWS"
        settle "${PID[$s]}"
    done
    log "round $round done"
done

med() { awk -F'\t' -v t="$1" -v w="$2" -v s="$3" -v c="$4" '$1 == t && $2 == w && $3 == s {print $c}' "$ROWS" | median; }
echo "| tool | workload | base ops/s | new ops/s | new/base | memcached ops/s | base p99 µs | new p99 µs | base CPU µs/op | new CPU µs/op |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for tw in "flare-bench|get" "flare-bench|set" "flare-bench|90/10" "memcaslap|90/10"; do
    IFS='|' read -r t w <<<"$tw"
    b=$(med "$t" "$w" base 4)
    n=$(med "$t" "$w" new 4)
    echo "| $t | $w | $(fmt_int "$b") | $(fmt_int "$n") | $(ratio "$n" "$b" 3) | $(fmt_int "$(med "$t" "$w" memcached 4)") | $(med "$t" "$w" base 5) | $(med "$t" "$w" new 5) | $(med "$t" "$w" base 6) | $(med "$t" "$w" new 6) |"
done
