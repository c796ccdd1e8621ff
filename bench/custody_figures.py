#!/usr/bin/env python3
"""Custody figures (issue 19): extra disk and wire bytes per quarantined message with
copies = 2, and the time to retire a node holding N quarantined messages.

  python3 bench/custody_figures.py --bin DIR [--messages 2000] [--size 4000] [--copies 2]

Starts 3 real nodes (127.0.0.1..3), sets `copies`, adds a rule that quarantines mxload's
mail, sends MESSAGES messages of SIZE bytes to mx2 with mxload, waits until mx2 reports no
message under-copied (mxmesh_quarantine_under_copied 0) and mx1's index holds them all.
Then reads, per node, the `copies` column family's bytes (SST + memtable) and mx2's
mxmesh_quarantine_copy_bytes_sent_total, and prints them per message. Then retires mx2
through mx1's API (as `mxctl node retire` does: POST repeated until `done`) and prints the
time from the first call until mx2 reports `done` (every message adopted by another node,
synced, its adoption seen in mx2's index, the departure recorded).
"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mesh_figures import api, make_mesh, wait_all_live  # noqa: E402


def metric(node, name, label=None):
    s, body = api(node.admin, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and (label is None or label in line):
            return int(float(line.split()[-1]))
    return 0


def own_entries(node):
    """The node's own count of quarantined messages it holds (`/api/v1/cluster`, self)."""
    s, body = api(node.admin, "GET", "/api/v1/cluster")
    me = json.loads(body)
    return next((m.get("quarantine_entries") for m in me["members"] if m["id"] == me["self"]), None)


def cf_bytes(node, cf):
    label = f'cf="{cf}"'
    return metric(node, "mxmesh_store_sst_bytes", label) + metric(node, "mxmesh_store_memtable_bytes", label)


def wait(what, cond, timeout=900):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.5)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=4000)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--timeout", type=int, default=1800, help="longest wait for the index and the copies, s")
    a = p.parse_args()
    nodes, _ = make_mesh(os.path.join(a.bin, "mxmesh"), 3, "mxmesh-custody-")
    try:
        for n in nodes:
            n.start()
        wait_all_live(nodes)
        mx1, mx2 = nodes[0], nodes[1]
        assert api(mx1.admin, "PUT", "/api/v1/settings/quarantine", {"copies": a.copies})[0] == 200
        rule = {"name": "hold load", "priority": 1, "action": "quarantine", "reason": "bench",
                "when": {"field": "from", "op": "equals", "value": "load@mxload.test"}}
        assert api(mx1.admin, "POST", "/api/v1/rules", rule)[0] == 201
        wait("settings and rule on mx2", lambda: metric(mx2, "mxmesh_rules") == 1
             and metric(mx2, "mxmesh_quarantine_copies_setting") == a.copies)
        before = {n.id: cf_bytes(n, "copies") for n in nodes}
        print(f"load average before: {os.getloadavg()}", flush=True)
        t_send = time.time()
        out = subprocess.run([os.path.join(a.bin, "mxload"), "--to", mx2.smtp, "--sessions", "4",
                              "--messages", str(a.messages), "--size", str(a.size), "--json"],
                             check=True, capture_output=True).stdout
        accepted = json.loads(out)["accepted"]
        print(f"sent {accepted} in {time.time() - t_send:.1f} s", flush=True)
        wait("index on mx1", lambda: metric(mx1, "mxmesh_quarantine_index_entries") >= accepted, a.timeout)
        wait("copies complete", lambda: metric(mx2, "mxmesh_quarantine_under_copied") == 0, a.timeout)
        print(f"copies complete {time.time() - t_send:.1f} s after the first message", flush=True)
        time.sleep(2)
        after = {n.id: cf_bytes(n, "copies") for n in nodes}
        held = sum(after[k] - before[k] for k in after)
        wire = metric(mx2, "mxmesh_quarantine_copy_bytes_sent_total")
        print(f"copies={a.copies} messages={accepted} size={a.size}")
        print(f"copies column family on the holders: {held} bytes, {held / accepted:.0f} per message")
        print(f"copy payload sent by mx2: {wire} bytes, {wire / accepted:.0f} per message")
        t0 = time.time()
        seen = {}
        while True:
            s, body = api(mx1.admin, "POST", "/api/v1/nodes/mx2/retire")
            progress = json.loads(body) if s == 200 else {"state": f"http {s}", "error": body.decode()}
            if progress.get("state") in ("done", "failed") or s != 200:
                break
            # mx2's own answer carries the counts until its departure is recorded (then
            # every node, mx2 included, answers a bare `done`).
            s2, body2 = api(mx2.admin, "POST", "/api/v1/nodes/mx2/retire")
            if s2 == 200 and json.loads(body2).get("moved"):
                seen = json.loads(body2)
            time.sleep(0.2)
        took = time.time() - t0
        print(f"retire of mx2 holding {accepted} quarantined messages: {progress.get('state')} "
              f"in {took:.1f} s (last progress seen on mx2: {seen.get('moved')} moved of {seen.get('total')}; "
              f"{seen.get('successors')}{'; ' + str(progress.get('error')) if progress.get('error') else ''})")
        held = {n.id: own_entries(n) for n in nodes}
        print(f"quarantined messages each node holds afterwards (its own count): {held}")
        print(f"load average after: {os.getloadavg()}")
    finally:
        for n in nodes:
            n.stop()


if __name__ == "__main__":
    main()
