#!/usr/bin/env bash
# flared vs memcached on loopback, in one run: the same keys, the same
# workloads, run against both in alternation (flared, memcached, flared,
# memcached, ...), median of the rounds; throughput, latency, server CPU per
# operation, and flared's memory and disk after a bulk load. Prints markdown.
#
#   bench/compare.sh                # ~4 minutes
#   DURATION=30 ROUNDS=3 bench/compare.sh
#   FULL=1 bench/compare.sh         # also RSS/disk at 10 M keys (+ a few minutes)
#
# Environment (defaults):
#   CARGO_TARGET_DIR (/var/cache/flare-rs/target)  where flared/flare-bench are
#   BUILD (1)          cargo build --release -p flared -p flare-bench first
#   DURATION (5)       seconds per workload run
#   ROUNDS (2)         runs per workload and server; the median is reported
#   CONNS (50)         client connections
#   PIPELINE (1)       requests in flight per connection
#   DIST (uniform)     key distribution: uniform or zipf
#   KEYS_SMALL (100000) keys with 100-byte values
#   KEYS_LARGE (10000)  keys with 10-KB values (100 MB: fits memcached's -m 1024)
#   SMALL (100) LARGE (10240)  the two value sizes
#   MC_THREADS (2)     memcached -t
#   BENCH_THREADS (1)  flare-bench runtime threads (1 = current-thread runtime)
#   MEM_KEYS (1000000) keys of 100 bytes loaded for the memory figure
#   FULL (0)           1: also load 10 M keys (MEM_KEYS_FULL) into a fresh flared
#   MEM_KEYS_FULL (10000000)
#   MEM_MEMCACHED (1)  1: also load MEM_KEYS into a fresh memcached, for reference
#   RESULTS (unset)    file to copy the raw JSON lines of every run to
#
# Only loopback addresses are used. Every run is bounded (DURATION, and the
# preloads by --duration); the servers started here are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/flare-rs/target}
BUILD=${BUILD:-1}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-50}
PIPELINE=${PIPELINE:-1}
DIST=${DIST:-uniform}
KEYS_SMALL=${KEYS_SMALL:-100000}
KEYS_LARGE=${KEYS_LARGE:-10000}
SMALL=${SMALL:-100}
LARGE=${LARGE:-10240}
MC_THREADS=${MC_THREADS:-2}
BENCH_THREADS=${BENCH_THREADS:-1}
MEM_KEYS=${MEM_KEYS:-1000000}
FULL=${FULL:-0}
MEM_KEYS_FULL=${MEM_KEYS_FULL:-10000000}
MEM_MEMCACHED=${MEM_MEMCACHED:-1}
PRELOAD_LIMIT=${PRELOAD_LIMIT:-1800} # seconds, per preload
SETTLE_MAX=${SETTLE_MAX:-60}         # seconds to wait for a server to go idle after a run
SETTLE_TICKS=${SETTLE_TICKS:-3}      # "idle": fewer clock ticks than this in 0.5 s

FLARED=$CARGO_TARGET_DIR/release/flared
BENCH=$CARGO_TARGET_DIR/release/flare-bench

log() { echo "compare.sh: $*" >&2; }
die() {
    log "$*"
    exit 2
}

command -v memcached >/dev/null || die "memcached not found (Debian: apt-get install memcached)"
command -v jq >/dev/null || die "jq not found (Debian: apt-get install jq)"
if [ "$BUILD" = 1 ]; then
    log "building flared and flare-bench (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -q -p flared -p flare-bench) >&2
fi
[ -x "$FLARED" ] || die "$FLARED not found (build with BUILD=1)"
[ -x "$BENCH" ] || die "$BENCH not found (build with BUILD=1)"

WORK=$(mktemp -d /tmp/flare-compare.XXXXXX)
PIDS=()
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trap 'exit 130' INT TERM

