#!/usr/bin/env bash
# The long simulator campaign (not in CI): every scenario over SEEDS consecutive seeds.
# Prints one line per run and a summary; exits non-zero if any run found a violation,
# with a replay command for each.
#
#   bash scripts/sim-campaign.sh [SEEDS] [NODES] [SECONDS] [FIRST_SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
SEEDS=${1:-10000}
NODES=${2:-5}
SECONDS_PER_RUN=${3:-10}
FIRST=${4:-1}
cargo build --release -p mxmesh-sim --locked >&2
exec "$CARGO_TARGET_DIR/release/mxmesh-sim" --scenario all --seed "$FIRST" --seeds "$SEEDS" \
  --nodes "$NODES" --seconds "$SECONDS_PER_RUN"
