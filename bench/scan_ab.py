#!/usr/bin/env python3
"""Interleaved A/B of `txscan scan` builds on the same transactions (BENCHMARKS.md section 29).

    bench/scan_ab.py [--rounds N] [--data FILE] [--ceiling] BIN:PLUGIN_DIR [BIN:PLUGIN_DIR ...]

Each round runs every BIN:PLUGIN_DIR pair once, in turn, and prints per pair the median wall
time and the median CPU (user + sys of the child) over the rounds, then each round's wall time.
--ceiling also runs, before each round, every plugin's raw JSC loop (bench/raw_jsc call, 2 s,
5,000 calls of warm-up) on the same data and prints each pair's rate against the ceiling
(cores / the sum of the plugins' raw times per transaction), as bench/run's scan_vs_ceiling.
Defaults: 3 rounds, build/bench-data/bulk-100k.jsonl (bench/run makes the bulk data).
"""
import json, os, resource, statistics, subprocess, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
args = sys.argv[1:]
rounds, data, ceiling, pairs = 3, os.path.join(ROOT, 'build/bench-data/bulk-100k.jsonl'), False, []
while args:
    a = args.pop(0)
    if a == '--rounds':
        rounds = int(args.pop(0))
    elif a == '--data':
        data = args.pop(0)
    elif a == '--ceiling':
        ceiling = True
    elif a in ('-h', '--help'):
        raise SystemExit(__doc__)
    else:
        pairs.append(a)
if not pairs or any(':' not in p for p in pairs):
    raise SystemExit(__doc__)
n = sum(1 for _ in open(data))
raw = os.path.join(ROOT, 'build/bench/raw_jsc')


def ceiling_per_s(plugin_dir):
    total = 0.0
    for d in sorted(os.listdir(plugin_dir)):
        path = os.path.join(plugin_dir, d)
        if not os.path.exists(os.path.join(path, 'plugin.json')):
            continue
        out = subprocess.run([raw, 'call', path, data, '--seconds', '2', '--warmup', '5000'],
                             capture_output=True, text=True, check=True).stdout
        total += json.loads(out)['us_per_call']
    return len(os.sched_getaffinity(0)) * 1e6 / total


res = {p: [] for p in pairs}
for r in range(rounds):
    ceil = ceiling_per_s(pairs[0].split(':', 1)[1]) if ceiling else None
    for p in pairs:
        binary, plugins = p.split(':', 1)
        t0, ru0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([binary, 'scan', '-p', plugins, '--quiet-console', '--no-progress', data],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall, ru = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = ru.ru_utime - ru0.ru_utime + ru.ru_stime - ru0.ru_stime
        res[p].append((wall, cpu, n / wall / ceil if ceil else None))
    print('round %d: %s%s, load %.1f' % (r, ', '.join('%.2f s' % res[p][-1][0] for p in pairs),
                                         ', ceiling %.0f tx/s' % ceil if ceil else '',
                                         os.getloadavg()[0]), flush=True)
for p in pairs:
    walls = [x[0] for x in res[p]]
    line = '%s: wall %.3f s, cpu %.3f s (%d transactions; rounds %s)' % (
        p, statistics.median(walls), statistics.median(x[1] for x in res[p]), n,
        ' / '.join('%.2f' % w for w in walls))
    if ceiling:
        line += ', vs ceiling %.3f' % statistics.median(x[2] for x in res[p])
    print(line)
