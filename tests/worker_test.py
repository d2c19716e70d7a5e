#!/usr/bin/env python3
"""Integration tests for `txscan worker` and `txscan publish` (issue 6).

    python3 tests/worker_test.py BUILD/txscan SOURCE_DIR [unittest args]

Each test starts its own redis-server on a free loopback port (in a
temporary directory) and stops it. Python 3 standard library only: Redis is
spoken to through the tiny RESP client below.
"""
import hashlib
import http.client
import json
import os
import re
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
    def __init__(self, port, timeout=30, password=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = self.sock.makefile("rb")
        if password:
            self("AUTH", password)

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
    append-only file so the data survives restart(); password sets
    requirepass."""

    def __init__(self, persistent=False, password=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="txscan-redis-")
        self.persistent = persistent
        self.password = password
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", self.dir, "--logfile", os.path.join(self.dir, "log")]
        args += (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                 else ["--appendonly", "no"])
        args += ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                r = Redis(self.port, timeout=1, password=self.password)
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
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d" % (auth, self.port)

    def client(self):
        return Redis(self.port, password=self.password)


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
    """A worker on stream txs, group scanners, out reports unless extra
    overrides them (the last value of an option wins). redis=None leaves
    --redis out (TXSCAN_REDIS_URL in env, or the default)."""

    def __init__(self, server, name, logdir, *extra, plugins=None, redis="", env=None,
                 preexec=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "w")
        redis = server.url if redis == "" else redis
        args = [TXSCAN, "worker", "-p", plugins or PLUGINS]
        args += ["--redis", redis] if redis is not None else []
        args += ["--stream", "txs", "--group", "scanners", "--consumer", name,
                 "--out", "reports", "--block-ms", "200", *extra]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=preexec)

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


def stopped(w):
    """The counters of the worker's last worker_stopped log line."""
    lines = [o for o in json_lines(w.output()) if o.get("event") == "worker_stopped"]
    if not lines:
        raise AssertionError("no worker_stopped line:\n" + w.output()[-3000:])
    return lines[-1]


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


def metrics_port(w, timeout=30):
    """The port of w's --metrics-listen 127.0.0.1:0, from its log line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(r'"metrics_listen".*"url":"http://127\.0\.0\.1:(\d+)/metrics"', w.output())
        if m:
            return int(m.group(1))
        if w.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError("no metrics address from %s:\n%s" % (w.name, w.output()[-3000:]))


def worker_gauge(port, name, missing=AssertionError):
    """The value of an unlabelled sample on the worker's /metrics (missing
    when it has none, unless that is AssertionError)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    if not m and missing is AssertionError:
        raise AssertionError("no %s in:\n%s" % (name, text[-2000:]))
    if not m:
        return missing
    return float(m.group(1))


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


def entry_digest(flat):
    """The once-only identity of an entry with these fields (as the worker
    computes it): SHA-256 of "<len>:<bytes>," per name and value, 32 hex."""
    h = hashlib.sha256()
    for x in flat:
        b = x.encode()
        h.update(b"%d:%s," % (len(b), b))
    return h.hexdigest()[:32]


DONE_BUCKET_MS = 1000  # entry IDs per once-only bucket (stream.c)


def done_key(eid, stream="txs", group="scanners", out="reports"):
    """The once-only bucket that holds entry eid: a hash, field = the entry
    ID, value = the digests answered under it, separated by spaces."""
    return "%s:done:%s:%s:%d" % (out, stream, group, int(eid.split("-")[0]) // DONE_BUCKET_MS)


def done_digests(r, eid, **kw):
    """The digests (or "deleted") recorded for entry eid; [] when none."""
    v = r("HGET", done_key(eid, **kw), eid)
    return v.split(" ") if v else []


def pending_total(r):
    return r("XPENDING", "txs", "scanners")[0]


def pending_of(r, consumer):
    return len(r("XPENDING", "txs", "scanners", "-", "+", 100000, consumer))


# ---- tests ---------------------------------------------------------------------

class WorkerTest(unittest.TestCase):
    persistent = False
    password = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txscan-worker-test-")
        self.server = RedisServer(persistent=self.persistent, password=self.password)
        self.r = self.server.client()
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            if w.proc.poll() is None:
                w.kill()
        self.r.close()
        self.server.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_worker(self, name, *extra, **kw):
        w = Worker(self.server, name, self.tmp, *extra, **kw)
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
        # Every worker is reading before the entries come: two workers that
        # had started sooner took all 10,000 entries before a third one,
        # slower to start (process isolation), made its first read.
        ws = [self.start_worker("w%d" % i) for i in range(3)]
        wait_for("3 consumers", lambda: self.r("EXISTS", "txs") == 1 and
                 len(self.r("XINFO", "CONSUMERS", "txs", "scanners")) == 3, 60, ws)
        self.assertIn("published 10000 entries", self.publish_txs(txs))
        self.wait_reports(10000, 120, ws)
        self.stop_all()
        seen = self.assert_exactly_once([t["hash"] for t in txs])
        flagged = sum(json.loads(f["report"])["verdict"] == "high" for f in seen.values())
        self.assertEqual(flagged, 1000)
        self.assertTrue(all(json.loads(f["report"])["complete"] for f in seen.values()))
        self.assertEqual(self.r("XLEN", "txs:dead"), 0)
        # every worker took part (the consumer group shares the load)
        for w in ws:
            self.assertGreater(stopped(w)["written"], 0, w.output()[-3000:])


class TestReportKeys(WorkerTest):
    def test_reports_keep_their_tx_whatever_they_hold(self):
        # The worker re-parsed each report with jansson for its "tx": a
        # finding whose metadata held 1e20 (an integer past 64 bits) made it
        # refuse the report, and the report entry lost its key.
        plugins = os.path.join(self.tmp, "plugins")
        d = os.path.join(plugins, "big-number")
        os.makedirs(d)
        with open(os.path.join(d, "plugin.json"), "w") as f:
            f.write('{"id": "big-number", "version": "1.0.0", "main": "index.js"}')
        with open(os.path.join(d, "index.js"), "w") as f:
            f.write("module.exports = { scanTransaction() {\n"
                    "  return {code: 'BIG', severity: 'low', message: 'm', metadata: {n: 1e20}}; } };")
        txs = [tx(i) for i in range(5)]
        self.publish_txs(txs)
        w = self.start_worker("w0", plugins=plugins)
        self.wait_reports(5, 60, [w])
        self.stop_all()
        seen = self.assert_exactly_once([t["hash"] for t in txs])
        self.assertTrue(all(json.loads(f["report"])["verdict"] == "low" for f in seen.values()))


class TestKill9(WorkerTest):
    def test_killed_worker_entries_are_claimed(self):
        # scans slow enough that the run outlasts the freeze-and-look below
        # (at spin 200,000 the three workers once finished all 10,000 entries
        # first, and the victim held none when it was frozen)
        txs = [tx(i, spin=2000000) for i in range(10000)]
        self.publish_txs(txs)
        opts = ("--claim-idle-ms", "1000", "--max-in-flight", "64", "--batch", "32")
        ws = [self.start_worker("w%d" % i, *opts) for i in range(3)]
        self.wait_reports(2000, 120, ws)
        victim = ws[0]
        # freeze it first, so it is killed holding entries (between two
        # batches it may briefly hold none, and under load, in process
        # isolation, it may still be starting its engines: a run of 200
        # tries, ~4 s, once found it holding none each time); bounded
        # What it held is read while it is frozen: once killed, the others
        # may claim its entries at once (idle past --claim-idle-ms already,
        # when its scans are slow), and a count read after the kill was 0.
        deadline, held = time.monotonic() + 60, 0
        while time.monotonic() < deadline:
            victim.proc.send_signal(signal.SIGSTOP)
            held = pending_of(self.r, victim.name)
            if held > 0:
                break
            victim.proc.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        self.assertGreater(held, 0, "the worker held no entries when frozen: nothing to claim")
        victim.kill()
        self.wait_reports(10000, 150, ws[1:])
        wait_for("the killed worker's entries to be claimed",
                 lambda: pending_of(self.r, victim.name) == 0, 30)
        self.stop_all()
        self.assert_exactly_once([t["hash"] for t in txs])
        claimed = "".join(w.output() for w in ws[1:])
        self.assertIn("claimed", claimed)


class TestSigterm(WorkerTest):
    def test_sigterm_finishes_in_flight(self):
        # slow enough scans that the stop comes well before the 3,000th
        txs = [tx(i, spin=2000000) for i in range(3000)]
        self.publish_txs(txs)
        w = self.start_worker("solo", "--max-in-flight", "64")
        self.wait_reports(300, 60, [w])
        self.assertEqual(w.stop(), 0, w.output())
        self.assertEqual(pending_of(self.r, "solo"), 0, "in-flight entries not acked")
        done = self.r("XLEN", "reports")
        self.assertLess(done, 3000, "stopped too late to test anything")
        self.assertEqual(stopped(w)["written"], done, w.output()[-3000:])
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
        r("HSET", done_key(dup), dup, entry_digest(["tx", json.dumps(tx(900002))]))
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
        self.assertEqual(stopped(w)["duplicates"], 1, w.output()[-3000:])

    def test_one_write_batch_mixes_reports_duplicates_and_dead_letters(self):
        """One WRITE_BATCH script call answers many entries: a duplicate or a
        dead letter in the middle must not shift, skip or mis-ack the others.
        The script is flushed before the entries arrive, so the first write
        fails (NOSCRIPT) and the worker reconnects: meanwhile every scan comes
        back, and the retry writes them all in one batch."""
        r = self.r
        w = self.start_worker("batch", "--claim-idle-ms", "60000")
        # the consumer exists once the worker has loaded its script and
        # claimed (XAUTOCLAIM comes first): a flush now is not undone
        wait_for("the worker's first read", lambda: r("EXISTS", "txs") == 1 and
                 r("XINFO", "CONSUMERS", "txs", "scanners") != [], 30, [w])
        time.sleep(0.3)  # its XREADGROUP is blocked: the entries come in one read
        r("SCRIPT", "FLUSH")
        good = [json.dumps(tx(800000 + i)) for i in range(4)]
        entries = [("1-1", "tx", good[0]), ("1-2", "tx", "not json"),
                   ("1-3", "tx", good[1]), ("1-4", "payload", "{}"),
                   ("1-5", "tx", good[2]), ("1-6", "tx", good[3])]
        done = done_key("1-1")  # every entry of this test is in bucket 0
        other = entry_digest(["tx", "other"])
        r.pipeline([("MULTI",)] + [("XADD", "txs", eid, f, v) for eid, f, v in entries] + [
            # 1-3 was answered before (same content); 1-5's ID was used by
            # other content (the stream was refilled): it is owed a report
            ("HSET", done, "1-3", entry_digest(["tx", good[1]])),
            ("HSET", done, "1-5", other),
            ("EXEC",)])
        wait_for("every entry acked", lambda: r("XLEN", "reports") >= 3 and
                 r("XLEN", "txs:dead") >= 2 and pending_total(r) == 0, 60, [w])
        time.sleep(0.5)  # nothing more may arrive
        self.stop_all()
        reports = {f["entry"]: f for _, f in xrange_all(r, "reports")}
        self.assertEqual(set(reports), {"1-1", "1-5", "1-6"})
        for eid, t in (("1-1", good[0]), ("1-5", good[2]), ("1-6", good[3])):
            h = json.loads(t)["hash"]
            self.assertEqual(reports[eid]["tx"], h)
            self.assertEqual(json.loads(reports[eid]["report"])["tx"], h)
        dead = {f["entry"]: f for _, f in xrange_all(r, "txs:dead")}
        self.assertEqual(set(dead), {"1-2", "1-4"})
        self.assertIn("not a valid transaction", dead["1-2"]["reason"])
        self.assertEqual(dead["1-2"]["tx"], "not json")
        self.assertIn("no field 'tx'", dead["1-4"]["reason"])
        self.assertGreater(r("TTL", done), 0)
        for eid, f, v in entries:
            want = [entry_digest([f, v])]
            self.assertEqual(done_digests(r, eid), [other] + want if eid == "1-5" else want, eid)
        self.assertEqual(pending_total(r), 0)
        s = stopped(w)
        self.assertEqual((s["written"], s["duplicates"], s["dead"]), (3, 1, 2), w.output()[-3000:])
        self.assertIn("NOSCRIPT", w.output())


class TestReadBehindWrites(WorkerTest):
    def test_entries_read_behind_a_failed_write_are_scanned(self):
        """The next XREADGROUP goes out behind a flush's write scripts, in
        the same round trip. When a script fails (NOSCRIPT: the scripts
        are flushed again and again under load), Redis has still run that
        read: its entries must be taken and reported after the reconnect,
        not left pending for a claim (--claim-idle-ms 60000 here: far past
        this test's wait)."""
        r = self.r
        txs = [tx(i, spin=2000) for i in range(20000)]
        self.assertIn("published 20000 entries", self.publish_txs(txs))
        w = self.start_worker("behind", "--claim-idle-ms", "60000")
        wait_for("the first reports", lambda: r("EXISTS", "reports") == 1, 60, [w])
        failures = 0
        while r("XLEN", "reports") < 15000 and failures < 30:
            r("SCRIPT", "FLUSH")
            failures += 1
            time.sleep(0.05)
        self.wait_reports(20000, 40, [w])
        self.stop_all()
        self.assertIn("NOSCRIPT", w.output())
        self.assert_exactly_once([t["hash"] for t in txs])


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
        self.assertGreater(sum(stopped(w)["reconnects"] for w in ws), 0)

def redis_major(r):
    info = r("INFO", "server")
    for line in info.splitlines():
        if line.startswith("redis_version:"):
            return int(line.split(":")[1].split(".")[0])
    return 0


def group_done(r, stream, group):
    """True when group has delivered every entry of stream and acked it."""
    last = r("XREVRANGE", stream, "+", "-", "COUNT", 1)
    for g in r("XINFO", "GROUPS", stream):
        g = fields(g)
        if g["name"] == group:
            return (g["pending"] == 0 and bool(last)
                    and g["last-delivered-id"] == last[0][0])
    return False


class TestOnceOnlyKeys(WorkerTest):
    """The once-only key names the input stream and the group, so pipelines
    that share one --out do not suppress each other's reports."""

    def test_two_groups_on_one_stream_share_one_out(self):
        txs = [tx(i) for i in range(50)]
        self.publish_txs(txs)
        ids = [eid for eid, _ in xrange_all(self.r, "txs")]
        for group in ("g1", "g2"):  # one after the other: g2 meets g1's keys
            w = self.start_worker(group, "--group", group)
            wait_for("group %s to finish" % group,
                     lambda: group_done(self.r, "txs", group), 60, [w])
            self.assertEqual(w.stop(), 0, w.output())
        reports = xrange_all(self.r, "reports")
        self.assertEqual(len(reports), 100, "a group's reports were suppressed")
        per_entry = {}
        for _, f in reports:
            per_entry[f["entry"]] = per_entry.get(f["entry"], 0) + 1
        self.assertEqual(per_entry, {eid: 2 for eid in ids})
        self.assertEqual(stopped(self.workers[1])["written"], 50)
        for group in ("g1", "g2"):
            ttl = self.r("TTL", done_key(ids[0], group=group))
            self.assertGreater(ttl, 86000, "once-only key of group %s" % group)
            self.assertEqual(len(done_digests(self.r, ids[0], group=group)), 1)
        self.assertEqual(self.r("EXISTS", "reports:done:" + ids[0]), 0)

    def test_two_streams_share_one_out(self):
        # the same entry IDs in both streams
        for stream in ("a", "b"):
            for i in (1, 2):
                t = tx(i, hash="%s-%d" % (stream, i))
                self.r("XADD", stream, "%d-1" % i, "tx", json.dumps(t))
        ws = [self.start_worker("w" + s, "--stream", s) for s in ("a", "b")]
        wait_for("both streams", lambda: group_done(self.r, "a", "scanners")
                 and group_done(self.r, "b", "scanners"), 60, ws)
        self.stop_all()
        got = sorted((f["entry"], f["tx"]) for _, f in xrange_all(self.r, "reports"))
        self.assertEqual(got, [("1-1", "a-1"), ("1-1", "b-1"), ("2-1", "a-2"), ("2-1", "b-2")])
        self.assertEqual(sorted(self.r("KEYS", "reports:done:*")),
                         ["reports:done:a:scanners:0", "reports:done:b:scanners:0"])
        for s in ("a", "b"):
            self.assertEqual(sorted(self.r("HKEYS", "reports:done:%s:scanners:0" % s)),
                             ["1-1", "2-1"])


class TestOnceOnlyBuckets(WorkerTest):
    """The once-only keys are buckets of DONE_BUCKET_MS of entry IDs: one
    hash each, field = entry ID, value = its digests; the TTL is set on
    the bucket and renewed by each write into it."""

    def test_bucket_layout_and_ttl(self):
        r = self.r
        # IDs across three buckets, and across them within one batch
        ids = ["1-1", "999-0", "999-7", "1000-0", "1999-3", "2000-0", "2000-1"]
        r.pipeline([("XADD", "txs", eid, "tx", json.dumps(tx(i))) for i, eid in enumerate(ids)]
                   + [("XADD", "txs", "2001-0", "tx", "not json")])
        w = self.start_worker("solo", "--done-ttl-s", "500")
        wait_for("every entry acked", lambda: group_done(r, "txs", "scanners"), 30, [w])
        self.stop_all()
        self.assertEqual(r("XLEN", "reports"), len(ids))
        self.assertEqual(r("XLEN", "txs:dead"), 1)
        keys = ["reports:done:txs:scanners:%d" % b for b in (0, 1, 2)]
        self.assertEqual(sorted(r("KEYS", "*:done:*")), keys)
        for key in keys:
            ttl = r("TTL", key)
            self.assertTrue(0 < ttl <= 500, (key, ttl))
        got = {}
        for key in keys:
            got.update(fields(r("HGETALL", key)))
        want = {eid: entry_digest(["tx", json.dumps(tx(i))]) for i, eid in enumerate(ids)}
        want["2001-0"] = entry_digest(["tx", "not json"])
        self.assertEqual(got, want)

    def test_busy_bucket_is_a_hash_table_from_its_first_batch(self):
        """A batch that writes 16 entries or more into a bucket makes it a
        hash table at once (a 65-byte value leads the HSET, then the field
        gets its real value in the same command): a listpack of up to
        hash-max-listpack-entries fields would be scanned by every HMGET and
        HSET field. Nothing of it shows in the bucket's fields and values.
        A bucket written by a few entries stays a listpack."""
        r = self.r
        busy = ["5000-%d" % i for i in range(400)]
        r.pipeline([("XADD", "txs", eid, "tx", json.dumps(tx(i))) for i, eid in enumerate(busy)]
                   + [("XADD", "txs", "9000-0", "tx", json.dumps(tx(1000)))])
        w = self.start_worker("solo")
        wait_for("every entry acked", lambda: group_done(r, "txs", "scanners"), 60, [w])
        self.stop_all()
        self.assertEqual(r("XLEN", "reports"), len(busy) + 1)
        self.assertEqual(r("OBJECT", "ENCODING", done_key("5000-0")), "hashtable")
        self.assertIn(r("OBJECT", "ENCODING", done_key("9000-0")), ("listpack", "ziplist"))
        want = {eid: entry_digest(["tx", json.dumps(tx(i))]) for i, eid in enumerate(busy)}
        self.assertEqual(fields(r("HGETALL", done_key("5000-0"))), want)
        self.assertEqual(fields(r("HGETALL", done_key("9000-0"))),
                         {"9000-0": entry_digest(["tx", json.dumps(tx(1000))])})

    def test_ttl_is_renewed_by_each_write_into_the_bucket(self):
        r = self.r
        key = done_key("5-0")
        r("XADD", "txs", "5-0", "tx", json.dumps(tx(1)))
        w = self.start_worker("solo", "--done-ttl-s", "1000")
        wait_for("the first entry acked", lambda: group_done(r, "txs", "scanners"), 30, [w])
        r("EXPIRE", key, 20)  # as if it had been written 980 s ago
        r("XADD", "txs", "6-0", "tx", json.dumps(tx(2)))  # same bucket
        wait_for("the second entry acked", lambda: group_done(r, "txs", "scanners"), 30, [w])
        self.stop_all()
        self.assertGreater(r("TTL", key), 900)
        self.assertEqual(sorted(r("HKEYS", key)), ["5-0", "6-0"])

    def test_redelivered_entries_get_no_second_report(self):
        """Every entry delivered again after its report was written (here:
        the group rewound, so one read brings them all back in batches)."""
        r = self.r
        txs = [tx(i) for i in range(300)]
        self.publish_txs(txs)
        w = self.start_worker("solo")
        wait_for("every entry acked", lambda: group_done(r, "txs", "scanners"), 60, [w])
        first = {f["entry"] for _, f in xrange_all(r, "reports")}
        r("XGROUP", "SETID", "txs", "scanners", "0")
        time.sleep(0.5)
        wait_for("every entry acked again", lambda: group_done(r, "txs", "scanners"), 60, [w])
        time.sleep(0.5)  # nothing more may arrive
        self.stop_all()
        self.assert_exactly_once([t["hash"] for t in txs])
        self.assertEqual({f["entry"] for _, f in xrange_all(r, "reports")}, first)
        s = stopped(w)
        self.assertEqual((s["written"], s["duplicates"]), (300, 300), w.output()[-3000:])
        self.assertEqual(len(r("KEYS", "*:done:*")),
                         len({done_key(eid) for eid in first}))

    def test_reused_id_with_new_content_is_reported(self):
        r = self.r
        for i in (1, 2, 3):
            r("XADD", "txs", "7000-%d" % i, "tx", json.dumps(tx(i)))
        w = self.start_worker("solo")
        wait_for("3 reports", lambda: group_done(r, "txs", "scanners"), 30, [w])
        r("DEL", "txs")  # refilled with the same IDs: 7000-2 and 7000-4 are new
        for i, n in ((1, 1), (2, 22), (3, 3), (4, 4)):
            r("XADD", "txs", "7000-%d" % i, "tx", json.dumps(tx(n)))
        wait_for("every entry acked", lambda: r("EXISTS", "txs") and
                 group_done(r, "txs", "scanners"), 30, [w])
        time.sleep(0.5)  # nothing more may arrive
        self.stop_all()
        got = sorted((f["entry"], f["tx"]) for _, f in xrange_all(r, "reports"))
        self.assertEqual(got, sorted([("7000-%d" % i, tx(i)["hash"]) for i in (1, 2, 3)] +
                                     [("7000-2", tx(22)["hash"]), ("7000-4", tx(4)["hash"])]))
        s = stopped(w)
        self.assertEqual((s["written"], s["duplicates"]), (5, 2), w.output()[-3000:])
        d = lambda n: entry_digest(["tx", json.dumps(tx(n))])
        self.assertEqual(done_digests(r, "7000-2"), [d(2), d(22)])
        self.assertEqual(done_digests(r, "7000-1"), [d(1)])

    def test_failed_write_keeps_the_entries_written_before_it(self):
        """A script is not rolled back: when one XADD of a batch fails, the
        entries written before it in the batch are marked all the same, so
        the retry acks them without writing them twice."""
        r = self.r
        w = self.start_worker("batch", "--claim-idle-ms", "60000")
        wait_for("the worker's first read", lambda: r("EXISTS", "txs") == 1 and
                 r("XINFO", "CONSUMERS", "txs", "scanners") != [], 30, [w])
        time.sleep(0.3)  # its XREADGROUP is blocked: the entries come in one read
        # Both targets are not streams at first, so every write fails until
        # the three entries are in one batch (dead letters first, queued
        # when read; the report once scanned, which in process isolation
        # under load took longer than the first retry: waiting for a
        # NOSCRIPT retry alone let the dead letters go in a batch of their
        # own). Then the dead letters' target is fixed, not the report's: in
        # that batch the dead letters are written and the report's XADD fails.
        r.pipeline([("MULTI",), ("SET", "reports", "not a stream"), ("SET", "txs:dead", "not either"),
                    ("XADD", "txs", "1-1", "tx", "not json"),
                    ("XADD", "txs", "1-2", "payload", "{}"),
                    ("XADD", "txs", "1-3", "tx", json.dumps(tx(1))), ("EXEC",)])
        wait_for("a failed write of all three entries in one batch",
                 lambda: re.search(r"writing entries 1-[12]\.\.1-3 to their targets: WRONGTYPE",
                                   w.output()), 60, [w])
        r("DEL", "txs:dead")
        wait_for("the dead letters written by the batch whose report failed",
                 lambda: r("EXISTS", "txs:dead") and r("XLEN", "txs:dead") == 2, 30, [w])
        r("DEL", "reports")
        wait_for("every entry acked", lambda: r("EXISTS", "reports") and
                 pending_total(r) == 0, 30, [w])
        time.sleep(0.5)
        self.stop_all()
        self.assertEqual(sorted(f["entry"] for _, f in xrange_all(r, "txs:dead")), ["1-1", "1-2"])
        self.assertEqual([f["entry"] for _, f in xrange_all(r, "reports")], ["1-3"])
        # the dead letters' script failed: their retry counts them as duplicates
        s = stopped(w)
        self.assertEqual((s["written"], s["dead"], s["duplicates"]), (1, 0, 2),
                         w.output()[-3000:])


class TestDeletedPending(WorkerTest):
    def test_claimed_entry_deleted_from_stream_is_dead_lettered(self):
        r = self.r
        if redis_major(r) < 7:
            self.skipTest("XAUTOCLAIM reports deleted entries from Redis 7 on")
        r("XGROUP", "CREATE", "txs", "scanners", "0", "MKSTREAM")
        ids = [r("XADD", "txs", "*", "tx", json.dumps(tx(i))) for i in range(3)]
        r("XREADGROUP", "GROUP", "scanners", "ghost", "COUNT", 3, "STREAMS", "txs", ">")
        r("XDEL", "txs", ids[1])  # pending on ghost, gone from the stream
        w = self.start_worker("solo", "--claim-idle-ms", "200")
        wait_for("2 reports and a dead letter",
                 lambda: r("XLEN", "reports") >= 2 and r("XLEN", "txs:dead") >= 1
                 and pending_total(r) == 0, 30, [w])
        time.sleep(0.5)  # nothing more may arrive
        self.stop_all()
        self.assertEqual(sorted(f["entry"] for _, f in xrange_all(r, "reports")),
                         [ids[0], ids[2]])
        dead = xrange_all(r, "txs:dead")
        self.assertEqual(len(dead), 1)
        f = dead[0][1]
        self.assertEqual(f["entry"], ids[1])
        self.assertIn("deleted from stream txs before it was scanned", f["reason"])
        self.assertIn(ids[1], f["reason"])
        self.assertEqual(f["consumer"], "solo")
        self.assertNotIn("tx", f)
        self.assertEqual(done_digests(r, ids[1]), ["deleted"])
        out = w.output()
        self.assertIn("dead letter %s" % ids[1], out)
        self.assertIn("deleted from the stream", out)
        self.assertEqual(stopped(w)["dead"], 1, out[-3000:])


class TestEntryIdentity(WorkerTest):
    """Issue 22 items 1 and 4: a new entry that reuses an old ID is not a
    redelivery; field names are compared with their lengths."""

    def test_reused_ids_after_del_are_reported(self):
        r = self.r
        for i in (1, 2):
            r("XADD", "txs", "1000-%d" % i, "tx", json.dumps(tx(i)))
        w = self.start_worker("solo")
        wait_for("2 reports", lambda: r("XLEN", "reports") >= 2 and pending_total(r) == 0,
                 30, [w])
        r("DEL", "txs")  # the group goes with it; the worker re-creates it at 0
        for i in (1, 2, 3):
            r("XADD", "txs", "1000-%d" % i, "tx", json.dumps(tx(100 + i)))
        wait_for("5 reports", lambda: r("XLEN", "reports") >= 5, 30, [w])
        wait_for("nothing pending", lambda: pending_total(r) == 0, 30, [w])
        time.sleep(0.5)  # nothing more may arrive
        self.stop_all()
        got = sorted((f["entry"], f["tx"]) for _, f in xrange_all(r, "reports"))
        want = sorted([("1000-%d" % i, tx(i)["hash"]) for i in (1, 2)] +
                      [("1000-%d" % i, tx(100 + i)["hash"]) for i in (1, 2, 3)])
        self.assertEqual(got, want)
        self.assertEqual(r("XLEN", "txs:dead"), 0)
        self.assertEqual(stopped(w)["duplicates"], 0, w.output()[-3000:])
        # both incarnations of 1000-1 are remembered under its field
        self.assertEqual(done_digests(r, "1000-1"),
                         [entry_digest(["tx", json.dumps(tx(i))]) for i in (1, 101)])

    def test_field_names_compare_lengths(self):
        r = self.r
        only_nul = r("XADD", "txs", "*", "tx\0zz", json.dumps(tx(1)))
        nul_then_tx = r("XADD", "txs", "*", "tx\0zz", "not json", "tx", json.dumps(tx(2)))
        two_tx = r("XADD", "txs", "*", "tx", json.dumps(tx(3)), "tx", "not json")
        w = self.start_worker("solo")
        wait_for("2 reports and a dead letter",
                 lambda: r("XLEN", "reports") >= 2 and r("XLEN", "txs:dead") >= 1
                 and pending_total(r) == 0, 30, [w])
        time.sleep(0.3)
        self.stop_all()
        dead = xrange_all(r, "txs:dead")
        self.assertEqual([f["entry"] for _, f in dead], [only_nul])
        self.assertIn("has no field 'tx'", dead[0][1]["reason"])
        self.assertNotIn("tx", dead[0][1])
        got = {f["entry"]: f["tx"] for _, f in xrange_all(r, "reports")}
        # the real "tx", and of two "tx" fields the first
        self.assertEqual(got, {nul_then_tx: tx(2)["hash"], two_tx: tx(3)["hash"]})


class TestPacedWindow(WorkerTest):
    """A plugin slower than the worker reads (4 ms a scan, inside its 50 ms
    timeout): the entries must wait in Redis, not in the plugin's queue past
    the host's scan deadline (300 ms here). With a fixed 256 in flight, most
    of its scans timed out queued or met a full queue."""

    def test_slow_plugin_gets_every_scan(self):
        txs = [tx(i, ms=4) for i in range(300)]
        self.publish_txs(txs)
        paced = os.path.join(os.path.dirname(PLUGINS), "paced")
        w = self.start_worker("solo", "--metrics-listen", "127.0.0.1:0", plugins=paced)
        port = metrics_port(w)
        windows = []
        def done():
            windows.append(worker_gauge(port, "txscan_worker_window", None))
            return self.r("XLEN", "reports") >= len(txs)
        wait_for("%d reports" % len(txs), done, 60, [w])
        self.stop_all()
        seen = self.assert_exactly_once([t["hash"] for t in txs])
        bad = [p for f in seen.values() for p in json.loads(f["report"])["plugins"]
               if p["status"] != "ok"]
        self.assertEqual(bad, [], "%d scans not ok, first: %s" % (len(bad), bad[:1]))
        self.assertEqual(stopped(w)["retried"], 0)
        # 4 ms a scan: ~25 entries in a third of the deadline, not 1024
        self.assertLess(min(windows), 128, windows)
        self.assertLessEqual(max(windows), 1024, windows)

    def test_scans_turning_slow(self):
        """300 scans of 1 ms open the window to ~75, then 60 of 30 ms (inside
        the 50 ms timeout, with room for a busy machine's run-queue waits,
        of which the engine forgives only what passes a quarter of the
        timeout): those already queued expire. They must not be sent back
        all at once behind each other, nor wait behind the expired scans,
        which the executor skips: 72 of 360 were reported timeout (with 40
        ms scans)."""
        txs = [tx(i, ms=1) for i in range(300)] + [tx(300 + i, ms=30) for i in range(60)]
        self.publish_txs(txs)
        paced = os.path.join(os.path.dirname(PLUGINS), "paced")
        w = self.start_worker("solo", plugins=paced)
        self.wait_reports(len(txs), 120, [w])
        self.stop_all()
        seen = self.assert_exactly_once([t["hash"] for t in txs])
        bad = [p for f in seen.values() for p in json.loads(f["report"])["plugins"]
               if p["status"] != "ok"]
        # an engine process too: the parent tells it which scans expired
        # (12 of 360 not ok while it ran every scan it was sent)
        self.assertEqual(bad, [], "%d scans not ok, first: %s" % (len(bad), bad[:1]))

    def test_max_in_flight_is_at_most_a_queue(self):
        out = subprocess.run([TXSCAN, "worker", "--max-in-flight", "1025", "-p", PLUGINS],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 64, out.stderr)  # a usage error
        self.assertIn("--max-in-flight: 1025 is more than 1024", out.stderr)


class TestStall(WorkerTest):
    """Issue 22 item 2: a stall of the whole process (SIGSTOP) shorter than
    --claim-idle-ms must not turn the scans it held into incomplete reports."""

    def test_sigstop_does_not_expire_scans(self):
        txs = [tx(i, spin=2000000) for i in range(200)]
        self.publish_txs(txs)
        w = self.start_worker("solo", "--claim-idle-ms", "5000", "--max-in-flight", "8",
                              "--batch", "4")
        self.wait_reports(20, 60, [w])
        w.proc.send_signal(signal.SIGSTOP)
        try:
            held = pending_of(self.r, "solo")
            time.sleep(3)
        finally:
            w.proc.send_signal(signal.SIGCONT)
        self.assertGreater(held, 0, "stopped holding nothing")
        self.wait_reports(200, 120, [w])
        self.stop_all()
        seen = self.assert_exactly_once([t["hash"] for t in txs])
        parts = [p for f in seen.values() for p in json.loads(f["report"])["plugins"]
                 if p["status"] != "ok"]
        queued = [p for p in parts if "queued behind other scans" in p.get("error", "")]
        self.assertEqual(queued, [], "%d scans expired while queued" % len(queued))
        # The scan running when the process stopped is still charged with the
        # stall by the engine's and the executor's wall clocks (see the
        # report of issue 22): at most one per plugin instance.
        self.assertLessEqual(len(parts), 1, parts)


def allow_core_dumps():
    """preexec_fn: core dumps on, so a crash is a signal and a core file."""
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


class TestGroupDestroyed(WorkerTest):
    """Issue 22: XGROUP DESTROY under load, several times; then SIGTERM.
    The workers re-create the group (at 0: everything is delivered again and
    acked as a duplicate where it was reported), and stop cleanly: exit 0,
    never a signal (SIGABRT was seen once)."""

    def test_group_destroyed_under_load(self):
        r = self.r
        txs = [tx(i, spin=300000) for i in range(1500)]
        self.publish_txs(txs)
        opts = ("--claim-idle-ms", "1000", "--max-in-flight", "32", "--batch", "16")
        ws = [Worker(self.server, "w%d" % i, self.tmp, *opts, preexec=allow_core_dumps)
              for i in range(2)]
        self.workers += ws
        self.wait_reports(100, 60, ws)
        for _ in range(int(os.environ.get("TXS_DESTROY_ROUNDS", "4"))):
            r("XGROUP", "DESTROY", "txs", "scanners")
            time.sleep(0.6)
            for w in ws:
                self.assertIsNone(w.proc.poll(), w.output()[-3000:])
        self.wait_reports(1500, 60, ws)
        wait_for("every entry acked", lambda: group_done(r, "txs", "scanners"), 60, ws)
        for w in ws:
            w.proc.send_signal(signal.SIGTERM)
        for w in ws:
            rc = w.proc.wait(timeout=30)
            w.log.close()
            self.assertEqual(rc, 0, "worker %s exited %s:\n%s" % (w.name, rc, w.output()[-3000:]))
            self.assertIn("NOGROUP", w.output())
        self.assert_exactly_once([t["hash"] for t in txs])


def json_lines(text):
    """The JSON objects among the lines of text."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


class TestFailureLog(WorkerTest):
    """A plugin's failed scan is a plugin_failure log line naming the entry's
    tx; its console lines carry it too (docs/logging.md)."""

    def test_failure_logged_with_tx(self):
        plugins = os.path.join(self.tmp, "plugins", "thrower")
        os.makedirs(plugins)
        with open(os.path.join(plugins, "plugin.json"), "w") as f:
            json.dump({"id": "thrower", "version": "3.0.0", "main": "index.js"}, f)
        with open(os.path.join(plugins, "index.js"), "w") as f:
            f.write("module.exports = { scanTransaction(tx) { console.log('at ' + tx.hash);"
                    " if (tx.flag) throw new Error('worker boom'); return null; } };")
        w = self.start_worker("solo", plugins=os.path.dirname(plugins))
        self.publish_txs([tx(i) for i in range(1, 11)])  # tx(10) is flagged
        self.wait_reports(10, 60, self.workers)

        def logged():
            return [o for o in json_lines(w.output()) if o.get("event") == "plugin_failure"]
        wait_for("the failure line", logged, 30, self.workers)
        self.stop_all()
        fails = logged()
        self.assertEqual([(e["plugin"], e["version"], e["status"], e["tx"], e["error"])
                          for e in fails],
                         [("thrower", "3.0.0", "error", tx(10)["hash"], "Error: worker boom")])
        self.assertNotIn("line", fails[0])
        cons = [o for o in json_lines(w.output()) if o.get("event") == "console"]
        self.assertEqual(sorted(o["tx"] for o in cons), sorted(tx(i)["hash"] for i in range(1, 11)))
        for o in cons:
            self.assertEqual(o["message"], "at " + o["tx"])


class TestSighup(WorkerTest):
    def write_plugin(self, version, code):
        with open(os.path.join(self.plugin, "plugin.json"), "w") as f:
            json.dump({"id": "worker-flag", "version": version, "main": "index.js",
                       "timeout_ms": 200}, f)
        with open(os.path.join(self.plugin, "index.js"), "w") as f:
            f.write(code)

    def scan_one(self, i):
        """Adds one flagged tx and returns the codes of its report's findings."""
        eid = self.r("XADD", "txs", "*", "tx", json.dumps(tx(i, flag=True)))
        found = {}

        def reported():
            for _, f in xrange_all(self.r, "reports"):
                if f["entry"] == eid:
                    found["r"] = json.loads(f["report"])
            return "r" in found
        wait_for("the report of %s" % eid, reported, 30, self.workers)
        return [x["code"] for x in found["r"]["findings"]]

    def reload_logged(self, w, n):
        """Sends SIGHUP and returns the n-th reload log line once it is there."""
        w.proc.send_signal(signal.SIGHUP)
        lines = []

        def logged():
            lines[:] = [o for o in json_lines(w.output()) if o.get("event") == "reload"]
            return len(lines) >= n
        wait_for("reload log line %d" % n, logged, 30, [w])
        return lines[n - 1]

    def test_sighup_reloads_plugins(self):
        root = os.path.join(self.tmp, "plugins")
        self.plugin = os.path.join(root, "flag")
        shutil.copytree(os.path.join(PLUGINS, "flag"), self.plugin)
        w = self.start_worker("solo", plugins=root)
        self.assertEqual(self.scan_one(1), ["FLAGGED"])

        self.write_plugin("2.0.0", "module.exports = { scanTransaction(tx) {\n"
                          "  return { code: 'RELOADED', severity: 'low', message: 'v2' };\n"
                          "} };\n")
        line = self.reload_logged(w, 1)
        self.assertTrue(line["ok"], line)
        self.assertEqual(line["source"], "sighup")
        self.assertEqual(line["level"], "info")
        self.assertEqual(line["versions"], {"worker-flag": "2.0.0"})
        self.assertEqual(self.scan_one(2), ["RELOADED"])

        # canary: new code that does not load keeps the old code running
        self.write_plugin("3.0.0", "module.exports = { scanTransaction(tx) {\n")
        line = self.reload_logged(w, 2)
        self.assertFalse(line["ok"], line)
        self.assertEqual(line["level"], "error")
        self.assertIn("error", line)
        self.assertEqual(line["versions"], {"worker-flag": "2.0.0"})
        self.assertIsNone(w.proc.poll(), "SIGHUP stopped the worker")
        self.assertEqual(self.scan_one(3), ["RELOADED"])
        self.assertEqual(w.stop(), 0, w.output())
        self.assertEqual(pending_total(self.r), 0)

    def test_usage_mentions_sighup(self):
        out = subprocess.run([TXSCAN, "worker", "--help"], capture_output=True, text=True)
        self.assertIn("SIGHUP", out.stdout)


class TestPublishPipe(WorkerTest):
    def test_slow_pipe_is_not_held_back(self):
        before = int(fields_of_info(self.r("INFO", "clients"))["connected_clients"])
        p = subprocess.Popen([TXSCAN, "publish", "--redis", self.server.url, "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            wait_for("publish to connect",
                     lambda: int(fields_of_info(self.r("INFO", "clients"))
                                 ["connected_clients"]) > before, 10)
            for n in (1, 2):  # a line, then silence with the pipe open
                p.stdin.write(json.dumps(tx(n)) + "\n")
                p.stdin.flush()
                wait_for("entry %d in the stream" % n, lambda: self.r("XLEN", "txs") == n, 1.0)
            out, err = p.communicate(timeout=30)  # closes stdin: end of input
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("published 2 entries", out)
        self.assertEqual([json.loads(f["tx"])["hash"] for _, f in xrange_all(self.r, "txs")],
                         [tx(1)["hash"], tx(2)["hash"]])

    def test_fast_input_without_final_newline(self):
        path = os.path.join(self.tmp, "in.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(json.dumps(tx(i)) for i in range(2500)))  # no final \n
        self.assertIn("published 2500 entries", publish(self.server, path))
        got = [json.loads(f["tx"])["hash"] for _, f in xrange_all(self.r, "txs")]
        self.assertEqual(got, [tx(i)["hash"] for i in range(2500)])


class TestPublishFailures(WorkerTest):
    """Issue 22 item 3: publish counts what Redis confirmed, survives a
    killed connection, and names where to resume after a refusal."""

    def start_publish(self, path, *extra):
        return subprocess.Popen([TXSCAN, "publish", "--redis", self.server.url, *extra, path],
                                stdin=subprocess.PIPE if path == "-" else None,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def assert_each_line_once(self, lines):
        got = [f["tx"] for _, f in xrange_all(self.r, "txs")]
        self.assertEqual(len(got), len(lines), "entries in the stream")
        self.assertEqual(got, lines)

    def test_killed_connection_is_resumed_without_loss_or_duplicates(self):
        lines = [json.dumps(tx(i)) for i in range(30000)]
        p = self.start_publish("-")
        try:
            # fed through a pipe, so publish is surely connected when its
            # connection is killed, and likely in the middle of a pipeline
            kills = 0
            for k in range(10):
                p.stdin.write("".join(l + "\n" for l in lines[k * 3000:(k + 1) * 3000]))
                p.stdin.flush()
                if k in (2, 6):
                    kills += self.r("CLIENT", "KILL", "TYPE", "normal")  # not this one
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(kills, 2, "publish was not connected when killed")
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("published 30000 entries", out)
        self.assertRegex(err, r"lines? \d+.* (had been added before the connection was lost"
                         r"|sent again)")
        self.assert_each_line_once(lines)

    def test_unresolvable_lines_are_named(self):
        # a user without CLIENT: after a lost connection publish cannot make
        # sure the old one is gone, so it names the lines it is unsure of
        self.r("ACL", "SETUSER", "pub", "on", ">pw", "~*", "&*", "+@all", "-client")
        url = "redis://pub:pw@127.0.0.1:%d" % self.server.port
        lines = [json.dumps(tx(i)) for i in range(10000)]
        path = os.path.join(self.tmp, "in.jsonl")
        write_jsonl(path, lines)
        p = subprocess.Popen([TXSCAN, "publish", "--redis", url, "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            p.stdin.write("".join(l + "\n" for l in lines[:5000]))
            p.stdin.flush()
            kills = self.r("CLIENT", "KILL", "USER", "pub")
            try:
                p.stdin.write("".join(l + "\n" for l in lines[5000:]))
                p.stdin.close()
            except BrokenPipeError:
                pass
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(kills, 1)
        self.assertEqual(p.returncode, 2, err)
        m = re.search(r"lines (\d+)-(\d+) \(\d+ lines\) may or may not be in the stream", err)
        self.assertTrue(m, err)
        first, last = int(m.group(1)), int(m.group(2))
        self.assertIn("resume with --from-line %d" % (last + 1), err)
        got = [f["tx"] for _, f in xrange_all(self.r, "txs")]
        self.assertIn("published %d entries" % (first - 1), out)
        # everything before the uncertain lines, then some of them, in order
        self.assertEqual(got[:first - 1], lines[:first - 1])
        self.assertEqual(got[first - 1:], lines[first - 1:first - 1 + len(got) - (first - 1)])
        self.assertLessEqual(len(got), last)
        out = subprocess.run([TXSCAN, "publish", "--redis", self.server.url, "--from-line",
                              str(last + 1), path], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = [f["tx"] for _, f in xrange_all(self.r, "txs")]
        self.assertEqual(got[-(10000 - last):], lines[last:])

    def test_refused_line_names_where_to_resume(self):
        path = os.path.join(self.tmp, "in.jsonl")
        lines = [json.dumps(tx(i)) for i in range(20000)]
        text = lines[0] + "\n\n" + "".join(l + "\n" for l in lines[1:])  # line 2 is empty
        with open(path, "w") as f:
            f.write(text)
        half = text.index(lines[10000])
        p = self.start_publish("-")
        try:
            p.stdin.write(text[:half])
            p.stdin.flush()
            wait_for("10000 entries", lambda: self.r("XLEN", "txs") == 10000, 60)
            self.r("CONFIG", "SET", "maxmemory", "1")  # noeviction: XADD answers OOM
            try:
                p.stdin.write(text[half:])
                p.stdin.close()
            except BrokenPipeError:
                pass  # it stopped at the first refusal
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.r("CONFIG", "SET", "maxmemory", "0")
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("published 10000 entries", out)
        self.assertIn("line 10002: XADD txs: OOM", err)
        self.assertIn("resume with --from-line 10002", err)
        self.assertEqual(self.r("XLEN", "txs"), 10000)
        out = subprocess.run([TXSCAN, "publish", "--redis", self.server.url, "--from-line",
                              "10002", path], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("published 10000 entries", out.stdout)
        self.assert_each_line_once(lines)


def fields_of_info(text):
    return dict(l.split(":", 1) for l in text.splitlines() if ":" in l)


class TestRedisUrlFromEnvironment(WorkerTest):
    password = "s3cret-pw"

    def env(self, url):
        e = dict(os.environ)
        e.pop("TXSCAN_REDIS_URL", None)
        if url is not None:
            e["TXSCAN_REDIS_URL"] = url
        return e

    def run_publish(self, args, url):
        return subprocess.run([TXSCAN, "publish", *args], capture_output=True, text=True,
                              timeout=60, env=self.env(url))

    def test_publish_and_worker_read_the_url_from_the_environment(self):
        path = os.path.join(self.tmp, "in.jsonl")
        txs = [tx(i) for i in range(20)]
        write_jsonl(path, txs)
        out = self.run_publish([path], self.server.url)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("published 20 entries", out.stdout)
        # --redis wins over the environment
        out = self.run_publish(["--redis", self.server.url, path], "redis://127.0.0.1:1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.r("XLEN", "txs"), 40)

        w = self.start_worker("env", redis=None, env=self.env(self.server.url))
        self.wait_reports(40, 60, [w])
        with open("/proc/%d/cmdline" % w.proc.pid, "rb") as f:
            self.assertNotIn(self.password.encode(), f.read())
        self.stop_all()
        self.assertEqual(pending_total(self.r), 0)

    def test_bad_url_in_the_environment(self):
        out = self.run_publish(["-"], "http://nope")
        self.assertEqual(out.returncode, 64)
        self.assertIn("TXSCAN_REDIS_URL", out.stderr)
        out = subprocess.run([TXSCAN, "worker", "-p", PLUGINS], capture_output=True, text=True,
                             timeout=30, env=self.env("redis://127.0.0.1:99999"))
        self.assertEqual(out.returncode, 64)
        self.assertIn("TXSCAN_REDIS_URL", out.stderr)
        for cmd in ("worker", "publish"):
            out = subprocess.run([TXSCAN, cmd, "--help"], capture_output=True, text=True)
            self.assertIn("TXSCAN_REDIS_URL", out.stdout, cmd)
        # a wrong password in the environment: refused, named, not retried
        url = "redis://:wrong@127.0.0.1:%d" % self.server.port
        out = self.run_publish([os.devnull], url)
        self.assertEqual(out.returncode, 2)
        self.assertIn("AUTH", out.stderr)


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
