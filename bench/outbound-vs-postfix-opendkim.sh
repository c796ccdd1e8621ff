#!/usr/bin/env bash
# Outbound throughput with DKIM signing on: one mxmesh node (a trusted_networks client,
# direction outbound, signed with [[domains]] dkim_key) against Postfix 3.7 with OpenDKIM
# as a milter (mynetworks client, signing mode), both relaying to the same smtp-sink and
# driven by the same client (mxload) with the same load in the same run. Both sign with an
# RSA-2048 key (what most receivers verify); mxmesh is also run with its default Ed25519 key.
# Both route the recipient domain to the sink statically (no MX lookup on either side).
#
#   bash bench/outbound-vs-postfix-opendkim.sh [MESSAGES] [SESSIONS] [SIZE]
#
# Needs root (installs postfix and opendkim, runs them). Listens on 127.0.41.50-52 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
MESSAGES=${1:-5000}
SESSIONS=${2:-20}
SIZE=${3:-10240}
IP=127.0.41.50            # smtp-sink
PF_IP=127.0.41.51         # postfix smtpd
MILTER=127.0.41.52:8891   # opendkim
SINK_PORT=2700
PF_PORT=2625
WORK=$(mktemp -d /tmp/mxoutbench.XXXXXX)
chmod 755 "$WORK"   # smtp-sink (user postfix) writes the probe's dump under it

if ! command -v postfix >/dev/null; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >&2
fi
command -v opendkim >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends opendkim >&2
# MXMESH_BIN: a directory with release binaries already built (skips the build).
if [ -z "${MXMESH_BIN:-}" ]; then
  cargo build --release -p mxmesh-node -p mxmesh-tools --locked >&2
fi
BIN="${MXMESH_BIN:-$CARGO_TARGET_DIR/release}"

