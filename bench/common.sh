#!/usr/bin/env bash
# Helpers shared by bench/compare.sh, bench/cluster.sh and
# scripts/dashboard-demo.sh (sourced; each script defines log and die first).

USED_PORTS=" "

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if [ -z "$(ss -Htan "sport = :$p")" ]; then
            USED_PORTS="$USED_PORTS$p "
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# wait_port PID PORT: until PORT accepts connections (bounded: 30 s).
wait_port() {
    for _ in $(seq 300); do
        kill -0 "$1" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# utime + stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name may hold spaces, so count from after its ')').
cpu_ticks() {
    sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# settle PID...: wait until every server is idle (< SETTLE_TICKS clock ticks of
# CPU in 0.5 s; bounded by SETTLE_MAX seconds), so that the work a run leaves
# behind (replication queues, RocksDB flushes and compactions) is charged to
# that run and does not slow down the next one.
settle() {
    local pid b busy
    local -A a=()
    for _ in $(seq $((SETTLE_MAX * 2))); do
        for pid in "$@"; do a[$pid]=$(cpu_ticks "$pid"); done
        sleep 0.5
        busy=0
        for pid in "$@"; do
            b=$(cpu_ticks "$pid")
            [ $((b - a[$pid])) -lt "$SETTLE_TICKS" ] || busy=1
        done
        [ $busy = 0 ] && return 0
    done
    log "pids $* still busy after ${SETTLE_MAX} s"
}

median() {
    sort -g | awk '{a[NR] = $1} END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ratio A B [digits]
ratio() {
    awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.*f\n", d, a / b }'
}

fmt_int() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }

# ask PORT REQUEST [LAST]: send REQUEST (CRLF appended) on a new connection and
# print the reply without CRs: one line, or every line up to LAST. Each line
# is waited for at most 5 s. Returns 1 when it cannot connect.
ask() {
    local fd line
    { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf '%s\r\n' "$2" >&"$fd"
    while IFS= read -r -t 5 line <&"$fd"; do
        line=${line%$'\r'}
        printf '%s\n' "$line"
        [ -z "${3:-}" ] && break
        [ "$line" = "$3" ] && break
    done
    exec {fd}>&-
}

# reap PID: wait until PID (already signalled) exits (bounded: 10 s), then
# SIGKILL it and collect it.
reap() {
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# stop_all: SIGTERM to every pid in PIDS, then wait for each (bounded: 10 s
# each), SIGKILL what is left.
stop_all() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        reap "$pid"
    done
}
