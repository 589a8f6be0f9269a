#!/usr/bin/env bash
# Draw docs/images/dashboard.png: run a small flare-rs cluster on loopback
# under a phased load, let a real Prometheus scrape it, and render
# etc/grafana/flare-dashboard.json from that Prometheus with
# scripts/render-dashboard.py.
#
#   RENDER_PYTHON=/tmp/render-venv/bin/python scripts/dashboard-demo.sh
#   DEMO_MINUTES=3 OUT=/tmp/dash.png scripts/dashboard-demo.sh
#
# The cluster: one flarei (monitor-interval 1 s, threshold 2) and three flared
# (node 1 the master of partition 0, node 2 its slave, node 3 a proxy), every
# daemon with a metrics endpoint; Debian's prometheus scrapes them every 2 s
# with the rules of etc/prometheus/flare-alerts.yml. The window shown is the
# DEMO_MINUTES from the moment Prometheus is up; the load is scheduled in
# fractions of it (flare-bench, one run at a time):
#
#   0    - 0.22  preload, then sets and gets (50/50) on the master directly
#   0.22 - 0.42  mostly gets (zipf) through the proxy; the slave takes reads
#   0.40         a 4th flared starts and becomes a second slave: it copies the
#                partition at a limited rate (the reconstruction panels)
#   0.42 - 0.85  a mixed load through the proxy on a larger key range: misses
#                at first, fewer as the sets fill it
#   0.67         kill -9 of the master: the index fails over to node 2
#   0.75         node 1 is started again (a proxy: it was replaced) and made
#                a slave again: a second copy
#   0.85 - 1     gets and sets on the new master directly
#
# Then the dashboard is rendered for that window and the path of the PNG is
# printed. Everything listens on 127.0.0.1, in a block of free ports in
# 20000-32000: flarei on <block>20, node N on <block>2N, their metrics on
# <block>40 and <block>4N, Prometheus on <block>90. Prometheus labels each
# target with the daemon's own address (instance="127.0.0.1:<block>2N", as
# the slave, peer and node labels name the nodes). The data, configuration
# files and logs are in a `mktemp -d` directory, removed at the end
# (KEEP_WORK=1 keeps it). Every process started here is stopped on exit,
# failure or interruption, by its pid.
#
# Environment (defaults):
#   DEMO_MINUTES (6)     length of the window (at least 2)
#   RENDER_PYTHON (python3)  a python with matplotlib
#                        (scripts/render-requirements.txt)
#   OUT (docs/images/dashboard.png)  the picture
#   RENDER_ARGS ()       more arguments for render-dashboard.py
#   CARGO_TARGET_DIR (/var/cache/flare-rs/target)  where release/flarei,
#                        release/flared and release/flare-bench are
#   PROMETHEUS (prometheus)  the Prometheus binary
#   KEEP_WORK (0)        1: keep the work directory (logs, configuration)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEMO_MINUTES=${DEMO_MINUTES:-6}
RENDER_PYTHON=${RENDER_PYTHON:-python3}
OUT=${OUT:-docs/images/dashboard.png}
RENDER_ARGS=${RENDER_ARGS:-}
TARGET=${CARGO_TARGET_DIR:-/var/cache/flare-rs/target}/release
FLAREI=$TARGET/flarei
FLARED=$TARGET/flared
BENCH=$TARGET/flare-bench
PROMETHEUS=${PROMETHEUS:-prometheus}
KEEP_WORK=${KEEP_WORK:-0}
ALERTS=$ROOT/etc/prometheus/flare-alerts.yml
SCRAPE=2 # seconds

KEYS=30000       # preloaded keys
MISS_KEYS=200000 # key range of the load with misses: most are not set yet
SIZE=100         # value bytes

log() { echo "dashboard-demo: $(date +%H:%M:%S) $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
# ask (and the bench scripts' other helpers)
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../bench/common.sh"

# ---- checks before anything starts -----------------------------------------
awk -v m="$DEMO_MINUTES" 'BEGIN { exit !(m ~ /^[0-9]+(\.[0-9]+)?$/ && m >= 2) }' ||
    die "DEMO_MINUTES must be a number of minutes, at least 2 (not '$DEMO_MINUTES')"
for b in "$FLAREI" "$FLARED" "$BENCH"; do
    [ -x "$b" ] || die "$b not found (set CARGO_TARGET_DIR)"
done
command -v "$PROMETHEUS" >/dev/null || die "$PROMETHEUS not found (Debian: apt-get install prometheus)"
command -v curl >/dev/null || die "curl not found"
command -v jq >/dev/null || die "jq not found"
command -v ss >/dev/null || die "ss not found (iproute2)"
[ -r "$ALERTS" ] || die "$ALERTS not found"
"$RENDER_PYTHON" -c 'import matplotlib' 2>/dev/null ||
    die "$RENDER_PYTHON has no matplotlib: python3 -m venv /tmp/render-venv &&" \
        "/tmp/render-venv/bin/pip install -r scripts/render-requirements.txt, then RENDER_PYTHON=/tmp/render-venv/bin/python"

WORK=$(mktemp -d /tmp/flare-dashboard-demo.XXXXXX)
PIDS=()   # every process started here, in start order
STATUS=0

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
    STATUS=$?
    trap - EXIT INT TERM
    local pid i
    # newest first, one at a time: the load, Prometheus, the nodes (which
    # tell the index they stop), the index last
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || true
        reap "$pid" # at most 10 s each, then SIGKILL
    done
    if [ "$STATUS" != 0 ] && [ "$STATUS" != 130 ] && [ "$STATUS" != 143 ]; then # not on ^C
        for f in "$WORK"/*.log; do
            [ -s "$f" ] || continue
            echo "---- last lines of $(basename "$f")" >&2
            tail -n 8 "$f" >&2
        done
    fi
    if [ "$KEEP_WORK" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$STATUS"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ----------------------------------------------------------------
# pick_ports: a block of 100 ports in 20000-31999 whose ports 20-24, 40-44
# and 90 are free: the index on <block>20 and node N on <block>2N (as 12120
# and 12121), their metrics on <block>40 and <block>4N, Prometheus on <block>90
pick_ports() {
    local base p busy
    for _ in $(seq 200); do
        base=$(((200 + RANDOM % 120) * 100))
        busy=0
        for p in 20 21 22 23 24 40 41 42 43 44 90; do
            if [ -n "$(ss -Htan "sport = :$((base + p))")" ]; then
                busy=1
                break
            fi
        done
        if [ $busy = 0 ]; then
            echo "$base"
            return 0
        fi
    done
    die "no block of free ports found in 20000-32000"
}

now() { date +%s.%N; }
# later_than T: true once the clock is past T (Unix time, fractional)
later_than() { awk -v a="$(now)" -v b="$1" 'BEGIN { exit !(a >= b) }'; }

# wait_for WHAT SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds;
# fail after SECONDS.
wait_for() {
    local what=$1 limit=$2 deadline
    deadline=$(awk -v t="$(now)" -v l="$limit" 'BEGIN { printf "%.3f", t + l }')
    shift 2
    until "$@"; do
        later_than "$deadline" && die "timed out after $limit s waiting for $what"
        sleep 0.2
    done
}

# port_open PID PORT: PORT accepts connections (fails for good if PID exited)
port_open() {
    kill -0 "$1" 2>/dev/null || die "process $1 exited (see its log)"
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null
}

# index COMMAND: send a command to flarei, which must answer OK
index() {
    local reply
    reply=$(ask "$IPORT" "$1") || die "cannot reach flarei on port $IPORT"
    [ "$reply" = OK ] || die "flarei answered '$reply' to '$1'"
    log "flarei: $1 -> OK"
}

# node_field NODE_PORT FIELD: role/state/partition/balance of 127.0.0.1:NODE_PORT
# in the index's `stats nodes`
node_field() {
    ask "$IPORT" "stats nodes" END | awk -v k="127.0.0.1:$1:$2" '$1 == "STAT" && $2 == k {print $3}'
}
node_is() { [ "$(node_field "$1" role)/$(node_field "$1" state)" = "$2" ]; }
node_down() { [ "$(node_field "$1" state)" = down ]; }
# proxy_stores PORT: a set through node PORT is STORED
proxy_stores() { [ "$(ask "$1" $'set demo:ready 0 0 1\r\n1')" = STORED ]; }

# stat_of PORT NAME: a value of a node's `stats`
stat_of() { ask "$1" stats END | awk -v n="$2" '$1 == "STAT" && $2 == n {print $3}'; }

# copy_rate RECORDS: the reconstruction-bwlimit (KiB/s) that copies RECORDS
# in about 8 % of the window (a record in a dump is about 150 bytes)
copy_rate() {
    awk -v n="$1" -v d="$WINDOW" 'BEGIN { v = int(n * 150 / 1024 / (0.08 * d)); print (v < 1 ? 1 : v) }'
}

# write_conf NAME LINES...: $WORK/NAME.conf, one line per argument
write_conf() {
    local name=$1
    shift
    printf '%s\n' "$@" >"$WORK/$name.conf"
}

# start_flared N: node N (its ports are PORT[N], MPORT[N]); sets NODE_PID[N]
start_flared() {
    local n=$1
    mkdir -p "$WORK/node$n"
    "$FLARED" -f "$WORK/node$n.conf" --stderr </dev/null >>"$WORK/node$n.log" 2>&1 &
    NODE_PID[n]=$!
    PIDS+=("${NODE_PID[n]}")
    wait_for "node $n on port ${PORT[n]}" 30 port_open "${NODE_PID[n]}" "${PORT[n]}"
    wait_for "node $n to register with flarei" 30 node_is "${PORT[n]}" proxy/active
    log "node $n: pid ${NODE_PID[n]}, port ${PORT[n]}, metrics ${MPORT[n]}"
}

# prom_query EXPR: the first value of an instant query (empty when none)
prom_query() {
    curl -sf --max-time 5 "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" |
        jq -r '.data.result[0].value[1] // empty'
}

# write the file_sd targets of the nodes started so far (atomically); their
# instance label is the node's name in the cluster (127.0.0.1:<server-port>),
# as in the slave, peer and node labels, rather than the metrics address
write_node_targets() {
    local n list=()
    for n in "${!NODE_PID[@]}"; do
        list+=("{\"targets\": [\"127.0.0.1:${MPORT[n]}\"], \"labels\": {\"instance\": \"127.0.0.1:${PORT[n]}\"}}")
    done
    local IFS=,
    printf '[%s]\n' "${list[*]}" >"$WORK/prometheus/nodes.json.tmp"
    mv "$WORK/prometheus/nodes.json.tmp" "$WORK/prometheus/nodes.json"
}

# the schedule: at FRACTION = W0 + FRACTION x window
at() { awk -v w="$W0" -v d="$WINDOW" -v f="$1" 'BEGIN { printf "%.3f", w + f * d }'; }
sleep_until() { # FRACTION, bounded by the window's end
    local t
    t=$(at "$1")
    while ! later_than "$t"; do
        sleep "$(awk -v t="$t" -v n="$(now)" 'BEGIN { s = t - n; if (s > 1) s = 1; if (s < 0.05) s = 0.05; print s }')"
    done
}

# load NAME UNTIL PORT ARGS...: a flare-bench run against PORT in the
# background until the fraction UNTIL of the window; sets LOAD_PID
LOAD_PID=
load() {
    local name=$1 until=$2 port=$3 secs
    shift 3
    secs=$(awk -v t="$(at "$until")" -v n="$(now)" 'BEGIN { s = t - n; if (s < 1) s = 1; printf "%.1f", s }')
    log "load $name: ${secs} s against port $port ($*)"
    "$BENCH" run -p "$port" --key-prefix demo: --value-size "$SIZE" --duration "$secs" \
        --io-timeout 5 --json --label "$name" "$@" >"$WORK/load-$name.json" 2>>"$WORK/load.log" &
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
    LOAD_NAME=$name
}
# end_load: wait for the current flare-bench run and summarize it
end_load() {
    local rc=0
    wait "$LOAD_PID" || rc=$?
    forget_pid "$LOAD_PID"
    if [ -s "$WORK/load-$LOAD_NAME.json" ]; then
        log "load $LOAD_NAME done: $(jq -r '"\(.total.ops) requests, \(.total.ops_per_s | floor) /s, p99 \(.total.p99_us) us, \(.total.errors) errors"' \
            "$WORK/load-$LOAD_NAME.json") (exit $rc)"
    else
        die "flare-bench $LOAD_NAME failed (exit $rc): $(tail -n 3 "$WORK/load.log")"
    fi
}

# ---- the cluster -------------------------------------------------------------
BASE=$(pick_ports)
IPORT=$((BASE + 20))
IMPORT=$((BASE + 40))
PPORT=$((BASE + 90))
declare -a PORT MPORT NODE_PID
for n in 1 2 3 4; do
    PORT[n]=$((BASE + 20 + n))
    MPORT[n]=$((BASE + 40 + n))
done
NODE_PID=()
log "work directory $WORK"

mkdir -p "$WORK/index"
write_conf flarei \
    "data-dir = $WORK/index" \
    "server-name = 127.0.0.1" \
    "server-port = $IPORT" \
    "monitor-interval = 1" \
    "monitor-threshold = 2" \
    "metrics-port = $IMPORT" \
    "metrics-address = 127.0.0.1"
"$FLAREI" -f "$WORK/flarei.conf" --stderr </dev/null >"$WORK/flarei.log" 2>&1 &
IPID=$!
PIDS+=("$IPID")
wait_for "flarei on port $IPORT" 30 port_open "$IPID" "$IPORT"
log "flarei: pid $IPID, port $IPORT, metrics $IMPORT"

for n in 1 2 3 4; do
    conf=(
        "data-dir = $WORK/node$n"
        "server-name = 127.0.0.1"
        "server-port = ${PORT[n]}"
        "index-servers = 127.0.0.1:$IPORT"
        "metrics-port = ${MPORT[n]}"
        "metrics-address = 127.0.0.1"
    )
    # node 4 copies the partition slowly enough to be seen (set below)
    write_conf "node$n" "${conf[@]}"
done
for n in 1 2 3; do start_flared "$n"; done

# A client that writes before the cluster has a master gets an error. (This
# also makes the proxy export its set/server_error counter before the
# failover: flared exports a command/outcome pair only once it is nonzero,
# and rate() cannot see the increase that a series' first sample holds.)
reply=$(ask "${PORT[3]}" $'set demo:early 0 0 1\r\n1')
log "a set through the proxy before there is a master: $reply"
index "node role 127.0.0.1 ${PORT[1]} master 1 0"
index "node role 127.0.0.1 ${PORT[2]} slave 1 0"
wait_for "node 1 to be the active master" 30 node_is "${PORT[1]}" master/active
wait_for "node 2 to be an active slave" 60 node_is "${PORT[2]}" slave/active
# reads through the proxy go to the master and the slave, 1:1
index "node role 127.0.0.1 ${PORT[2]} slave 1"
wait_for "node 3 (proxy) to take writes" 30 proxy_stores "${PORT[3]}"

# ---- Prometheus --------------------------------------------------------------
mkdir -p "$WORK/prometheus/data"
cat >"$WORK/prometheus/prometheus.yml" <<EOF
# generated by scripts/dashboard-demo.sh
global:
  scrape_interval: ${SCRAPE}s
  scrape_timeout: 1500ms
  evaluation_interval: ${SCRAPE}s

rule_files:
  - $ALERTS

scrape_configs:
  - job_name: flare-index
    static_configs:
      - targets: ["127.0.0.1:$IMPORT"]
        labels:
          instance: "127.0.0.1:$IPORT"
  - job_name: flare-nodes
    file_sd_configs:
      - files: ["$WORK/prometheus/nodes.json"]
        refresh_interval: 5s
EOF
write_node_targets
if command -v promtool >/dev/null; then
    promtool check config "$WORK/prometheus/prometheus.yml" >"$WORK/promtool.log" 2>&1 ||
        die "promtool check config failed: $(cat "$WORK/promtool.log")"
fi
"$PROMETHEUS" --config.file="$WORK/prometheus/prometheus.yml" --storage.tsdb.path="$WORK/prometheus/data" \
    --web.listen-address="127.0.0.1:$PPORT" </dev/null >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
PIDS+=("$PROM_PID")
wait_for "Prometheus on port $PPORT" 60 port_open "$PROM_PID" "$PPORT"
wait_for "Prometheus to be ready" 60 curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$PPORT/-/ready"
scraped_all() { [ "$(prom_query 'count(up{job=~"flare.*"} == 1)')" = 4 ]; }
wait_for "Prometheus' first scrape of the index and three nodes" 30 scraped_all
rules=$(curl -sf --max-time 5 "http://127.0.0.1:$PPORT/api/v1/rules" | jq '[.data.groups[].rules[]] | length')
log "Prometheus: pid $PROM_PID, http://127.0.0.1:$PPORT ($rules alerting rules loaded)"

# ---- the load, on a schedule -------------------------------------------------
W0=$(now)
WINDOW=$(awk -v m="$DEMO_MINUTES" 'BEGIN { print m * 60 }')
log "the window: $DEMO_MINUTES min from now"

log "preloading $KEYS keys through the master"
"$BENCH" preload -p "${PORT[1]}" --key-prefix demo: --value-size "$SIZE" -k "$KEYS" -c 4 --pipeline 8 \
    --duration 120 --json >"$WORK/load-preload.json" 2>>"$WORK/load.log" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
LOAD_NAME=preload
end_load

# 1. sets and gets on the master directly: local reads and writes, replication
load master-mixed 0.22 "${PORT[1]}" -k "$KEYS" --get-ratio 0.5 -c 6
end_load

# 2. mostly gets through the proxy (forwarded to the master and the slave);
#    near the end a 4th node starts and copies the partition (a second slave)
load proxy-gets 0.42 "${PORT[3]}" -k "$KEYS" --get-ratio 0.95 --dist zipf -c 12
sleep_until 0.40
items=$(stat_of "${PORT[1]}" curr_items)
bwlimit=$(copy_rate "${items:-$KEYS}")
echo "reconstruction-bwlimit = $bwlimit" >>"$WORK/node4.conf"
start_flared 4
write_node_targets
index "node role 127.0.0.1 ${PORT[4]} slave 1 0"
log "node 4 copies ${items:-?} records at $bwlimit KiB/s"
end_load

# 3. a mixed load through the proxy over a larger key range, at first mostly
#    misses: the hit ratio climbs as the sets fill it; at two thirds the
#    master is killed and the index promotes node 2
load proxy-mixed 0.85 "${PORT[3]}" -k "$MISS_KEYS" --get-ratio 0.9 --allow-miss -c 8
sleep_until 0.667
log "kill -9 of the master (node 1, pid ${NODE_PID[1]})"
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null || true
forget_pid "${NODE_PID[1]}"
killed=$(now)
wait_for "the index to promote node 2" 30 node_is "${PORT[2]}" master/active
log "node 2 is the master $(awk -v a="$killed" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s after the kill"
node_is "${PORT[4]}" slave/active || log "node 4 is $(node_field "${PORT[4]}" role)/$(node_field "${PORT[4]}" state)"

# node 1 comes back (as a proxy: it was replaced) and becomes a slave again
sleep_until 0.75
wait_for "the index to mark node 1 down" 30 node_down "${PORT[1]}"
items=$(stat_of "${PORT[2]}" curr_items)
bwlimit=$(copy_rate "${items:-$MISS_KEYS}")
echo "reconstruction-bwlimit = $bwlimit" >>"$WORK/node1.conf"
start_flared 1
index "node role 127.0.0.1 ${PORT[1]} slave 0 0"
log "node 1 copies ${items:-?} records at $bwlimit KiB/s"
end_load

# 4. gets and sets on the new master directly
load new-master 1.0 "${PORT[2]}" -k "$MISS_KEYS" --get-ratio 0.8 --allow-miss -c 6
end_load

# ---- the picture ---------------------------------------------------------------
END_T=$(at 1.0)
# the samples of the window's end: one scrape after it
scraped_after() { [ -n "$(prom_query "timestamp(up{job=\"flare-index\"}) >= $1")" ]; }
wait_for "a scrape after the window's end" 30 scraped_after "$END_T"
log "states at the end: $(for n in 1 2 3 4; do printf 'node%s %s/%s  ' "$n" "$(node_field "${PORT[n]}" role)" "$(node_field "${PORT[n]}" state)"; done)"
firing=$(curl -sf --max-time 5 "http://127.0.0.1:$PPORT/api/v1/alerts" |
    jq -r '[.data.alerts[] | "\(.labels.alertname)(\(.state))"] | unique | join(", ")')
log "alerts: ${firing:-none}"

mkdir -p "$(dirname "$OUT")"
# shellcheck disable=SC2086 # RENDER_ARGS: several words
"$RENDER_PYTHON" scripts/render-dashboard.py --prometheus "http://127.0.0.1:$PPORT" \
    --minutes "$DEMO_MINUTES" --end "$END_T" --scrape-interval "${SCRAPE}s" \
    --out "$OUT" $RENDER_ARGS
echo "dashboard-demo: the dashboard is in $(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