# stop_pid PID: SIGTERM, wait (bounded: 10 s), SIGKILL; forget the pid.
stop_pid() {
    local keep=() p
    kill -TERM "$1" 2>/dev/null || true
    reap "$1"
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

CLK_TCK=$(getconf CLK_TCK)



# start_flared NAME PORT: sets STARTED_PID; data in $WORK/NAME.
start_flared() {
    local dir=$WORK/$1
    mkdir -p "$dir/data"
    cat >"$dir/flared.conf" <<EOF
data-dir = $dir/data
server-name = 127.0.0.1
server-port = $2
max-connection = $((CONNS + 64))
EOF
    "$FLARED" -f "$dir/flared.conf" --stderr >"$dir/flared.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_port "$STARTED_PID" "$2" || {
        tail -20 "$dir/flared.log" >&2
        die "flared did not start on port $2"
    }
}

# start_memcached NAME PORT: sets STARTED_PID.
start_memcached() {
    local user=()
    [ "$(id -u)" = 0 ] && user=(-u nobody)
    memcached "${user[@]}" -l 127.0.0.1 -p "$2" -t "$MC_THREADS" -m 1024 -U 0 >"$WORK/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_port "$STARTED_PID" "$2" || {
        cat "$WORK/$1.log" >&2
        die "memcached did not start on port $2"
    }
}



rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}



# preload PORT PREFIX KEYS SIZE
preload() {
    local out
    if ! out=$("$BENCH" preload -p "$1" --key-prefix "$2" -k "$3" --value-size "$4" \
        -c "$CONNS" --pipeline 16 --threads "$BENCH_THREADS" --duration "$PRELOAD_LIMIT" --json); then
        echo "$out" >&2
        die "preload of $3 keys ($4 B) on port $1 failed"
    fi
    echo "$out" >>"$WORK/results.jsonl"
    echo "$out" | jq -r '"\(.total.ops_per_s)"'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
FPORT=$(free_port)
MPORT=$(free_port)
start_flared flared "$FPORT"
FPID=$STARTED_PID
start_memcached memcached "$MPORT"
MPID=$STARTED_PID
log "flared pid $FPID port $FPORT, memcached pid $MPID port $MPORT; work dir $WORK"

for srv in flared memcached; do
    port=$FPORT
    [ $srv = memcached ] && port=$MPORT
    r1=$(preload "$port" s: "$KEYS_SMALL" "$SMALL")
    r2=$(preload "$port" l: "$KEYS_LARGE" "$LARGE")
    settle "$FPID"
    log "preloaded $srv: $KEYS_SMALL x $SMALL B at $r1 sets/s, $KEYS_LARGE x $LARGE B at $r2 sets/s"
done

# name | value size | get ratio | multi-get
WORKLOADS=(
    "get|$SMALL|1|1"
    "set|$SMALL|0|1"
    "90/10|$SMALL|0.9|1"
    "mget10|$SMALL|1|10"
    "get|$LARGE|1|1"
    "set|$LARGE|0|1"
    "90/10|$LARGE|0.9|1"
    "mget10|$LARGE|1|10"
)

ROWS=$WORK/rows.tsv # workload size server round ops/s p50 p99 p99.9 cpu_us/op errors
: >"$ROWS"
FAILED=0
for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r name size gr mg <<<"$w"
    if [ "$size" = "$SMALL" ]; then prefix=s: keys=$KEYS_SMALL; else prefix=l: keys=$KEYS_LARGE; fi
    for round in $(seq "$ROUNDS"); do
        for srv in flared memcached; do
            if [ $srv = flared ]; then port=$FPORT pid=$FPID; else port=$MPORT pid=$MPID; fi
            before=$(cpu_ticks "$pid")
            rc=0
            out=$("$BENCH" run -p "$port" --key-prefix "$prefix" -k "$keys" --value-size "$size" \
                --get-ratio "$gr" --multiget "$mg" --dist "$DIST" -c "$CONNS" --pipeline "$PIPELINE" \
                --threads "$BENCH_THREADS" --duration "$DURATION" --seed "$round" \
                --label "$name/$size/$srv/$round" --json) || rc=$?
            settle "$pid"
            after=$(cpu_ticks "$pid")
            [ -n "$out" ] || die "flare-bench failed (exit $rc) on $srv, $name $size B"
            echo "$out" >>"$WORK/results.jsonl"
            ops=$(echo "$out" | jq '.total.ops')
            cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$ops" \
                'BEGIN { if (n > 0) printf "%.2f", t / hz / n * 1e6; else print "nan" }')
            errs=$(echo "$out" | jq '.total.errors + .total.wrong_items')
            if [ "$rc" != 0 ] || [ "$errs" != 0 ]; then
                FAILED=1
                log "ERRORS on $srv, $name $size B: $(echo "$out" | jq -c '.error_samples')"
            fi
            echo "$out" | jq -r --arg n "$name" --arg s "$size" --arg srv $srv --arg r "$round" \
                --arg cpu "$cpu" --arg e "$errs" \
                '[$n, $s, $srv, $r, .total.ops_per_s, .total.p50_us, .total.p99_us, .total.p999_us, $cpu, $e] | @tsv' \
                >>"$ROWS"
            log "$name ${size}B $srv round $round: $(echo "$out" | jq -r '"\(.total.ops_per_s) ops/s, p99 \(.total.p99_us) us"'), cpu $cpu us/op, errors $errs"
        done
    done
done

# med NAME SIZE SERVER COLUMN
med() {
    awk -F'\t' -v n="$1" -v s="$2" -v srv="$3" -v c="$4" '$1 == n && $2 == s && $3 == srv {print $c}' "$ROWS" | median
}
fmt2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }

