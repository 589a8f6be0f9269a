#!/usr/bin/env bash
# Cluster workloads on loopback, in one run: a flarei and two flared, the
# first the master of partition 0, the second a proxy and later its slave.
#
#   1. proxied gets: get-only against the master directly and through the
#      proxy, in alternation (direct, proxy, direct, proxy, ...), median;
#      ratio proxy / direct. 1b: the same with multi-gets of MGET keys (the
#      proxy forwards them all to the master: pipelined, not one round trip
#      per key).
#   2. replicated sets: set-only against the master without a slave; then the
#      second node becomes its slave (it copies the master's data first) and
#      the same set-only workload runs with async replication (the default) and
#      with sync replication (replication-type = sync, switched by editing the
#      master's config file and sending it SIGHUP), async and sync in
#      alternation; ratios async / without and sync / without.
#   3. checks that the slave has the data: keys written by sync sets just
#      before, and keys overwritten by the measured runs (same value and same
#      version (`gets`) as on the master), read from the slave itself.
#
# Prints a markdown report: throughput, latency, server CPU per operation of
# the master and of the other node, and a pass/miss list against the targets
# (proxied get >= 0.6x direct, set with an async slave >= 0.8x without).
#
#   bench/cluster.sh                 # ~70 s (flare-bench runs: 10 x DURATION)
#   DURATION=10 ROUNDS=3 bench/cluster.sh
#
# Environment (defaults):
#   CARGO_TARGET_DIR (/var/cache/flare-rs/target)  where flarei/flared/flare-bench are
#   BUILD (0)          1: cargo build --release -p flarei -p flared -p flare-bench first
#   DURATION (5)       seconds per workload run
#   ROUNDS (2)         runs per workload; the median is reported
#   CONNS (50)         client connections
#   PIPELINE (1)       requests in flight per connection
#   DIST (uniform)     key distribution: uniform or zipf
#   KEYS (100000)      keys preloaded through the master
#   SIZE (100)         value bytes
#   MGET (10)          keys per multi-get in workload 1b
#   BENCH_THREADS (1)  flare-bench runtime threads (1 = current-thread runtime)
#   PROXY_CONCURRENCY (unset = flared's default, 2)  proxy-concurrency of both nodes
#   VERIFY_KEYS (2000) keys written with sync replication and read back from the slave
#   SLAVE_LIMIT (300)  seconds the new slave may take to copy the master's data
#   RESULTS (unset)    file to copy the raw JSON lines of every run to
#
# Only loopback addresses are used. Every run and every wait is bounded; the
# servers started here are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/flare-rs/target}
BUILD=${BUILD:-0}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-50}
PIPELINE=${PIPELINE:-1}
DIST=${DIST:-uniform}
KEYS=${KEYS:-100000}
SIZE=${SIZE:-100}
MGET=${MGET:-10}
BENCH_THREADS=${BENCH_THREADS:-1}
PROXY_CONCURRENCY=${PROXY_CONCURRENCY:-}
VERIFY_KEYS=${VERIFY_KEYS:-2000}
SLAVE_LIMIT=${SLAVE_LIMIT:-300}
PRELOAD_LIMIT=${PRELOAD_LIMIT:-600} # seconds, per preload
SETTLE_MAX=${SETTLE_MAX:-60}        # seconds to wait for a server to go idle after a run
SETTLE_TICKS=${SETTLE_TICKS:-3}     # "idle": fewer clock ticks than this in 0.5 s

FLAREI=$CARGO_TARGET_DIR/release/flarei
FLARED=$CARGO_TARGET_DIR/release/flared
BENCH=$CARGO_TARGET_DIR/release/flare-bench

log() { echo "cluster.sh: $*" >&2; }
die() {
    log "$*"
    exit 2
}

command -v jq >/dev/null || die "jq not found (Debian: apt-get install jq)"
if [ "$BUILD" = 1 ]; then
    log "building flarei, flared and flare-bench (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -q -p flarei -p flared -p flare-bench) >&2
fi
for b in "$FLAREI" "$FLARED" "$BENCH"; do
    [ -x "$b" ] || die "$b not found (build with BUILD=1)"
done

WORK=$(mktemp -d /tmp/flare-cluster.XXXXXX)
PIDS=()
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
trap 'exit 130' INT TERM

CLK_TCK=$(getconf CLK_TCK)



# stat_of PORT NAME: a `stats` value (empty when absent).
stat_of() {
    ask "$1" stats END 2>/dev/null | awk -v n="$2" '$1 == "STAT" && $2 == n {print $3}'
}

