#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds every target once (so the
# integration tests find the real binaries), runs all tests, then fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
# What building needs first; what only the tests need (BIND, ClamAV, Chromium, the corpus,
# ...) installs in the background while the build runs (its log is printed if it fails).
MXMESH_SETUP=demo source scripts/setup.sh
setup_log="$CARGO_TARGET_DIR/test-setup.log"
bash scripts/setup.sh >"$setup_log" 2>&1 &
setup_pid=$!
# The first results within minutes on a fresh machine: the CRDT crate needs no RocksDB.
cargo test -p mxmesh-crdt --locked
cargo build --workspace --all-targets --locked
if ! wait "$setup_pid"; then
  cat "$setup_log" >&2
  echo "test.sh: installing what the tests need failed (log above)" >&2
  exit 1
fi
source scripts/setup.sh
cargo test --workspace --exclude mxmesh-crdt --locked
# The Debian package of the debug binaries just built: dpkg -i, systemd-analyze verify, a mail
# through the installed node, dpkg --purge (about a minute; needs root, as dpkg does).
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo --preserve-env=CARGO_TARGET_DIR"
$SUDO bash scripts/package-test.sh "$CARGO_TARGET_DIR/debug"
# The same package under a real systemd booted in namespaces on an overlay of this machine:
# systemctl enable --now, the unit's hardening on the running node, a mail on port 25,
# reload/restart/stop/Restart=on-failure, the journal, an upgrade and a purge of a running
# node (about a minute; skipped, saying why, where the kernel cannot boot systemd so).
$SUDO bash scripts/package-systemd-test.sh "$CARGO_TARGET_DIR/debug"
cargo fmt --all -- --check
# The fuzz crate is its own workspace (its target bodies are built and run above, by
# node/tests/fuzz_corpus.rs); check the rest of it without building libFuzzer.
rustfmt --edition 2024 --check fuzz/src/*.rs fuzz/fuzz_targets/*.rs
# The scripts CI does not run (they build another tree or run for long): at least they parse.
for s in scripts/fuzz.sh scripts/compat.sh scripts/operator-walkthrough.sh; do bash -n "$s"; done
cargo clippy --workspace --all-targets --locked -- -D warnings
