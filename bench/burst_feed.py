#!/usr/bin/env python3
"""`txscan scan` fed as fast as it reads, then in bursts of 64 lines at a set rate
(BENCHMARKS.md section 40): CPU per transaction by thread (/proc/PID/task/*/schedstat),
to show what the plugins' threads pay when their queues run dry between arrivals.

    bench/burst_feed.py TXSCAN BULK.jsonl PLUGIN_DIR [ROUNDS]

main: the reading thread; plugins: the engine threads (txs:*); other: the rest.
"""
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thread_cpu import threads  # noqa: E402

if len(sys.argv) < 4:
    raise SystemExit(__doc__)
TXSCAN, INP, PLUG = sys.argv[1:4]
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
LINES = open(INP, 'rb').readlines()
N = len(LINES)
CASES = (('full speed', 1000, 0), ('64 at 20,000/s', 64, 1 / 20000), ('64 at 15,000/s', 64, 1 / 15000))


def run(chunk, gap):
    with tempfile.NamedTemporaryFile('w+', suffix='.jsonl') as out:
        p = subprocess.Popen([TXSCAN, 'scan', '-p', PLUG, '--quiet-console', '--no-progress', '-'],
                             stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # plugins loaded
        t0 = time.monotonic()
        for i in range(0, N, chunk):
            p.stdin.write(b''.join(LINES[i:i + chunk]))
            p.stdin.flush()
            wait = t0 + (i + chunk) * gap - time.monotonic()
            if gap and wait > 0:
                time.sleep(wait)
        deadline = time.monotonic() + 120
        while sum(1 for _ in open(out.name)) < N * 0.995 and time.monotonic() < deadline:
            time.sleep(0.01)  # the last lines sit in stdio's buffer until exit
        time.sleep(0.05)
        th = threads(p.pid)  # before stdin closes: the threads are still there
        p.stdin.close()
        p.wait()
    return {k: v / 1e3 / N for k, v in th.items()}


res = collections.defaultdict(list)
for r in range(ROUNDS):
    for name, chunk, gap in CASES:
        d = run(chunk, gap)
        res[name].append(d)
        print(r, name, ' '.join('%s=%.1f' % x for x in sorted(d.items())), flush=True)
for name, _, _ in CASES:
    print('%-16s median us per tx:' % name,
          ' '.join('%s=%.2f' % (k, statistics.median(d[k] for d in res[name])) for k in sorted(res[name][0])))