# node_field PORT NODE_PORT FIELD: role/state/partition/balance of node
# 127.0.0.1:NODE_PORT in the `stats nodes` of the server on PORT.
node_field() {
    ask "$1" "stats nodes" END 2>/dev/null |
        awk -v k="127.0.0.1:$2:$3" '$1 == "STAT" && $2 == k {print $3}'
}

# wait_for WHAT SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds;
# die after SECONDS. Prints the seconds it took.
wait_for() {
    local what=$1 limit=$2 start now
    shift 2
    start=$(date +%s.%N)
    while ! "$@" 2>/dev/null; do
        now=$(date +%s.%N)
        if awk -v a="$start" -v b="$now" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
            die "timed out after $limit s waiting for $what"
        fi
        sleep 0.2
    done
    now=$(date +%s.%N)
    awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f\n", b - a }'
}

# start NAME PROGRAM PORT EXTRA_CONFIG: sets STARTED_PID; data in $WORK/NAME.
start() {
    local dir=$WORK/$1
    mkdir -p "$dir/data"
    {
        echo "data-dir = $dir/data"
        echo "server-name = 127.0.0.1"
        echo "server-port = $3"
        echo "max-connection = $((CONNS + 64))"
        printf '%s' "$4"
    } >"$dir/$1.conf"
    "$2" -f "$dir/$1.conf" --stderr >"$dir/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_port "$STARTED_PID" "$3" || {
        tail -20 "$dir/$1.log" >&2
        die "$1 did not start on port $3"
    }
}




fmt2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }

# preload PORT PREFIX KEYS
preload() {
    local out
    if ! out=$("$BENCH" preload -p "$1" --key-prefix "$2" -k "$3" --value-size "$SIZE" \
        -c "$CONNS" --pipeline 16 --threads "$BENCH_THREADS" --duration "$PRELOAD_LIMIT" --json); then
        echo "$out" >&2
        die "preload of $3 keys on port $1 failed"
    fi
    echo "$out" >>"$WORK/results.jsonl"
    echo "$out" | jq -r '.total.ops_per_s'
}

ROWS=$WORK/rows.tsv # workload round ops/s p50 p99 p99.9 master_cpu other_cpu errors client_cpu
: >"$ROWS"
FAILED=0

# run NAME ROUND PORT GET_RATIO: one measured run against PORT; the CPU of the
# master and of the other node is counted from before the run until both are
# idle again.
run() {
    local name=$1 round=$2 port=$3 gr=$4 mg=${5:-1} out rc=0 ma mb oa ob ops mcpu ocpu ccpu errs
    ma=$(cpu_ticks "$MPID")
    oa=$(cpu_ticks "$OPID")
    # the generator runs in a subshell that then reads its children's CPU
    # (cutime + cstime, fields 16 and 17 of its /proc/PID/stat)
    out=$(
        "$BENCH" run -p "$port" --key-prefix s: -k "$KEYS" --value-size "$SIZE" \
            --get-ratio "$gr" --multiget "$mg" --dist "$DIST" -c "$CONNS" --pipeline "$PIPELINE" \
            --threads "$BENCH_THREADS" --duration "$DURATION" --seed "$round" \
            --label "$name/$round" --json || c=$?
        me=$BASHPID # (not inside the pipeline: each of its parts is a new process)
        sed 's/.*) //' "/proc/$me/stat" | awk '{print $14 + $15}' >"$WORK/client_ticks"
        exit "${c:-0}"
    ) || rc=$?
    settle "$MPID" "$OPID"
    mb=$(cpu_ticks "$MPID")
    ob=$(cpu_ticks "$OPID")
    [ -n "$out" ] || die "flare-bench failed (exit $rc) on $name"
    echo "$out" >>"$WORK/results.jsonl"
    ops=$(echo "$out" | jq '.total.ops')
    mcpu=$(awk -v t=$((mb - ma)) -v hz="$CLK_TCK" -v n="$ops" \
        'BEGIN { if (n > 0) printf "%.2f", t / hz / n * 1e6; else print "nan" }')
    ocpu=$(awk -v t=$((ob - oa)) -v hz="$CLK_TCK" -v n="$ops" \
        'BEGIN { if (n > 0) printf "%.2f", t / hz / n * 1e6; else print "nan" }')
    ccpu=$(awk -v t="$(cat "$WORK/client_ticks")" -v hz="$CLK_TCK" -v n="$ops" \
        'BEGIN { if (n > 0) printf "%.2f", t / hz / n * 1e6; else print "nan" }')
    errs=$(echo "$out" | jq '.total.errors + .total.wrong_items')
    if [ "$rc" != 0 ] || [ "$errs" != 0 ]; then
        FAILED=1
        log "ERRORS on $name: $(echo "$out" | jq -c '.error_samples')"
    fi
    echo "$out" | jq -r --arg n "$name" --arg r "$round" --arg mc "$mcpu" --arg oc "$ocpu" --arg e "$errs" \
        --arg cc "$ccpu" \
        '[$n, $r, .total.ops_per_s, .total.p50_us, .total.p99_us, .total.p999_us, $mc, $oc, $e, $cc] | @tsv' \
        >>"$ROWS"
    log "$name round $round: $(echo "$out" | jq -r '"\(.total.ops_per_s) ops/s, p99 \(.total.p99_us) us"'), CPU master $mcpu + other $ocpu (+ client $ccpu) us/op, errors $errs"
}

