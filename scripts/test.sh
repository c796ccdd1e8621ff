#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds every target once (so the
# integration tests find the real binaries), runs all tests, then fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
# The Debian package of the debug binaries just built: dpkg -i, systemd-analyze verify, a mail
# through the installed node, dpkg --purge (about a minute; needs root, as dpkg does).
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo --preserve-env=CARGO_TARGET_DIR"
$SUDO bash scripts/package-test.sh "$CARGO_TARGET_DIR/debug"
cargo fmt --all -- --check
# The fuzz crate is its own workspace (its target bodies are built and run above, by
# node/tests/fuzz_corpus.rs); check the rest of it without building libFuzzer.
rustfmt --edition 2024 --check fuzz/src/*.rs fuzz/fuzz_targets/*.rs
bash -n scripts/fuzz.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
