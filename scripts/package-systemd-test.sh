#!/usr/bin/env bash
# The package under a real systemd (run by scripts/test.sh; needs root). The host needs no
# systemd as PID 1: the script boots /lib/systemd/systemd as PID 1 of new PID, mount, network,
# UTS, IPC and cgroup namespaces, on a throw-away overlay of the host's root file system
# (the host's own dpkg database, /etc and /var are never written), then, inside it:
#   dpkg -i the package, systemctl enable --now mxmesh, and checks that the node runs as user
#   mxmesh with CAP_NET_BIND_SERVICE as its only capability, NoNewPrivs, a seccomp filter,
#   a read-only / (ProtectSystem=strict) but a writable /var/lib/mxmesh, its own /tmp,
#   no /home, listens on port 25 of the shipped config and relays a mail to a sink;
#   a bad config stops `systemctl start` at ExecStartPre; `systemctl reload` is refused
#   (the unit has no reload) and leaves the node alone; restart drains and starts a new
#   process; SIGKILL of the node is followed by Restart=on-failure; stop drains (exit 0);
#   `dpkg -i` over a running node restarts it; `journalctl -u mxmesh` has the node's log;
#   `dpkg --purge` of a running node stops it and removes the unit.
#
#   scripts/package-systemd-test.sh [BIN_DIR]   default: $CARGO_TARGET_DIR/debug
#
# Skips (prints "package-systemd: skipped: <the exact error>", exit 0) only when a kernel or
# sandbox feature that systemd needs to boot is missing: the namespaces, an overlay mount,
# a cgroup2 hierarchy to delegate. Once systemd has started, anything wrong is a failure.
# Prints "package-systemd: ok boot_ms=… nofile=…" at the end.
set -euo pipefail
# Bound of every wait below, in tenths of a second.
WAIT_TENTHS=600
# What the node is sent to and what the sink listens on, inside the private network
# namespace (the loopback range reserved for this test, so nothing collides even if the
# namespace is ever dropped).
SMTP_ADDR=127.0.47.1
SINK_ADDR=127.0.47.2:2525
# Systemd's own hostname, so the journal is easy to tell apart (scripts/operator-walkthrough.sh
# boots two machines with this entry point and names each).
CT_HOSTNAME=${MXMESH_CT_HOSTNAME:-mxmesh-systemd-test}
# The node's capability sets: CAP_NET_BIND_SERVICE (bit 10) and nothing else.
CAPS_NET_BIND_ONLY=0000000000000400
# LimitNOFILE= of the unit.
UNIT_NOFILE=65536

# --- Inside the namespaces: the root file system for systemd, then exec systemd. ----------
# Every failure here is a missing kernel or sandbox feature; the outer part reports it as
# the reason for skipping. The last line before exec is "setup ok".
container_init() {
  local ns="$1/ns" deb="$2"
  trap 'echo "setup failed: $BASH_COMMAND" >&2' ERR
  set -eE
  mount --make-rprivate /
  mkdir -p "$ns"
  mount -t tmpfs -o mode=0755 mxmesh-systemd-test "$ns"
  mkdir -p "$ns/upper" "$ns/work" "$ns/root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$ns/upper,workdir=$ns/work" "$ns/root"
  local r="$ns/root" d
  mount -t proc proc "$r/proc"
  mount -t sysfs -o ro sysfs "$r/sys"
  mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
  mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
  for d in null zero full random urandom tty; do
    touch "$r/dev/$d"
    mount --bind "/dev/$d" "$r/dev/$d"
  done
  mkdir -p "$r/dev/pts" "$r/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
  ln -s pts/ptmx "$r/dev/ptmx"
  mount -t tmpfs -o mode=0755 tmpfs "$r/run"
  mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
  cp "$deb" "$r/root/mxmesh.deb"
  echo "$CT_HOSTNAME" >"$r/etc/hostname"
  ip link set lo up
  cd "$r"
  mkdir -p .old-root
  pivot_root . .old-root
  umount -l /.old-root
  rmdir /.old-root
  echo "setup ok" >&2
  # basic.target, not multi-user: the host's other enabled services stay down.
  exec env -i container=mxmesh-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --log-target=console --unit=basic.target
}
if [ "${1:-}" = --container-init ]; then
  container_init "$2" "$3"
fi

# --- Outside. -----------------------------------------------------------------------------
self=$(readlink -f "$0")
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mxmesh/target}"
bin_dir="${1:-$CARGO_TARGET_DIR/debug}"

