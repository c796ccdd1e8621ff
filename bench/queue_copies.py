#!/usr/bin/env python3
"""Queue-copy figures (issue 19 item 3): what shadows of the relay queue cost.

  python3 bench/queue_copies.py --bin DIR [--messages 2000] [--sink 127.0.43.1:2625]
                                [--client mxload|smtp-source] [--rounds 2] [--phase bytes|rate|both]

Two phases on 3 real nodes (127.0.0.1..3), mail sent to mx2 (10 KiB, 20 sessions: the
headline cell) with mxload (sessions reused) or, with --client smtp-source, Postfix's
smtp-source (a new session per message, no pipelining: the headline cell's client):

1. Bytes (downstream down: relay_to 127.0.0.1:9, so every message stays queued with its
   shadow): copies = 2; once mx2 reports no entry under-copied, the growth of the `copies`
   column family on mx1 + mx3 (SST + memtables) and mx2's
   mxmesh_queue_shadow_bytes_sent_total, per message.
2. Accept rate (downstream up: Postfix's smtp-sink at --sink, no disk): the same mesh shape
   started again, then the cells copies = 1, copies = 2 asynchronous, copies = 2 with
   sync_queue_copies, in that order, then in reverse, alternating for --rounds rounds (the
   machine is shared: the rounds show the drift). For each: msgs/s (accepted ÷ the
   client's wall time), with mxload its 250 latency, and mx2's single-copy window
   quantiles (mxmesh_queue_shadow_window_ms, the last 4,096 shadows: give a cell at least
   that many messages for its own quantiles).
"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mesh_figures import api, make_mesh, wait_all_live  # noqa: E402
from custody_figures import cf_bytes, metric, wait  # noqa: E402

SIZE = 10240
SESSIONS = 20
CELLS = [("copies=1", {"copies": 1}),
         ("copies=2 async", {"copies": 2}),
         ("copies=2 sync", {"copies": 2, "sync_queue_copies": True})]


def window(node):
    return {q: metric(node, "mxmesh_queue_shadow_window_ms", f'quantile="{q}"') for q in ("0.5", "0.99", "1")}


def load(binary, node, messages, client="mxload"):
    if client == "smtp-source":
        return smtp_source(node, messages)
    out = subprocess.run([os.path.join(binary, "mxload"), "--to", node.smtp, "--sessions", str(SESSIONS),
                          "--messages", str(messages), "--size", str(SIZE), "--json"],
                         check=True, capture_output=True).stdout
    return json.loads(out)


def smtp_source(node, messages):
    """Postfix's smtp-source: SESSIONS parallel sessions, one message per session."""
    t0 = time.monotonic()
    p = subprocess.run(["smtp-source", "-s", str(SESSIONS), "-l", str(SIZE), "-m", str(messages),
                        "-f", "sender@example.org", "-t", "user@example.com", node.smtp],
                       capture_output=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"smtp-source exit {p.returncode}: {p.stderr.decode()[-300:]}")
    return {"accepted": messages, "messages": messages, "msgs_per_s": messages / wall,
            "latency_ms": {"p50": None, "p99": None}}


def settings(mx1, mx2, s):
    assert api(mx1.admin, "PUT", "/api/v1/settings/quarantine", s)[0] == 200
    wait("setting on mx2", lambda: json.loads(api(mx2.admin, "GET", "/api/v1/settings/quarantine")[1])
         .get("sync_queue_copies", False) == s.get("sync_queue_copies", False)
         and metric(mx2, "mxmesh_quarantine_copies_setting") == s["copies"])


def mesh(binary, relay_to, prefix):
    nodes, _ = make_mesh(os.path.join(binary, "mxmesh"), 3, prefix, relay_to=relay_to)
    for n in nodes:
        n.start()
    wait_all_live(nodes)
    return nodes


def bytes_phase(a):
    nodes = mesh(a.bin, "127.0.0.1:9", "mxmesh-qcopy-bytes-")
    try:
        mx1, mx2, mx3 = nodes
        settings(mx1, mx2, {"copies": 2})
        before = cf_bytes(mx1, "copies") + cf_bytes(mx3, "copies")
        r = load(a.bin, mx2, a.messages)
        wait("shadows complete", lambda: metric(mx2, "mxmesh_queue_under_copied") == 0)
        time.sleep(2)
        held = cf_bytes(mx1, "copies") + cf_bytes(mx3, "copies") - before
        wire = metric(mx2, "mxmesh_queue_shadow_bytes_sent_total")
        n = r["accepted"]
        print(f"bytes: {n} queued messages of {SIZE} bytes, downstream down, copies = 2")
        print(f"  copies column family on mx1 + mx3: {held} bytes, {held / n:.0f} per message")
        print(f"  shadow payload sent by mx2: {wire} bytes, {wire / n:.0f} per message")
        print(f"  single-copy window under this load (ms): {window(mx2)}")
    finally:
        for n in nodes:
            n.stop()


def rate_phase(a):
    sink = subprocess.Popen(["smtp-sink", "-u", "postfix", a.sink, "1024"])
    nodes = mesh(a.bin, a.sink, "mxmesh-qcopy-rate-")
    try:
        mx1, mx2, _ = nodes
        load(a.bin, mx2, 200, a.client)  # warm-up
        order = [CELLS if r % 2 == 0 else CELLS[::-1] for r in range(a.rounds)]
        cells = [(round_no, name, s) for round_no, cs in enumerate(order, 1) for name, s in cs]
        for round_no, name, s in cells:
            settings(mx1, mx2, s)
            wait("queue empty", lambda: json.loads(api(mx2.admin, "GET", "/api/v1/queue")[1])["size"] == 0)
            load1 = os.getloadavg()[0]
            sent0 = metric(mx2, "mxmesh_queue_shadow_bytes_sent_total")
            r = load(a.bin, mx2, a.messages, a.client)
            missed = metric(mx2, "mxmesh_queue_shadow_sync_missed_total")
            shadow_mb = (metric(mx2, "mxmesh_queue_shadow_bytes_sent_total") - sent0) / 1e6
            print(f"round {round_no} load {load1:.1f} {name:<16} {r['msgs_per_s']:>8.1f} msg/s"
                  f"  250 latency p50 {r['latency_ms']['p50']} ms p99 {r['latency_ms']['p99']} ms"
                  f"  accepted {r['accepted']}/{r['messages']}"
                  f"  window ms {window(mx2)}  sync missed (total) {missed}"
                  f"  shadow payload sent {shadow_mb:.1f} MB", flush=True)
    finally:
        for n in nodes:
            n.stop()
        sink.terminate()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--sink", default="127.0.43.1:2625")
    p.add_argument("--phase", choices=["bytes", "rate", "both"], default="both")
    p.add_argument("--client", choices=["mxload", "smtp-source"], default="mxload")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    print(f"load average before: {os.getloadavg()}")
    if a.phase in ("bytes", "both"):
        bytes_phase(a)
    if a.phase in ("rate", "both"):
        rate_phase(a)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
