# Sourced by the scripts: one cargo target dir outside the clone, so that the
# RocksDB C++ build (10-15 minutes on 2 cores) is reused across clones and runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/flare-rs/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$HOME/.cache/flare-rs/target"
export FLARE_BIN_DIR="$CARGO_TARGET_DIR/release"
# The python venv with the tests' PyPI packages (scripts/install-deps.sh makes
# it), and its interpreter, which tests/tests/protocol_tools.rs runs.
export FLARE_PYVENV="$CARGO_TARGET_DIR/pyvenv"
export FLARE_PYTHON="${FLARE_PYTHON:-$FLARE_PYVENV/bin/python}"
