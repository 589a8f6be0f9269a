#!/usr/bin/env bash
# Build, lint, install and exercise the Debian package "flare" (docs/packaging.md).
#
# Run as root on Debian. Steps:
#   1. install the build/test dependencies with apt (only the missing ones)
#   2. dpkg-buildpackage -us -uc -b in a scratch copy of the tree, with
#      CARGO_TARGET_DIR exported (default /var/cache/flare-rs/target, see
#      scripts/env.sh) so that the already compiled RocksDB is reused
#   3. lintian on the .deb: errors fail the test, warnings are printed
#   4. dpkg -i; /etc/init.d/flare start (flarei, then flared)
#   5. "node role <server-name> <port> master 1 0" to flarei on 127.0.0.1:12120,
#      then set/get on flared at 127.0.0.1:12121
#   6. /etc/init.d/flare status, restart (the value must survive), stop; both
#      pid files gone and no /usr/bin/flarei or /usr/bin/flared process left
#   7. systemd-analyze verify on the units (when systemd-analyze exists)
#   8. dpkg --purge flare and a check that nothing is left
# The machine is left clean even on failure (EXIT trap): daemons stopped,
# package purged, the "flare" user removed if this script created it, the
# scratch directory deleted. All waits are bounded; only 127.0.0.1 is used.
#
# Environment:
#   CARGO_TARGET_DIR       cargo target dir (default /var/cache/flare-rs/target)
#   FLARE_TEST_RUN_INDEX   "yes" (default): the real path above.
#                          "no": for builds whose flarei does not run yet:
#                          RUN_INDEX="no" in /etc/default/flare and flared
#                          switched to standalone (index-servers commented out
#                          in /etc/flared.conf), no "node role" step.
#   FLARE_TEST_KEEP=1      keep the scratch directory (build log, .deb)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/flare-rs/target}"
run_index="${FLARE_TEST_RUN_INDEX:-yes}"
INDEX_PORT=12120
NODE_PORT=12121
PKG=flare

passed=0
failed=0
work=""
installed=0
user_preexisting=1
finished=0

say() { printf '%s\n' "debian-test: $*"; }
ok() { passed=$((passed + 1)); printf 'ok %d - %s\n' "$passed" "$*"; }
die() {
    failed=$((failed + 1))
    printf 'not ok - %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- checks first
[ "$(id -u)" = 0 ] || { echo "debian-test: must run as root" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "debian-test: not a Debian system (no dpkg)" >&2; exit 1; }
case "$run_index" in yes|no) ;; *) echo "debian-test: FLARE_TEST_RUN_INDEX must be yes or no" >&2; exit 1 ;; esac

# Never touch an existing installation or its data.
state=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)
if [ -n "$state" ] && [ "$state" != not-installed ]; then
    echo "debian-test: package $PKG is already on this machine (state: $state); refusing to replace and purge it" >&2
    exit 1
fi
if [ -e /var/lib/flare ]; then
    echo "debian-test: /var/lib/flare exists; refusing (the purge at the end would delete it)" >&2
    exit 1
fi
for port in $INDEX_PORT $NODE_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "debian-test: something already listens on 127.0.0.1:$port; stop it first" >&2
        exit 1
    fi
done
getent passwd flare >/dev/null || user_preexisting=0

# ---------------------------------------------------------------- cleanup
# Pids of processes whose executable is /usr/bin/flarei or /usr/bin/flared
# (only the packaged binaries: other flared processes on the machine are not ours).
packaged_pids() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        case "$exe" in
            /usr/bin/flarei|/usr/bin/flared|"/usr/bin/flarei (deleted)"|"/usr/bin/flared (deleted)")
                echo "${p#/proc/}" ;;
        esac
    done
}