cleanup() {
  postfix stop >/dev/null 2>&1 || true
  # Postfix's config is the machine's: put back what was there (other benches use it).
  [ -f "$WORK/main.cf" ] && cp "$WORK/main.cf" /etc/postfix/main.cf
  [ -f "$WORK/master.cf" ] && cp "$WORK/master.cf" /etc/postfix/master.cf
  for p in ${SINK_PID:-} ${MX_PID:-} ${DKIM_PID:-}; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# Keys: RSA-2048 for both, Ed25519 (mxmesh dkim keygen) for the second mxmesh run.
openssl genrsa -out "$WORK/rsa.key" 2048 2>/dev/null
chmod 600 "$WORK/rsa.key"
"$BIN/mxmesh" dkim keygen --domain mxload.test --selector ed --out "$WORK" >/dev/null
chown opendkim "$WORK/rsa.key" 2>/dev/null || true

smtp-sink -u postfix "$IP:$SINK_PORT" 1024 &
SINK_PID=$!

# OpenDKIM: sign mail from mxload.test, relaxed/relaxed, as a milter.
cat > "$WORK/opendkim.conf" <<CONF
Mode s
Domain mxload.test
Selector bench
KeyFile $WORK/rsa.key
Canonicalization relaxed/relaxed
Socket inet:${MILTER#*:}@${MILTER%:*}
Background no
Syslog no
UserID opendkim
RequireSafeKeys no
CONF
opendkim -f -x "$WORK/opendkim.conf" &
DKIM_PID=$!

[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
cp /etc/postfix/main.cf /etc/postfix/master.cf "$WORK/"
# Postfix as an outbound relay: loopback clients may relay anywhere, fsync before 250.
postconf -e "myhostname = out.bench.example.net" "mydestination =" "relay_domains =" \
  "mynetworks = 127.0.0.0/8" "smtpd_relay_restrictions = permit_mynetworks, reject" \
  "transport_maps = inline:{ outside.test=smtp:[$IP]:$SINK_PORT }" \
  "smtpd_milters = inet:$MILTER" "non_smtpd_milters = inet:$MILTER" "milter_default_action = tempfail" \
  "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" \
  "maillog_file = /var/log/postfix-outbench.log" "default_process_limit = 200" "smtp_destination_concurrency_limit = 50" \
  "alias_maps =" "alias_database =" "local_transport = error:local delivery disabled" "compatibility_level = 3.6"
postconf -M "$PF_IP:$PF_PORT/inet=$PF_IP:$PF_PORT inet n - n - - smtpd"
postfix stop >/dev/null 2>&1 || true
postfix start >&2

start_mxmesh() { # key selector
  mkdir -p "$WORK/mx-$2"
  echo "bench bench-token" > "$WORK/mx-$2/admin.tokens"
  cat > "$WORK/mx-$2/node.toml" <<TOML
[node]
id = "bench-$2"
data_dir = "data"
[smtp]
listen = "127.0.0.1:0"
hostname = "mx.bench.example.net"
[[domains]]
name = "mxload.test"
relay_to = "$IP:$SINK_PORT"
dkim_selector = "$2"
dkim_key = "$1"
[[domains]]
name = "outside.test"
relay_to = "$IP:$SINK_PORT"
[admin]
listen = "127.0.0.1:0"
tokens_file = "admin.tokens"
[relay]
trusted_networks = ["127.0.0.0/8"]
TOML
  MXMESH_LOG=warn "$BIN/mxmesh" node --config "$WORK/mx-$2/node.toml" --ready-file "$WORK/mx-$2/ready.json" &
  MX_PID=$!
  for _ in $(seq 300); do [ -e "$WORK/mx-$2/ready.json" ] && break; kill -0 "$MX_PID" || exit 1; sleep 0.1; done
  MX_SMTP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["smtp"])' "$WORK/mx-$2/ready.json")
  MX_ADMIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$WORK/mx-$2/ready.json")
}
stop_mxmesh() { kill "$MX_PID"; wait "$MX_PID" 2>/dev/null || true; MX_PID=; }

run_mxload() { # target label
  "$BIN/mxload" --to "$1" --sessions "$SESSIONS" --messages "$MESSAGES" --size "$SIZE" \
    --from load@mxload.test --rcpt user@outside.test --json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-34s %6d msgs  %8.1f msg/s  p50 %.1f ms  p99 %.1f ms  accepted %d" % (sys.argv[1], r["messages"], r["msgs_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["accepted"]))' "$2"
}
drain_postfix() { for _ in $(seq 600); do postqueue -p 2>/dev/null | grep -q "Mail queue is empty" && return; sleep 0.5; done; }
drain_mxmesh() {
  for _ in $(seq 600); do
    curl -s -H "Authorization: Bearer bench-token" "http://$MX_ADMIN/api/v1/queue" \
      | python3 -c 'import json,sys; sys.exit(0 if not json.load(sys.stdin)["entries"] else 1)' && return
    sleep 0.5
  done
}
# One message through each system into a dumping sink: the signature must be there.
probe_signed() { # target
  "$BIN/mxload" --to "$1" --sessions 1 --messages 1 --size 2048 --from load@mxload.test \
    --rcpt user@outside.test >/dev/null
}

echo "outbound load: $MESSAGES messages of $SIZE bytes over $SESSIONS sessions, DKIM signing on"
run_mxload "$PF_IP:$PF_PORT" "postfix + opendkim (rsa-2048)"; drain_postfix
start_mxmesh "$WORK/rsa.key" bench
run_mxload "$MX_SMTP" "mxmesh node (rsa-2048)"; drain_mxmesh
curl -s -H "Authorization: Bearer bench-token" "http://$MX_ADMIN/api/v1/stats" | python3 -c 'import json,sys; print("  mxmesh stats:", json.load(sys.stdin)["total"])'
stop_mxmesh
start_mxmesh "$WORK/ed.mxload.test.key" ed
run_mxload "$MX_SMTP" "mxmesh node (ed25519)"; drain_mxmesh
stop_mxmesh
# Signatures present: Postfix logs the milter's header insertion; mxmesh's is checked in
# tests/tests/outbound.rs against BIND. Here one message each through a dumping sink.
kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true
mkdir -p "$WORK/dump"; chown postfix "$WORK/dump"
smtp-sink -u postfix -d "$WORK/dump/%M." "$IP:$SINK_PORT" 16 &
SINK_PID=$!
sleep 0.5
probe_signed "$PF_IP:$PF_PORT"; drain_postfix
start_mxmesh "$WORK/rsa.key" probe
probe_signed "$MX_SMTP"; drain_mxmesh
sleep 1
echo "messages at the sink signed for mxload.test: $(grep -l 'd=mxload.test' -r "$WORK/dump" | wc -l) of $(ls "$WORK/dump" | wc -l)"
