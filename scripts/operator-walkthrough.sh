#!/usr/bin/env bash
# The life of a node, as one operator session (README, "The operator walk-through"). Needs
# root. Not in CI: it builds the previous release (several minutes on a warm cache).
#
#   scripts/operator-walkthrough.sh [--old-ref REF] [--old-bin DIR] [--new-bin DIR] [--keep]
#
# Two machines, mxa and mxb: each a real systemd booted as PID 1 of its own PID, mount,
# network, UTS, IPC and cgroup namespaces on a throw-away overlay of this machine's root
# (scripts/package-systemd-test.sh boots them; the host's dpkg database, /etc and /var are
# never written), joined by a LAN (a bridge in a third network namespace, 10.255.18.0/24)
# where the outside world lives: a sender and the mail server (`mxmesh sink`).
#  1. Packages REF's binaries (default: the tag v0.1.0) as the previous release and the current
#     tree's as <version>+g<commit>, both with this tree's packaging (REF had no package).
#  2. Installs the previous release on both machines (dpkg -i), writes a mesh config and the
#     certificates from `mxmesh ca`, `systemctl enable --now mxmesh`; the two nodes mesh.
#  3. Makes rules on each machine; a sender on the LAN sends one mail every 50 ms to mxa or mxb
#     (the other one when a node refuses or is down, as a sending MTA does).
#  4. While mail flows: dpkg -i of the current package on mxa (the old node drains, the new
#     one starts on the same data dir), then on mxb. Every accepted mail must reach the mail
#     server; no rule may be lost.
#  5. Quarantines two messages on mxa and backs mxa up online (`mxmesh backup`), keeping a
#     copy off the data dir. After the backup, from mxb: a rule deleted, a rule added, one of
#     the two messages released.
#  6. mxa loses its disk: systemctl stop, the data dir deleted, `mxmesh restore` from the
#     copy (as the service user), systemctl start.
#  7. mxa rejoins: its rule book is the mesh's (the deleted rule stays deleted, the new one is
#     there), its quarantine has the kept message (readable from mxb) and shows the released
#     one as released, which is not relayed a second time; mail flows through mxa again.
# Prints a transcript of every step and a summary line; exits 1 at the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

old_ref=v0.1.0
old_bin="" new_bin="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --old-ref) old_ref="$2"; shift 2 ;;
    --old-bin) old_bin="$2"; shift 2 ;;
    --new-bin) new_bin="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "walkthrough: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Bound of every wait, in tenths of a second.
WAIT_TENTHS=1200
# Milliseconds between two messages of the load.
LOAD_GAP_MS=50
# The LAN: the two machines and the outside world (sender and mail server).
LAN_NET=10.255.18
declare -A IP=([mxa]=$LAN_NET.1 [mxb]=$LAN_NET.2)
OUTSIDE_IP=$LAN_NET.9
SINK_ADDR=$OUTSIDE_IP:2525
# Where each machine keeps the node's store, and where the backup goes (both under the
# unit's ReadWritePaths=/var/lib/mxmesh), and the copy kept off the data dir.
DATA_DIR=/var/lib/mxmesh/store
BACKUP_DIR=/var/lib/mxmesh/backup-1
BACKUP_COPY=/srv/mxmesh-backup

