#!/usr/bin/env python3
"""Redis's instructions per entry (callgrind, bench/redis_ir.py) while one `txscan worker`
of each of two builds scans the same transactions (BENCHMARKS.md section 35): the whole
of Redis's work for the worker (reads, write scripts, replies), counted from before the
worker starts until the last report is in. A steady figure where Redis's CPU time moves
with the machine's load; but Redis is ~50 times slower under callgrind, so the worker's
batches are fuller than usual (fewer, larger round trips).

    bench/worker_redis_ir.py BEFORE/txscan AFTER/txscan BULK.jsonl PLUGIN_DIR [ROUNDS]
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_test import RedisServer  # noqa: E402
from redis_ir import RedisUnderCallgrind  # noqa: E402

if len(sys.argv) < 5:
    raise SystemExit(__doc__)
BIN = {'before': sys.argv[1], 'after': sys.argv[2]}
INP, PLUG = sys.argv[3], sys.argv[4]
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 1
N = sum(1 for _ in open(INP))

with RedisUnderCallgrind() as counter:
    srv = RedisServer()
    db = srv.client()

    def run(which):
        db('FLUSHALL')
        p = subprocess.run([BIN[which], 'publish', '--redis', srv.url, '--stream', 's', INP],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        counter.zero(srv)
        w = subprocess.Popen([BIN[which], 'worker', '-p', PLUG, '--quiet', '--redis', srv.url,
                              '--stream', 's', '--group', 'g', '--out', 'o', '--consumer', 'c1'],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while db('XLEN', 'o') < N:
            time.sleep(0.2)
            if time.monotonic() - t0 > 900:
                raise SystemExit('stuck')
        n = counter.read(srv)
        w.send_signal(signal.SIGTERM)
        w.wait()
        assert db('XLEN', 'o') == N and db('XPENDING', 's', 'g')[0] == 0
        return n / N

    res = {'before': [], 'after': []}
    try:
        for r in range(ROUNDS):
            for k in (('before', 'after') if r % 2 == 0 else ('after', 'before')):
                res[k].append(run(k))
            print('round', r, {k: round(v[-1]) for k, v in res.items()}, flush=True)
    finally:
        db.close()
        srv.close()
    print('Redis instructions per entry:', {k: [round(x) for x in v] for k, v in res.items()})
