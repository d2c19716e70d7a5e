#!/usr/bin/env python3
"""One `txscan worker` against `txscan scan` with Redis's memory cold and warm (BENCHMARKS.md
section 42, issue 20).

    bench/worker_warm.py TXSCAN BULK.jsonl PLUGIN_DIR [ROUNDS]

Redis 7 hands its allocator's free pages back to the kernel on a synchronous FLUSHALL
(jemalloc purge), so a stream written after one touches every page for the first time, and a
first touch costs a page fault: 12-18 us on this guest. A Redis that has run for a while, whose
streams are trimmed, writes into pages it used before. Per round, interleaved: `txscan scan`;
the worker after `FLUSHALL` (cold: as bench/run and bench/worker_ab.py run it); the worker after
`FLUSHALL ASYNC` (warm: the pages the cold run used are freed to the allocator, not the
kernel). Prints per case the median rate, the ratio to `txscan scan`, and per entry Redis's
CPU and its page faults (/proc/PID/stat minflt).
"""
import os, re, signal, statistics, subprocess, sys, time, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
from worker_test import RedisServer

if len(sys.argv) < 4:
    raise SystemExit(__doc__)
BIN, INP, PLUG = sys.argv[1:4]
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 4
N = sum(1 for _ in open(INP))
srv = RedisServer()
db = srv.client()
pid = int(re.search(r'process_id:(\d+)', db('INFO', 'server')).group(1))


def redis_stat():
    f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return int(f[7]), (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


def worker(flush):
    db(*flush)
    time.sleep(0.2)  # an ASYNC flush frees in a background thread
    p = subprocess.run([BIN, 'publish', '--redis', srv.url, '--stream', 's', INP], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    m0, c0 = redis_stat()
    t0 = time.monotonic()
    w = subprocess.Popen([BIN, 'worker', '-p', PLUG, '--quiet', '--redis', srv.url, '--stream', 's',
                          '--group', 'g', '--out', 'o', '--consumer', 'c1', '--block-ms', '200'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while db('XLEN', 'o') < N:
        time.sleep(0.02)
        if time.monotonic() - t0 > 300:
            raise SystemExit('stuck')
    secs = time.monotonic() - t0
    m1, c1 = redis_stat()
    w.send_signal(signal.SIGTERM)
    w.wait()
    assert db('XLEN', 'o') == N and db('XPENDING', 's', 'g')[0] == 0
    return N / secs, (c1 - c0) * 1e6 / N, (m1 - m0) / N


def scan():
    t0 = time.monotonic()
    with open(os.devnull, 'w') as f:
        p = subprocess.run([BIN, 'scan', '-p', PLUG, '--quiet-console', '--no-progress', INP],
                           stdout=f, stderr=subprocess.DEVNULL)
    if p.returncode not in (0, 1):
        raise SystemExit('txscan scan exited %d' % p.returncode)
    return N / (time.monotonic() - t0)


res = {'scan': [], 'cold': [], 'warm': []}
try:
    for r in range(ROUNDS):
        res['scan'].append((scan(), 0, 0))
        res['cold'].append(worker(['FLUSHALL']))
        res['warm'].append(worker(['FLUSHALL', 'ASYNC']))
        print('round', r, {k: [round(x, 2) for x in v[-1]] for k, v in res.items()},
              'load', os.getloadavg()[0], flush=True)
finally:
    db.close()
    srv.close()
med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in res.items()}
out = {'scan_tx_per_s': round(med['scan'][0])}
for k in ('cold', 'warm'):
    out[k] = {'tx_per_s': round(med[k][0]), 'vs_scan': round(med[k][0] / med['scan'][0], 3),
              'vs_scan_by_round': [round(w[0] / s[0], 3) for w, s in zip(res[k], res['scan'])],
              'redis_cpu_us_per_entry': round(med[k][1], 1), 'redis_faults_per_entry': round(med[k][2], 3)}
print(json.dumps(out))
