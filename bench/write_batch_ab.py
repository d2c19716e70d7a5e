#!/usr/bin/env python3
"""Redis CPU per entry of the worker's WRITE_BATCH script alone, two versions of
src/stream/stream.c (BENCHMARKS.md section 32, issue 20). No worker and no plugins: the
script is read out of each stream.c, and 20,000 entries (already delivered to a group,
~20 per millisecond as `txscan publish` adds them) are written as reports of ~760 bytes,
64 per script, 4 scripts per round trip, as the worker sends them. The two versions
alternate, on a fresh database each time; Redis CPU is INFO cpu (user + sys).

    bench/write_batch_ab.py [--instructions] BEFORE/src/stream/stream.c AFTER/src/stream/stream.c [ROUNDS]

--instructions: Redis runs under callgrind (bench/redis_ir.py) and the figure is its
instructions per entry instead of its CPU time: the same in every round, whatever the load.

A stream.c whose script runs TYPE is called with one once-only key per entry (KEYS:
stream, then key and target per entry), any other with the buckets (KEYS: stream,
reports, dead letters, buckets of DONE_BUCKET_MS as that stream.c sets it): each entry's
bucket slot and field count among its arguments, or, for a script that takes its entries
in runs (section 35), one slot and count per run of entries of one bucket.
"""
import hashlib, os, re, statistics, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_test import RedisServer
from redis_ir import RedisUnderCallgrind

N, BATCH, PIPE = 20000, 64, 4


def script(path):
    s = open(path).read()
    body = s[s.index('static const char WRITE_BATCH[] ='):]
    body = body[:body.index(';\n')]
    width = re.search(r'DONE_BUCKET_MS = (\d+)', s)
    text = ''.join(re.findall(r'"((?:[^"\\]|\\.)*)"', body)).encode().decode('unicode_escape')
    return text, int(width.group(1)) if width else None


def calls(text, width, sha, ids, report):
    per_entry_keys = "'TYPE'" in text
    runs = 'for i = 1, k do' in text
    out = []
    for i in range(0, len(ids), BATCH):
        batch = ids[i:i + BATCH]
        digest = [hashlib.sha256(e.encode()).hexdigest()[:32] for e in batch]
        if per_entry_keys:
            keys = ['s'] + sum([['o:done:s:g:' + e, 'o'] for e in batch], [])
            argv = sum([[e, d, '0', '0x' + e, report % e] for e, d in zip(batch, digest)], [])
        else:
            bucket = [int(e.split('-')[0]) // width for e in batch]
            order = sorted(set(bucket))
            keys = ['s', 'o', 's:dead'] + ['o:done:s:g:%d' % b for b in order]
            if runs:
                argv = []
                for b in order:  # IDs ascend: one run per bucket
                    run = [(e, d) for e, d, x in zip(batch, digest, bucket) if x == b]
                    argv += [str(4 + order.index(b)), str(len(run))]
                    argv += sum([[e, d, '0x' + e, report % e] for e, d in run], [])
            else:
                argv = sum([[e, d, str(4 + order.index(b)), '0', '0x' + e, report % e]
                            for e, d, b in zip(batch, digest, bucket)], [])
        out.append(['EVALSHA', sha, len(keys)] + keys + ['g', '86400'] + argv)
    return out


def main():
    args = sys.argv[1:]
    if args and args[0] == '--instructions':
        with RedisUnderCallgrind() as counter:
            return measure(args[1:], counter)
    return measure(args, None)


def measure(args, counter):
    if len(args) < 2:
        raise SystemExit(__doc__)
    text = {'before': script(args[0]), 'after': script(args[1])}  # (script, bucket ms)
    rounds = int(args[2]) if len(args) > 2 else 5
    report = ('{"tx":"0x%s","verdict":"clean","complete":true,"ms":0.41,"findings":[],"plugins":['
              + ','.join('{"id":"plugin-%d","status":"ok","ms":0.05}' % i for i in range(7)) + ']}')
    report += ' ' * max(0, 760 - len(report))
    srv = RedisServer()
    db = srv.client()

    def cpu():
        i = db('INFO', 'cpu')
        return sum(float(re.search(r'%s:([\d.]+)' % k, i).group(1))
                   for k in ('used_cpu_user', 'used_cpu_sys'))

    def run(which):
        db('FLUSHALL')
        ms0 = int(time.time() * 1000)
        ids = ['%d-%d' % (ms0 + i // 20, i % 20) for i in range(N)]
        for i in range(0, N, 1000):
            db.pipeline([('XADD', 's', e, 'tx', '{}') for e in ids[i:i + 1000]])
        db('XGROUP', 'CREATE', 's', 'g', '0')
        db('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', N, 'STREAMS', 's', '>')
        cmds = calls(*text[which], db('SCRIPT', 'LOAD', text[which][0]), ids, report)
        c0 = cpu()
        if counter:
            counter.zero(srv)
        for i in range(0, len(cmds), PIPE):
            for r in db.pipeline(cmds[i:i + PIPE]):
                assert isinstance(r, list) and all(x == 1 for x in r), r
        us = counter.read(srv) / N if counter else (cpu() - c0) * 1e6 / N
        assert db('XLEN', 'o') == N and db('XPENDING', 's', 'g')[0] == 0
        return us

    res = {'before': [], 'after': []}
    try:
        for r in range(rounds):
            for k in (('before', 'after') if r % 2 == 0 else ('after', 'before')):
                res[k].append(run(k))
            print('round', r, {k: round(v[-1], 1) for k, v in res.items()},
                  'load', os.getloadavg()[0], flush=True)
    finally:
        db.close()
        srv.close()
    print('Redis instructions per entry, median:' if counter else 'Redis CPU us per entry, median:', {k: round(statistics.median(v), 1) for k, v in res.items()},
          'rounds:', {k: [round(x, 1) for x in v] for k, v in res.items()})


if __name__ == '__main__':
    main()
