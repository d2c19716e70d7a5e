#!/usr/bin/env python3
"""A/B of two txscan builds on the figures issue 18's counters could move:
`txscan scan` throughput (the 7 JavaScript example plugins, a bulk file made
by scripts/gen-bulk.js from examples/transactions/sample.jsonl) and `txscan
serve` p99 under wrk (bench/wrk/scan.lua). Rounds interleave the builds
(A B, then B A, ...) so drift on a shared machine hits both; medians are
printed.

    bench/counters_ab.py --before OLD/txscan --after NEW/txscan [--rounds 5]
        [--txs 20000] [--wrk-seconds 10]
"""
import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "plugins")
SAMPLE = os.path.join(ROOT, "examples", "transactions", "sample.jsonl")
SKIP = {"transfer-from-third-party"}  # the TypeScript + viem one: the 7 JS plugins remain


def plugins_dir(tmp):
    d = os.path.join(tmp, "plugins")
    os.makedirs(d)
    for name in sorted(os.listdir(EXAMPLES)):
        if name not in SKIP and os.path.exists(os.path.join(EXAMPLES, name, "plugin.json")):
            os.symlink(os.path.join(EXAMPLES, name), os.path.join(d, name))
    return d


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def scan_rate(binary, plugins, bulk, n):
    """(tx/s of wall time, microseconds of CPU time per tx): the CPU figure
    moves less with other load on the machine."""
    c0 = cpu_children()
    t0 = time.monotonic()
    with open(os.devnull, "w") as null:
        p = subprocess.run([binary, "scan", "--quiet-console", "--no-progress", "-p", plugins, bulk],
                           stdout=null, stderr=subprocess.PIPE, text=True)
    secs = time.monotonic() - t0
    if p.returncode not in (0, 1, 2):
        raise SystemExit("%s scan: exit %d: %s" % (binary, p.returncode, p.stderr[-300:]))
    return n / secs, (cpu_children() - c0) / n * 1e6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def serve_p99(binary, plugins, secs):
    port = free_port()
    srv = subprocess.Popen([binary, "serve", "-q", "-p", plugins, "--listen", "127.0.0.1:%d" % port],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in srv.stderr:
            if '"event":"start"' in line:
                break
        else:
            raise SystemExit("%s serve did not start" % binary)
        w = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % secs, "--latency", "-s",
                            os.path.join(ROOT, "bench", "wrk", "scan.lua"),
                            "http://127.0.0.1:%d/v1/scan" % port, "--", SAMPLE],
                           capture_output=True, text=True, cwd=ROOT, timeout=secs + 60)
        m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", w.stdout, re.M)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", w.stdout)
        if not m or not rps:
            raise SystemExit("cannot read wrk's output:\n" + w.stdout)
        return to_ms(m.group(1), m.group(2)), float(rps.group(1))
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--txs", type=int, default=20000)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="txs-ab-")
    plugins = plugins_dir(tmp)
    bulk = os.path.join(tmp, "bulk.jsonl")
    subprocess.run(["node", os.path.join(ROOT, "scripts", "gen-bulk.js"), bulk, str(a.txs)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    res = {w: {"scan": [], "cpu_us": [], "p99": [], "rps": []} for w in ("before", "after")}
    bins = {"before": a.before, "after": a.after}
    for r in range(a.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for which in order:
            rate, cpu = scan_rate(bins[which], plugins, bulk, a.txs)
            res[which]["scan"].append(rate)
            res[which]["cpu_us"].append(cpu)
        for which in order:
            p99, rps = serve_p99(bins[which], plugins, a.wrk_seconds)
            res[which]["p99"].append(p99)
            res[which]["rps"].append(rps)
        print("round %d: %s" % (r + 1, {w: {k: round(v[-1], 2) for k, v in res[w].items()}
                                        for w in res}), flush=True)
    for w in ("before", "after"):
        print("%-6s scan %8.0f tx/s, %.1f us CPU/tx (medians of %d: %s)  serve p99 %6.2f ms, "
              "%6.0f req/s (medians)"
              % (w, statistics.median(res[w]["scan"]), statistics.median(res[w]["cpu_us"]), a.rounds,
                 " ".join("%.0f" % x for x in res[w]["scan"]),
                 statistics.median(res[w]["p99"]), statistics.median(res[w]["rps"])))
    print("p99 runs: before %s; after %s" % (" ".join("%.2f" % x for x in res["before"]["p99"]),
                                             " ".join("%.2f" % x for x in res["after"]["p99"])))


if __name__ == "__main__":
    main()
