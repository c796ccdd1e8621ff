#!/usr/bin/env bash
# Accept rate of one mxmesh node against Postfix 3.7 configured as a relay MX, both relaying
# to the same smtp-sink, driven by the same clients (Postfix's smtp-source and mxload) with
# the same load. Prints one line per run; BENCHMARKS.md records the results.
#
#   bash bench/postfix-vs-mxmesh.sh [MESSAGES] [SESSIONS] [SIZE]
#
# Everything listens on loopback only. Needs root (installs postfix, runs it).
# The full side-by-side matrix (Rspamd, mesh, three sizes and concurrencies) is bench/matrix.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
MESSAGES=${1:-20000}
SESSIONS=${2:-20}
SIZE=${3:-10240}
SINK_PORT=2700
POSTFIX_PORT=2625
WORK=$(mktemp -d /tmp/mxbench.XXXXXX)

if ! command -v postfix >/dev/null; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >&2
fi
if [ "${PROFILE:-release}" = release ]; then
  cargo build --release -p mxmesh-node -p mxmesh-tools --locked >&2
  BIN="$CARGO_TARGET_DIR/release"
else
  cargo build --workspace --all-targets --locked >&2
  BIN="$CARGO_TARGET_DIR/debug"
fi

cleanup() {
  postfix stop >/dev/null 2>&1 || true
  [ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null || true
  [ -n "${MX_PID:-}" ] && kill "$MX_PID" 2>/dev/null || true
}
trap cleanup EXIT

# The shared downstream: smtp-sink, no disk.
smtp-sink -u postfix 127.0.0.1:$SINK_PORT 1024 &
SINK_PID=$!

[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
# Postfix as a relay MX for example.com, fsync before 250 (its default).
postconf -e "myhostname = bench.example.net" "mydestination =" "relay_domains = example.com" \
  "transport_maps = inline:{ example.com=smtp:[127.0.0.1]:$SINK_PORT }" \
  "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "smtpd_relay_restrictions = permit_auth_destination, reject" \
  "maillog_file = /var/log/postfix-bench.log" "default_process_limit = 200" "smtp_destination_concurrency_limit = 50" \
  "alias_maps =" "alias_database =" "local_transport = error:local delivery disabled" "compatibility_level = 3.6"
postconf -M "127.0.0.1:$POSTFIX_PORT/inet=127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd"
postfix stop >/dev/null 2>&1 || true
postfix start >&2

# One mxmesh node relaying to the same sink.
mkdir -p "$WORK/mx"
echo "bench bench-token" > "$WORK/mx/admin.tokens"
cat > "$WORK/mx/node.toml" <<TOML
[node]
id = "bench1"
data_dir = "data"
[smtp]
listen = "127.0.0.1:0"
hostname = "mx.bench.example.net"
[[domains]]
name = "example.com"
relay_to = "127.0.0.1:$SINK_PORT"
[admin]
listen = "127.0.0.1:0"
tokens_file = "admin.tokens"
TOML
# Ports chosen by the kernel (port 0); the node reports them in its ready file.
MXMESH_LOG=warn "$BIN/mxmesh" node --config "$WORK/mx/node.toml" --ready-file "$WORK/mx/ready.json" &
MX_PID=$!
for _ in $(seq 300); do [ -e "$WORK/mx/ready.json" ] && break; kill -0 "$MX_PID" || exit 1; sleep 0.1; done
MX_SMTP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["smtp"])' "$WORK/mx/ready.json")
MX_ADMIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$WORK/mx/ready.json")
sleep 1
echo "idle RSS of mxmesh node: $(awk '/VmRSS/{print $2" kB"}' /proc/$MX_PID/status)"

machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }  # busy ticks, all processes

run_smtp_source() { # target label
  local t0 t1 rate
  t0=$(date +%s.%N)
  smtp-source -s "$SESSIONS" -l "$SIZE" -m "$MESSAGES" -f sender@example.org -t user@example.com "$1" >/dev/null
  t1=$(date +%s.%N)
  rate=$(echo "$MESSAGES / ($t1 - $t0)" | bc -l)
  printf '%-28s smtp-source %6d msgs  %8.1f msg/s\n' "$2" "$MESSAGES" "$rate"
}
# Machine CPU (server, client and sink together) from the start of a run until the
# system's queue is empty again, per 1,000 messages.
report_cpu() { # label t0
  echo "$1: machine CPU $(( ($(machine_ticks) - $2) * 10 * 1000 / MESSAGES )) ms per 1000 messages (accept + relay + client + sink)"
}
run_mxload() { # target label
  "$BIN/mxload" --to "$1" --sessions "$SESSIONS" --messages "$MESSAGES" --size "$SIZE" --json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-28s mxload      %6d msgs  %8.1f msg/s  p50 %.1f ms  p99 %.1f ms  accepted %d" % (sys.argv[1], r["messages"], r["msgs_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["accepted"]))' "$2"
}

# Each run starts with empty queues, so no system's backlog competes for the CPU.
drain_postfix() { for _ in $(seq 600); do postqueue -p 2>/dev/null | grep -q "Mail queue is empty" && return; sleep 0.5; done; }
drain_mxmesh() {
  for _ in $(seq 600); do
    curl -s -H "Authorization: Bearer bench-token" "http://$MX_ADMIN/api/v1/queue" \
      | python3 -c 'import json,sys; sys.exit(0 if not json.load(sys.stdin)["entries"] else 1)' && return
    sleep 0.5
  done
}

echo "load: $MESSAGES messages of $SIZE bytes over $SESSIONS sessions"
run_smtp_source 127.0.0.1:$SINK_PORT "smtp-sink (no disk)"
run_mxload 127.0.0.1:$SINK_PORT "smtp-sink (no disk)"
c0=$(machine_ticks); run_smtp_source 127.0.0.1:$POSTFIX_PORT "postfix relay MX"; drain_postfix; report_cpu "  postfix/smtp-source" $c0
c0=$(machine_ticks); run_mxload 127.0.0.1:$POSTFIX_PORT "postfix relay MX"; drain_postfix; report_cpu "  postfix/mxload" $c0
c0=$(machine_ticks); run_smtp_source $MX_SMTP "mxmesh node"; drain_mxmesh; report_cpu "  mxmesh/smtp-source" $c0
c0=$(machine_ticks); run_mxload $MX_SMTP "mxmesh node"; drain_mxmesh; report_cpu "  mxmesh/mxload" $c0
echo "mxmesh RSS after load: $(awk '/VmRSS/{print $2" kB"}' /proc/$MX_PID/status)"
curl -s -H "Authorization: Bearer bench-token" "http://$MX_ADMIN/api/v1/stats"; echo
