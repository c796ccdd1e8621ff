#!/usr/bin/env bash
# Builds what the demo runs — the mxmesh, mxctl and mxload binaries, nothing else
# (installing what a fresh machine lacks for that) — and runs the local demo with mxctl
# and mxload on PATH. Extra arguments go to `mxmesh demo` (e.g. --nodes 3 --dir /tmp/mxdemo).
set -euo pipefail
cd "$(dirname "$0")/.."
MXMESH_SETUP=demo source scripts/setup.sh
cargo build --locked -p mxmesh-node -p mxmesh-tools --bins
export PATH="$CARGO_TARGET_DIR/debug:$PATH"
echo "(mxctl and mxload are on PATH for this shell: $CARGO_TARGET_DIR/debug)"
exec "$CARGO_TARGET_DIR/debug/mxmesh" demo "$@"
