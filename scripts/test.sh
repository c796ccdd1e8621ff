#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds every target once (so the
# integration tests find the real binaries), runs all tests, then fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
cargo fmt --all -- --check
# The fuzz crate is its own workspace (its target bodies are built and run above, by
# node/tests/fuzz_corpus.rs); check the rest of it without building libFuzzer.
rustfmt --edition 2024 --check fuzz/src/*.rs fuzz/fuzz_targets/*.rs
bash -n scripts/fuzz.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
