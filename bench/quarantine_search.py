#!/usr/bin/env python3
"""Quarantine search on one node over the whole mesh's quarantine.

  python3 bench/quarantine_search.py --bin DIR [--entries 1000000] [--nodes 3] [--size 600] [--queries 200]

Starts N real nodes (127.0.0.1..N), adds a rule that quarantines mxload's mail, sends
ENTRIES messages spread evenly over the nodes with mxload, waits until node 1's copy of
the index holds them all (mxmesh_quarantine_index_entries), then times QUERIES searches
through node 1's admin API (client-side, HTTP included) and prints p50/p99 per query shape
and overall, plus node 1's resident memory growth per index entry.
"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mesh_figures import api, make_mesh, pct, wait_all_live  # noqa: E402


def metric(node, name):
    s, body = api(node.admin, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + "{"):
            return int(float(line.split()[-1]))
    return 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--size", type=int, default=600)
    p.add_argument("--queries", type=int, default=200)
    a = p.parse_args()
    mxload = os.path.join(a.bin, "mxload")
    nodes, _ = make_mesh(os.path.join(a.bin, "mxmesh"), a.nodes, "mxmesh-qsearch-")
    try:
        for n in nodes:
            n.start()
        wait_all_live(nodes)
        rss0 = rss_kb(nodes[0].proc.pid)
        rule = {"name": "hold load", "priority": 1, "action": "quarantine", "reason": "bench",
                "when": {"field": "from", "op": "equals", "value": "load@mxload.test"}}
        assert api(nodes[0].admin, "POST", "/api/v1/rules", rule)[0] == 201
        time.sleep(2)
        per_node = a.entries // a.nodes
        t0 = time.time()
        procs = []
        for n in nodes:
            smtp = None
            with open(n.config) as f:
                for line in f:
                    if line.startswith("listen") and smtp is None:
                        smtp = line.split('"')[1]
            procs.append(subprocess.Popen([mxload, "--to", smtp, "--sessions", "10", "--messages", str(per_node),
                                           "--size", str(a.size), "--json"], stdout=subprocess.PIPE))
        accepted = sum(json.loads(p.communicate()[0])["accepted"] for p in procs)
        print(f"sent {accepted} messages in {time.time() - t0:.0f} s")
        t1 = time.time()
        while metric(nodes[0], "mxmesh_quarantine_index_entries") < accepted:
            time.sleep(1)
            if time.time() - t1 > 1800:
                raise SystemExit("index did not converge")
        total = metric(nodes[0], "mxmesh_quarantine_index_entries")
        print(f"node mx1 index holds {total} entries ({time.time() - t1:.0f} s after the last message)")
        rss1 = rss_kb(nodes[0].proc.pid)
        shapes = {
            "first page, no filter": lambda k: "/api/v1/quarantine?limit=50",
            "node + subject": lambda k: f"/api/v1/quarantine?node=mx{k % a.nodes + 1}&subject=message%20{k * 7919 % per_node}&limit=50",
            "rare sender (no match)": lambda k: f"/api/v1/quarantine?sender=nobody{k}&limit=50",
            "recipient, page 2": lambda k: "/api/v1/quarantine?rcpt=user@example.com&limit=50",
        }
        all_times = []
        for name, path in shapes.items():
            times = []
            for k in range(a.queries // len(shapes)):
                q = path(k)
                if name == "recipient, page 2":
                    s, body = api(nodes[0].admin, "GET", q)
                    q += "&cursor=" + json.loads(body)["next"]
                t = time.perf_counter()
                s, body = api(nodes[0].admin, "GET", q)
                times.append(time.perf_counter() - t)
                assert s == 200, body
            all_times += times
            print(f"  {name:26s} p50 {1000 * pct(times, 50):7.1f} ms  p99 {1000 * pct(times, 99):7.1f} ms")
        print(f"all {len(all_times)} searches: p50 {1000 * pct(all_times, 50):.1f} ms  p99 {1000 * pct(all_times, 99):.1f} ms")
        print(f"mx1 RSS {rss0 // 1024} MB -> {rss1 // 1024} MB: {(rss1 - rss0) * 1024 / max(total, 1):.0f} bytes per index entry (upper bound: includes RocksDB caches)")
    finally:
        for n in nodes:
            n.stop()


if __name__ == "__main__":
    main()