cleanup() {
    local rc=$? pids
    set +e
    trap - EXIT
    if [ "$installed" = 1 ]; then
        say "cleanup: stopping daemons and purging $PKG"
        [ -x /etc/init.d/flare ] && timeout 200 /etc/init.d/flare stop >/dev/null 2>&1
        pids=$(packaged_pids)
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null
            for _ in $(seq 1 100); do [ -z "$(packaged_pids)" ] && break; sleep 0.1; done
            pids=$(packaged_pids)
            # shellcheck disable=SC2086
            [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
        fi
        timeout 300 dpkg --purge "$PKG" >/dev/null 2>&1 || say "cleanup: dpkg --purge $PKG failed"
        rm -rf /var/lib/flare
    fi
    if [ "$user_preexisting" = 0 ] && getent passwd flare >/dev/null; then
        userdel flare 2>/dev/null
    fi
    if [ "$user_preexisting" = 0 ] && getent group flare >/dev/null; then
        groupdel flare 2>/dev/null
    fi
    if [ -n "$work" ]; then
        if [ "${FLARE_TEST_KEEP:-0}" = 1 ]; then
            say "kept $work"
        else
            rm -rf "$work"
        fi
    fi
    if [ "$finished" != 1 ] && [ "$failed" = 0 ]; then
        failed=1
    fi
    printf '%s\n' "debian-test: $passed passed, $failed failed"
    [ "$failed" = 0 ] || [ "$rc" != 0 ] || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d /tmp/flare-debian-test.XXXXXX)

# ---------------------------------------------------------------- 1. deps
need=()
for pkg in build-essential debhelper dpkg-dev lintian libclang-dev clang g++ adduser; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq
    timeout 1200 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
ok "build dependencies installed"

# cargo/rustc: Debian's packages (Build-Depends cargo, rustc >= 1.88) or, with
# the build profile pkg.flare-rs.rustup, a toolchain on PATH (rustup).
command -v cargo >/dev/null || die "cargo not found on PATH (install a Rust toolchain >= 1.88, e.g. with rustup)"
profile=()
if [ "$(command -v cargo)" != /usr/bin/cargo ]; then
    profile=(-Ppkg.flare-rs.rustup)
fi
say "cargo: $(command -v cargo) ($(cargo --version)); CARGO_TARGET_DIR=$CARGO_TARGET_DIR; profile: ${profile[*]:-none}"

# ---------------------------------------------------------------- 2. build
# A scratch copy: dpkg-buildpackage writes its results to the parent directory
# and leaves build products under debian/; none of that belongs in the clone.
mkdir -p "$work/src"
tar -C "$repo" --exclude=./.git --exclude=./target --exclude=./debian/flare \
    --exclude=./debian/.debhelper --exclude=./debian/cargo-target -cf - . | tar -C "$work/src" -xf -
say "building the package (log: $work/build.log)"
if ! (cd "$work/src" && timeout 3000 dpkg-buildpackage -us -uc -b "${profile[@]}") >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    die "dpkg-buildpackage failed"
fi
grep -E '^ *(Compiling|Finished) ' "$work/build.log" | tail -n 3 || true
debs=("$work"/"${PKG}"_*.deb)
deb=${debs[0]}
[ -f "$deb" ] || die "no ${PKG}_*.deb produced"
ok "dpkg-buildpackage built $(basename "$deb")"

# ---------------------------------------------------------------- 3. lintian
lint_rc=0
timeout 600 lintian --display-info --fail-on error "$deb" >"$work/lintian.log" 2>&1 || lint_rc=$?
grep -v '^running with root privileges' "$work/lintian.log" || true
if [ "$lint_rc" != 0 ] || grep -q '^E: ' "$work/lintian.log"; then
    die "lintian reported errors (exit status $lint_rc)"
fi
ok "lintian: no errors ($(grep -c '^W: ' "$work/lintian.log" || true) warnings)"

# The package's contents and conffiles.
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/flarei ./usr/bin/flared ./usr/bin/flare-admin ./etc/flarei.conf ./etc/flared.conf ./etc/default/flare \
    ./etc/init.d/flare ./lib/systemd/system/flarei.service ./lib/systemd/system/flared.service \
    ./lib/systemd/system/flare.service ./usr/share/doc/flare/examples/prometheus.yml \
    ./usr/share/doc/flare/examples/flare-alerts.yml ./usr/share/doc/flare/examples/flare-dashboard.json; do
    grep -q " $f\$" <<<"$contents" || die "$f missing from the package"
done
for f in flare-stats flare-ping flare-part; do
    grep -Eq " \./usr/bin/$f -> (/usr/bin/)?flare-admin\$" <<<"$contents" || die "link /usr/bin/$f -> flare-admin missing from the package"
done
mkdir -p "$work/control"
dpkg-deb -e "$deb" "$work/control"
for f in /etc/flarei.conf /etc/flared.conf /etc/default/flare; do
    grep -qx "$f" "$work/control/conffiles" || die "$f is not a conffile"
done
ok "package contents and conffiles"

# ---------------------------------------------------------------- 4. install
installed=1
timeout 300 dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; die "dpkg -i failed"; }
getent passwd flare >/dev/null || die "user flare was not created"
[ "$(stat -c %U:%G /var/lib/flare)" = flare:flare ] || die "/var/lib/flare is not owned by flare:flare"
for v in 'RUN_INDEX="yes"' 'RUN_NODE="yes"' 'CONF_INDEX="/etc/flarei.conf"' 'CONF_NODE="/etc/flared.conf"' \
    'DATA_INDEX="/var/lib/flare"' 'DATA_NODE="/var/lib/flare"'; do
    grep -qx "$v" /etc/default/flare || die "/etc/default/flare lacks $v"