fail() {
  echo "package-systemd: FAIL: $*" >&2
  if [ -n "${init_pid:-}" ] && kill -0 "$init_pid" 2>/dev/null; then
    echo "package-systemd: the last lines of journalctl -u mxmesh:" >&2
    ct journalctl -u mxmesh --no-pager -n 20 -o short-monotonic >&2 || true
  fi
  exit 1
}
skip() {
  echo "package-systemd: skipped: systemd cannot boot on this machine: $*"
  exit 0
}
[ "$(id -u)" = 0 ] || fail "needs root (namespaces, mounts)"
for c in unshare nsenter ip findmnt; do
  command -v $c >/dev/null || fail "$c missing (util-linux, iproute2)"
done
[ -x /lib/systemd/systemd ] || fail "/lib/systemd/systemd missing (scripts/setup.sh installs systemd)"
command -v swaks >/dev/null || fail "swaks missing (scripts/setup.sh installs it)"

work=$(mktemp -d)
chmod 0755 "$work"
unshare_pid="" init_pid="" cg=""

# wait_for CMD…: runs CMD every 0.1 s until it succeeds, at most WAIT_TENTHS times.
wait_for() {
  local i
  for ((i = 0; i < WAIT_TENTHS; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}
# ct CMD…: runs CMD inside the namespaces of the booted systemd, with a clean environment.
ct() { nsenter -t "$init_pid" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! alive "$1"; }

cleanup() {
  if [ -n "$init_pid" ] && alive "$init_pid"; then
    ct systemctl poweroff --no-block >/dev/null 2>&1 || true
    wait_for dead "$init_pid" || kill -KILL "$init_pid" 2>/dev/null || true
  fi
  if [ -n "$unshare_pid" ]; then wait "$unshare_pid" 2>/dev/null || true; fi
  # The cgroups systemd made under ours, deepest first (empty once its PID 1 is gone).
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    wait_for rmdir_tree "$cg" || echo "package-systemd: could not remove $cg" >&2
  fi
  rm -rf "$work"
}
rmdir_tree() { find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; [ ! -d "$1" ]; }
trap cleanup EXIT

deb=$(scripts/package.sh --bin-dir "$bin_dir" --out "$work/deb" | tail -n1)

# A cgroup of our own on the host's cgroup2 hierarchy: systemd becomes the root of it
# (cgroup namespace) and makes its slices there.
cg_root=$(findmnt -n -t cgroup2 -o TARGET | head -n1)
[ -n "$cg_root" ] || skip "no cgroup2 hierarchy mounted (systemd 252 in a container needs one)"
cg="$cg_root/mxmesh-systemd-test.$$"
mkdir "$cg" 2>"$work/cg.err" || skip "mkdir $cg: $(cat "$work/cg.err")"

: >"$work/boot.log"
boot_start=$(date +%s%N)
(
  echo "$BASHPID" >"$cg/cgroup.procs"
  exec unshare --mount --pid --fork --net --uts --ipc --cgroup \
    "$self" --container-init "$work" "$deb"
) >"$work/boot.log" 2>&1 &
unshare_pid=$!
setup_done() { grep -q -e '^setup ok$' -e '^setup failed' -e '^unshare:' "$work/boot.log" || dead "$unshare_pid"; }
wait_for setup_done || fail "the namespace setup neither finished nor failed"
if ! grep -q '^setup ok$' "$work/boot.log"; then
  skip "$(grep -v '^+' "$work/boot.log" | tail -n 5 | tr '\n' ' ')"
fi
init_pid=$(pgrep -P "$unshare_pid" || true)
[ -n "$init_pid" ] || fail "no PID 1 under unshare: $(tail -n 20 "$work/boot.log")"

# From here on, systemd runs: anything wrong is a failure.
boot_dump() { tail -n 40 "$work/boot.log" >&2; }
private_socket() { dead "$init_pid" || [ -S "/proc/$init_pid/root/run/systemd/private" ]; }
wait_for private_socket || { boot_dump; fail "systemd did not open /run/systemd/private"; }
alive "$init_pid" || { boot_dump; fail "systemd exited during boot"; }
state=$(ct timeout 60 systemctl is-system-running --wait || true)
case "$state" in
  running) ;;
  degraded)
    # A unit of this machine's own failed in the namespace; not the package's business.
    echo "package-systemd: note: boot degraded by: $(ct systemctl --failed --plain --no-legend | cut -d' ' -f1 | tr '\n' ' ')"
    ;;
  *)
    ct systemctl --failed --no-pager >&2 || true
    boot_dump
    fail "systemd boot ended '$state'"
    ;;
esac
boot_ms=$((($(date +%s%N) - boot_start) / 1000000))
[ "$(ct cat /proc/1/comm)" = systemd ] || fail "PID 1 of the namespace is not systemd"

