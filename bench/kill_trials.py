#!/usr/bin/env python3
"""kill -9 trials: the README ("Promises and behaviour") says a node killed at any instant
loses no message that got a 250. This script tries that many times against a real
`mxmesh node` process.

  python3 bench/kill_trials.py --bin target/release/mxmesh --trials 10000 [--seed 1]
      [--window 50] [--clients 4] [--json] [--workdir DIR]

One trial: start the node on its existing data directory, drive SMTP load from a few
client threads (each message has a unique subject; about a third contain "QUAR", which a
rule quarantines), kill it with SIGKILL at a seeded random moment of one of three phases,
and go on with the next trial on the same data:

  data     right after a client wrote the end-of-data dot of its k-th message, before it
           read the reply (between DATA and 250), after 0-3 ms;
  relay    when the downstream sink (aiosmtpd, own process) has received the k-th relayed
           message and before it answers 250 (so the node never hears the 250), after 0-5 ms;
  release  right after a POST /api/v1/quarantine/{id}/release was sent, after 0-8 ms
           (after 0-3 releases that were answered 202).

Every `--window` trials the node is started once more and left to settle (relay queue
empty, sink quiet), and the window is checked:

  acked-lost  a message whose 250 the client saw is neither at the sink nor in the
              quarantine (status quarantined); a release answered 202 that never reached
              the sink. Must be 0.
  duplicates  extra copies at the sink (relay is at-least-once; counted, allowed).

Then the data directory is wiped and the next window starts fresh, so a trial costs the
same at trial 10 and at trial 10,000. Exit status 1 on any acked loss. Everything listens
on 127.0.0.1 only.
"""
import argparse, asyncio, json, os, random, re, shutil, signal, socket, subprocess, sys
import tempfile, threading, time, urllib.error, urllib.parse, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mesh_figures import start_node  # noqa: E402

TOKEN = "kill-trials-token-0123456789"
SUBJECT = re.compile(rb"^Subject: (kt-[0-9A-Za-z-]+)", re.M)