t_start=$(date +%s)
fail() { echo "walkthrough: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg in namespaces, mounts)"
for c in unshare nsenter ip findmnt python3 curl; do command -v $c >/dev/null || fail "$c missing"; done
[ -x /lib/systemd/systemd ] || fail "/lib/systemd/systemd missing (scripts/setup.sh installs systemd)"

step_no=0
step() { step_no=$((step_no + 1)); printf '\n== %d. %s  [%ds]\n' "$step_no" "$*" "$(($(date +%s) - t_start))"; }
note() { echo "   $*"; }
indent() { sed 's/^/   | /'; }
wait_for() {
  local i
  for ((i = 0; i < WAIT_TENTHS; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

work=$(mktemp -d /var/tmp/mxmesh-walkthrough.XXXXXX)
chmod 0755 "$work"
lan="mxwalk$$"
cg_root=$(findmnt -n -t cgroup2 -o TARGET | head -n1)
declare -A init_pid=() unshare_pid=() tok=()
bg_pids=()

# ct NAME CMD…: runs CMD on machine NAME (in the namespaces of its systemd), clean env.
ct() { local n=$1; shift; nsenter -t "${init_pid[$n]}" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
# run NAME CMD…: as ct, printed as the operator's command with its output.
run() { local n=$1; shift; echo "   $n# $*"; ct "$n" "$@" 2>&1 | indent; return "${PIPESTATUS[0]}"; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! alive "$1"; }
rmdir_tree() { find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; [ ! -d "$1" ]; }

cleanup() {
  local n p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in "${!init_pid[@]}"; do
    if alive "${init_pid[$n]}"; then
      ct "$n" systemctl poweroff --no-block >/dev/null 2>&1 || true
    fi
  done
  for n in "${!init_pid[@]}"; do
    wait_for dead "${init_pid[$n]}" || kill -KILL "${init_pid[$n]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for n in mxa mxb; do
    [ -d "$cg_root/mxmesh-walk-$n.$$" ] && { wait_for rmdir_tree "$cg_root/mxmesh-walk-$n.$$" || echo "walkthrough: could not remove a cgroup" >&2; }
  done
  ip netns del "$lan" 2>/dev/null || true
  if [ -d "$work/old-src" ]; then git worktree remove --force "$work/old-src" >/dev/null 2>&1 || true; fi
  if [ "$keep" = 1 ]; then echo "walkthrough: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- 1. The two packages. -------------------------------------------------------------------
step "Build the packages: the previous release ($old_ref) and the current tree"
cargo_flags=(--locked -p mxmesh-node -p mxmesh-tools --bins)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mxmesh/target}"
if [ -z "$new_bin" ]; then
  note "building the current tree (debug)"
  cargo build "${cargo_flags[@]}" >&2
  new_bin="$CARGO_TARGET_DIR/debug"
fi
if [ -z "$old_bin" ]; then
  note "building $old_ref (debug) in a git worktree"
  git worktree add --detach "$work/old-src" "$old_ref" >/dev/null
  (cd "$work/old-src" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR-compat-old" cargo build "${cargo_flags[@]}" >&2)
  old_bin="$CARGO_TARGET_DIR-compat-old/debug"
fi
old_version=$(git show "$old_ref:Cargo.toml" | sed -n 's/^version = "\(.*\)"/\1/p' | head -n1)
new_version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)+g$(git rev-parse --short=10 HEAD)"
deb_old=$(scripts/package.sh --bin-dir "$old_bin" --out "$work/deb" --version "$old_version" 2>/dev/null | tail -n1)
deb_new=$(scripts/package.sh --bin-dir "$new_bin" --out "$work/deb" --version "$new_version" 2>/dev/null | tail -n1)
note "previous: $(basename "$deb_old") ($(du -k "$deb_old" | cut -f1) KiB, mxmesh sha256 $(sha256sum "$old_bin/mxmesh" | cut -c1-12))"
note "current:  $(basename "$deb_new") ($(du -k "$deb_new" | cut -f1) KiB, mxmesh sha256 $(sha256sum "$new_bin/mxmesh" | cut -c1-12))"

# --- The machines and the LAN. ---------------------------------------------------------------
step "Boot two machines (systemd as PID 1 in namespaces) and the LAN between them"
[ -n "$cg_root" ] || fail "no cgroup2 hierarchy mounted (systemd in namespaces needs one)"
boot() { # boot NAME: systemd as PID 1 of new namespaces on an overlay of /
  local n=$1 d="$work/$1"
  mkdir -p "$d" && chmod 0755 "$d"
  mkdir "$cg_root/mxmesh-walk-$n.$$"
  : >"$d/boot.log"
  (
    echo "$BASHPID" >"$cg_root/mxmesh-walk-$n.$$/cgroup.procs"
    exec env MXMESH_CT_HOSTNAME="$n" unshare --mount --pid --fork --net --uts --ipc --cgroup \
      "$root/scripts/package-systemd-test.sh" --container-init "$d" "$deb_old"
  ) >>"$d/boot.log" 2>&1 &
  unshare_pid[$n]=$!
  setup_done() { grep -q -e '^setup ok$' -e '^setup failed' -e '^unshare:' "$d/boot.log" || dead "${unshare_pid[$n]}"; }
  wait_for setup_done || fail "$n: the namespace setup neither finished nor failed"
  grep -q '^setup ok$' "$d/boot.log" || fail "$n: systemd cannot boot here: $(tail -n 5 "$d/boot.log" | tr '\n' ' ')"
  init_pid[$n]=$(pgrep -P "${unshare_pid[$n]}")
  booted() { [ -S "/proc/${init_pid[$n]}/root/run/systemd/private" ]; }
  wait_for booted || fail "$n: systemd did not come up"
  local state
  state=$(ct "$n" timeout 60 systemctl is-system-running --wait || true)
  case "$state" in running | degraded) ;; *) fail "$n: systemd boot ended '$state'" ;; esac
  note "$n: systemd $(ct "$n" systemctl --version | head -n1 | cut -d' ' -f2) is PID 1 (host pid ${init_pid[$n]}), boot $state"
}
boot mxa
boot mxb
ip netns add "$lan"
ip -n "$lan" link set lo up
ip -n "$lan" link add br0 type bridge
ip -n "$lan" addr add "$OUTSIDE_IP/24" dev br0
ip -n "$lan" link set br0 up
wire() { # wire NAME: a veth from machine NAME's eth0 to the LAN's bridge
  local n=$1 a="v$1$$" b="l$1$$"
  ip link add "$a" type veth peer name "$b"
  ip link set "$a" netns "${init_pid[$n]}"
  ip link set "$b" netns "$lan"
  ip -n "$lan" link set "$b" master br0 up
  nsenter -t "${init_pid[$n]}" -n ip link set "$a" name eth0
  nsenter -t "${init_pid[$n]}" -n ip addr add "${IP[$n]}/24" dev eth0
  nsenter -t "${init_pid[$n]}" -n ip link set eth0 up
}
wire mxa
wire mxb
# lan_reaches IP: a TCP connect from the LAN to a closed port is refused (not timed out).
lan_reaches() {
  ip netns exec "$lan" python3 -c '
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=1)
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    sys.exit(1)' "$1"
}
wait_for lan_reaches "${IP[mxa]}" && wait_for lan_reaches "${IP[mxb]}" || fail "the LAN does not reach both machines"
note "LAN $LAN_NET.0/24: mxa ${IP[mxa]}, mxb ${IP[mxb]}, outside world (sender, mail server) $OUTSIDE_IP"
: >"$work/sink.out"
ip netns exec "$lan" "$new_bin/mxmesh" sink --listen "$SINK_ADDR" --dir "$work/sink" >>"$work/sink.out" 2>&1 &
bg_pids+=($!)
wait_for grep -q 'sink listening on' "$work/sink.out" || fail "the mail server (sink) did not start"
note "mail server for example.com: $SINK_ADDR (mxmesh sink, files in $work/sink)"

# --- 2. The previous release on both machines. -----------------------------------------------
step "Install the previous release ($old_version) on mxa and mxb"
"$new_bin/mxmesh" ca init --out "$work/ca" >/dev/null
for n in mxa mxb; do "$new_bin/mxmesh" ca issue --ca "$work/ca" --node "$n" --out "$work/ca" >/dev/null; done
note "admin machine: mxmesh ca init; mxmesh ca issue --node mxa; mxmesh ca issue --node mxb"
# push NAME SRC DEST: a file of this machine's onto machine NAME.
push() { ct "$1" sh -c "cat >'$3'" <"$2"; }
# put NAME SRC DEST MODE: the same, root:mxmesh with MODE.
put() { ct "$1" sh -c "cat >'$3' && chown root:mxmesh '$3' && chmod $4 '$3'" <"$2"; }
config() { # config NAME PEER
  cat <<EOF
[node]
id = "$1"
data_dir = "$DATA_DIR"
[smtp]
listen = "0.0.0.0:25"
hostname = "$1.walkthrough.test"
[[domains]]
name = "example.com"
relay_to = "$SINK_ADDR"
[admin]
listen = "127.0.0.1:8025"
tokens_file = "/etc/mxmesh/admin.tokens"
[relay]
retry_initial_secs = 1
retry_max_secs = 2
[mesh]
listen = "0.0.0.0:7946"
advertise = "${IP[$1]}:7946"
seeds = ["${IP[$2]}:7946"]
cluster_id = "walkthrough"
ca_cert = "/etc/mxmesh/certs/ca.pem"
cert = "/etc/mxmesh/certs/$1.pem"
key = "/etc/mxmesh/certs/$1.key"
EOF
}
for n in mxa mxb; do
  peer=mxb; [ "$n" = mxb ] && peer=mxa
  # A mxmesh installed on this machine itself shows through the overlay: not on these two.
  if ct "$n" dpkg-query -W mxmesh >/dev/null 2>&1; then ct "$n" dpkg --purge mxmesh >/dev/null 2>&1; fi
  push "$n" "$deb_old" "/root/$(basename "$deb_old")"
  run "$n" dpkg -i "/root/$(basename "$deb_old")" || fail "$n: dpkg -i of the previous release"
  [ "$(ct "$n" dpkg-query -W -f '${Version}' mxmesh)" = "$old_version" ] || fail "$n: $old_version not installed"
  ct "$n" install -d -o root -g mxmesh -m 750 /etc/mxmesh/certs
  put "$n" "$work/ca/ca.pem" /etc/mxmesh/certs/ca.pem 644
  put "$n" "$work/ca/$n.pem" "/etc/mxmesh/certs/$n.pem" 644
  put "$n" "$work/ca/$n.key" "/etc/mxmesh/certs/$n.key" 640
  note "$n# install the certificates in /etc/mxmesh/certs; edit /etc/mxmesh/mxmesh.toml ([node] id = \"$n\", [mesh] seeds = [\"${IP[$peer]}:7946\"], data_dir = \"$DATA_DIR\")"
  config "$n" "$peer" | ct "$n" sh -c 'cat >/etc/mxmesh/mxmesh.toml'
  run "$n" mxmesh check --config /etc/mxmesh/mxmesh.toml || fail "$n: mxmesh check"
  run "$n" systemctl enable --now mxmesh || fail "$n: systemctl enable --now mxmesh"
  tok[$n]=$(ct "$n" awk '{print $2}' /etc/mxmesh/admin.tokens)
done

api() { # api NAME METHOD PATH [JSON]: the admin API of machine NAME, from that machine
  ct "$1" curl -sS --max-time 10 -X "$2" -H "Authorization: Bearer ${tok[$1]}" \
    -H 'Content-Type: application/json' ${4:+--data "$4"} "http://127.0.0.1:8025$3"
}
# mxctl NAME ARGS…: mxctl on machine NAME with its admin token (the README's way to pass it).
mxctl() {
  local n=$1; shift
  echo "   $n# mxctl --token \"\$(awk '{print \$2}' /etc/mxmesh/admin.tokens)\" $*"
  ct "$n" mxctl --token "${tok[$n]}" "$@" 2>&1 | indent
}
# members NAME: the mesh as machine NAME sees it, one line per member.
members() {
  api "$1" GET /api/v1/cluster | python3 -c '
import json, sys
for m in sorted(json.load(sys.stdin)["members"], key=lambda m: m["id"]):
    print(m.get("id"), " ".join(f"{k}={m.get(k)}" for k in ("live", "health", "version", "mesh_addr", "quarantine_entries")),
          "rules_digest=" + str(m.get("rules_digest"))[:12])' | indent
}
# packages: the installed package version and the node's process on each machine.
packages() {
  local n
  for n in mxa mxb; do
    note "$n: package $(ct "$n" dpkg-query -W -f '${Version}' mxmesh), node pid $(main_pid "$n") ($(ct "$n" systemctl is-active mxmesh))"
  done
}
live_members() { api "$1" GET /api/v1/cluster 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin)["members"] if m["live"] and m["health"] == "ok"))' 2>/dev/null; }
both_see_two() { [ "$(live_members mxa)" = 2 ] && [ "$(live_members mxb)" = 2 ]; }
rule_names() { api "$1" GET /api/v1/rules 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("rules", d) if isinstance(d, dict) else d; print(",".join(sorted(r["name"] for r in d)))' 2>/dev/null; }
both_have_rules() { [ "$(rule_names mxa)" = "$1" ] && [ "$(rule_names mxb)" = "$1" ]; }
main_pid() { ct "$1" systemctl show -P MainPID mxmesh; }
wait_for both_see_two || fail "the two nodes did not mesh"
note "the mesh as mxa's admin API shows it (GET /api/v1/cluster):"
members mxa
packages

# --- 3. Rules on both machines, then mail. ---------------------------------------------------
step "Rules made on each machine reach the other"
rule_id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
api mxa POST /api/v1/rules '{"name":"hold","priority":1,"action":"quarantine","reason":"walkthrough","when":{"field":"subject","op":"contains","value":"quarantine-me"}}' >/dev/null
api mxb POST /api/v1/rules '{"name":"tag","priority":2,"action":"tag","subject_prefix":"[walk]","when":{"field":"subject","op":"contains","value":"tag-me"}}' >/dev/null
doomed=$(api mxa POST /api/v1/rules '{"name":"doomed","priority":3,"action":"tag","subject_prefix":"[old]","when":{"field":"subject","op":"contains","value":"doomed"}}' | rule_id)
RULES3="doomed,hold,tag"
wait_for both_have_rules "$RULES3" || fail "the rule books did not agree: mxa $(rule_names mxa), mxb $(rule_names mxb)"
note "rules 'hold' and 'doomed' made on mxa, 'tag' on mxb: both list $RULES3"

step "Mail flows: one message every ${LOAD_GAP_MS} ms from the LAN to mxa or mxb"
: >"$work/accepted"
: >"$work/refused"
ip netns exec "$lan" python3 - "$work" "$LOAD_GAP_MS" "${IP[mxa]}" "${IP[mxb]}" <<'PY' &
import os, smtplib, sys, time
work, gap, ips = sys.argv[1], int(sys.argv[2]) / 1000, sys.argv[3:]
accepted = open(os.path.join(work, "accepted"), "a")
refused = open(os.path.join(work, "refused"), "a")
n = 0
while not os.path.exists(os.path.join(work, "stop")):
    n += 1
    tag = f"load-{n:06d}"
    msg = f"Subject: {tag}\r\nMessage-ID: <{tag}@walkthrough>\r\n\r\nwalkthrough {tag}\r\n"
    for k in range(len(ips)):
        ip = ips[(n + k) % len(ips)]
        try:
            with smtplib.SMTP(ip, 25, timeout=10) as s:
                s.sendmail("sender@outside.test", ["user@example.com"], msg)
            accepted.write(tag + "\n")
            accepted.flush()
            break
        except (OSError, smtplib.SMTPException) as e:
            refused.write(f"{tag} {ip} {type(e).__name__}\n")
            refused.flush()
            continue  # down, draining (421) or refusing: the next MX, as an MTA does
    time.sleep(gap)
PY
load_pid=$!
bg_pids+=($load_pid)
accepted_n() { wc -l <"$work/accepted"; }
some_accepted() { [ "$(accepted_n)" -ge 20 ]; }
wait_for some_accepted || fail "the sender got no mail accepted"
note "the sender has $(accepted_n) accepted so far"

# --- 4. The upgrade, one machine at a time, while mail flows. --------------------------------
upgrade() { # upgrade NAME
  local n=$1 before after
  before=$(main_pid "$n")
  push "$n" "$deb_new" "/root/$(basename "$deb_new")"
  local mark
  mark=$(accepted_n)
  run "$n" dpkg -i "/root/$(basename "$deb_new")" || fail "$n: dpkg -i of the current package"
  [ "$(ct "$n" dpkg-query -W -f '${Version}' mxmesh)" = "$new_version" ] || fail "$n: $new_version not installed"
  new_main() { after=$(main_pid "$n"); [ "$after" != 0 ] && [ "$after" != "$before" ] && [ "$(ct "$n" systemctl is-active mxmesh)" = active ]; }
  wait_for new_main || fail "$n: no new node after the upgrade"
  # The old process drained: its last words in the journal.
  drained() { ct "$n" journalctl -q -u mxmesh --no-pager -o cat "_PID=$before" | grep -q 'node stopped'; }
  wait_for drained || fail "$n: the old node (pid $before) did not log its drain ('node stopped')"
  wait_for both_see_two || fail "$n did not rejoin after the upgrade"
  wait_for both_have_rules "$RULES3" || fail "rules lost across the upgrade of $n: $(rule_names "$n")"
  note "$n: node pid $before (old) drained and stopped, pid $after runs $new_version; $(($(accepted_n) - mark)) mails accepted meanwhile"
}
step "Upgrade mxa in place while mail flows: dpkg -i $(basename "$deb_new")"
upgrade mxa
packages
step "Upgrade mxb in place while mail flows"
upgrade mxb
packages
touch "$work/stop"
wait "$load_pid" || true

step "Count: every accepted mail reached the mail server"
accepted=$(accepted_n)
count_lost() {
  python3 - "$work" <<'PY'
import glob, os, re, sys
work = sys.argv[1]
got = set()
for f in glob.glob(os.path.join(work, "sink", "*.eml")):
    with open(f, errors="replace") as fh:
        got.update(re.findall(r"walkthrough (load-\d+)", fh.read()))
want = [l.strip() for l in open(os.path.join(work, "accepted")) if l.strip()]
print(sum(1 for t in want if t not in got))
PY
}
all_delivered() { [ "$(count_lost)" = 0 ]; }
wait_for all_delivered || true
lost=$(count_lost)
refusals=$(wc -l <"$work/refused")
note "accepted $accepted, delivered $((accepted - lost)), lost $lost; $refusals tries refused or unanswered and sent to the other node"
note "rules on both: $(rule_names mxa)"
[ "$lost" = 0 ] || fail "$lost accepted mails never reached the mail server"

# --- 5. Quarantine, backup, and the mesh moving on. ------------------------------------------
step "Quarantine two messages on mxa, back mxa up (online), keep the copy off the data dir"
send() { # send NAME SUBJECT: a mail from the LAN to machine NAME
  ip netns exec "$lan" python3 - "${IP[$1]}" "$2" <<'PY'
import smtplib, sys
ip, subject = sys.argv[1], sys.argv[2]
with smtplib.SMTP(ip, 25, timeout=10) as s:
    s.sendmail("sender@outside.test", ["user@example.com"],
               f"Subject: {subject}\r\n\r\nwalkthrough {subject}\r\n")
PY
}
q_id() { # q_id NAME SUBJECT [STATUS]: the id of the matching quarantine entry, as NAME lists it
  api "$1" GET "/api/v1/quarantine?subject=$2" 2>/dev/null | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
want = sys.argv[1]
print(next((i["id"] for i in items if not want or i["status"] == want), ""))' "${3:-}" 2>/dev/null
}
send mxa "keep-quarantine-me" || fail "sending keep-quarantine-me"
send mxa "release-quarantine-me" || fail "sending release-quarantine-me"
both_listed() { keep_id=$(q_id mxb keep-quarantine-me quarantined) && rel_id=$(q_id mxb release-quarantine-me quarantined) && [ -n "$keep_id" ] && [ -n "$rel_id" ]; }
keep_id="" rel_id=""
wait_for both_listed || fail "the two quarantined messages did not show on mxb"
mxctl mxb quarantine list
run mxa mxmesh backup --config /etc/mxmesh/mxmesh.toml --out "$BACKUP_DIR" || fail "mxmesh backup"
run mxa cp -a "$BACKUP_DIR" "$BACKUP_COPY" || fail "copying the backup"

step "After the backup, from mxb: delete rule 'doomed', add rule 'late', release one message"
api mxb DELETE "/api/v1/rules/$doomed" >/dev/null || fail "deleting rule doomed"
api mxb POST /api/v1/rules '{"name":"late","priority":4,"action":"tag","subject_prefix":"[late]","when":{"field":"subject","op":"contains","value":"late-rule"}}' >/dev/null
RULES_AFTER="hold,late,tag"
wait_for both_have_rules "$RULES_AFTER" || fail "the rule change did not reach mxa: $(rule_names mxa)"
api mxb POST "/api/v1/quarantine/$rel_id/release" >/dev/null || fail "release of $rel_id"
released_copies() { grep -ls 'walkthrough release-quarantine-me' "$work"/sink/*.eml | wc -l; }
released_once() { [ "$(released_copies)" = 1 ]; }
wait_for released_once || fail "the released message did not reach the mail server"
note "rules now $RULES_AFTER on both; release-quarantine-me ($rel_id) released from mxb, delivered by mxa"

# --- 6. mxa loses its disk and is restored. --------------------------------------------------
step "mxa loses its data dir; restore it from the backup copy"
run mxa systemctl stop mxmesh || fail "systemctl stop"
run mxa rm -rf "$DATA_DIR" "$BACKUP_DIR"
run mxa runuser -u mxmesh -- mxmesh restore --config /etc/mxmesh/mxmesh.toml --from "$BACKUP_COPY" || fail "mxmesh restore"
run mxa systemctl start mxmesh || fail "systemctl start after the restore"

# --- 7. It rejoins without resurrecting anything. --------------------------------------------
step "mxa rejoins: its rules, its quarantine, nothing resurrected"
wait_for both_see_two || fail "mxa did not rejoin after the restore"
wait_for both_have_rules "$RULES_AFTER" || fail "after the restore mxa has rules $(rule_names mxa), the mesh $RULES_AFTER"
note "rules on mxa: $(rule_names mxa) ('doomed', deleted after the backup, stays deleted; 'late' came back)"
status_on() { api "$1" GET "/api/v1/quarantine/$2" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))' 2>/dev/null; }
rel_settled() { [ "$(status_on mxa "$rel_id")" = released ]; }
wait_for rel_settled || fail "mxa shows $rel_id as '$(status_on mxa "$rel_id")', not released"
[ "$(status_on mxa "$keep_id")" = quarantined ] || fail "mxa shows $keep_id as '$(status_on mxa "$keep_id")', not quarantined"
mxctl mxa quarantine list
raw_ok() { api mxb GET "/api/v1/quarantine/$keep_id/raw" 2>/dev/null | grep -q 'walkthrough keep-quarantine-me'; }
wait_for raw_ok || fail "mxb cannot read the kept message from the restored mxa"
note "keep-quarantine-me: quarantined on mxa, its bytes readable from mxb; release-quarantine-me: released"
send mxa "after-restore" || fail "mail to mxa after the restore"
after_delivered() { grep -lqs 'walkthrough after-restore' "$work"/sink/*.eml; }
wait_for after_delivered || fail "mail through mxa after the restore did not arrive"
[ "$(released_copies)" = 1 ] || fail "the released message was relayed again after the restore ($(released_copies) copies)"
note "a mail through mxa after the restore arrived; the released message was delivered once, not again"
note "the mesh as mxb's admin API shows it:"
members mxb

took=$(($(date +%s) - t_start))
echo
echo "walkthrough: ok previous=$old_version current=$new_version accepted=$accepted delivered=$((accepted - lost)) lost=$lost rules=$RULES_AFTER restored=mxa took=${took}s"
