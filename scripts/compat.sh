#!/usr/bin/env bash
# Rolling upgrade across versions, tried for real (not in CI: it builds a second tree).
# README, "Versions side by side".
#
#   scripts/compat.sh [--old-ref REF] [--old-bin DIR] [--new-bin DIR] [--release] [--keep]
#
# 1. Builds the binaries of REF (default: the tag v0.1.0) in a git worktree and those of
#    the current tree (or takes them from --old-bin / --new-bin).
# 2. Starts a 3-node mesh on 127.28.0.1-3 (fixed ports: SMTP 2525, admin 8025, mesh 7946):
#    mx1 and mx2 run the old binary, mx3 the new one; a sink stands in for the mail server.
# 3. Edits rules on an old node and on the new one and waits until all three agree;
#    quarantines a message on an old node and one on the new node and releases each from a
#    node of the other version; both must reach the sink.
# 4. Under a light mail load (one message every 50 ms, round robin over the nodes; a node
#    that refuses or is down is skipped for the next, as a sending MTA does), upgrades mx1
#    and then mx2 in place: SIGTERM (drain), restart on the same data dir with the new
#    binary, wait until it is back in the mesh with the rules.
# 5. Reports the mail accepted (250) and the mail the sink got; exit 1 if any is lost or a
#    rule went missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

old_ref=v0.1.0
old_bin="" new_bin="" old_label="" profile=debug keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --old-ref) old_ref="$2"; shift 2 ;;
    --old-bin) old_bin="$2"; old_label="$2"; shift 2 ;;
    --new-bin) new_bin="$2"; shift 2 ;;
    --release) profile=release; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "compat.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Bound of every wait, in tenths of a second.
WAIT_TENTHS=1200
# Milliseconds between two messages of the load.
LOAD_GAP_MS=50
IPS=(127.28.0.1 127.28.0.2 127.28.0.3)
TOKEN=compat-token

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -d "$work/old-src" ]; then git worktree remove --force "$work/old-src" >/dev/null 2>&1 || true; fi
  if [ "$keep" = 1 ]; then echo "compat: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "compat: FAIL: $*" >&2; exit 1; }
