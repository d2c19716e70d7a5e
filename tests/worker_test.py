#!/usr/bin/env python3
"""Integration tests for `txscan worker` and `txscan publish` (issue 6).

    python3 tests/worker_test.py BUILD/txscan SOURCE_DIR [unittest args]

Each test starts its own redis-server on a free loopback port (in a
temporary directory) and stops it. Python 3 standard library only: Redis is
spoken to through the tiny RESP client below.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

TXSCAN = None
SOURCE = None
PLUGINS = None  # tests/plugins/worker: one fast plugin, tx.spin slows it


# ---- a minimal RESP client ---------------------------------------------------

class RedisError(Exception):
    pass


class Redis:
    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = self.sock.makefile("rb")

    def close(self):
        self.buf.close()
        self.sock.close()

    def __call__(self, *args):
        return self.pipeline([args])[0]

    def pipeline(self, commands):
        out = bytearray()
        for args in commands:
            out += b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        replies = [self._read() for _ in commands]
        for r in replies:
            if isinstance(r, RedisError):
                raise r
        return replies

    def _read(self):
        line = self.buf.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.buf.read(n + 2)
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError("bad RESP reply %r" % line)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on a free loopback port; persistent=True keeps an
    append-only file so the data survives restart()."""

    def __init__(self, persistent=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="txscan-redis-")
        self.persistent = persistent
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", self.dir, "--logfile", os.path.join(self.dir, "log")]
        args += (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                 else ["--appendonly", "no"])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                r = Redis(self.port, timeout=1)
                try:
                    if r("PING") == "PONG":
                        return
                finally:
                    r.close()
            except (OSError, ConnectionError, RedisError):  # refused, or LOADING
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start on port %d" % self.port)

    def stop(self):
        """SIGTERM: redis flushes its append-only file and exits."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def client(self):
        return Redis(self.port)


# ---- helpers -----------------------------------------------------------------

def tx(i, **extra):
    t = {"hash": "0x%064x" % i, "from": "0x%040x" % (i * 7), "to": "0x%040x" % (i * 13),
         "value": hex(i), "flag": i % 10 == 0}
    t.update(extra)
    return t


def write_jsonl(path, txs):
    with open(path, "w") as f:
        for t in txs:
            f.write((t if isinstance(t, str) else json.dumps(t)) + "\n")


def publish(server, path, stream="txs"):
    out = subprocess.run([TXSCAN, "publish", "--redis", server.url, "--stream", stream, path],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError("publish failed: %s" % out.stderr)
    return out.stdout


class Worker:
    def __init__(self, server, name, logdir, *extra):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "w")
        args = [TXSCAN, "worker", "-p", PLUGINS, "--redis", server.url, "--stream", "txs",
                "--group", "scanners", "--consumer", name, "--out", "reports",
                "--block-ms", "200", *extra]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def output(self):
        with open(self.log_path) as f:
            return f.read()


def wait_for(what, predicate, timeout, workers=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError("worker %s exited (%s) while waiting for %s:\n%s"
                                     % (w.name, w.proc.returncode, what, w.output()[-3000:]))
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def fields(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def xrange_all(r, stream):
    """Every entry of stream as (id, {field: value})."""
    out, start = [], "-"
    while True:
        chunk = r("XRANGE", stream, start, "+", "COUNT", 5000)
        if start != "-":
            chunk = chunk[1:]
        if not chunk:
            return out
        out += [(e[0], fields(e[1])) for e in chunk]
        start = chunk[-1][0]


def pending_total(r):
    return r("XPENDING", "txs", "scanners")[0]


def pending_of(r, consumer):
    return len(r("XPENDING", "txs", "scanners", "-", "+", 100000, consumer))


# ---- tests ---------------------------------------------------------------------

class WorkerTest(unittest.TestCase):
    persistent = False

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txscan-worker-test-")
        self.server = RedisServer(persistent=self.persistent)
        self.r = self.server.client()
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            if w.proc.poll() is None:
                w.kill()
        self.r.close()
        self.server.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_worker(self, name, *extra):
        w = Worker(self.server, name, self.tmp, *extra)
        self.workers.append(w)
        return w

    def publish_txs(self, txs):
        path = os.path.join(self.tmp, "in.jsonl")
        write_jsonl(path, txs)
        return publish(self.server, path)

    def wait_reports(self, n, timeout, workers=()):
        wait_for("%d reports" % n, lambda: self.r("XLEN", "reports") >= n, timeout, workers)

    def assert_exactly_once(self, expected_hashes):
        """Every input entry has exactly one report, with its own hash."""
        inputs = {eid: json.loads(f["tx"])["hash"] for eid, f in xrange_all(self.r, "txs")}
        reports = xrange_all(self.r, "reports")
        seen = {}
        for _, f in reports:
            self.assertNotIn(f["entry"], seen, "two reports for entry %s" % f["entry"])
            seen[f["entry"]] = f
        self.assertEqual(set(seen), set(inputs), "reports do not match input entries")
        for eid, f in seen.items():
            self.assertEqual(f["tx"], inputs[eid])
            self.assertEqual(json.loads(f["report"])["tx"], inputs[eid])
        self.assertEqual(sorted(inputs.values()), sorted(expected_hashes))
        self.assertEqual(pending_total(self.r), 0, "entries left pending")
        return seen

    def stop_all(self):
        for w in self.workers:
            if w.proc.poll() is None:
                self.assertEqual(w.stop(), 0, "worker %s:\n%s" % (w.name, w.output()[-3000:]))
        if os.environ.get("TXS_TEST_VERBOSE"):
            for w in self.workers:
                sys.stderr.write("--- %s\n%s" % (w.name, w.output()))


class TestCli(WorkerTest):
    def test_usage(self):
        out = subprocess.run([TXSCAN, "worker", "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertIn("--claim-idle-ms", out.stdout)
        out = subprocess.run([TXSCAN, "publish", "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        for bad in (["worker", "--batch", "0"], ["worker", "--nope"], ["worker", "--stream"],
                    ["worker", "--out", "txs"], ["publish"],
                    ["worker", "--redis", "http://x", "-p", PLUGINS]):
            out = subprocess.run([TXSCAN, *bad], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(out.returncode, 0, bad)
            self.assertIn("txscan", out.stderr, bad)

    def test_publish_counts_and_keeps_lines(self):
        path = os.path.join(self.tmp, "in.jsonl")
        with open(path, "w") as f:
            f.write('{"hash":"0x1"}\n\n{"hash":"0x2"}\r\nnot json\n')
        self.assertIn("published 3 entries", publish(self.server, path))
        got = [f["tx"] for _, f in xrange_all(self.r, "txs")]
        self.assertEqual(got, ['{"hash":"0x1"}', '{"hash":"0x2"}', "not json"])


class TestThreeWorkers(WorkerTest):
    def test_10000_through_3_workers(self):
        txs = [tx(i) for i in range(10000)]
        self.assertIn("published 10000 entries", self.publish_txs(txs))
        ws = [self.start_worker("w%d" % i) for i in range(3)]
        self.wait_reports(10000, 120, ws)
        self.stop_all()
        seen = self.assert_exactly_once([t["hash"] for t in txs])
        flagged = sum(json.loads(f["report"])["verdict"] == "high" for f in seen.values())
        self.assertEqual(flagged, 1000)
        self.assertTrue(all(json.loads(f["report"])["complete"] for f in seen.values()))
        self.assertEqual(self.r("XLEN", "txs:dead"), 0)
        # every worker took part (the consumer group shares the load)
        for w in ws:
            self.assertRegex(w.output(), r"[1-9]\d* reports written")


class TestKill9(WorkerTest):
    def test_killed_worker_entries_are_claimed(self):
        txs = [tx(i, spin=200000) for i in range(10000)]
        self.publish_txs(txs)
        opts = ("--claim-idle-ms", "1000", "--max-in-flight", "64", "--batch", "32")
        ws = [self.start_worker("w%d" % i, *opts) for i in range(3)]
        self.wait_reports(2000, 120, ws)
        victim = ws[0]
        victim.kill()
        held = pending_of(self.r, victim.name)
        self.assertGreater(held, 0, "the killed worker held no entries: nothing to claim")
        self.wait_reports(10000, 150, ws[1:])
        wait_for("the killed worker's entries to be claimed",
                 lambda: pending_of(self.r, victim.name) == 0, 30)
        self.stop_all()
        self.assert_exactly_once([t["hash"] for t in txs])
        claimed = "".join(w.output() for w in ws[1:])
        self.assertIn("claimed", claimed)


class TestSigterm(WorkerTest):
    def test_sigterm_finishes_in_flight(self):
        txs = [tx(i, spin=200000) for i in range(3000)]
        self.publish_txs(txs)
        w = self.start_worker("solo", "--max-in-flight", "64")
        self.wait_reports(300, 60, [w])
        self.assertEqual(w.stop(), 0, w.output())
        self.assertEqual(pending_of(self.r, "solo"), 0, "in-flight entries not acked")
        done = self.r("XLEN", "reports")
        self.assertLess(done, 3000, "stopped too late to test anything")
        self.assertRegex(w.output(), r"%d reports written" % done)
        w2 = self.start_worker("second")
        self.wait_reports(3000, 60, [w2])
        self.stop_all()
        self.assert_exactly_once([t["hash"] for t in txs])


class TestPoison(WorkerTest):
    def test_poison_and_redelivery(self):
        r = self.r
        r("XGROUP", "CREATE", "txs", "scanners", "0", "MKSTREAM")
        # Two entries held by a consumer that then dies ("ghost"):
        # `worn` has already been delivered 10 times; `dup`'s report was
        # already written (its idempotence key exists) but never acked.
        worn = r("XADD", "txs", "*", "tx", json.dumps(tx(900001)))
        dup = r("XADD", "txs", "*", "tx", json.dumps(tx(900002)))
        r("XREADGROUP", "GROUP", "scanners", "ghost", "COUNT", 2, "STREAMS", "txs", ">")
        r("XCLAIM", "txs", "scanners", "ghost", 0, worn, "RETRYCOUNT", 10)
        r("SET", "reports:done:" + dup, "1", "EX", 600)
        good = [tx(i) for i in range(100)]
        bad = {
            r("XADD", "txs", "*", "tx", "not json"): ("invalid JSON", "not json"),
            r("XADD", "txs", "*", "tx", "[1,2]"): ("object", "[1,2]"),
            r("XADD", "txs", "*", "tx", "42"): ("object", "42"),
            r("XADD", "txs", "*", "tx", ""): ("empty", ""),
            r("XADD", "txs", "*", "payload", "{}"): ("no field 'tx'", None),
            worn: ("delivered 11 times", json.dumps(tx(900001))),
        }
        r.pipeline([("XADD", "txs", "*", "tx", json.dumps(t)) for t in good])
        w = self.start_worker("solo", "--claim-idle-ms", "300", "--max-deliveries", "3")
        wait_for("dead letters and reports",
                 lambda: r("XLEN", "txs:dead") >= len(bad) and r("XLEN", "reports") >= 100
                 and pending_total(r) == 0, 60, [w])
        time.sleep(0.5)  # nothing more may arrive
        self.stop_all()
        dead = {f["entry"]: f for _, f in xrange_all(r, "txs:dead")}
        self.assertEqual(set(dead), set(bad))
        for eid, (reason, raw) in bad.items():
            self.assertIn(reason, dead[eid]["reason"])
            self.assertIn(eid, dead[eid]["reason"])
            self.assertEqual(dead[eid]["consumer"], "solo")
            self.assertEqual(dead[eid].get("tx"), raw)
        self.assertIn("error", json.loads(dead[next(iter(bad))]["report"]))
        reports = {f["entry"] for _, f in xrange_all(r, "reports")}
        self.assertEqual(len(reports), 100)
        self.assertNotIn(dup, reports, "second delivery wrote a second report")
        self.assertFalse(reports & set(bad))
        self.assertEqual(pending_total(r), 0)
        self.assertIn("1 duplicate deliveries acked", w.output())


class TestRedisRestart(WorkerTest):
    persistent = True

    def test_workers_survive_redis_restart(self):
        txs = [tx(i, spin=100000) for i in range(10000)]
        self.publish_txs(txs)
        opts = ("--claim-idle-ms", "1000", "--max-in-flight", "64")
        ws = [self.start_worker("w%d" % i, *opts) for i in range(2)]
        self.wait_reports(2000, 120, ws)
        self.r.close()
        self.server.stop()
        time.sleep(1.0)  # the workers see refused connections and back off
        self.server.start()
        self.r = self.server.client()
        self.assertGreaterEqual(self.r("XLEN", "reports"), 2000, "the stream did not survive")
        self.wait_reports(10000, 150, ws)
        wait_for("no pending entries", lambda: pending_total(self.r) == 0, 30, ws)
        self.stop_all()
        self.assert_exactly_once([t["hash"] for t in txs])
        self.assertRegex("".join(w.output() for w in ws), r"[1-9]\d* reconnects")


def main():
    global TXSCAN, SOURCE, PLUGINS
    if len(sys.argv) < 3:
        sys.exit("usage: worker_test.py TXSCAN SOURCE_DIR [unittest args]")
    TXSCAN = os.path.abspath(sys.argv[1])
    SOURCE = os.path.abspath(sys.argv[2])
    PLUGINS = os.path.join(SOURCE, "tests", "plugins", "worker")
    if not shutil.which("redis-server"):
        print("redis-server not found: skipping")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)


if __name__ == "__main__":
    main()
