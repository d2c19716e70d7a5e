#!/usr/bin/env python3
"""Interleaved A/B of one `txscan worker` (two builds) by CPU per entry, Redis on loopback
(issue 20). Per pair (the order alternates): a fresh stream, the worker until every report is
written; then, per entry, the CPU of the worker's main (loop) thread and of the whole process
(/proc/PID/task/*/schedstat, read just before SIGTERM), the Redis server's (INFO cpu), and the
wall rate. On a shared machine the wall rates swing with other load; the main thread's CPU
(what the worker itself spends outside the plugins) is the steadiest figure.

    bench/worker_cpu_ab.py A/txscan B/txscan BULK.jsonl PLUGIN_DIR [PAIRS]

WFLAGS_A / WFLAGS_B: extra worker flags for A / B (e.g. WFLAGS_B="--max-in-flight 512").
"""
import os, re, signal, statistics, subprocess, sys, time, collections
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
from worker_test import RedisServer
if len(sys.argv) < 5:
    raise SystemExit(__doc__)
A, B, INP, PLUG = sys.argv[1:5]
PAIRS = int(sys.argv[5]) if len(sys.argv) > 5 else 4
N = sum(1 for _ in open(INP))
srv = RedisServer()
db = srv.client()


def redis_cpu():
    i = db('INFO', 'cpu')
    return sum(float(re.search(k + r':([\d.]+)', i).group(1)) for k in ('used_cpu_user', 'used_cpu_sys'))


def threads(pid):
    """{tid: ns on CPU} of every thread of pid now."""
    out = {}
    for t in os.listdir('/proc/%d/task' % pid):
        try:
            out[t] = int(open('/proc/%d/task/%s/schedstat' % (pid, t)).read().split()[0])
        except OSError:
            pass
    return out


def run(binary, flags):
    db('FLUSHALL')
    p = subprocess.run([binary, 'publish', '--redis', srv.url, '--stream', 's', INP],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    c0, t0 = redis_cpu(), time.monotonic()
    w = subprocess.Popen([binary, 'worker', '-p', PLUG, '--quiet', '--redis', srv.url, '--stream', 's',
                          '--group', 'g', '--out', 'o', '--consumer', 'c1', '--block-ms', '200'] + flags,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = {}
    try:
        while db('XLEN', 'o') < N:
            time.sleep(0.01)
            seen.update(threads(w.pid))  # a thread that ends early keeps its last figure
            if time.monotonic() - t0 > 300:
                raise SystemExit('stuck')
        secs = time.monotonic() - t0
        c1 = redis_cpu()
        seen.update(threads(w.pid))
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait()
    assert db('XPENDING', 's', 'g')[0] == 0
    return {'main': seen[str(w.pid)] / 1e3 / N, 'process': sum(seen.values()) / 1e3 / N,
            'redis': (c1 - c0) * 1e6 / N, 'rate': N / secs}


res = collections.defaultdict(list)
try:
    for r in range(PAIRS):
        for name in (('A', 'B') if r % 2 == 0 else ('B', 'A')):
            d = run(A if name == 'A' else B, os.environ.get('WFLAGS_' + name, '').split())
            res[name].append(d)
            print(name, ' '.join('%s=%.1f' % kv for kv in d.items()), 'load=%.1f' % os.getloadavg()[0],
                  flush=True)
finally:
    db.close()
    srv.close()
for name in ('A', 'B'):
    print(name, 'median', ' '.join('%s=%.1f' % (k, statistics.median(d[k] for d in res[name]))
                                   for k in ('main', 'process', 'redis', 'rate')))
faster = sum(b['rate'] > a['rate'] for a, b in zip(res['A'], res['B']))
print('B faster in %d of %d pairs' % (faster, len(res['B'])))