# The package, installed by dpkg while systemd runs (postinst takes the daemon-reload path).
# A mxmesh installed on the host at the same moment (scripts/package-test.sh) shows through
# the overlay: purge it from the overlay first.
if ct dpkg-query -W mxmesh >/dev/null 2>&1; then ct dpkg --purge mxmesh >/dev/null 2>&1; fi
ct dpkg -i /root/mxmesh.deb >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }
[ "$(ct systemctl show -P LoadState mxmesh)" = loaded ] || fail "systemd does not see mxmesh.service"
ct systemctl show -P FragmentPath mxmesh | grep -qx '/usr/lib/systemd/system/mxmesh.service\|/lib/systemd/system/mxmesh.service' ||
  fail "mxmesh.service is not the packaged unit"

# The shipped config as is (0.0.0.0:25, admin on 127.0.0.1:8025), the domain relayed to a
# sink run as a transient unit.
ct systemd-run --quiet --unit=mxmesh-test-sink /usr/bin/mxmesh sink --listen "$SINK_ADDR" \
  --dir /var/tmp/mxmesh-sink || fail "systemd-run of the sink"
sink_up() { ct ss -Hltn "sport = :${SINK_ADDR##*:}" | grep -q .; }
wait_for sink_up || fail "the sink did not listen on $SINK_ADDR"
ct sed -i "s/^relay_to = .*/relay_to = \"$SINK_ADDR\"/" /etc/mxmesh/mxmesh.toml
ct grep -q "^relay_to = \"$SINK_ADDR\"" /etc/mxmesh/mxmesh.toml || fail "adapting relay_to"

main_pid() { ct systemctl show -P MainPID mxmesh; }
# listening PID: the node's main process owns the port 25 listener.
listening() { ct ss -Hltnp 'sport = :25' | grep -q "pid=$1,"; }
# started PID: port 25 answers and belongs to PID (not to an earlier process).
started() {
  local pid
  pid=$(main_pid)
  [ "$pid" != 0 ] && [ "$pid" != "$1" ] && listening "$pid"
}
port25_closed() { ! ct ss -Hltn 'sport = :25' | grep -q .; }
# send_mail TAG: a mail to the node on port 25; waits until the sink has it.
send_mail() {
  ct swaks --silent 2 --server "$SMTP_ADDR" --port 25 --from sender@example.org \
    --to user@example.com --header "Subject: $1" --body "systemd test $1" ||
    fail "swaks to the node under systemd ($1)"
  wait_for ct sh -c "grep -qs 'systemd test $1' /var/tmp/mxmesh-sink/*.eml" ||
    fail "mail $1 did not reach the sink"
}
# journal_has TEXT [PID]: the journal of the unit (of PID) has a line with TEXT.
journal_has() { ct journalctl -q -u mxmesh --no-pager -o cat ${2:+"_PID=$2"} | grep -q "$1"; }

# ExecStartPre: a broken config never reaches `mxmesh node`.
ct cp /etc/mxmesh/mxmesh.toml /root/mxmesh.toml.good
ct sh -c 'echo "this is not toml" >>/etc/mxmesh/mxmesh.toml'
if ct systemctl start mxmesh 2>/dev/null; then fail "systemctl start succeeded with a broken config"; fi
[ "$(ct systemctl show -P ExecMainStartTimestampMonotonic mxmesh)" = 0 ] ||
  fail "mxmesh node ran although mxmesh check failed"
ct systemctl stop mxmesh # cancels Restart=on-failure
ct cp /root/mxmesh.toml.good /etc/mxmesh/mxmesh.toml

# enable --now, as the README says.
ct systemctl enable --now mxmesh >/dev/null 2>&1 || {
  ct journalctl -u mxmesh --no-pager >&2
  fail "systemctl enable --now mxmesh"
}
[ "$(ct systemctl is-enabled mxmesh)" = enabled ] || fail "mxmesh is not enabled"
wait_for started 0 || { ct journalctl -u mxmesh --no-pager >&2; fail "the node did not listen on port 25"; }
pid=$(main_pid)

