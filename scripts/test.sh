#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds every target once (so the
# integration tests find the real binaries), runs all tests, then fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