# ---- the cluster -------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
IPORT=$(free_port)
MPORT=$(free_port)
OPORT=$(free_port)
NODE_CONF="index-servers = 127.0.0.1:$IPORT
"
[ -n "$PROXY_CONCURRENCY" ] && NODE_CONF="${NODE_CONF}proxy-concurrency = $PROXY_CONCURRENCY
"
start flarei "$FLAREI" "$IPORT" "monitor-interval = 1
"
IPID=$STARTED_PID
start master "$FLARED" "$MPORT" "$NODE_CONF"
MPID=$STARTED_PID
start other "$FLARED" "$OPORT" "$NODE_CONF"
OPID=$STARTED_PID
MCONF=$WORK/master/master.conf
log "flarei pid $IPID port $IPORT, master pid $MPID port $MPORT, proxy/slave pid $OPID port $OPORT; work dir $WORK"

registered() { [ "$(node_field "$IPORT" "$1" role)" = proxy ]; }
wait_for "the master to register with flarei" 30 registered "$MPORT" >/dev/null
wait_for "the proxy to register with flarei" 30 registered "$OPORT" >/dev/null
reply=$(ask "$IPORT" "node role 127.0.0.1 $MPORT master 1 0")
[ "$reply" = OK ] || die "node role 127.0.0.1 $MPORT master 1 0 -> $reply"
stored() { [ "$(ask "$1" $'set cluster-sh-ready 0 0 1\r\n1')" = STORED ]; }
t=$(wait_for "the master to accept sets" 30 stored "$MPORT")
log "master of partition 0 serves sets after $t s"
# The proxy learns the map from flarei's node sync: wait until it forwards.
t=$(wait_for "the proxy to forward sets" 30 stored "$OPORT")
log "proxy forwards after $t s"

rate=$(preload "$MPORT" s: "$KEYS")
settle "$MPID" "$OPID"
log "preloaded $KEYS x $SIZE B through the master at $rate sets/s"

# ---- 1. gets: direct and through the proxy, in alternation --------------------
for round in $(seq "$ROUNDS"); do
    run get-direct "$round" "$MPORT" 1
    run get-proxy "$round" "$OPORT" 1
done

# ---- 1b. multi-gets of MGET keys (all on the master): direct and proxied -----
for round in $(seq "$ROUNDS"); do
    run mget-direct "$round" "$MPORT" 1 "$MGET"
    run mget-proxy "$round" "$OPORT" 1 "$MGET"
done

# ---- 2. sets: without a slave, then with an async and a sync slave -----------
for round in $(seq "$ROUNDS"); do
    run set-alone "$round" "$MPORT" 0
done

reply=$(ask "$IPORT" "node role 127.0.0.1 $OPORT slave 1 0")
[ "$reply" = OK ] || die "node role 127.0.0.1 $OPORT slave 1 0 -> $reply"
slave_active() {
    [ "$(node_field "$IPORT" "$OPORT" role)" = slave ] &&
        [ "$(node_field "$IPORT" "$OPORT" state)" = active ] &&
        [ "$(node_field "$MPORT" "$OPORT" role)" = slave ] &&
        [ "$(node_field "$MPORT" "$OPORT" state)" = active ]
}
SLAVE_TOOK=$(wait_for "the slave to copy the master's data and become active" "$SLAVE_LIMIT" slave_active)
SLAVE_COPIED=$(stat_of "$OPORT" reconstruction_records)
log "slave active after $SLAVE_TOOK s ($SLAVE_COPIED records copied)"
settle "$MPID" "$OPID"