done
ok "dpkg -i: user flare, /var/lib/flare (flare:flare), /etc/default/flare"

conf_value() { # KEY FILE: the last active "KEY = value" in FILE
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\\([^#[:space:]]*\\).*/\\1/p" "$2" | tail -n 1
}
node_name=$(conf_value server-name /etc/flared.conf)
node_port=$(conf_value server-port /etc/flared.conf)
[ "$node_port" = "$NODE_PORT" ] || die "server-port in /etc/flared.conf is '$node_port', expected $NODE_PORT"
[ "$(conf_value index-servers /etc/flared.conf)" = "127.0.0.1:$INDEX_PORT" ] \
    || die "/etc/flared.conf does not use the local index (index-servers = 127.0.0.1:$INDEX_PORT)"
[ "$(conf_value data-dir /etc/flared.conf)" = /var/lib/flare ] || die "data-dir in /etc/flared.conf is not /var/lib/flare"
[ "$(conf_value data-dir /etc/flarei.conf)" = /var/lib/flare ] || die "data-dir in /etc/flarei.conf is not /var/lib/flare"
for f in /etc/flarei.conf /etc/flared.conf; do
    grep -q '^admin-networks = 127.0.0.0/8, ::1/128$' "$f" || die "$f does not restrict admin-networks to loopback"
done

if [ "$run_index" = no ]; then
    say "FLARE_TEST_RUN_INDEX=no: RUN_INDEX=\"no\", flared standalone (flarei is not exercised)"
    sed -i 's/^RUN_INDEX=.*/RUN_INDEX="no"/' /etc/default/flare
    sed -i 's/^\([[:space:]]*index-servers[[:space:]]*=\)/# \1/' /etc/flared.conf
fi

# ---------------------------------------------------------------- helpers
# request PORT TEXT: send TEXT (printf %b escapes) to 127.0.0.1:PORT and print
# the reply lines (CR removed) up to the first final line. Bounded: 5 s per line.
request() {
    local port=$1 text=$2 line out=""
    exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
    printf '%b' "$text" >&3
    while IFS= read -r -t 5 line <&3; do
        line=${line%$'\r'}
        out+="$line"$'\n'
        case "$line" in
            END|STORED|NOT_STORED|EXISTS|NOT_FOUND|DELETED|OK|ERROR|CLIENT_ERROR*|SERVER_ERROR*) break ;;
        esac
    done
    exec 3>&- 3<&-
    printf '%s' "$out"
}

# Diagnostics when a daemon does not come up: run it in the foreground with
# --stderr for a few seconds (only when nothing holds its port).
diagnose() { # NAME CONF PORT
    if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then
        say "$1 listens on $3"
        return 0
    fi
    say "running $1 in the foreground for diagnosis:"
    timeout -s TERM 8 runuser -u flare -- "/usr/bin/$1" -f "$2" --stderr 2>&1 | tail -n 30 || true
}

start_flare() {
    local out rc=0
    out=$(timeout 200 /etc/init.d/flare start 2>&1) || rc=$?
    printf '%s\n' "$out"
    if [ "$rc" != 0 ]; then
        [ "$run_index" = yes ] && diagnose flarei /etc/flarei.conf $INDEX_PORT
        diagnose flared /etc/flared.conf $NODE_PORT
        die "/etc/init.d/flare start failed (exit status $rc)"
    fi
}

# ---------------------------------------------------------------- 5. start
start_flare
[ "$run_index" = no ] || [ -s /var/lib/flare/flarei.pid ] || die "no /var/lib/flare/flarei.pid"
[ -s /var/lib/flare/flared.pid ] || die "no /var/lib/flare/flared.pid"
for pidf in /var/lib/flare/flare?.pid; do
    [ "$(stat -c %U "/proc/$(cat "$pidf")" 2>/dev/null)" = flare ] || die "$(basename "$pidf" .pid) does not run as user flare"
done
ok "/etc/init.d/flare start (RUN_INDEX=$run_index): pid files written, daemons run as flare"

if [ "$run_index" = yes ]; then
    reply=$(request $INDEX_PORT "node role $node_name $node_port master 1 0\r\n") || die "cannot connect to flarei on $INDEX_PORT"
    [ "$reply" = "OK" ] || die "node role $node_name $node_port master 1 0: expected OK, got: $reply"
    ok "node role $node_name $node_port master 1 0 -> OK"
fi

# The node learns its new role from the index asynchronously: retry (bounded).
value="packaged-$$"
deadline=$((SECONDS + 30))
while :; do
    reply=$(request $NODE_PORT "set debian-test 0 0 ${#value}\r\n$value\r\n") || reply="(no connection)"
    [ "$reply" = STORED ] && break
    [ $SECONDS -lt $deadline ] || die "set on $NODE_PORT: expected STORED, got: $reply"
    sleep 0.5
done
reply=$(request $NODE_PORT "get debian-test\r\n")
expected="VALUE debian-test 0 ${#value}"$'\n'"$value"$'\n'"END"
[ "$reply" = "$expected" ] || die "get: expected '$expected', got '$reply'"
ok "set/get on 127.0.0.1:$NODE_PORT"

# The operator's tool, as installed (flare-stats is flare-admin stats).
if [ "$run_index" = yes ]; then
    out=$(timeout 30 flare-admin -i 127.0.0.1 -p $INDEX_PORT list) || die "flare-admin list: exit status $?"
    printf '%s\n' "$out"
    grep -Eq "^$node_name:$node_port +0 +master +active +1\$" <<<"$out" || die "flare-admin list does not show the master: $out"
    out=$(timeout 30 flare-stats -i 127.0.0.1 -p $INDEX_PORT) || die "flare-stats: exit status $?"
    grep -q "^hostname:port" <<<"$out" || die "flare-stats printed no header: $out"
    ok "flare-admin list / flare-stats against the installed index"
fi

# ---------------------------------------------------------------- 6. status/restart/stop
out=$(timeout 30 /etc/init.d/flare status 2>&1) || die "/etc/init.d/flare status: exit status $? ($out)"
printf '%s\n' "$out"
ok "/etc/init.d/flare status -> 0"

pids_before="$(cat /var/lib/flare/flarei.pid /var/lib/flare/flared.pid 2>/dev/null)"
out=$(timeout 30 /etc/init.d/flare reload 2>&1) || { printf '%s\n' "$out"; die "/etc/init.d/flare reload failed"; }
sleep 1
pids_after="$(cat /var/lib/flare/flarei.pid /var/lib/flare/flared.pid 2>/dev/null)"
[ "$pids_before" = "$pids_after" ] || die "reload changed the pids ($pids_before -> $pids_after)"
reply=$(request $NODE_PORT "get debian-test\r\n") || reply="(no connection)"
[ "$reply" = "$expected" ] || die "get after reload: expected '$expected', got '$reply'"
ok "/etc/init.d/flare reload: SIGHUP, same processes, still serving"

out=$(timeout 400 /etc/init.d/flare restart 2>&1) || { printf '%s\n' "$out"; die "/etc/init.d/flare restart failed"; }
printf '%s\n' "$out"
deadline=$((SECONDS + 30))
while :; do
    reply=$(request $NODE_PORT "get debian-test\r\n") || reply="(no connection)"
    [ "$reply" = "$expected" ] && break
    [ $SECONDS -lt $deadline ] || die "get after restart: expected '$expected', got '$reply'"
    sleep 0.5
done
ok "/etc/init.d/flare restart; the value survived"

out=$(timeout 200 /etc/init.d/flare stop 2>&1) || { printf '%s\n' "$out"; die "/etc/init.d/flare stop failed"; }
printf '%s\n' "$out"
for f in /var/lib/flare/flarei.pid /var/lib/flare/flared.pid; do
    [ ! -e "$f" ] || die "$f still exists after stop"
done
[ -z "$(packaged_pids)" ] || die "processes left after stop: $(packaged_pids)"
rc=0
timeout 30 /etc/init.d/flare status >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || die "/etc/init.d/flare status after stop: expected 3, got $rc"
ok "/etc/init.d/flare stop: pid files removed, no process left, status -> 3"

# ---------------------------------------------------------------- 7. systemd units
if command -v systemd-analyze >/dev/null; then
    if out=$(timeout 60 systemd-analyze verify /lib/systemd/system/flare.service \
        /lib/systemd/system/flarei.service /lib/systemd/system/flared.service 2>&1); then
        [ -z "$out" ] || printf '%s\n' "$out"
        ok "systemd-analyze verify flare.service flarei.service flared.service"
    else
        printf '%s\n' "$out" >&2
        die "systemd-analyze verify failed"
    fi
else
    say "systemd-analyze not found: unit verification skipped"
fi

# ---------------------------------------------------------------- 8. purge
timeout 300 dpkg --purge "$PKG" >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; die "dpkg --purge $PKG failed"; }
installed=0
for f in /usr/bin/flarei /usr/bin/flared /usr/bin/flare-admin /usr/bin/flare-stats /etc/flarei.conf /etc/flared.conf /etc/default/flare \
    /etc/init.d/flare /lib/systemd/system/flare.service /var/lib/flare; do
    [ ! -e "$f" ] || die "$f left after purge"
done
ls /etc/rc?.d/*flare >/dev/null 2>&1 && die "rc.d links left after purge"
ok "dpkg --purge $PKG: files, conffiles, rc.d links and /var/lib/flare removed"

finished=1
