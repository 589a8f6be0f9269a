#!/usr/bin/env bash
# libmemcached's memccapable -a (ascii tests) against a standalone flared.
# Every test must pass except the ones that contradict documented Flare
# behaviour (docs/compatibility.md, "memccapable"):
#   ascii quit       Flare ignores `quit <args>` silently (protocol.md TV-36)
#   ascii verbosity  Flare requires the level: `verbosity noreply` is ERROR
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
expected_failures="ascii quit
ascii verbosity"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
shim=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'data-dir = %s\nserver-name = 127.0.0.1\nserver-port = %s\n' "$work" "$port" > "$work/flared.conf"
"$FLARE_BIN_DIR/flared" -f "$work/flared.conf" --stderr 2>"$work/flared.log" &
flared=$!
python3 ci/version_shim.py "$shim" "$port" &
shimpid=$!
cleanup() { kill "$flared" "$shimpid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/"$shim") 2>/dev/null && break
    sleep 0.1
done
out=$(timeout 300 memccapable -a -t 10 -h 127.0.0.1 -p "$shim" 2>&1 || true)
echo "$out"
# A result marker may follow the test name on a later line (after an error message).
failed=$(echo "$out" | python3 -c '
import re, sys
current, failed = None, []
for line in sys.stdin:
    m = re.match(r"(ascii [a-z ]*[a-z])  ", line)
    if m:
        current = m.group(1)
    if "[FAIL]" in line and current:
        failed.append(current)
        current = None
    elif "[pass]" in line:
        current = None
print("\n".join(sorted(failed)))
')
passed=$(echo "$out" | grep -c '\[pass\]' || true)
if [ "$failed" != "$(echo "$expected_failures" | sort)" ]; then
    echo "memccapable: unexpected result. failed tests:"; echo "$failed"
    exit 1
fi
echo "memccapable: $passed passed, $(echo "$failed" | wc -l) failed (both documented Flare behaviours)"
