#!/usr/bin/env bash
# The package, tried as an operator would on this machine (run by scripts/test.sh; needs root):
# build the .deb from already-built binaries, `dpkg -i` it, check what it installed, check
# the unit with `systemd-analyze verify` (offline: no systemd as PID 1 needed), run the
# installed binary as the service user with the shipped config adapted to loopback, send a
# mail through it to a sink, stop it with SIGTERM, `dpkg --purge` it and check what is left.
#
#   scripts/package-test.sh [BIN_DIR]     default: $CARGO_TARGET_DIR/debug (the test build)
#
# Prints "package: ok size=… installed_kb=… idle_rss_kb=…" (figures for BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mxmesh/target}"
bin_dir="${1:-$CARGO_TARGET_DIR/debug}"
# Bound of every wait below, in tenths of a second.
WAIT_TENTHS=600

fail() {
  echo "package-test: FAIL: $*" >&2
  exit 1
}
installed() { dpkg-query -W -f='${Status}' mxmesh 2>/dev/null | grep -q 'install ok'; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
installed && fail "a mxmesh package is already installed on this machine; purge it first"
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (scripts/setup.sh installs systemd)"
command -v swaks >/dev/null || fail "swaks missing (scripts/setup.sh installs it)"

work=$(mktemp -d)
chmod 0755 "$work"
node_pid="" sink_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null || true; fi
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; fi
  if installed; then dpkg --purge mxmesh >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for CMD…: runs CMD every 0.1 s until it succeeds, at most WAIT_TENTHS times.
wait_for() {
  local i
  for ((i = 0; i < WAIT_TENTHS; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}
has_mail() { compgen -G "$work/sink/*.eml" >/dev/null; }

deb=$(scripts/package.sh --bin-dir "$bin_dir" --out "$work/deb" | tail -n1)
size=$(stat -c %s "$deb")
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }

# What it installed.
for b in mxmesh mxctl mxload; do
  [ "$(command -v $b)" = "/usr/bin/$b" ] || fail "$b is not /usr/bin/$b on PATH"
  $b --help >/dev/null || fail "$b --help"
done
getent passwd mxmesh >/dev/null || fail "no system user mxmesh"
[ "$(stat -c %U:%G:%a /var/lib/mxmesh)" = "mxmesh:mxmesh:750" ] || fail "/var/lib/mxmesh owner/mode"
[ "$(stat -c %U:%G:%a /etc/mxmesh/admin.tokens)" = "root:mxmesh:640" ] || fail "admin.tokens owner/mode"
dpkg-query -W -f='${Conffiles}' mxmesh | grep -q '/etc/mxmesh/mxmesh.toml' || fail "mxmesh.toml is not a conffile"
installed_kb=$(dpkg-query -W -f='${Installed-Size}' mxmesh)
mxmesh check --config /etc/mxmesh/mxmesh.toml || fail "the shipped config does not pass mxmesh check"
# The service user can read everything the service reads.
setpriv --reuid mxmesh --regid mxmesh --init-groups mxmesh check --config /etc/mxmesh/mxmesh.toml ||
  fail "mxmesh check as user mxmesh"

# The unit, offline: syntax, directives, the binaries it names.
unit=/usr/lib/systemd/system/mxmesh.service
systemd-analyze verify --man=no "$unit" 2>"$work/verify.log" || {
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify"
}
if [ -s "$work/verify.log" ]; then
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify warned"
fi
for d in 'User=mxmesh' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
  'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
  'ProtectHome=yes' 'PrivateTmp=yes' 'ReadWritePaths=/var/lib/mxmesh' 'KillSignal=SIGTERM' \
  'TimeoutStopSec=120'; do
  grep -qx "$d" "$unit" || fail "the unit lacks $d"
done
exposure=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
  sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p' || true)

# The shipped config adapted to loopback: every listener on port 0, the domain relayed to a
# sink. data_dir and the token file stay as shipped.
"$bin_dir/mxmesh" sink --listen 127.0.0.1:0 --dir "$work/sink" >"$work/sink.out" 2>&1 &
sink_pid=$!
wait_for grep -q 'sink listening on' "$work/sink.out" || fail "the sink did not start"
sink_addr=$(sed -n 's/^sink listening on //p' "$work/sink.out")
sed -e 's/^listen = "0.0.0.0:25"/listen = "127.0.0.1:0"/' \
  -e 's/^listen = "127.0.0.1:8025"/listen = "127.0.0.1:0"/' \
  -e "s/^relay_to = .*/relay_to = \"$sink_addr\"/" \
  /etc/mxmesh/mxmesh.toml >"$work/node.toml"
[ "$(grep -c '^listen = "127.0.0.1:0"' "$work/node.toml")" = 2 ] || fail "adapting the config"
install -d -o mxmesh -g mxmesh "$work/run"
setpriv --reuid mxmesh --regid mxmesh --init-groups \
  mxmesh node --config "$work/node.toml" --ready-file "$work/run/ready.json" >"$work/node.log" 2>&1 &
node_pid=$!
wait_for test -s "$work/run/ready.json" || {
  cat "$work/node.log" >&2
  fail "the node did not get ready"
}
smtp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["smtp"])' "$work/run/ready.json")
swaks --silent 2 --server "${smtp%:*}" --port "${smtp##*:}" --from sender@example.org \
  --to user@example.com --header 'Subject: package test' --body 'Installed and running.' ||
  fail "swaks to the installed node"
wait_for has_mail || fail "the mail did not reach the sink"
grep -q 'Installed and running.' "$work"/sink/*.eml || fail "the sink got another message"
[ -n "$(ls -A /var/lib/mxmesh)" ] || fail "the node wrote nothing to /var/lib/mxmesh"
# Idle resident memory a moment after the mail went through (for BENCHMARKS.md).
sleep 2
idle_rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$node_pid/status")

# SIGTERM: graceful drain, exit 0, the ready file removed.
kill -TERM "$node_pid"
status=0
wait "$node_pid" || status=$?
node_pid=""
[ "$status" = 0 ] || {
  cat "$work/node.log" >&2
  fail "the node exited $status on SIGTERM"
}
[ ! -e "$work/run/ready.json" ] || fail "ready file left after a graceful stop"
kill "$sink_pid"
wait "$sink_pid" 2>/dev/null || true
sink_pid=""

# Purge: nothing left but the system user and group (README, "Install as a service").
dpkg --purge mxmesh >"$work/dpkg-purge.log" 2>&1 || {
  cat "$work/dpkg-purge.log" >&2
  fail "dpkg --purge"
}
for p in /usr/bin/mxmesh /usr/bin/mxctl /usr/bin/mxload "$unit" /etc/mxmesh /var/lib/mxmesh \
  /usr/share/doc/mxmesh; do
  [ ! -e "$p" ] || fail "$p left after dpkg --purge"
done
if dpkg-query -W mxmesh >/dev/null 2>&1; then fail "dpkg still lists mxmesh after --purge"; fi

echo "package: ok size=$size installed_kb=$installed_kb idle_rss_kb=$idle_rss_kb" \
  "exposure=${exposure:-n/a} deb=$(basename "$deb")"
