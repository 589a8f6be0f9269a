#!/usr/bin/env bash
# Install what building and testing flare-rs needs on Debian (run as root).
# - libclang-dev, clang: bindgen in the rocksdb crate
# - g++, make: RocksDB's C++ sources
# - libmemcached-tools: memccapable, the protocol conformance check
# - python3: the memccapable version shim
# - iproute2: `ip netns`, veth and bridge links for the partition tests
set -euo pipefail
need=()
for pkg in libclang-dev clang g++ make pkg-config libmemcached-tools python3 procps iproute2; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }
