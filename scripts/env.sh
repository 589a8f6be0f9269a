# Sourced by the scripts: one cargo target dir outside the clone, so that the
# RocksDB C++ build (10-15 minutes on 2 cores) is reused across clones and runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/flare-rs/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$HOME/.cache/flare-rs/target"
export FLARE_BIN_DIR="$CARGO_TARGET_DIR/release"