# set_replication TYPE: rewrite replication-type in the master's config file,
# SIGHUP, and wait until the master reports it.
set_replication() {
    sed -i '/^replication-type/d' "$MCONF"
    echo "replication-type = $1" >>"$MCONF"
    kill -HUP "$MPID"
    is_type() { [ "$(ask "$MPORT" "show variables" END | awk '$1 == "replication_type:" {print $2}')" = "$1" ]; }
    wait_for "replication-type = $1 on the master" 10 is_type "$1" >/dev/null
}
for round in $(seq "$ROUNDS"); do
    set_replication async
    run set-async "$round" "$MPORT" 0
    set_replication sync
    run set-sync "$round" "$MPORT" 0
done

# ---- 3. the slave has the data ----------------------------------------------
# VERIFY_KEYS new keys written now (replication-type is sync): each STORED
# means the slave had it. Then the slave's balance is raised so that it serves
# reads itself instead of forwarding them to the master, and the keys are read
# from it: the new ones (flare-bench verifies every value), and a sample of the
# measured runs' keys, compared with the master's value and version (`gets`).
CHECKS=()
vrate=$(preload "$MPORT" v: "$VERIFY_KEYS")
settle "$MPID" "$OPID"
log "wrote $VERIFY_KEYS keys v: with sync replication at $vrate sets/s (pipeline 16)"
reply=$(ask "$IPORT" "node role 127.0.0.1 $OPORT slave 1")
[ "$reply" = OK ] || die "node role 127.0.0.1 $OPORT slave 1 -> $reply"
reading() { [ "$(node_field "$OPORT" "$OPORT" balance)" = 1 ] && [ "$(node_field "$MPORT" "$OPORT" balance)" = 1 ]; }
wait_for "the slave to read with balance 1" 30 reading >/dev/null
hits0=$(stat_of "$OPORT" get_hits)
vout=$("$BENCH" run -p "$OPORT" --key-prefix v: -k "$VERIFY_KEYS" --value-size "$SIZE" --get-ratio 1 \
    -c 4 --ops "$VERIFY_KEYS" --duration 60 --json --label verify-slave) || true
echo "$vout" >>"$WORK/results.jsonl"
hits1=$(stat_of "$OPORT" get_hits)
vops=$(echo "$vout" | jq '.total.ops // 0')
verrs=$(echo "$vout" | jq '(.total.errors // 1) + (.total.wrong_items // 0)')
vops=${vops:-0} verrs=${verrs:-1}
if [ "$verrs" = 0 ] && [ "$vops" -gt 0 ] && [ $((hits1 - hits0)) -ge "$vops" ]; then
    CHECKS+=("| slave has the $VERIFY_KEYS keys written with sync replication | $vops gets on the slave, all verified, $((hits1 - hits0)) hits served by the slave | pass |")
else
    FAILED=1
    CHECKS+=("| slave has the $VERIFY_KEYS keys written with sync replication | $vops gets, $verrs errors, $((hits1 - hits0)) hits on the slave | MISS |")
fi
same=0 diff=0 local_hits0=$(stat_of "$OPORT" get_hits)
for i in $(seq 0 $(((KEYS - 1) / 50 > 0 ? (KEYS - 1) / 50 : 1)) $((KEYS - 1))); do
    m=$(ask "$MPORT" "gets s:$i" END | awk 'NR <= 2')
    s=$(ask "$OPORT" "gets s:$i" END | awk 'NR <= 2')
    if [ -n "$m" ] && [ "$m" = "$s" ]; then same=$((same + 1)); else diff=$((diff + 1)); log "s:$i master [$m] slave [$s]"; fi
done
local_hits=$(($(stat_of "$OPORT" get_hits) - local_hits0))
if [ "$diff" = 0 ] && [ "$local_hits" -ge "$same" ]; then
    CHECKS+=("| measured runs' keys on the slave (\`gets\`, value and version) | $same of $same sampled keys equal to the master's | pass |")
else
    FAILED=1
    CHECKS+=("| measured runs' keys on the slave (\`gets\`, value and version) | $same equal, $diff different, $local_hits served by the slave | MISS |")
fi
MITEMS=$(stat_of "$MPORT" curr_items)
SITEMS=$(stat_of "$OPORT" curr_items)
DROPPED=$(stat_of "$MPORT" replication_dropped)
DROPPED=${DROPPED:-0}
if [ "$DROPPED" = 0 ]; then
    CHECKS+=("| replication_dropped on the master | 0 (items: master $MITEMS, slave $SITEMS) | pass |")
else
    FAILED=1
    CHECKS+=("| replication_dropped on the master | $DROPPED (items: master $MITEMS, slave $SITEMS) | MISS |")
fi

[ -n "${RESULTS:-}" ] && cp "$WORK/results.jsonl" "$RESULTS"

# ---- report ------------------------------------------------------------------
# med NAME COLUMN
med() {
    awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$ROWS" | median
}
range() {
    awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$ROWS" | sort -g |
        awk 'NR == 1 {lo = $1} {hi = $1} END { printf "%s-%s", lo, hi }'
}
pc=${PROXY_CONCURRENCY:-2 (default)}
cat <<EOF
## Cluster workloads

- machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, $(uname -sr); load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)
- flarei (monitor-interval = 1) and two flared (\`$FLARED\`, RocksDB defaults, proxy-concurrency $pc) on loopback; the first is the master of partition 0, the second a proxy (gets), then its slave (sets)
- $KEYS keys of $SIZE B preloaded through the master; $CONNS connections, pipeline $PIPELINE, $DIST keys, ${DURATION} s per run, $ROUNDS round(s), median; flare-bench with $BENCH_THREADS runtime thread(s) on the same machine
- gets: direct and proxied in alternation; sets: without a slave first, then (slave active after ${SLAVE_TOOK} s, $SLAVE_COPIED records copied) async and sync in alternation, switched by SIGHUP
- CPU = utime+stime per operation: of the servers from the start of a run until both nodes are idle again, "other" = the proxy (gets) or the slave (sets); of the client (flare-bench) for its run; cores busy = (servers + client CPU per op) x ops/s, out of $(nproc)

| workload | sent to | ops/s | ratio | p50 / p99 / p99.9 us | master CPU us/op | other CPU us/op | servers CPU us/op | client CPU us/op | cores busy |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|
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
# row NAME LABEL SENT_TO BASE
row() {
    local o lat mc oc tot cc cores r=-
    o=$(med "$1" 3)
    lat=$(for c in 4 5 6; do fmt_int "$(med "$1" $c)"; echo; done | paste -sd/ | sed 's|/| / |g')
    mc=$(fmt2 "$(med "$1" 7)")
    oc=$(fmt2 "$(med "$1" 8)")
    tot=$(awk -F'\t' -v n="$1" '$1 == n {print $7 + $8}' "$ROWS" | median)
    cc=$(fmt2 "$(med "$1" 10)")
    cores=$(awk -F'\t' -v n="$1" '$1 == n {print ($7 + $8 + $10) * $3 / 1e6}' "$ROWS" | median)
    [ -n "$4" ] && r=$(ratio "$o" "$(med "$4" 3)")
    echo "| $2 | $3 | $(fmt_int "$o") | $r | $lat | $mc | $oc | $(fmt2 "$tot") | $cc | $(fmt2 "$cores") |"
    ROW_RATIO=$r
}
row get-direct "get ($SIZE B)" master ""
row get-proxy "get ($SIZE B), proxied" "proxy → master" get-direct
target "proxied get / direct get: throughput" "$ROW_RATIO" ">=" 0.6
row mget-direct "get of $MGET keys ($SIZE B)" master ""
row mget-proxy "get of $MGET keys ($SIZE B), proxied" "proxy → master" mget-direct
target "proxied multi-get / direct multi-get: throughput" "$ROW_RATIO" ">=" 0.6
row set-alone "set ($SIZE B), no slave" master ""
row set-async "set ($SIZE B), async slave" "master → slave" set-alone
target "set with an async slave / without: throughput" "$ROW_RATIO" ">=" 0.8
row set-sync "set ($SIZE B), sync slave" "master → slave" set-alone
TARGETS+=("| set with a sync slave / without: throughput | ${ROW_RATIO}x | (reported) | - |")

cat <<EOF

Per-round ops/s (min-max): get direct $(range get-direct 3), proxied $(range get-proxy 3); multi-get direct $(range mget-direct 3), proxied $(range mget-proxy 3); set alone $(range set-alone 3), async $(range set-async 3), sync $(range set-sync 3).

### Targets

| target | measured | goal | |
|---|---:|---:|---|
EOF
printf '%s\n' "${TARGETS[@]}"

cat <<EOF

### The slave has the data

| check | result | |
|---|---|---|
EOF
printf '%s\n' "${CHECKS[@]}"

if [ "$FAILED" = 1 ]; then
    echo
    echo "**Some runs or checks failed (wrong values, unexpected replies, lost connections, data missing on the slave): see stderr.**"
    exit 1
fi