say() { echo "compat: $*" >&2; }
wait_for() {
  local i
  for ((i = 0; i < WAIT_TENTHS; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

cargo_flags=(--locked -p mxmesh-node -p mxmesh-tools --bins)
[ "$profile" = release ] && cargo_flags+=(--release)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mxmesh/target}"
if [ -z "$new_bin" ]; then
  say "building the current tree ($profile)"
  cargo build "${cargo_flags[@]}" >&2
  new_bin="$CARGO_TARGET_DIR/$profile"
fi
if [ -z "$old_bin" ]; then
  say "building $old_ref ($profile) in a worktree"
  git worktree add --detach "$work/old-src" "$old_ref" >/dev/null
  # Its own target dir: the two trees' feature sets and sources differ.
  (cd "$work/old-src" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR-compat-old" cargo build "${cargo_flags[@]}" >&2)
  old_bin="$CARGO_TARGET_DIR-compat-old/$profile"
fi
for b in "$old_bin/mxmesh" "$new_bin/mxmesh"; do [ -x "$b" ] || fail "$b missing"; done
mkdir -p "$work/bin-old" "$work/bin-new"
cp "$old_bin/mxmesh" "$work/bin-old/" && cp "$new_bin/mxmesh" "$work/bin-new/"

# The cluster CA and three node certificates, the sink, the configs.
"$work/bin-new/mxmesh" ca init --out "$work/ca" >/dev/null
for i in 1 2 3; do "$work/bin-new/mxmesh" ca issue --ca "$work/ca" --node "mx$i" --out "$work/ca" >/dev/null; done
echo "compat $TOKEN" >"$work/tokens"
"$work/bin-new/mxmesh" sink --listen 127.28.0.9:0 --dir "$work/sink" >"$work/sink.out" 2>&1 &
pids+=($!)
wait_for grep -q 'sink listening on' "$work/sink.out" || fail "the sink did not start"
sink=$(sed -n 's/^sink listening on //p' "$work/sink.out")
for i in 1 2 3; do
  ip=${IPS[$((i - 1))]}
  seeds=$(for j in 1 2 3; do if [ "$j" != "$i" ]; then printf '"%s:7946",' "${IPS[$((j - 1))]}"; fi; done)
  cat >"$work/mx$i.toml" <<EOF
[node]
id = "mx$i"
data_dir = "$work/mx$i"
[smtp]
listen = "$ip:2525"
hostname = "mx$i.compat.test"
[[domains]]
name = "example.com"
relay_to = "$sink"
[admin]
listen = "$ip:8025"
tokens_file = "$work/tokens"
rate_per_sec = 10000
rate_burst = 10000
[relay]
retry_initial_secs = 1
retry_max_secs = 2
[mesh]
listen = "$ip:7946"
seeds = [${seeds%,}]
cluster_id = "compat"
ca_cert = "$work/ca/ca.pem"
cert = "$work/ca/mx$i.pem"
key = "$work/ca/mx$i.key"
EOF
done

declare -A node_pid
start_node() { # start_node N old|new
  local i=$1 which=$2
  rm -f "$work/mx$i.ready"
  "$work/bin-$which/mxmesh" node --config "$work/mx$i.toml" --ready-file "$work/mx$i.ready" \
    >>"$work/mx$i.log" 2>&1 &
  node_pid[$i]=$!
  pids+=($!)
  wait_for test -s "$work/mx$i.ready" || { tail -20 "$work/mx$i.log" >&2; fail "mx$i ($which) did not get ready"; }
  say "mx$i runs the $which binary (pid ${node_pid[$i]})"
}
stop_node() { # stop_node N: SIGTERM, the drain, exit 0
  local i=$1 status=0
  kill -TERM "${node_pid[$i]}"
  wait "${node_pid[$i]}" || status=$?
  [ "$status" = 0 ] || fail "mx$i exited $status on SIGTERM"
}
api() { # api N METHOD PATH [JSON]
  local ip=${IPS[$(($1 - 1))]}
  curl -sS --max-time 10 -X "$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    ${4:+--data "$4"} "http://$ip:8025$3"
}
json_len() { python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get(sys.argv[1], d) if isinstance(d, dict) else d; print(len(d))' "$1"; }
live_members() { api "$1" GET /api/v1/cluster | python3 -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin)["members"] if m["live"] and m["health"] == "ok"))'; }
all_see_three() { local i; for i in 1 2 3; do [ "$(live_members $i 2>/dev/null)" = 3 ] || return 1; done; }
rules_on() { api "$1" GET /api/v1/rules | json_len rules; }
all_have_rules() { local i; for i in 1 2 3; do [ "$(rules_on $i 2>/dev/null)" = "$1" ] || return 1; done; }
in_sink() { grep -lq "$1" "$work"/sink/*.eml 2>/dev/null; }
send() { # send N SUBJECT
  swaks --silent 2 --server "${IPS[$(($1 - 1))]}" --port 2525 --from a@remote.test \
    --to user@example.com --header "Subject: $2" --body "compat $2"
}
quarantined_id() { # quarantined_id N SUBJECT: the id of the quarantined message, as node N lists it
  api "$1" GET "/api/v1/quarantine?subject=$2" | python3 -c 'import json,sys; i=json.load(sys.stdin)["items"]; print(i[0]["id"] if i else "")'
}

start_node 1 old
start_node 2 old
start_node 3 new
wait_for all_see_three || fail "the mixed mesh did not form"
say "mixed mesh formed: mx1, mx2 old; mx3 new"

# Rules edited on both versions.
api 1 POST /api/v1/rules '{"name":"compat quarantine","priority":1,"action":"quarantine","when":{"field":"subject","op":"contains","value":"quarantine-me"}}' >/dev/null
api 3 POST /api/v1/rules '{"name":"compat tag","priority":2,"action":"tag","subject_prefix":"[compat]","when":{"field":"subject","op":"contains","value":"tag-me"}}' >/dev/null
wait_for all_have_rules 2 || fail "the rule books did not agree across versions"
say "rules made on mx1 (old) and mx3 (new): all three list 2"

# Quarantine on each version, release from the other.
send 1 "old-quarantine-me" && send 3 "new-quarantine-me"
q_old="" q_new=""
got_ids() { q_old=$(quarantined_id 3 old-quarantine-me) && q_new=$(quarantined_id 1 new-quarantine-me) && [ -n "$q_old" ] && [ -n "$q_new" ]; }
wait_for got_ids || fail "the quarantined messages did not show in the other version's index"
api 3 POST "/api/v1/quarantine/$q_old/release" >/dev/null
api 1 POST "/api/v1/quarantine/$q_new/release" >/dev/null
wait_for in_sink "compat old-quarantine-me" || fail "release from new of old's message"
wait_for in_sink "compat new-quarantine-me" || fail "release from old of new's message"
say "quarantined on each version, released from the other: both delivered"

# The load, in the background until $work/stop exists.
python3 - "$work" "$LOAD_GAP_MS" "${IPS[@]}" <<'PY' &
import os, smtplib, sys, time
work, gap, ips = sys.argv[1], int(sys.argv[2]) / 1000, sys.argv[3:]
accepted = open(os.path.join(work, "accepted"), "w")
n = 0
while not os.path.exists(os.path.join(work, "stop")):
    n += 1
    tag = f"load-{n:06d}"
    msg = f"Subject: {tag}\r\nMessage-ID: <{tag}@compat>\r\n\r\ncompat {tag}\r\n"
    for k in range(len(ips)):
        ip = ips[(n + k) % len(ips)]
        try:
            with smtplib.SMTP(ip, 2525, timeout=10) as s:
                s.sendmail("a@remote.test", ["user@example.com"], msg)
            accepted.write(tag + "\n")
            accepted.flush()
            break
        except (OSError, smtplib.SMTPException):
            continue  # down, draining (421) or refusing: the next MX, as an MTA does
    time.sleep(gap)
PY
load_pid=$!
pids+=($load_pid)
sleep 2

for i in 1 2; do
  say "upgrading mx$i in place"
  stop_node "$i"
  start_node "$i" new
  wait_for all_see_three || fail "mx$i did not rejoin after the upgrade"
  wait_for all_have_rules 2 || fail "rules lost across the upgrade of mx$i"
done
sleep 2
touch "$work/stop"
wait "$load_pid" || true

accepted=$(wc -l <"$work/accepted")
delivered_all() { [ "$(grep -l 'compat load-' "$work"/sink/*.eml 2>/dev/null | wc -l)" -ge "$accepted" ]; }
wait_for delivered_all || true
lost=0
while read -r tag; do
  grep -lq "compat $tag" "$work"/sink/*.eml 2>/dev/null || { lost=$((lost + 1)); say "lost: $tag"; }
done <"$work/accepted"
versions=$(api 1 GET /api/v1/cluster | python3 -c 'import json,sys; print(" ".join(m["id"]+"="+m["version"] for m in json.load(sys.stdin)["members"]))')
echo "compat: old=${old_label:-$old_ref} accepted=$accepted delivered=$((accepted - lost)) lost=$lost rules=$(rules_on 1) members: $versions"
[ "$lost" = 0 ] || fail "$lost messages accepted and never delivered"
