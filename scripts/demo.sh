#!/usr/bin/env bash
# Builds mxmesh (installing what a fresh machine lacks) and runs the local demo.
# Extra arguments go to `mxmesh demo` (e.g. --nodes 3 --dir /tmp/mxdemo).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --workspace --all-targets --locked
export PATH="$CARGO_TARGET_DIR/debug:$PATH"
echo "(mxctl and mxload are on PATH for this shell: $CARGO_TARGET_DIR/debug)"
exec "$CARGO_TARGET_DIR/debug/mxmesh" demo "$@"
