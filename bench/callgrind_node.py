#!/usr/bin/env python3
"""Instructions per message of one node, under callgrind: a measure a busy machine cannot move.

  python3 bench/callgrind_node.py --bin DIR [--kind mxmesh|mxmesh+bayes] [--messages 1000]
                                  [--sessions 20] [--size 10240] [--ip 127.0.0.1] --out FILE.cg
  python3 bench/callgrind_node.py --groups FILE.cg [--messages 1000]   # the table again
  python3 bench/callgrind_node.py --bin DIR --strace --out FILE.txt   # system calls per message

Starts the node under `valgrind --tool=callgrind --instr-atstart=no`, relaying to an
`smtp-sink -c` on --ip:2700; once it is ready (and, for mxmesh+bayes, has learned
matrix.py's corpus) turns instrumentation on, sends --messages with Postfix's
`smtp-source` (a new session per message, the headline cell's client), waits until the sink
has counted every message (so the relay's work is in), turns instrumentation off and stops
the node. The output file holds user-space instructions (Ir) per function, every thread;
the report groups the functions' own (exclusive) Ir by where they live and divides by the
messages. The kernel's share of the node's CPU (about half, §16 of BENCHMARKS.md) is not in
callgrind's counts. Needs valgrind, smtp-source and smtp-sink.
"""
import argparse, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matrix as mx  # noqa: E402
import alternate as al  # noqa: E402

# How long the node may take to start under valgrind (it is ~50× slower there).
READY_UNDER_VALGRIND_S = 300

# Where a function lives, by the first pattern its name matches; the rest is "other".
GROUPS = [
    ("allocator (mimalloc)", r"^_?mi_|mimalloc|raw_vec|finish_grow"),
    ("memcpy / memmove / memset (libc)", r"mem(cpy|move|set|cmp)|__memc|__mems"),
    ("memchr (line ends, dots)", r"memchr"),
    ("RocksDB (WAL, memtable, crc32c)", r"rocksdb|crc32c|Crc32c|XXH|LZ4|snappy|ZSTD"),
    ("spam phrase regexes (regex crates)", r"regex_automata|regex_syntax|regex::|aho_corasick"),
    ("Bayes tokenizer and classifier", r"mxmesh_node::bayes"),
    ("MIME parser (mail-parser, its UTF-8 decoding)", r"mail_parser|Utf8Chunks|from_utf8"),
    ("spam body check (phrases, capitals)", r"spam::checks::body"),
    ("spam checks, facts, HTML scan", r"mxmesh_node::(spam|facts|message)"),
    ("relay: writing the body downstream (dot-stuffing)", r"write_message|data_payload"),
    ("relay (mail-send, queue, delivery)", r"mail_send|mxmesh_node::relay|smtp_proto"),
    ("SMTP DATA receiver", r"smtp::data::"),
    ("SMTP receive (session, state, replies)", r"mxmesh_node::smtp"),
    ("inbound verdict, store glue, trace, counters", r"mxmesh_node::(inbound|store|trace|stats|rules|filter)"),
    ("JSON and formatting", r"serde|core::fmt|alloc::fmt|itoa|ryu"),
    ("tokio runtime, tasks, timers, I/O driver", r"tokio|mio::|parking_lot|std::sys::|futures"),
    ("ULID, hashing, time", r"ulid|sha2|xxhash|hashbrown|std::time|chrono|rand"),
    ("libc syscall wrappers, pthread", r"^(__)?(libc_|send|recv|read|write|epoll|accept|close|syscall|pthread|futex|clock_gettime|getsockopt|setsockopt|fdatasync|fsync|pwrite|lseek)"),
]