# The hardening, seen on the running process.
status_field() { ct awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
[ "$(status_field "$pid" Uid)" = "$(ct id -u mxmesh)" ] || fail "the node does not run as user mxmesh"
for c in CapInh CapPrm CapEff CapBnd CapAmb; do
  [ "$(status_field "$pid" $c)" = "$CAPS_NET_BIND_ONLY" ] || fail "$c of the node is not CAP_NET_BIND_SERVICE alone"
done
[ "$(status_field "$pid" NoNewPrivs)" = 1 ] || fail "NoNewPrivileges is not in force"
[ "$(status_field "$pid" Seccomp)" = 2 ] || fail "no seccomp filter (SystemCallFilter=)"
# In the node's own mount namespace (as root, so only the mounts can refuse).
in_node() { ct nsenter -t "$pid" -m "$@"; }
if in_node touch /etc/mxmesh/probe 2>/dev/null; then fail "/etc is writable for the node (ProtectSystem=strict)"; fi
if in_node touch /usr/probe 2>/dev/null; then fail "/usr is writable for the node (ProtectSystem=strict)"; fi
in_node touch /var/lib/mxmesh/probe || fail "/var/lib/mxmesh is not writable for the node (ReadWritePaths=)"
in_node rm /var/lib/mxmesh/probe
in_node touch /tmp/mxmesh-private-probe || fail "the node's /tmp is not writable"
if ct test -e /tmp/mxmesh-private-probe; then fail "the node's /tmp is the system's /tmp (PrivateTmp=)"; fi
ct grep -q ' /home ro,' "/proc/$pid/mountinfo" || fail "no read-only mount over /home for the node (ProtectHome=)"
[ -z "$(in_node ls -A /home 2>/dev/null)" ] || fail "/home is visible to the node (ProtectHome=)"
nofile=$(ct awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
hard_limit=$(ct awk '/^Max open files/ {print $5}' /proc/1/limits)
want_nofile=$((hard_limit < UNIT_NOFILE ? hard_limit : UNIT_NOFILE))
[ "$nofile" = "$want_nofile" ] || fail "LimitNOFILE: the node has $nofile, expected $want_nofile"
if [ "$nofile" != "$UNIT_NOFILE" ]; then
  echo "package-systemd: note: LimitNOFILE=$UNIT_NOFILE capped at $nofile, the hard limit of this machine"
fi

# A mail through the node; the data dir gets the node's store.
send_mail first
[ -n "$(ct ls -A /var/lib/mxmesh)" ] || fail "the node wrote nothing to /var/lib/mxmesh"
wait_for journal_has 'mxmesh.toml: ok' || fail "the journal lacks the ExecStartPre check"
wait_for journal_has 'node started node=mx1' "$pid" || fail "journalctl -u mxmesh lacks the node's start"

# reload: the unit has none (a config change needs a restart); refused, the node untouched.
reload_err=$(ct systemctl reload mxmesh 2>&1) && fail "systemctl reload succeeded on a unit without ExecReload"
echo "$reload_err" | grep -q 'reload is not applicable' || fail "systemctl reload: $reload_err"
[ "$(main_pid)" = "$pid" ] && listening "$pid" || fail "systemctl reload disturbed the node"

# restart: the old process drains and exits, a new one serves.
ct systemctl restart mxmesh || fail "systemctl restart"
wait_for started "$pid" || fail "no new node listening after systemctl restart"
wait_for journal_has 'node stopped' "$pid" || fail "the old node did not drain on restart"
pid=$(main_pid)
send_mail after-restart

# Restart=on-failure: a killed node comes back (after RestartSec=5s).
ct kill -KILL "$pid"
wait_for started "$pid" || fail "systemd did not restart the node after SIGKILL"
[ "$(ct systemctl show -P NRestarts mxmesh)" = 1 ] || fail "NRestarts is not 1 after the kill"
pid=$(main_pid)
send_mail after-kill

# stop: SIGTERM, the drain, exit 0, the port closed.
ct systemctl stop mxmesh || fail "systemctl stop"
[ "$(ct systemctl show -P ActiveState mxmesh)" = inactive ] || fail "mxmesh not inactive after stop"
[ "$(ct systemctl show -P Result mxmesh)" = success ] || fail "stop result: $(ct systemctl show -P Result mxmesh)"
[ "$(ct systemctl show -P ExecMainStatus mxmesh)" = 0 ] || fail "the node did not exit 0 on stop"
wait_for journal_has 'node stopped' "$pid" || fail "no drain on stop"
port25_closed || fail "port 25 still open after stop"

# An upgrade over a running node: postinst restarts it.
ct systemctl start mxmesh
wait_for started 0 || fail "the node did not start again"
pid=$(main_pid)
ct dpkg -i /root/mxmesh.deb >"$work/dpkg-upgrade.log" 2>&1 || { cat "$work/dpkg-upgrade.log" >&2; fail "dpkg -i over a running node"; }
wait_for started "$pid" || fail "dpkg -i over a running node did not restart it"
pid=$(main_pid)

# Purge while running: prerm stops and disables it; the unit is gone.
ct dpkg --purge mxmesh >"$work/dpkg-purge.log" 2>&1 || { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge"; }
ct test ! -d "/proc/$pid" || fail "the node still runs after dpkg --purge"
[ "$(ct systemctl show -P LoadState mxmesh)" = not-found ] || fail "systemd still has mxmesh.service after purge"
port25_closed || fail "port 25 still open after purge"

echo "package-systemd: ok boot_ms=$boot_ms nofile=$nofile systemd=$(ct systemctl --version | head -n1 | cut -d' ' -f2)"
