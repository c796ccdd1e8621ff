#!/usr/bin/env python3
"""Mesh figures on loopback with real `mxmesh node` processes on 127.0.0.1..N.

  python3 bench/mesh_figures.py --bin DIR [--nodes 3] [--trials 40] [--kills 5]

Prints:
  - rule convergence: time from the 201 of a POST /api/v1/rules on one node until every
    other node serves the rule (polled every 2 ms), p50/p99 over the trials;
  - gossip payload bytes per second per node (mxmesh_gossip_bytes_sent_total over 20 s idle);
  - failure detection: SIGKILL of a node until another node's /api/v1/cluster shows it
    not live (polled every 20 ms), each kill followed by a restart.
Everything listens on loopback only; the processes are stopped at the end.
"""
import argparse, json, os, random, signal, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.request

TOKEN = "bench-token"


READY_TIMEOUT_S = 30
# Starts tried when a restarted node finds one of its (pinned) ports not free again yet.
START_ATTEMPTS = 50
# Starts tried for named when its candidate port was taken meanwhile.
BIND_START_ATTEMPTS = 8


def start_node(binary, config, run_dir, env=None):
    """Runs `mxmesh node --config CONFIG --ready-file RUN_DIR/ready.json`, logging to
    RUN_DIR/node.log, and waits for the ready file (the README, "Ready file"); returns
    (process, bound) with bound the file's JSON: {"smtp", "admin", "mesh", "dns"}. A
    start that fails because an address is in use (a restart on ports released a moment
    ago) is tried again, at most START_ATTEMPTS times."""
    ready = os.path.join(run_dir, "ready.json")
    log_path = os.path.join(run_dir, "node.log")
    for _ in range(START_ATTEMPTS):
        if os.path.exists(ready):
            os.remove(ready)
        start_at = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([binary, "node", "--config", config, "--ready-file", ready],
                                    stdout=subprocess.DEVNULL, stderr=log, env=env)
        deadline = time.time() + READY_TIMEOUT_S
        while proc.poll() is None and not os.path.exists(ready):
            if time.time() > deadline:
                proc.kill()
                raise SystemExit(f"{config}: not ready after {READY_TIMEOUT_S} s; see {log_path}")
            time.sleep(0.005)
        if os.path.exists(ready):
            with open(ready) as f:
                return proc, json.load(f)
        with open(log_path, "rb") as f:
            f.seek(start_at)
            tail = f.read().decode(errors="replace")
        if "Address already in use" not in tail:
            raise SystemExit(f"{config}: the node exited ({proc.returncode}):\n{tail}")
        time.sleep(0.2)
    raise SystemExit(f"{config}: an address stayed in use over {START_ATTEMPTS} starts; see {log_path}")


