"""CPU time so far of a txscan process's threads, by kind (bench/worker_threads_ab.py,
bench/burst_feed.py): main (the process's first thread), plugins (the engine threads,
named txs:*, not txs:watch) and other (JavaScriptCore's JIT and GC threads, the watcher,
...). Linux /proc/PID/task/*/schedstat, in ns."""
import collections
import os


def threads(pid):
    """ns of CPU so far per kind of thread of process pid."""
    out = collections.Counter()
    for t in os.listdir('/proc/%d/task' % pid):
        try:
            comm = open('/proc/%d/task/%s/comm' % (pid, t)).read().strip()
            ns = int(open('/proc/%d/task/%s/schedstat' % (pid, t)).read().split()[0])
        except OSError:
            continue  # the thread ended meanwhile
        if int(t) == pid:
            out['main'] += ns
        elif comm.startswith('txs:') and comm != 'txs:watch':
            out['plugins'] += ns
        else:
            out['other'] += ns
    return out
