#!/usr/bin/env python3
"""POST /v1/scan under wrk: plain HTTP without tokens, plain HTTP with a scan
token, and HTTPS (TLS 1.3, a P-256 certificate made here by openssl) with a
scan token: three `txscan serve` processes started side by side and measured
in turns (the order rotates each round), so all see the same load on a
shared machine.

    python3 bench/tls_bench.py [BUILD/txscan] [--rounds N] [--seconds S]

Prints one line per run and the median of each; a run with any non-2xx
answer or socket error is reported as failed (a 401 is fast and would flatter
the TLS side). Needs wrk and openssl.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-scan-token-0123456789abcdef"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_cert(d):
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", "/CN=bench CA")
    key, csr, pem, ext = (os.path.join(d, n) for n in ("srv.key", "srv.csr", "srv.pem", "ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", "2",
            "-out", pem, "-days", "1", "-extfile", ext)
    return pem, key


def start(txscan, log, *extra):
    f = open(log, "w")
    p = subprocess.Popen([txscan, "serve", "-p", os.path.join(ROOT, "examples", "plugins"),
                          "--listen", "127.0.0.1:0", "--quiet", *extra], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=f)
    deadline = time.time() + 60
    while time.time() < deadline:
        with open(log) as g:
            for line in g:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") == "start":
                    return p, f, int(e["listen"].rsplit(":", 1)[1])
        if p.poll() is not None:
            break
        time.sleep(0.1)
    p.kill()
    sys.exit("serve did not start: see " + log)


def wrk(url, seconds, headers):
    cmd = ["wrk", "-t2", "-c16", "-d%ds" % seconds, "--latency", *headers, "-s",
           "bench/wrk/scan.lua", url, "--", "examples/transactions/sample.jsonl"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"= (\d+) req/s; errors: connect (\d+), read (\d+), write (\d+), status (\d+), "
                  r"timeout (\d+)", out)
    p99 = re.search(r"latency p99: ([\d.]+) ms", out)
    p50 = re.search(r"latency p50: ([\d.]+) ms", out)
    if not m or not p99:
        return {"failed": out.strip()[-300:]}
    errors = sum(int(x) for x in m.groups()[1:])
    r = {"rps": int(m.group(1)), "p50": float(p50.group(1)), "p99": float(p99.group(1))}
    if errors:
        r["failed"] = "%d errors or non-2xx answers" % errors
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("txscan", nargs="?", default=os.path.join(ROOT, "build", "txscan"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    for tool in ("wrk", "openssl"):
        if not shutil.which(tool):
            sys.exit(tool + " not found")
    d = tempfile.mkdtemp(prefix="txscan-tls-bench-")
    procs = []
    keep = False
    try:
        cert, key = make_cert(d)
        tokens = os.path.join(d, "scan.tokens")
        with open(tokens, "w") as f:
            f.write(TOKEN + "\n")
        plain = start(a.txscan, os.path.join(d, "plain.log"))
        procs.append(plain)
        tok = start(a.txscan, os.path.join(d, "token.log"), "--scan-token-file", tokens)
        procs.append(tok)
        tls = start(a.txscan, os.path.join(d, "tls.log"), "--tls-cert", cert, "--tls-key", key,
                    "--scan-token-file", tokens)
        procs.append(tls)
        bearer = ["-H", "Authorization: Bearer " + TOKEN]
        sides = {"plain": ("http://127.0.0.1:%d/v1/scan" % plain[2], []),
                 "token": ("http://127.0.0.1:%d/v1/scan" % tok[2], bearer),
                 "tls": ("https://127.0.0.1:%d/v1/scan" % tls[2], bearer)}
        runs = {side: [] for side in sides}
        order = list(sides)
        for side in order:  # warm up (first VMs, JIT)
            wrk(sides[side][0], 2, sides[side][1])
        for i in range(a.rounds):
            for side in order[i % 3:] + order[:i % 3]:
                r = wrk(sides[side][0], a.seconds, sides[side][1])
                proc = {"plain": plain, "token": tok, "tls": tls}[side][0]
                if proc.poll() is not None:
                    r["failed"] = "serve exited %s; its log: %s" % (
                        proc.returncode, os.path.join(d, side + ".log"))
                    keep = True
                runs[side].append(r)
                print("round %d %-6s %s" % (i + 1, side, json.dumps(r)), flush=True)
        for side, rs in runs.items():
            ok = [r for r in rs if "failed" not in r]
            if ok:
                print("median %-6s req/s %d  p50 %.2f ms  p99 %.2f ms  (%d runs)" % (
                    side, statistics.median(r["rps"] for r in ok),
                    statistics.median(r["p50"] for r in ok),
                    statistics.median(r["p99"] for r in ok), len(ok)))
    finally:
        for p, f, _ in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
            f.close()
        if not keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
