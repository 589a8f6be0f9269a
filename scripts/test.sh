#!/usr/bin/env bash
# Run every test: formatting, clippy, unit tests, end-to-end tests against the
# real binaries, and libmemcached's memccapable against a standalone flared.
# Everything is built once, in the release profile.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo fmt --all -- --check
# The shipped Prometheus configuration and alerting rules (USAGE.md §14).
promtool check config etc/prometheus/prometheus.yml
promtool test rules etc/prometheus/flare-alerts.test.yml
# The daemons with failpoints, for tests/tests/failpoints.rs only (never
# packaged): kept in <target>/failpoints/, then the normal build.
cargo build --release -p flared -p flarei --features flared/failpoints,flarei/failpoints
mkdir -p "$CARGO_TARGET_DIR/failpoints"
ln -f "$CARGO_TARGET_DIR/release/flared" "$CARGO_TARGET_DIR/release/flarei" "$CARGO_TARGET_DIR/failpoints/"
cargo build --release --workspace --bins
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
bash ci/memccapable.sh
