#!/usr/bin/env bash
# libmemcached's memccapable against a standalone flared, directly on its
# port: `-a` (the ascii tests) and `-b` (the binary protocol tests), each on a
# flared of its own. Every test must pass, except the ones listed below for
# their mode (one test name a line, each with a comment giving the reason,
# e.g. a documented Flare behaviour in docs/compatibility.md). The script
# fails on any other failure, on a listed test that passes, and on a run that
# did not report a result for every test it started (a crash, a timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

# Expected failures of `memccapable -a`, e.g.
#   ascii foo      <why>
expected_ascii=""
# Expected failures of `memccapable -b`, e.g.
#   binary foo     <why>
expected_binary=""

work=$(mktemp -d)
flared=""
cleanup() {
    if [ -n "$flared" ]; then kill "$flared" 2>/dev/null || true; wait "$flared" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Start a standalone flared in $work/$1 on a free port; sets $flared and $port.
start_flared() {
    mkdir -p "$work/$1"
    port=$(free_port)
    printf 'data-dir = %s\nserver-name = 127.0.0.1\nserver-port = %s\n' "$work/$1" "$port" > "$work/$1/flared.conf"
    "$FLARE_BIN_DIR/flared" -f "$work/$1/flared.conf" --stderr 2>"$work/$1/flared.log" &
    flared=$!
    for _ in $(seq 1 150); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        kill -0 "$flared" 2>/dev/null || { echo "flared exited at start-up:"; cat "$work/$1/flared.log"; return 1; }
        sleep 0.1
    done
    echo "flared does not listen on 127.0.0.1:$port"
    return 1
}

stop_flared() {
    kill "$flared" 2>/dev/null || true
    wait "$flared" 2>/dev/null || true
    flared=""
}

# memccapable prints each test's name padded to 40 columns and `[pass]` on
# stdout, but `[FAIL]` and the summary on stderr (and stdout is buffered), so
# a merged stream interleaves at random. Read the two streams apart: every
# name on stdout not followed by [pass] failed, and there must be exactly as
# many [FAIL] on stderr, and a summary that agrees.
# usage: parse MODE STDOUT STDERR EXIT_CODE; prints the number of tests run,
# then the failed tests, one a line
parse() {
    python3 - "$@" <<'PY'
import re, sys
mode, out_path, err_path, rc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = open(out_path, encoding="utf-8", errors="replace").read()
err = open(err_path, encoding="utf-8", errors="replace").read()
names, failed = [], []
for m in re.finditer(r"\b%s((?: [a-z]+)*)[ \t]*(\[pass\])?" % mode, out):
    name = mode + m.group(1)
    names.append(name)
    if not m.group(2):
        failed.append(name)
problems = []
if not names:
    problems.append("no test ran")
fails = err.count("[FAIL]")
if fails != len(failed):
    problems.append(f"{len(failed)} tests without [pass] on stdout but {fails} [FAIL] on stderr")
if failed:
    m = re.search(r"(\d+) of (\d+) tests failed", err)
    if not m or (int(m.group(1)), int(m.group(2))) != (len(failed), len(names)):
        problems.append(f"summary does not say {len(failed)} of {len(names)} tests failed")
elif "All tests passed" not in out + err or rc != 0:
    problems.append(f"no 'All tests passed', or exit code {rc}")
if rc >= 124:
    problems.append(f"memccapable was killed or timed out (exit code {rc})")
for p in problems:
    print(f"memccapable -{mode[0]}: incomplete run: {p}", file=sys.stderr)
print(len(names))
print("\n".join(sorted(failed)))
sys.exit(1 if problems else 0)
PY
}

status=0
summary=""
run_mode() {
    local flag=$1 mode=$2 expected=$3
    start_flared "$mode"
    local rc=0
    timeout 300 memccapable "$flag" -t 5 -h 127.0.0.1 -p "$port" >"$work/$mode.out" 2>"$work/$mode.err" || rc=$?
    echo "== memccapable $flag (exit code $rc)"
    cat "$work/$mode.out"
    echo
    cat "$work/$mode.err"
    local parsed failed total ok=1
    parsed=$(parse "$mode" "$work/$mode.out" "$work/$mode.err" "$rc") || ok=0
    total=$(printf '%s\n' "$parsed" | head -n 1)
    failed=$(printf '%s\n' "$parsed" | tail -n +2)
    # expected failures: the first word pair of each non-comment line
    local want
    want=$(printf '%s\n' "$expected" | sed -e 's/#.*//' | awk 'NF >= 2 { print $1 " " $2 }' | sort)
    if [ "$ok" = 1 ] && [ "$failed" = "$want" ]; then
        summary+="memccapable $flag: $((total - $(printf '%s' "$failed" | grep -c . || true))) of $total passed"
        [ -n "$want" ] && summary+=" (expected failures: $(echo "$want" | paste -sd, -))"
        summary+=$'\n'
    else
        status=1
        summary+="memccapable $flag: UNEXPECTED RESULT. failed: [$(echo "$failed" | paste -sd, -)], expected to fail: [$(echo "$want" | paste -sd, -)]"$'\n'
        # the first failed tests again, alone and verbose: their assertions
        while IFS= read -r t; do
            [ -n "$t" ] || continue
            echo "-- $t, verbose:"
            timeout 60 memccapable "$flag" -v -t 5 -h 127.0.0.1 -p "$port" -T "$t" 2>&1 || true
            echo
        done < <(printf '%s\n' "$failed" | head -n 5)
        echo "-- flared log ($mode):"
        tail -n 50 "$work/$mode/flared.log" || true
    fi
    stop_flared
}

run_mode -a ascii "$expected_ascii"
run_mode -b binary "$expected_binary"
printf '%s' "$summary"
exit "$status"
