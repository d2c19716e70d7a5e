#!/usr/bin/env python3
"""bench/logcost.py - what the plugin failure log costs: `txscan scan`
throughput and `txscan serve` p99 under wrk, two builds side by side,
interleaved, medians (BENCHMARKS.md section 24).

usage: bench/logcost.py BEFORE_TXSCAN AFTER_TXSCAN [--rounds N] [--n TXS]
                        [--wrk-seconds S]

Cases (each with the 7 example plugins, --quiet-console / --quiet, stderr
to a file so the log lines are written):
  examples        the 7 example plugins only (nothing fails)
  fail-every-10   plus a plugin that throws on every 10th scan
  fail-every-1    plus a plugin that throws on every scan
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLES = os.path.join(ROOT, "examples", "plugins")
SAMPLE = os.path.join(ROOT, "examples", "transactions", "sample.jsonl")
WRK_LUA = os.path.join(ROOT, "bench", "wrk", "scan.lua")


def failing_plugin(root, every):
    d = os.path.join(root, "fail-every-%d" % every, "failer")
    os.makedirs(d)
    with open(os.path.join(d, "plugin.json"), "w") as f:
        json.dump({"id": "failer", "version": "1.0.0", "main": "index.js"}, f)
    with open(os.path.join(d, "index.js"), "w") as f:
        f.write("let n = 0;\nmodule.exports = { scanTransaction(tx) {\n"
                "  if (++n %% %d === 0) throw new Error('rule broke on ' + tx.hash);\n"
                "  return null;\n} };\n" % every)
    return os.path.dirname(d)


def bulk(path, n):
    with open(SAMPLE) as f:
        lines = [l for l in f if l.strip()]
    with open(path, "w") as out:
        for i in range(n):
            out.write(lines[i % len(lines)])


def scan_rate(txscan, dirs, data, n, tmp):
    """(tx per wall second, tx per CPU second of the process): on a shared
    machine the second is the steadier figure of what the work costs."""
    argv = [txscan, "scan", "--quiet-console", "--no-progress"]
    for d in dirs:
        argv += ["-p", d]
    with open(os.devnull, "w") as out, open(os.path.join(tmp, "stderr.log"), "w") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv + [data], stdout=out, stderr=err)
        _, _, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = 0
        return n / wall, n / (ru.ru_utime + ru.ru_stime)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_p99(txscan, dirs, seconds):
    argv = [txscan, "serve", "--listen", "127.0.0.1:0", "--quiet"]  # JSON logs: stderr is a pipe
    for d in dirs:
        argv += ["-p", d]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    drain = None
    try:
        port = None
        for line in proc.stderr:
            if '"event":"start"' in line:
                port = int(json.loads(line)["listen"].rsplit(":", 1)[1])
                break
        if port is None:
            raise RuntimeError("serve did not start")
        # drain stderr meanwhile so the failure lines are written, not blocked
        drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
        cpu0 = cpu_s(proc.pid)
        out = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % seconds, "--latency", "-s", WRK_LUA,
                              "http://127.0.0.1:%d/v1/scan" % port, "--", SAMPLE],
                             capture_output=True, text=True, check=True).stdout
        cpu = cpu_s(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(30)
    if drain:
        drain.wait(10)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return float(p99.group(1)) * scale, float(rps.group(1)), cpu / reqs * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--wrk-seconds", type=int, default=8)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="txs-logcost-")
    try:
        data = os.path.join(tmp, "bulk.jsonl")
        bulk(data, a.n)
        cases = {"examples": [EXAMPLES],
                 "fail-every-10": [EXAMPLES, failing_plugin(tmp, 10)],
                 "fail-every-1": [EXAMPLES, failing_plugin(tmp, 1)]}
        builds = {"before": a.before, "after": a.after}
        rates = {(c, b): [] for c in cases for b in builds}
        for r in range(a.rounds):
            for c, dirs in cases.items():
                for b in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    rates[(c, b)].append(scan_rate(builds[b], dirs, data, a.n, tmp))
                    print("  round %d %-14s %-6s %8.0f tx/s %8.0f tx/CPU-s" % (
                        r, c, b, *rates[(c, b)][-1]), flush=True)
        print("txscan scan, %d transactions, tx/s (median of %d, interleaved):" % (a.n, a.rounds),
              flush=True)
        for c in cases:
            for k, unit in ((0, "tx/s"), (1, "tx/CPU-s")):
                bf = statistics.median(x[k] for x in rates[(c, "before")])
                af = statistics.median(x[k] for x in rates[(c, "after")])
                print("  %-14s %-8s before %8.0f  after %8.0f  (%.3fx)" % (c, unit, bf, af,
                                                                       af / bf), flush=True)
        lat = {(c, b): [] for c in ("examples", "fail-every-10") for b in builds}
        for r in range(max(1, a.rounds // 2 + 1)):
            for c in ("examples", "fail-every-10"):
                for b in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    lat[(c, b)].append(serve_p99(builds[b], cases[c], a.wrk_seconds))
                    print("  round %d %-14s %-6s p99 %.2f ms, %.0f req/s, %.0f CPU-us/req" % (
                        r, c, b, *lat[(c, b)][-1]), flush=True)
        print("txscan serve, wrk -t2 -c16 -d%ds (median):" % a.wrk_seconds)
        for c in ("examples", "fail-every-10"):
            for b in builds:
                v = lat[(c, b)]
                print("  %-14s %-6s p99 %6.2f ms  %8.0f req/s  %5.0f CPU-us/req (serve)" % (
                    c, b, statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
                    statistics.median(x[2] for x in v)), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
