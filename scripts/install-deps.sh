#!/usr/bin/env bash
# Install what building and testing flare-rs needs on Debian (run as root).
# - libclang-dev, clang: bindgen in the rocksdb crate
# - g++, make: RocksDB's C++ sources
# - libmemcached-tools: memccapable (ci/memccapable.sh), memccp, memccat and
#   memcrm (tests/tests/protocol_tools.rs), the protocol conformance checks
# - python3 (3.10 or newer), python3-venv: free ports in ci/memccapable.sh,
#   and a venv with meta-memcache from PyPI (tests/python/requirements.txt)
#   for the meta protocol client test tests/python/meta_client.py
# - iproute2: `ip netns`, veth and bridge links for the partition tests
# - openssl: certificates for the TLS tests (tests/tests/tls.rs)
# - prometheus: Prometheus and promtool for the metrics tests
#   (tests/tests/metrics.rs starts its own instance on a loopback port) and
#   the checks of etc/prometheus/ in scripts/test.sh; installed without its
#   recommends and without starting the system service
# - zookeeper (with a Java runtime): the redundant index servers' tests
#   (tests/tests/zookeeper.rs start standalone servers and ensembles of
#   their own on loopback ports); its system service is not started
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in libclang-dev clang g++ make pkg-config libmemcached-tools python3 python3-venv procps iproute2 openssl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Packages whose maintainer scripts would start a system service: installed
# with policy-rc.d answering 101, so nothing starts (the tests run their own
# instances on loopback ports), and without their recommends.
install_without_service() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    echo "installing: ${missing[*]} (services not started)"
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d own_policy=0 status=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        own_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    [ "$own_policy" = 1 ] && rm -f "$policy"
    return "$status"
}
install_without_service prometheus zookeeper
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }

# The python venv of the tests ($FLARE_PYVENV, from scripts/env.sh: under the
# cargo target dir), made with the python3 on PATH (Debian's, or e.g. pyenv's)
# and filled from tests/python/requirements.txt. Skipped when the venv's python
# runs and was filled from the same requirements.
. scripts/env.sh
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    { echo "python3 is $(python3 --version 2>&1): meta-memcache needs 3.10 or newer" >&2; exit 1; }
req=tests/python/requirements.txt
if ! { "$FLARE_PYVENV/bin/python" -c 'import meta_memcache' 2>/dev/null &&
       cmp -s "$req" "$FLARE_PYVENV/requirements.txt"; }; then
    echo "python venv for the tests: $FLARE_PYVENV"
    python3 -m venv --clear "$FLARE_PYVENV"
    "$FLARE_PYVENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$FLARE_PYVENV/requirements.txt"
fi