def api(addr, method, path, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if data:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


# ---------------------------------------------------------------- the downstream sink

class SinkServer:
    """The sink process itself (`--sink-child`): aiosmtpd on a port the kernel chooses
    (printed as `READY PORT`); prints `GOT <subject>` for every message before answering
    250; after `ARM k` on stdin, the k-th next message also prints `HIT` and its 250 is held
    back 20 ms (the parent kills the node meanwhile)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        class OnSocket(Controller):
            def _create_server(inner):
                return inner.loop.create_server(inner._factory_invoker, sock=self.sock)

        self.lock = threading.Lock()
        self.received = 0
        self.armed = None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.controller = OnSocket(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        m = SUBJECT.search(envelope.original_content or b"")
        key = m.group(1).decode() if m else "?"
        with self.lock:
            self.received += 1
            fire = self.armed is not None and self.received >= self.armed
            if fire:
                self.armed = None
            sys.stdout.write(f"GOT {key}\n" + ("HIT\n" if fire else ""))
            sys.stdout.flush()
        if fire:
            await asyncio.sleep(0.02)
        return "250 2.0.0 Ok"

    def serve(self):
        self.controller.start()
        sys.stdout.write(f"READY {self.port}\n")
        sys.stdout.flush()
        for line in sys.stdin:
            cmd = line.split()
            with self.lock:
                if cmd and cmd[0] == "ARM":
                    self.armed = self.received + int(cmd[1])
                elif cmd and cmd[0] == "DISARM":
                    self.armed = None
        self.controller.stop()


class Sink:
    """The downstream sink in its own process (so it is never starved by the clients'
    threads); counts copies per subject from its `GOT` lines."""

    def __init__(self):
        self.lock = threading.Lock()
        self.copies = {}
        self.received = 0
        self.hit = threading.Event()
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sink-child"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self.proc.stdout.readline().split()
        if len(ready) != 2 or ready[0] != "READY":
            raise SystemExit("the sink did not start (is aiosmtpd installed?)")
        self.port = int(ready[1])
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            if line.startswith("GOT "):
                key = line[4:].strip()
                with self.lock:
                    self.copies[key] = self.copies.get(key, 0) + 1
                    self.received += 1
            elif line.startswith("HIT"):
                self.hit.set()

    def arm(self, k):
        self.hit.clear()
        self.proc.stdin.write(f"ARM {k}\n")
        self.proc.stdin.flush()

    def disarm(self):
        self.proc.stdin.write("DISARM\n")
        self.proc.stdin.flush()

    def snapshot(self):
        with self.lock:
            return dict(self.copies), self.received

    def reset(self):
        with self.lock:
            self.copies.clear()
            self.received = 0

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------- SMTP clients

class Load:
    """Client threads sending messages in sessions; records exactly which got 250."""

    def __init__(self, smtp_port, trial, clients, rng, quar_ratio):
        self.port, self.trial = smtp_port, trial
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = []          # subjects that got 250
        self.dots = 0            # end-of-data dots written
        self.dot_target = None
        self.dot_hit = threading.Event()
        self.seeds = [rng.random() for _ in range(clients)]
        self.quar_ratio = quar_ratio
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def wait_for_dots(self, k):
        with self.lock:
            self.dot_target = self.dots + k
        return self.dot_hit

    def client(self, i):
        rng = random.Random(self.seeds[i])
        seq = 0
        while not self.stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                time.sleep(0.005)
                continue
            f = s.makefile("rb")
            try:
                if not reply(f).startswith(b"220"):
                    break
                s.sendall(b"EHLO kt.test\r\n")
                reply(f)
                for _ in range(rng.randint(1, 8)):
                    if self.stop.is_set():
                        break
                    seq += 1
                    subj = f"kt-{self.trial}-{i}-{seq}"
                    if rng.random() < self.quar_ratio:
                        subj += "-QUAR"
                    body = (f"From: a@example.org\r\nTo: user@example.com\r\nSubject: {subj}\r\n"
                            f"Message-ID: <{subj}@kt.test>\r\n\r\n" + "x" * rng.randint(10, 3000)
                            + "\r\n").encode()
                    s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n")
                    if not reply(f).startswith(b"250") or not reply(f).startswith(b"250"):
                        break
                    if not reply(f).startswith(b"354"):
                        break
                    s.sendall(body + b".\r\n")
                    with self.lock:
                        self.dots += 1
                        if self.dot_target is not None and self.dots >= self.dot_target:
                            self.dot_target = None
                            self.dot_hit.set()
                    r = reply(f)
                    if r.startswith(b"250"):
                        with self.lock:
                            self.acked.append(subj)
                    elif not r:
                        break
            except OSError:
                pass
            finally:
                try:
                    s.close()
                except OSError:
                    pass


def reply(f):
    """Reads one (possibly multi-line) reply; b"" when the connection is gone."""
    last = b""
    while True:
        line = f.readline()
        if not line:
            return b""
        last = line
        if len(line) < 4 or line[3:4] != b"-":
            return last


# ---------------------------------------------------------------- the node

class Node:
    """The node under test. Its first start binds port 0 for SMTP and the admin API; the
    ports from its ready file are kept for every restart."""

    def __init__(self, binary, work, sink_port):
        self.binary, self.work = binary, work
        self.dir = os.path.join(work, "node")
        self.smtp_port, self.admin_port = 0, 0
        self.admin = f"127.0.0.1:{self.admin_port}"
        self.sink_port = sink_port
        self.proc = None

    def write_config(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "admin.tokens"), "w") as f:
            f.write(f"kt {TOKEN}\n")
        relay = f"127.0.0.1:{self.sink_port}"
        with open(os.path.join(self.dir, "node.toml"), "w") as f:
            f.write(f"""[node]
id = "kt1"
data_dir = "data"

[smtp]
listen = "127.0.0.1:{self.smtp_port}"
hostname = "kt1.example.com"

[[domains]]
name = "example.com"
relay_to = "{relay}"

[[domains]]
name = "example.org"
relay_to = "{relay}"

[admin]
listen = "{self.admin}"
tokens_file = "admin.tokens"

[relay]
retry_initial_secs = 1
retry_max_secs = 1
""")

    def start(self):
        """Starts the node on its data and waits for its ready file; the first start
        pins the ports it bound into the config."""
        self.proc, bound = start_node(self.binary, os.path.join(self.dir, "node.toml"), self.dir,
                                      env=dict(os.environ, MXMESH_LOG="warn"))
        smtp_port = int(bound["smtp"].rsplit(":", 1)[1])
        admin_port = int(bound["admin"].rsplit(":", 1)[1])
        if (self.smtp_port, self.admin_port) != (smtp_port, admin_port):
            self.smtp_port, self.admin_port = smtp_port, admin_port
            self.admin = f"127.0.0.1:{admin_port}"
            self.write_config()

    def kill9(self):
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def wipe(self):
        self.kill9()
        shutil.rmtree(os.path.join(self.dir, "data"), ignore_errors=True)


def quarantine_items(node):
    """Every quarantine entry the node lists (all statuses), by subject."""
    out, cursor = {}, None
    while True:
        q = {"subject": "kt-", "limit": "1000"}
        if cursor:
            q["cursor"] = cursor
        st, body = api(node.admin, "GET", "/api/v1/quarantine?" + urllib.parse.urlencode(q))
        if st != 200:
            raise RuntimeError(f"quarantine listing: HTTP {st}")
        for it in body["items"]:
            out.setdefault(it["subject"], []).append(it)
        cursor = body.get("next")
        if not cursor or not body["items"]:
            return out


# ---------------------------------------------------------------- trials

def release_one(node, rng, released, released_lock):
    """Picks a quarantined message, sends the release and returns the thread doing it."""
    st, body = api(node.admin, "GET", "/api/v1/quarantine?subject=kt-&status=quarantined&limit=50",
                   timeout=2)
    if st != 200 or not body or not body["items"]:
        return None
    it = rng.choice(body["items"])

    def go():
        s, _ = api(node.admin, "POST", f"/api/v1/quarantine/{it['id']}/release", timeout=5)
        if s == 202:
            with released_lock:
                released.add(it["subject"])

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def settle(node, sink, timeout=120):
    """Starts the node once more and waits until its queue is empty and the sink is quiet."""
    node.start()
    end = time.time() + timeout
    quiet_since, last = time.time(), -1
    while time.time() < end:
        st, q = api(node.admin, "GET", "/api/v1/queue")
        _, n = sink.snapshot()
        if n != last:
            last, quiet_since = n, time.time()
        if st == 200 and q["size"] == 0 and not q["entries"] and time.time() - quiet_since > 0.3:
            return True
        time.sleep(0.05)
    return False


def check_window(node, sink, acked, released):
    copies, _ = sink.snapshot()
    quarantine = quarantine_items(node)
    lost, dups = [], 0
    for subj in acked:
        at_sink = copies.get(subj, 0)
        if at_sink:
            continue
        if "QUAR" in subj and any(i["status"] == "quarantined" for i in quarantine.get(subj, [])):
            continue
        lost.append(subj)
    release_lost = [s for s in released if copies.get(s, 0) == 0]
    dups = sum(c - 1 for k, c in copies.items() if c > 1)
    return lost, release_lost, dups


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--sink-child":
        SinkServer().serve()
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", required=True, help="path of the mxmesh binary")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window", type=int, default=50, help="trials between settle-and-check")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--quar-ratio", type=float, default=0.3)
    p.add_argument("--workdir", help="keep state here (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--progress", type=int, default=0, help="print a line every N trials")
    a = p.parse_args()

    rng = random.Random(a.seed)
    work = a.workdir or tempfile.mkdtemp(prefix="mxmesh-kill-")
    os.makedirs(work, exist_ok=True)
    sink = Sink()
    node = Node(os.path.abspath(a.bin), work, sink.port)
    node.write_config()
    node.wipe()
    started = time.time()
    total = dict(trials=0, windows=0, acked=0, acked_lost=0, releases_acked=0,
                 release_lost=0, duplicates=0, at_sink=0,
                 phases={"data": 0, "relay": 0, "release": 0},
                 hits={"data": 0, "relay": 0, "release": 0}, fallback_kills=0,
                 settle_timeouts=0)
    lost_examples = []
    acked, released, released_lock = [], set(), threading.Lock()
    rule_made = False
    try:
        for trial in range(a.trials):
            node.start()
            if not rule_made:
                st, _ = api(node.admin, "POST", "/api/v1/rules", {
                    "name": "kill-trials quarantine", "action": "quarantine",
                    "when": {"field": "subject", "op": "contains", "value": "QUAR"}})
                if st != 201:
                    raise SystemExit(f"creating the rule: HTTP {st}")
                rule_made = True
            phase = rng.choice(["data", "relay", "release"])
            total["phases"][phase] += 1
            load = Load(node.smtp_port, trial, a.clients, rng, a.quar_ratio)
            fired = False
            if phase == "data":
                ev = load.wait_for_dots(rng.randint(1, 30))
                load.start()
                fired = ev.wait(3)
                time.sleep(rng.uniform(0, 0.003))
            elif phase == "relay":
                sink.arm(rng.randint(1, 20))
                load.start()
                fired = sink.hit.wait(3)
                time.sleep(rng.uniform(0, 0.005))
            else:
                load.start()
                time.sleep(rng.uniform(0, 0.05))
                for _ in range(rng.randint(0, 3)):  # some releases that complete
                    t = release_one(node, rng, released, released_lock)
                    if t:
                        t.join(5)
                end = time.time() + 1.5
                while not fired and time.time() < end:
                    fired = release_one(node, rng, released, released_lock) is not None
                    if not fired:
                        time.sleep(0.02)
                time.sleep(rng.uniform(0, 0.008))
            if fired:
                total["hits"][phase] += 1
            else:
                total["fallback_kills"] += 1
            node.kill9()
            sink.disarm()
            load.join()
            acked.extend(load.acked)
            total["trials"] += 1
            last = trial + 1 == a.trials
            if (trial + 1) % a.window == 0 or last:
                time.sleep(0.05)  # let release threads see their connection reset
                if not settle(node, sink):
                    total["settle_timeouts"] += 1
                lost, rlost, dups = check_window(node, sink, acked, released)
                total["windows"] += 1
                total["acked"] += len(acked)
                total["acked_lost"] += len(lost)
                total["releases_acked"] += len(released)
                total["release_lost"] += len(rlost)
                total["duplicates"] += dups
                total["at_sink"] += sum(sink.snapshot()[0].values())
                lost_examples.extend((lost + rlost)[:5])
                if lost or rlost:
                    keep = os.path.join(work, f"lost-window-{total['windows']}")
                    node.kill9()
                    shutil.copytree(node.dir, keep, dirs_exist_ok=True)
                    print(f"window {total['windows']}: LOST {lost[:5]} releases {rlost[:5]}; "
                          f"state kept in {keep}", file=sys.stderr)
                node.wipe()
                sink.reset()
                acked, released = [], set()
                rule_made = False
            if a.progress and (trial + 1) % a.progress == 0:
                el = time.time() - started
                print(f"{trial + 1} trials, {el:.0f} s, acked {total['acked']} "
                      f"lost {total['acked_lost'] + total['release_lost']} dups {total['duplicates']}",
                      file=sys.stderr, flush=True)
    finally:
        node.kill9()
        sink.stop()
    total["seconds"] = round(time.time() - started, 1)
    total["seed"] = a.seed
    total["lost_examples"] = lost_examples[:20]
    if a.json:
        print(json.dumps(total))
    else:
        for k, v in total.items():
            print(f"{k:16} {v}")
    if not a.workdir and total["acked_lost"] == 0 and total["release_lost"] == 0:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if total["acked_lost"] or total["release_lost"] else 0)


if __name__ == "__main__":
    main()
