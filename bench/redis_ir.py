"""Redis's instructions, counted by callgrind: a steady measure of Redis's own work where
its CPU time moves with the machine's load (BENCHMARKS.md section 35). Used by
bench/write_batch_ab.py --instructions and bench/worker_redis_ir.py.

    with RedisUnderCallgrind() as counter:   # before RedisServer(): PATH gets a wrapper
        srv = RedisServer()
        counter.zero(srv)
        ...                                  # the work to count
        n = counter.read(srv)                # instructions since zero()

Redis runs ~50 times slower under callgrind: clients that wait on it see a slow server.
"""
import glob
import os
import shutil
import subprocess
import tempfile


class RedisUnderCallgrind:
    def __enter__(self):
        real = shutil.which('redis-server')
        if not real or not shutil.which('valgrind') or not shutil.which('callgrind_control'):
            raise SystemExit('needs redis-server, valgrind and callgrind_control on PATH')
        self.dir = tempfile.mkdtemp(prefix='txscan-callgrind-')
        wrapper = os.path.join(self.dir, 'redis-server')
        with open(wrapper, 'w') as f:
            f.write('#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%%p %s "$@"\n'
                    % (self.dir, real))
        os.chmod(wrapper, 0o755)
        self.path = os.environ['PATH']
        os.environ['PATH'] = self.dir + os.pathsep + self.path
        return self

    def __exit__(self, *exc):
        os.environ['PATH'] = self.path
        shutil.rmtree(self.dir, ignore_errors=True)

    def _dumps(self):
        return glob.glob(os.path.join(self.dir, 'cg.*.*'))

    def zero(self, srv):
        for f in self._dumps():
            os.unlink(f)
        subprocess.run(['callgrind_control', '-z', str(srv.proc.pid)], capture_output=True, check=True)

    def read(self, srv):
        """Instructions since zero() (a dump, which also zeroes the counters)."""
        subprocess.run(['callgrind_control', '-d', str(srv.proc.pid)], capture_output=True, check=True)
        with open(max(self._dumps(), key=os.path.getmtime)) as f:
            for line in f:
                if line.startswith(('totals:', 'summary:')):
                    return int(line.split()[1])
        raise RuntimeError('no totals in the callgrind dump')
