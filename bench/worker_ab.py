#!/usr/bin/env python3
"""Interleaved A/B of one `txscan worker` (two builds) against `txscan scan` on the same
transactions, Redis on loopback (BENCHMARKS.md section 27, issue 20). Per round: txscan scan
(the second build), then each build's worker on a fresh stream (the order alternates); wall
rates, and per entry the Redis server's CPU (INFO cpu) and the worker's (rusage).

    bench/worker_ab.py BEFORE/txscan AFTER/txscan BULK.jsonl PLUGIN_DIR [ROUNDS]
"""
import re, os, subprocess, sys, time, statistics, signal, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
from worker_test import RedisServer
if len(sys.argv) < 5:
    raise SystemExit(__doc__)
BIN = {'before': sys.argv[1], 'after': sys.argv[2]}
INP, PLUG = sys.argv[3], sys.argv[4]
N = sum(1 for _ in open(INP))
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
res = {'before': [], 'after': [], 'scan': []}
srv = RedisServer()
db = srv.client()
CPU = {'before': [], 'after': []}
SCAN_CPU = []
def rcpu():
    i = db('INFO', 'cpu')
    return float(re.search(r'used_cpu_user:([\d.]+)', i).group(1)) + float(re.search(r'used_cpu_sys:([\d.]+)', i).group(1))
def worker(which):
    db('FLUSHALL')
    p = subprocess.run([BIN[which], 'publish', '--redis', srv.url, '--stream', 's', INP], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    c0 = rcpu()
    t0 = time.monotonic()
    w = subprocess.Popen([BIN[which], 'worker', '-p', PLUG, '--quiet', '--redis', srv.url, '--stream', 's',
                          '--group', 'g', '--out', 'o', '--consumer', 'c1', '--block-ms', '200'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while db('XLEN', 'o') < N:
        time.sleep(0.02)
        if time.monotonic() - t0 > 300: raise SystemExit('stuck')
    secs = time.monotonic() - t0
    c1 = rcpu()
    w.send_signal(signal.SIGTERM)
    _, _, ru = os.wait4(w.pid, 0)
    CPU[which].append(((c1 - c0) * 1e6 / N, (ru.ru_utime + ru.ru_stime) * 1e6 / N))
    assert db('XLEN', 'o') == N and db('XPENDING', 's', 'g')[0] == 0 and db('XLEN', 's:dead') == 0
    return N / secs
def scan():
    t0 = time.monotonic()
    with open(os.devnull, 'w') as f:
        p = subprocess.Popen([BIN['after'], 'scan', '-p', PLUG, '--quiet-console', '--no-progress', INP],
                             stdout=f, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
    # 1 is findings at --fail-on; anything else is not a complete scan (one round of section
    # 31 took 0.29 s at 18 us of CPU per transaction, unexplained, before this check)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit('txscan scan exited %d' % os.waitstatus_to_exitcode(status))
    SCAN_CPU.append((ru.ru_utime + ru.ru_stime) * 1e6 / N)
    return N / (time.monotonic() - t0)
try:
    for r in range(rounds):
        order = ['before', 'after'] if r % 2 == 0 else ['after', 'before']
        res['scan'].append(scan())
        for k in order:
            res[k].append(worker(k))
        print('round', r, {k: round(v[-1]) for k, v in res.items()}, 'load', os.getloadavg()[0], flush=True)
finally:
    db.close(); srv.close()
med = {k: statistics.median(v) for k, v in res.items()}
print(json.dumps({'median': {k: round(v) for k, v in med.items()},
                  'ratio_before': round(med['before'] / med['scan'], 3),
                  'ratio_after': round(med['after'] / med['scan'], 3), 'redis_us_per_entry,worker_us_per_entry': {k: [tuple(round(x, 1) for x in c) for c in v] for k, v in CPU.items()}, 'scan_cpu_us_per_tx': [round(x, 1) for x in SCAN_CPU], 'raw': {k: [round(x) for x in v] for k, v in res.items()}}))