def candidate_port(ip):
    """A port free for TCP and UDP at this instant, for named (which cannot bind port 0);
    another process may take it before named does, so the caller retries on another."""
    while True:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind((ip, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()


def api(addr, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if data:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


class Node:
    """One node of a mesh. Every listener binds port 0 at the first start; the ports from
    the ready file are then kept for restarts. The nodes must be started in order: each is
    seeded with the mesh endpoints of the nodes already started (the first with none)."""

    def __init__(self, binary, work, i, peers, bind=None, relay_to="127.0.0.1:9"):
        self.binary, self.i, self.peers = binary, i, peers
        self.id = f"mx{i}"
        self.ip = ip = f"127.0.0.{i}"
        self.dir = os.path.join(work, self.id)
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "admin.tokens"), "w") as f:
            f.write(f"bench {TOKEN}\n")
        self.certs = os.path.join(work, "certs")
        self.config = os.path.join(self.dir, "node.toml")
        self.bind, self.relay_to = bind, relay_to
        self.admin = self.smtp = self.mesh = f"{ip}:0"
        self.dns = (ip, 0)
        self.proc = None

    def write_config(self):
        seeds = ", ".join(f'"{p.mesh}"' for p in self.peers if p is not self and not p.mesh.endswith(":0"))
        with open(self.config, "w") as f:
            f.write(f"""[node]
id = "{self.id}"
data_dir = "data"
[smtp]
listen = "{self.smtp}"
hostname = "{self.id}.bench.test"
[[domains]]
name = "example.com"
relay_to = "{self.relay_to}"
[admin]
listen = "{self.admin}"
tokens_file = "admin.tokens"
[mesh]
listen = "{self.mesh}"
seeds = [{seeds}]
cluster_id = "bench"
ca_cert = "{self.certs}/ca.pem"
cert = "{self.certs}/{self.id}.pem"
key = "{self.certs}/{self.id}.key"
[dns]
listen = "{self.dns[0]}:{self.dns[1]}"
name = "mx.bench.test."
publish_address = "{self.ip}"
ttl = 5
""")
            if self.bind:
                f.write(f'rfc2136 = {{ server = "{self.bind.addr}", zone = "bench.test.", tsig_name = "mxmesh.", '
                        f'tsig_secret_file = "{self.bind.key_file}" }}\n')

    def start(self):
        self.write_config()
        env = dict(os.environ, MXMESH_LOG="warn")
        self.proc, bound = start_node(self.binary, self.config, self.dir, env)
        self.smtp, self.admin, self.mesh = bound["smtp"], bound["admin"], bound["mesh"]
        self.dns = (self.ip, int(bound["dns"].rsplit(":", 1)[1]))

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def live_members(node):
    s, body = api(node.admin, "GET", "/api/v1/cluster")
    if s != 200:
        return set()
    return {m["id"] for m in json.loads(body)["members"] if m["live"]}


def wait_all_live(nodes, timeout=60):
    want = {n.id for n in nodes}
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(live_members(n) == want for n in nodes):
            return
        time.sleep(0.1)
    raise SystemExit("mesh did not converge")


def rule_convergence(nodes, trials):
    times = []
    for t in range(trials):
        src = nodes[t % len(nodes)]
        others = [n for n in nodes if n is not src]
        rule = {"name": f"bench {t}", "priority": 1000 + t, "action": "tag",
                "when": {"field": "subject", "op": "contains", "value": f"bench-{t}"}}
        t0 = time.perf_counter()
        s, body = api(src.admin, "POST", "/api/v1/rules", rule)
        assert s == 201, body
        rid = json.loads(body)["id"]
        t_created = time.perf_counter()
        done = {}

        def poll(n):
            while api(n.admin, "GET", f"/api/v1/rules/{rid}")[0] != 200:
                time.sleep(0.002)
            done[n.id] = time.perf_counter()

        threads = [threading.Thread(target=poll, args=(n,)) for n in others]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        times.append(max(done.values()) - t_created)
        time.sleep(random.uniform(0.05, 0.15))
    return times


def gossip_rate(nodes, secs=20):
    def sent(n):
        s, body = api(n.admin, "GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith("mxmesh_gossip_bytes_sent_total"):
                return int(line.split()[-1])
        return 0
    a = {n.id: sent(n) for n in nodes}
    time.sleep(secs)
    b = {n.id: sent(n) for n in nodes}
    return {k: (b[k] - a[k]) / secs for k in a}


class Bind:
    """A real BIND 9 (named) on loopback, primary for bench.test., with a TSIG key that may
    change mx.bench.test. A/AAAA (RFC 2136)."""

    def __init__(self, work):
        d = os.path.join(work, "bind")
        os.makedirs(d)
        self.key_file = os.path.join(d, "tsig.key")
        with open(self.key_file, "w") as f:
            f.write(subprocess.run(["/usr/sbin/tsig-keygen", "-a", "hmac-sha256", "mxmesh."],
                                   check=True, capture_output=True, text=True).stdout)
        with open(os.path.join(d, "zone.db"), "w") as f:
            f.write("$TTL 30\n@ IN SOA ns1 hostmaster 1 3600 600 86400 30\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
        for _ in range(BIND_START_ATTEMPTS):
            if self.try_start(d):
                return
        raise SystemExit(f"named: no free port in {BIND_START_ATTEMPTS} attempts")

    def try_start(self, d):
        """named on a candidate port; False when the port turned out to be taken."""
        port = candidate_port("127.0.0.1")
        self.ip_port = ("127.0.0.1", port)
        self.addr = f"127.0.0.1:{port}"
        conf = os.path.join(d, "named.conf")
        with open(conf, "w") as f:
            f.write(f"""options {{ directory "{d}"; pid-file "{d}/named.pid"; session-keyfile "{d}/session.key";
  listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; notify no; }};
controls {{ }};
include "{self.key_file}";
zone "bench.test." {{ type primary; file "{d}/zone.db"; update-policy {{ grant mxmesh. name mx.bench.test. A AAAA; }}; }};
""")
        log_path = os.path.join(d, "named.log")
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(["/usr/sbin/named", "-g", "-n", "1", "-c", conf],
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 20
        # named logs "running" once it serves, and exits when it cannot listen.
        while not any(l.endswith(" running") for l in open(log_path).read().splitlines()):
            if self.proc.poll() is not None:
                if "unable to listen" in open(log_path).read():
                    return False
                raise SystemExit(f"named exited; see {log_path}")
            if time.time() > deadline:
                raise SystemExit("named did not start")
            time.sleep(0.1)
        while "NOERROR" not in dig(self.ip_port, "bench.test.", "SOA", status=True):
            if time.time() > deadline:
                raise SystemExit("named does not answer")
            time.sleep(0.1)
        return True

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def dig(ip_port, name, rtype, status=False):
    ip, port = ip_port
    args = ["dig", f"@{ip}", "-p", str(port), name, rtype, "+time=1", "+tries=1", "+norecurse"]
    out = subprocess.run(args + ([] if status else ["+short"]), capture_output=True, text=True).stdout
    return out if status else set(out.split())


def bind_answer(bind):
    """BIND's A set for the name, or None when the query failed (not the same as empty)."""
    out = dig(bind.ip_port, "mx.bench.test.", "A", status=True)
    if "status: NOERROR" not in out:
        return None
    return {l.split()[-1] for l in out.splitlines() if l.startswith("mx.bench.test.") and "\tA\t" in l}


def dns_answer(node):
    ip, port = node.dns
    out = subprocess.run(["dig", f"@{ip}", "-p", str(port), "mx.bench.test.", "A", "+short", "+time=1", "+tries=1"],
                         capture_output=True, text=True).stdout
    return set(out.split())


def failure_detection(nodes, kills, bind=None):
    """Per kill: seconds until the victim is not live on another node, until its record is
    gone from that node's embedded answer, and (with BIND) until it is gone from BIND's zone
    — the latter split by whether the victim was the RFC 2136 publisher (mx1)."""
    times, dns_times, bind_times = [], [], {"publisher": [], "other": []}
    observer = nodes[-1]
    for k in range(kills):
        victim = nodes[k % (len(nodes) - 1)]
        victim_ip = victim.dns[0]
        deadline = time.time() + 30
        while time.time() < deadline and (victim_ip not in dns_answer(observer)
                                          or (bind and victim_ip not in (bind_answer(bind) or set()))):
            time.sleep(0.1)
        t0 = time.perf_counter()
        victim.kill9()
        live_gone = dns_gone = None
        bind_gone = None if bind else 0.0
        while live_gone is None or dns_gone is None or bind_gone is None:
            now = time.perf_counter() - t0
            if live_gone is None and victim.id not in live_members(observer):
                live_gone = now
            if dns_gone is None and victim_ip not in dns_answer(observer):
                dns_gone = now
            if bind_gone is None and (a := bind_answer(bind)) is not None and victim_ip not in a:
                bind_gone = now
            time.sleep(0.02)
        times.append(live_gone)
        dns_times.append(dns_gone)
        if bind:
            bind_times["publisher" if victim.id == "mx1" else "other"].append(bind_gone)
        victim.start()
        wait_all_live(nodes)
    return times, dns_times, bind_times


def make_mesh(binary, n, prefix, with_bind=False, relay_to="127.0.0.1:9"):
    """A cluster CA, certificates and nodes mx1..mxN (not started: start them in order); with
    `with_bind`, a running BIND that the nodes publish to (returned as the mesh's `.bind`)."""
    work = tempfile.mkdtemp(prefix=prefix)
    bind = Bind(work) if with_bind else None
    certs = os.path.join(work, "certs")
    subprocess.run([binary, "ca", "init", "--out", certs], check=True, capture_output=True)
    for i in range(1, n + 1):
        subprocess.run([binary, "ca", "issue", "--ca", certs, "--node", f"mx{i}", "--out", certs], check=True, capture_output=True)
    nodes = []
    nodes.extend(Node(binary, work, i, nodes, bind, relay_to) for i in range(1, n + 1))
    return nodes, bind


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True, help="directory with the mxmesh binary")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--gossip-secs", type=int, default=20)
    p.add_argument("--bind", action="store_true", help="also publish to a real BIND 9 (RFC 2136) and time withdrawal there")
    a = p.parse_args()
    nodes, bind = make_mesh(os.path.join(a.bin, "mxmesh"), a.nodes, "mxmesh-meshbench-", a.bind)
    try:
        t0 = time.perf_counter()
        for n in nodes:
            n.start()
        wait_all_live(nodes)
        print(f"nodes: {a.nodes}  (mesh formed in {time.perf_counter() - t0:.2f} s after the first start)")
        conv = rule_convergence(nodes, a.trials)
        print(f"rule convergence over {len(conv)} edits: p50 {1000 * pct(conv, 50):.0f} ms  p99 {1000 * pct(conv, 99):.0f} ms  max {1000 * max(conv):.0f} ms")
        rates = gossip_rate(nodes, a.gossip_secs)
        print("gossip payload bytes/s per node: " + "  ".join(f"{k} {v:.0f}" for k, v in sorted(rates.items()))
              + f"  (mean {statistics.mean(rates.values()):.0f})")
        if a.kills:
            det, dns, in_bind = failure_detection(nodes, a.kills, bind)
            print(f"failure detection over {len(det)} kills: p50 {pct(det, 50):.2f} s  max {max(det):.2f} s")
            print(f"kill -9 -> record gone from another node's DNS answer: p50 {pct(dns, 50):.2f} s  max {max(dns):.2f} s")
            for who, t in in_bind.items():
                if t:
                    print(f"kill -9 -> record gone from BIND (victim {'was' if who == 'publisher' else 'not'} the publisher, {len(t)} kills): "
                          f"p50 {pct(t, 50):.2f} s  max {max(t):.2f} s")
    finally:
        for n in nodes:
            n.stop()
        if bind:
            bind.stop()


if __name__ == "__main__":
    main()
