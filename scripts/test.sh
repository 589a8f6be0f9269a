#!/usr/bin/env bash
# Run every test: formatting, clippy, unit tests, end-to-end tests against the
# real binaries, and libmemcached's memccapable against a standalone flared.
# Everything is built once, in the release profile.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo fmt --all -- --check
cargo build --release --workspace --bins
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
bash ci/memccapable.sh