# Memory: a fresh flared, MEM_KEYS (and MEM_KEYS_FULL) keys of SMALL bytes.
declare -a MEMROWS=()
mem_flared() {
    local keys=$1 port pid rate rss disk
    port=$(free_port)
    start_flared "mem$keys" "$port"
    pid=$STARTED_PID
    rate=$(preload "$port" m: "$keys" "$SMALL")
    settle "$pid"
    rss=$(rss_kib "$pid")
    disk=$(du -sk "$WORK/mem$keys/data" | awk '{print $1}')
    MEMROWS+=("| flared | $keys | $SMALL | $(fmt_int "$rate") | $(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v k="$disk" 'BEGIN { printf "%.1f", k / 1024 }') |")
    log "memory: flared, $keys keys: RSS $rss KiB, data dir $disk KiB"
    stop_pid "$pid"
    rm -rf "$WORK/mem$keys/data"
    if [ "$keys" = "$MEM_KEYS_FULL" ]; then RSS_FULL_KIB=$rss; fi
}
mem_memcached() {
    local keys=$1 port pid rate rss
    port=$(free_port)
    start_memcached "memmc$keys" "$port"
    pid=$STARTED_PID
    rate=$(preload "$port" m: "$keys" "$SMALL")
    rss=$(rss_kib "$pid")
    MEMROWS+=("| memcached | $keys | $SMALL | $(fmt_int "$rate") | $(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') | - |")
    stop_pid "$pid"
}
# The comparison servers are no longer needed: stop them so they don't share
# the machine with the bulk loads.
stop_pid "$FPID"
stop_pid "$MPID"
RSS_FULL_KIB=
mem_flared "$MEM_KEYS"
[ "$MEM_MEMCACHED" = 1 ] && mem_memcached "$MEM_KEYS"
[ "$FULL" = 1 ] && mem_flared "$MEM_KEYS_FULL"

[ -n "${RESULTS:-}" ] && cp "$WORK/results.jsonl" "$RESULTS"

# ---- report ----------------------------------------------------------------
cat <<EOF
## flared vs memcached

- machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, $(uname -sr); load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)
- flared: \`$FLARED\` (standalone, RocksDB defaults); memcached $(memcached -V | awk '{print $2}') (\`-t $MC_THREADS -m 1024 -U 0\`)
- $CONNS connections, pipeline $PIPELINE, $DIST keys, ${DURATION} s per run, $ROUNDS round(s) per server in alternation (flared, memcached, flared, ...), median
- $KEYS_SMALL keys of $SMALL B and $KEYS_LARGE keys of $LARGE B preloaded in both; flare-bench with $BENCH_THREADS runtime thread(s) on the same machine
- ratio = flared / memcached; CPU = server utime+stime per operation (a multi-get of 10 is one operation), counted from the start of a run until the server is idle again (so flushes and compactions a run causes are charged to it)

| workload | value | flared ops/s | memcached ops/s | ratio | flared p50 / p99 / p99.9 us | memcached p50 / p99 / p99.9 us | p99 ratio | flared CPU us/op | memcached CPU us/op | CPU ratio |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
TARGETS=()
# target LABEL VALUE OP LIMIT
target() {
    local verdict
    verdict=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN {
        if (v == "n/a") { print "n/a"; exit }
        ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0); print ok ? "pass" : "MISS" }')
    TARGETS+=("| $1 | ${2}x | $3 ${4}x | $verdict |")
}
for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r name size _ _ <<<"$w"
    fo=$(med "$name" "$size" flared 5)
    mo=$(med "$name" "$size" memcached 5)
    fp=$(for c in 6 7 8; do fmt_int "$(med "$name" "$size" flared $c)"; echo; done | paste -sd/ | sed 's|/| / |g')
    mp=$(for c in 6 7 8; do fmt_int "$(med "$name" "$size" memcached $c)"; echo; done | paste -sd/ | sed 's|/| / |g')
    f99=$(med "$name" "$size" flared 7)
    m99=$(med "$name" "$size" memcached 7)
    fc=$(fmt2 "$(med "$name" "$size" flared 9)")
    mc=$(fmt2 "$(med "$name" "$size" memcached 9)")
    r=$(ratio "$fo" "$mo")
    r99=$(ratio "$f99" "$m99")
    rc=$(ratio "$fc" "$mc")
    echo "| $name | $size | $(fmt_int "$fo") | $(fmt_int "$mo") | $r | $fp | $mp | $r99 | $fc | $mc | $rc |"
    case $name in
    get) target "$name, $size B: throughput" "$r" ">=" 1.0
        target "$name, $size B: server CPU/op" "$rc" "<=" 1.0 ;;
    set) target "$name, $size B: throughput" "$r" ">=" 0.7
        target "$name, $size B: server CPU/op" "$rc" "<=" 1.5 ;;
    mget10) target "$name, $size B: throughput" "$r" ">=" 1.0
        target "$name, $size B: server CPU/op" "$rc" "<=" 1.0 ;;
    esac
    target "$name, $size B: p99 latency" "$r99" "<=" 2.0
done
if [ -n "$RSS_FULL_KIB" ]; then
    TARGETS+=("| RSS at $MEM_KEYS_FULL keys | $(awk -v k="$RSS_FULL_KIB" 'BEGIN { printf "%.1f", k / 1024 }') MiB | <= 256 MiB | $(awk -v k="$RSS_FULL_KIB" 'BEGIN { print (k <= 262144) ? "pass" : "MISS" }') |")
else
    TARGETS+=("| RSS at $MEM_KEYS_FULL keys | not measured (FULL=1) | <= 256 MiB | - |")
fi

cat <<EOF

### Memory after a bulk load (fresh server, keys of $SMALL B, $CONNS connections, pipeline 16)

| server | keys | value B | load sets/s | RSS MiB | data dir MiB |
|---|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${MEMROWS[@]}"

cat <<EOF

### Targets

| target | measured | goal | |
|---|---:|---:|---|
EOF
printf '%s\n' "${TARGETS[@]}"

if [ "$FAILED" = 1 ]; then
    echo
    echo "**Some runs had errors (wrong values, unexpected replies or lost connections): see stderr.**"
    exit 1
fi
