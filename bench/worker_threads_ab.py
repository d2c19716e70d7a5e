#!/usr/bin/env python3
"""Interleaved A/B of two builds' `txscan worker`: CPU per entry by thread (BENCHMARKS.md
section 34). Per run: a fresh stream of BULK.jsonl, one worker with PLUGIN_DIR; once the
report stream is complete, each thread's run time so far (/proc/PID/task/*/schedstat, in
ns: start-up included, shutdown not) and the Redis server's CPU (INFO cpu), per entry:

    main     the worker's loop thread (Redis I/O, entries in, reports out, submissions)
    plugins  the plugins' engine threads (txs:*, not txs:watch)
    other    the rest (JavaScriptCore's JIT and GC threads, the watcher, ...)
    total    the whole worker process; redis: the Redis server

    bench/worker_threads_ab.py BEFORE/txscan AFTER/txscan BULK.jsonl PLUGIN_DIR [ROUNDS]

Thread CPU moves with the machine's load far less than wall rates do, and the loop thread
is what a change to src/stream/stream.c changes: compare the rounds in pairs.
"""
import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
from worker_test import RedisServer  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thread_cpu import threads  # noqa: E402

if len(sys.argv) < 5:
    raise SystemExit(__doc__)
BIN = {'before': sys.argv[1], 'after': sys.argv[2]}
INP, PLUG = sys.argv[3], sys.argv[4]
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 6
N = sum(1 for _ in open(INP))
srv = RedisServer()
db = srv.client()


def redis_cpu():
    i = db('INFO', 'cpu')
    return sum(float(re.search(r'%s:([\d.]+)' % k, i).group(1)) for k in ('used_cpu_user', 'used_cpu_sys'))


def run(binary):
    db('FLUSHALL')
    p = subprocess.run([binary, 'publish', '--redis', srv.url, '--stream', 's', INP],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    c0 = redis_cpu()
    t0 = time.monotonic()
    w = subprocess.Popen([binary, 'worker', '-p', PLUG, '--quiet', '--redis', srv.url, '--stream', 's',
                          '--group', 'g', '--out', 'o', '--consumer', 'c1', '--block-ms', '200'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while db('XLEN', 'o') < N:
        time.sleep(0.01)
        if time.monotonic() - t0 > 300:
            raise SystemExit('stuck')
    secs = time.monotonic() - t0
    th = threads(w.pid)
    c1 = redis_cpu()
    w.send_signal(signal.SIGTERM)
    w.wait()
    assert db('XLEN', 'o') == N and db('XPENDING', 's', 'g')[0] == 0 and db('XLEN', 's:dead') == 0
    d = {k: v / 1e3 / N for k, v in th.items()}
    d['total'] = sum(th.values()) / 1e3 / N
    d['redis'] = (c1 - c0) * 1e6 / N
    d['tx/s'] = N / secs
    return d


res = {'before': [], 'after': []}
try:
    for r in range(ROUNDS):
        for k in (('before', 'after') if r % 2 == 0 else ('after', 'before')):
            res[k].append(run(BIN[k]))
            print(r, k, ' '.join('%s=%.1f' % x for x in sorted(res[k][-1].items())),
                  'load %.1f' % os.getloadavg()[0], flush=True)
finally:
    db.close()
    srv.close()
for k in ('before', 'after'):
    print(k, 'median', ' '.join('%s=%.2f' % (x, statistics.median(d[x] for d in res[k]))
                                for x in sorted(res[k][0])))
for x in ('main', 'redis', 'total'):
    lower = sum(a[x] < b[x] for a, b in zip(res['after'], res['before']))
    print('%s: after lower in %d of %d rounds' % (x, lower, ROUNDS))
