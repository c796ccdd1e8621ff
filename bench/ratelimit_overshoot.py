#!/usr/bin/env python3
"""How far above a mesh-wide rate limit a distributed burst gets (issue 17, item 4).

  python3 bench/ratelimit_overshoot.py --bin DIR [--nodes 3] [--limits 60,600]
                                       [--clients 1,4] [--attempts-factor 3]

A mesh of `--nodes` real `mxmesh node` processes (bench/mesh_figures.py: QUIC, mutual TLS,
node i on 127.0.0.i, ports bound by the OS). For each limit L and each number c of SMTP
clients per node, `PUT /api/v1/settings/ratelimit {"per_client_per_minute": L}` and, once
every node reads it back, a burst from one client address (a fresh 127.27.0.x per trial, so
trials never share a counter): c threads per node, each one SMTP session doing
`MAIL FROM` / `RCPT TO` / `RSET` as fast as the node answers, until the trial made
`--attempts-factor` × L attempts in all. A message counts as admitted when RCPT got 250
(the limiter counts a transaction at its first accepted recipient; no DATA is sent). Every
refusal must be `451 4.7.0`.

Reported per trial: admitted, overshoot = admitted − L, the burst's duration, the per-node
admission rate r while under the limit, and the bound the README states,
L + (N − 1) × r × S, with S the staleness of a node's view (the rate sync interval, 100 ms,
plus one exchange), and the hard ceiling N × L.

A benchmark, not part of CI. Everything listens on loopback; the nodes are stopped at the end.
"""
import argparse, json, os, smtplib, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mesh_figures as mf  # noqa: E402

SYNC_INTERVAL_S = 0.1
SETTLE_TIMEOUT_S = 30


def put_limit(nodes, limit):
    body = {"per_client_per_minute": limit}
    status, stored = mf.api(nodes[0].admin, "PUT", "/api/v1/settings/ratelimit", body)
    assert status == 200, stored
    want = json.loads(stored)
    deadline = time.time() + SETTLE_TIMEOUT_S
    while time.time() < deadline:
        if all(json.loads(mf.api(n.admin, "GET", "/api/v1/settings/ratelimit")[1] or b"{}") == want for n in nodes):
            return
        time.sleep(0.05)
    raise SystemExit("the rate limit did not reach every node")


def client(node, source, budget, lock, out):
    host, port = node.smtp.rsplit(":", 1)
    s = smtplib.SMTP(host, int(port), local_hostname="burst.bench.test", timeout=30, source_address=(source, 0))
    s.ehlo()
    while True:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        s.mail("bulk@outside.bench.test")
        code, reply = s.rcpt("user@example.com")
        t = time.perf_counter()
        if code == 250:
            out.append(("ok", node.id, t))
        else:
            assert code == 451 and reply.startswith(b"4.7.0"), (code, reply)
            out.append(("limited", node.id, t))
        s.rset()
    s.quit()


def trial(nodes, limit, per_node, attempts, source):
    put_limit(nodes, limit)
    budget, lock, out = [attempts], threading.Lock(), []
    threads = [threading.Thread(target=client, args=(n, source, budget, lock, out)) for n in nodes for _ in range(per_node)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ok = [e for e in out if e[0] == "ok"]
    # Per-node admission rate while under the limit: the first L admissions mesh-wide.
    first = sorted(ok, key=lambda e: e[2])[:limit]
    span = max(first[-1][2] - t0, 1e-3) if first else 1e-3
    r = len(first) / span / len(nodes)
    n = len(nodes)
    stale = SYNC_INTERVAL_S + 0.01
    return {
        "limit": limit, "clients_per_node": per_node, "attempts": len(out), "admitted": len(ok),
        "overshoot": len(ok) - limit, "seconds": round(elapsed, 2), "rate_per_node": round(r, 1),
        "bound": round(limit + (n - 1) * r * stale, 1), "ceiling": n * limit,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True, help="directory with the mxmesh binary")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--limits", default="60,600")
    p.add_argument("--clients", default="1,4")
    p.add_argument("--attempts-factor", type=int, default=3)
    a = p.parse_args()
    nodes, _ = mf.make_mesh(os.path.join(a.bin, "mxmesh"), a.nodes, "mxmesh-ratebench-")
    rows = []
    try:
        for node in nodes:
            node.start()
        mf.wait_all_live(nodes)
        k = 10
        for limit in [int(x) for x in a.limits.split(",")]:
            for per_node in [int(x) for x in a.clients.split(",")]:
                row = trial(nodes, limit, per_node, a.attempts_factor * limit, f"127.27.0.{k}")
                k += 1
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for node in nodes:
            node.stop()
    print("\n| limit/min | clients per node | attempts | admitted | overshoot | per-node rate (/s) | bound L+(N-1)·r·S | ceiling N·L |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['limit']} | {r['clients_per_node']} | {r['attempts']} | {r['admitted']} | {r['overshoot']} | "
              f"{r['rate_per_node']} | {r['bound']} | {r['ceiling']} |")


if __name__ == "__main__":
    main()