def run_strace(a):
    """System calls per message: `strace -f -c` attached to a node at full speed over the
    same load (strace slows every call, not the count)."""
    mx.SINK = f"{a.ip}:2700"
    work = tempfile.mkdtemp(prefix="mxbench-strace-")
    stack = []
    try:
        sink = mx.CountingSink()
        stack.append(sink.stop)
        node = mx.MxNode(os.path.join(a.bin, "mxmesh"), work, "strace")
        stack.append(node.stop)
        if a.kind == "mxmesh+bayes":
            mx.learn_corpus(node.admin)
        tracer = subprocess.Popen(["strace", "-f", "-c", "-q", "-o", a.out, "-p", str(node.proc.pid)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(2)  # strace attaches to every thread
        base = sink.count
        _, _, accepted, _, _, _ = mx.run_clients("smtp-source", None, [node.smtp], a.sessions, a.messages, a.size)
        arrived, _ = sink.wait_for(base + accepted, stall=120)
        while al.node_queued(node.admin):
            time.sleep(0.2)
        tracer.send_signal(2)
        tracer.wait()
        if accepted != a.messages or arrived - base != accepted:
            raise SystemExit("not every message was accepted and relayed: the counts would mislead")
    finally:
        for f in reversed(stack):
            f()
    print(syscalls(a.out, a.messages))


def syscalls(path, messages):
    """Calls per message by system call, from `strace -c`'s table."""
    rows, total = [], 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
                calls, name = int(parts[3]), parts[-1]
                rows.append((calls, name))
                total += calls
    out = ["| system call | per message |", "|---|---:|"]
    out += [f"| {name} | {calls / messages:.2f} |" for calls, name in sorted(rows, reverse=True) if calls / messages >= 0.05]
    out.append(f"| **total** | **{total / messages:.1f}** |")
    return "\n".join(out)


def run(a):
    mx.SINK = f"{a.ip}:2700"
    work = tempfile.mkdtemp(prefix="mxbench-callgrind-")
    wrapper = os.path.join(work, "mxmesh-under-callgrind")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file={a.out} "
                f"--separate-threads=no {os.path.join(a.bin, 'mxmesh')} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    mx.mf.READY_TIMEOUT_S = READY_UNDER_VALGRIND_S
    stack = []
    try:
        sink = mx.CountingSink()
        stack.append(sink.stop)
        node = mx.MxNode(wrapper, work, "callgrind")
        stack.append(node.stop)
        if a.kind == "mxmesh+bayes":
            mx.learn_corpus(node.admin)
        time.sleep(1)
        subprocess.run(["callgrind_control", "-i", "on", str(node.proc.pid)], check=True, capture_output=True)
        base = sink.count
        t0 = time.monotonic()
        _, wall, accepted, _, _, _ = mx.run_clients("smtp-source", None, [node.smtp], a.sessions, a.messages, a.size)
        arrived, _ = sink.wait_for(base + accepted, stall=120)
        while al.node_queued(node.admin):
            time.sleep(0.2)
        subprocess.run(["callgrind_control", "-i", "off", str(node.proc.pid)], check=True, capture_output=True)
        mx.log(f"{accepted} accepted, {arrived - base} arrived in {time.monotonic() - t0:.0f} s under callgrind")
        if accepted != a.messages or arrived - base != accepted:
            raise SystemExit("not every message was accepted and relayed: the counts would mislead")
    finally:
        for f in reversed(stack):
            f()
    print(groups(a.out, a.messages))


def groups(path, messages):
    """Exclusive Ir per message, grouped by GROUPS, from callgrind_annotate's function list."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", path],
                         capture_output=True, text=True, check=True).stdout
    # "1,234 (5.6%)  file:function [object]"; the file is "???" without debug info.
    rx = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+[^:\s]*:(.*?)(?: \[[^\]]*\])?$")
    total, sums = 0, {}
    for line in out.splitlines():
        m = rx.match(line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir, name = int(m.group(1).replace(",", "")), m.group(2)
        where = next((g for g, pat in GROUPS if re.search(pat, name)), "other")
        sums[where] = sums.get(where, 0) + ir
        total += ir
    rows = ["| where (user space) | instructions per message | share |", "|---|---:|---:|"]
    for g, ir in sorted(sums.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {g} | {ir / messages:,.0f} | {100 * ir / total:.1f}% |")
    rows.append(f"| **total** | **{total / messages:,.0f}** | 100% |")
    return "\n".join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", help="directory with the release mxmesh binary")
    p.add_argument("--kind", default="mxmesh", choices=["mxmesh", "mxmesh+bayes"])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=10240)
    p.add_argument("--ip", default="127.0.0.1", help="loopback address of the sink")
    p.add_argument("--out", help="callgrind output file (with --strace: strace's table)")
    p.add_argument("--strace", action="store_true", help="count system calls per message with "
                   "`strace -f -c` instead (the node at full speed)")
    p.add_argument("--groups", metavar="CG", help="only print the grouped table of an earlier output file")
    a = p.parse_args()
    if a.groups:
        print(groups(a.groups, a.messages))
        return
    if not (a.bin and a.out):
        p.error("--bin and --out are required")
    run_strace(a) if a.strace else run(a)


if __name__ == "__main__":
    main()
