#!/usr/bin/env python3
"""Integration tests for what operators see (issue 18): findings, verdict
and process metrics on serve's /metrics and on `txscan worker
--metrics-listen` (against a real redis-server), both through `promtool
check metrics`; the label cap of a plugin that invents codes; usage errors
(exit 64, naming the option); environment variables; the progress line
under a pseudo-terminal; plugin folders added and removed by SIGHUP.

usage: ops_test.py TXSCAN_BINARY PROJECT_DIR

Python 3 standard library only. Servers listen on port 0 and the tests read
the bound port from their start lines; every wait is bounded; everything
started is stopped.
"""
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
import threading
import time
import unittest

TXSCAN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/txscan"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "."
EXAMPLES = os.path.join(ROOT, "examples", "plugins")
SAMPLE = os.path.join(ROOT, "examples", "transactions", "sample.jsonl")
PROMTOOL = shutil.which("promtool")


def sample_lines(n=None):
    with open(SAMPLE) as f:
        lines = [l for l in f if l.strip()]
    return lines[:n] if n else lines


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_plugin(parent, pid, body, extra=None):
    d = os.path.join(parent, pid)
    os.makedirs(d, exist_ok=True)
    manifest = {"id": pid, "version": "1.0.0", "main": "index.js"}
    manifest.update(extra or {})
    with open(os.path.join(d, "plugin.json"), "w") as f:
        json.dump(manifest, f)
    with open(os.path.join(d, "index.js"), "w") as f:
        f.write(body)
    return d


# A plugin that invents a code per transaction: tx.n picks it.
INVENTOR = """module.exports = { scanTransaction(tx) {
  return { code: 'CODE_' + tx.n, severity: 'low', message: 'invented' }; } };"""
# Always one finding with a fixed code.
FIXED = """module.exports = { scanTransaction(tx) {
  return { code: 'ALWAYS', severity: 'high', message: 'always' }; } };"""


class Proc:
    """A txscan process whose stderr lines a thread collects."""

    def __init__(self, args, env=None, cwd=ROOT):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([TXSCAN, *args], cwd=cwd, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_line(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = pred(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(min(left, 0.2))

    def text(self):
        with self.cond:
            return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(10)
        self.proc.stderr.close()
        return self.proc.returncode


def start_serve(*args, env=None):
    p = Proc(["serve", "--listen", "127.0.0.1:0", *args], env=env)

    def started(line):
        try:
            e = json.loads(line)
        except ValueError:
            return None
        return e if e.get("event") == "start" else None
    e = p.wait_line(started, 60)
    if not e:
        p.stop()
        raise RuntimeError("serve did not start:\n" + p.text())
    p.port = int(e["listen"].rsplit(":", 1)[1])
    return p


def request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def scan(port, tx):
    body = tx if isinstance(tx, str) else json.dumps(tx)
    return request(port, "POST", "/v1/scan", body, {"Content-Type": "application/json"})


def samples(text, name):
    """{labels string: value} of every sample of metric `name`."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def metrics_when(port, pred, timeout=30):
    """/metrics once pred(text) holds: its plugin figures come from a
    snapshot that may be up to a second old on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = request(port, "GET", "/metrics")
        if status == 200 and (pred(body.decode()) or time.monotonic() > deadline):
            return body.decode(), body
        time.sleep(0.1)


class MetricsMixin:
    def promtool(self, body):
        if not PROMTOOL:
            self.skipTest("promtool not installed (scripts/setup.sh installs prometheus)")
        out = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def check_process_collector(self, text):
        for name in ("process_resident_memory_bytes", "process_virtual_memory_bytes",
                     "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
                     "process_start_time_seconds"):
            v = samples(text, name)
            self.assertEqual(list(v), [""], name)
            self.assertGreater(v[""], 0, name)
        start = samples(text, "process_start_time_seconds")[""]
        self.assertLess(abs(start - time.time()), 600)
        self.assertGreater(samples(text, "process_resident_memory_bytes")[""], 1 << 20)


class ServeMetrics(unittest.TestCase, MetricsMixin):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="txs-ops-")
        write_plugin(cls.tmp, "inventor", INVENTOR)
        write_plugin(cls.tmp, "fixed", FIXED)
        cls.srv = start_serve("-p", cls.tmp, "-p", EXAMPLES)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_findings_verdicts_process(self):
        n = 100  # more codes than the cap of 64 per plugin
        for i in range(n):
            status, body = scan(self.srv.port, {"hash": "0x%x" % i, "n": i})
            self.assertEqual(status, 200, body)
        text, body = metrics_when(self.srv.port, lambda t: sum(
            samples(t, "txscan_reports_total").values()) >= n)
        found = samples(text, "txscan_findings_total")
        inv = {k: v for k, v in found.items() if 'plugin="inventor"' in k}
        self.assertEqual(len(inv), 64, "one series per code, up to the cap")
        self.assertEqual(sum(inv.values()), 64)
        over = samples(text, "txscan_findings_overflow_total")
        self.assertEqual(over, {'{plugin="inventor",severity="low"}': n - 64})
        self.assertEqual(found['{plugin="fixed",code="ALWAYS",severity="high"}'], n)
        verdicts = samples(text, "txscan_reports_total")
        self.assertEqual(len(verdicts), 6)
        self.assertEqual(sum(verdicts.values()), n)
        self.assertEqual(verdicts['{verdict="none"}'], 0)
        self.assertEqual(samples(text, "txscan_reports_incomplete_total"), {"": 0})
        self.assertEqual(samples(text, "txscan_reports_invalid_input_total"), {"": 0})
        self.check_process_collector(text)
        rss = samples(text, "txscan_plugin_process_resident_memory_bytes")
        _, plugins = request(self.srv.port, "GET", "/v1/plugins")
        listed = {p["id"]: p["stats"]["process"]["rss_bytes"] for p in json.loads(plugins)}
        if os.environ.get("TXSCAN_ISOLATION") == "process":
            self.assertGreater(rss['{plugin="fixed"}'], 1 << 20)
            self.assertGreater(listed["fixed"], 1 << 20)
        else:
            self.assertEqual(rss['{plugin="fixed"}'], 0)
            self.assertEqual(listed["fixed"], 0)
        self.promtool(body)

    def test_incomplete_counted(self):
        d = tempfile.mkdtemp(prefix="txs-ops-")
        try:
            write_plugin(d, "thrower", "module.exports={scanTransaction(){throw new Error('x')}}")
            srv = start_serve("-p", d)
            try:
                for i in range(3):
                    scan(srv.port, {"hash": "0x1"})
                text, body = metrics_when(srv.port, lambda t: samples(
                    t, "txscan_reports_incomplete_total").get("") == 3)
                self.assertEqual(samples(text, "txscan_reports_incomplete_total"), {"": 3})
                self.assertEqual(samples(text, "txscan_reports_total")['{verdict="none"}'], 3)
                self.promtool(body)
            finally:
                srv.stop()
        finally:
            shutil.rmtree(d, ignore_errors=True)


# ---- worker ------------------------------------------------------------------

class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="txs-ops-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "log")],
            stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(shutil.which("redis-server"), "redis-server not installed")
class WorkerMetrics(unittest.TestCase, MetricsMixin):
    def setUp(self):
        self.redis = RedisServer()
        self.tmp = tempfile.mkdtemp(prefix="txs-ops-")
        write_plugin(self.tmp, "fixed", FIXED)

    def tearDown(self):
        self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def scrape(self, port):
        status, body = request(port, "GET", "/metrics")
        self.assertEqual(status, 200)
        return body.decode(), body

    def wait_metric(self, port, name, want, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text, _ = self.scrape(port)
            if samples(text, name).get("") == want:
                return text
            time.sleep(0.1)
        self.fail("%s never reached %s:\n%s" % (name, want, text))

    def test_worker_metrics(self):
        w = Proc(["worker", "-p", self.tmp, "--redis", self.redis.url(), "--consumer", "w1",
                  "--metrics-listen", "127.0.0.1:0"])
        try:
            addr = w.wait_line(lambda l: re.search(r'"url": ?"http://([^/"]+)/metrics"', l), 60)
            self.assertTrue(addr, w.text())
            port = int(addr.group(1).rsplit(":", 1)[1])
            self.assertEqual(request(port, "GET", "/healthz")[0], 200)
            deadline = time.monotonic() + 30
            while request(port, "GET", "/readyz")[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(request(port, "GET", "/readyz")[0], 200)
            lines = sample_lines(20)
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
                f.writelines(lines + ["not json\n"])
            pub = subprocess.run([TXSCAN, "publish", "--redis", self.redis.url(), f.name],
                                 capture_output=True, text=True, timeout=60)
            os.unlink(f.name)
            self.assertEqual(pub.returncode, 0, pub.stderr)
            n = len(lines) + 1
            text = self.wait_metric(port, "txscan_worker_entries_acked_total", n)
            self.assertEqual(samples(text, "txscan_worker_entries_read_total"), {"": n})
            # the line that is not JSON is dead-lettered, after its input-error report
            self.assertEqual(samples(text, "txscan_worker_reports_written_total"), {"": n - 1})
            self.assertEqual(samples(text, "txscan_worker_dead_letters_total"), {"": 1})
            self.assertEqual(samples(text, "txscan_worker_in_flight"), {"": 0})
            window = samples(text, "txscan_worker_window")[""]
            self.assertTrue(2 <= window <= 1024, window)  # the paced window's bounds
            self.assertEqual(samples(text, "txscan_worker_reconnects_total"), {"": 0})
            self.assertEqual(samples(text, "txscan_worker_ready"), {"": 1})
            self.assertEqual(samples(text, "txscan_reports_total")['{verdict="high"}'], n - 1)
            self.assertEqual(samples(text, "txscan_reports_invalid_input_total"), {"": 1})
            self.assertEqual(samples(text, "txscan_findings_total"),
                             {'{plugin="fixed",code="ALWAYS",severity="high"}': n - 1})
            # the group's figures come from XINFO GROUPS every 2 s
            text = self.wait_metric(port, "txscan_worker_group_pending", 0)
            self.assertEqual(samples(text, "txscan_worker_group_lag"), {"": 0})
            self.check_process_collector(text)
            self.assertEqual(request(port, "GET", "/nope")[0], 404)
            self.promtool(self.scrape(port)[1])
            # Redis goes away: not ready, and a reconnect is counted when it is back
            self.redis.proc.terminate()
            self.redis.proc.wait(20)
            deadline = time.monotonic() + 30
            while request(port, "GET", "/readyz")[0] != 503 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(request(port, "GET", "/readyz")[0], 503)
        finally:
            self.assertEqual(w.stop(), 0, w.text())

    def test_sighup_adds_and_removes_folders(self):
        w = Proc(["worker", "-p", self.tmp, "--redis", self.redis.url(), "--consumer", "w2",
                  "--metrics-listen", "127.0.0.1:0"])
        try:
            addr = w.wait_line(lambda l: re.search(r'"url": ?"http://([^/"]+)/metrics"', l), 60)
            self.assertTrue(addr, w.text())
            port = int(addr.group(1).rsplit(":", 1)[1])
            write_plugin(self.tmp, "inventor", INVENTOR)
            shutil.rmtree(os.path.join(self.tmp, "fixed"))
            w.proc.send_signal(signal.SIGHUP)
            self.assertTrue(w.wait_line(lambda l: '"event":"reload"' in l.replace(" ", ""), 60),
                            w.text())
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
                f.write(json.dumps({"hash": "0x1", "n": 5}) + "\n")
            pub = subprocess.run([TXSCAN, "publish", "--redis", self.redis.url(), f.name],
                                 capture_output=True, text=True, timeout=60)
            os.unlink(f.name)
            self.assertEqual(pub.returncode, 0, pub.stderr)
            self.assertIn("published 1 entry to txs", pub.stdout)
            text = self.wait_metric(port, "txscan_worker_entries_acked_total", 1)
            self.assertEqual(samples(text, "txscan_findings_total"),
                             {'{plugin="inventor",code="CODE_5",severity="low"}': 1})
        finally:
            self.assertEqual(w.stop(), 0, w.text())

    def test_bad_metrics_listen(self):
        r = subprocess.run([TXSCAN, "worker", "-p", self.tmp, "--redis", self.redis.url(),
                            "--metrics-listen", "nonsense"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("--metrics-listen 'nonsense'", r.stderr)


# ---- command line ------------------------------------------------------------

def run(args, env=None, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL):
    full = dict(os.environ)
    full.update(env or {})
    for k, v in list(full.items()):
        if v is None:
            del full[k]
    return subprocess.run([TXSCAN, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=full, stdin=stdin)


class Usage(unittest.TestCase):
    """Every usage error exits 64 and names what is wrong."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-ops-")
        write_plugin(self.tmp, "fixed", FIXED)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_usage(self, args, needle, env=None, cwd=ROOT):
        r = run(args, env=env, cwd=cwd)
        self.assertEqual(r.returncode, 64, "%s: %s" % (args, r.stderr))
        self.assertIn(needle, r.stderr, args)

    def test_unknown_options(self):
        for cmd in ("scan", "check", "plugins", "new", "bundle", "serve", "worker", "publish",
                    "follow"):
            self.assert_usage([cmd, "--bogus"], "'--bogus'")
        self.assert_usage(["check", self.tmp, "a", "b"], "'b'")
        self.assert_usage(["check"], "PLUGIN_DIR")
        self.assert_usage(["bundle", self.tmp], "-o FILE")

    def test_bad_values(self):
        self.assert_usage(["serve", "-p", self.tmp, "--listen", "18090"], "--listen")
        self.assert_usage(["serve", "-p", self.tmp, "--listen", "18090"], "'18090'")
        self.assert_usage(["scan", "-p", self.tmp, "--isolation", "bogus"], "--isolation")

    def test_no_plugins_is_usage(self):
        env = {"TXSCAN_PLUGINS": None}
        for cmd in (["scan"], ["plugins"], ["serve", "--listen", "127.0.0.1:0"]):
            self.assert_usage(cmd, "no plugins", env=env, cwd=self.tmp)

    def test_bad_environment(self):
        self.assert_usage(["scan", "-p", self.tmp], "$TXSCAN_ISOLATION",
                          env={"TXSCAN_ISOLATION": "bogus"})
        self.assert_usage(["serve", "-p", self.tmp], "$TXSCAN_LISTEN",
                          env={"TXSCAN_LISTEN": "18090"})


class Environment(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-ops-")
        self.a = os.path.join(self.tmp, "a")
        self.b = os.path.join(self.tmp, "b")
        write_plugin(self.a, "fixed", FIXED)
        write_plugin(self.b, "inventor", INVENTOR)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_plugins_list(self):
        r = run(["plugins", "--json"], env={"TXSCAN_PLUGINS": self.a + "::" + self.b})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(p["id"] for p in json.loads(r.stdout)), ["fixed", "inventor"])
        r = run(["plugins", "--json", "-p", self.a], env={"TXSCAN_PLUGINS": self.b})
        self.assertEqual([p["id"] for p in json.loads(r.stdout)], ["fixed"], "-p wins")

    def test_listen(self):
        port = free_port()
        env = dict(os.environ, TXSCAN_LISTEN="127.0.0.1:%d" % port)
        p = Proc(["serve", "-p", self.a], env=env)
        try:
            line = p.wait_line(lambda l: '"event":"start"' in l.replace(" ", "") and l, 60)
            self.assertTrue(line, p.text())
            self.assertEqual(json.loads(line)["listen"], "127.0.0.1:%d" % port)
        finally:
            p.stop()

    def test_help_names_them(self):
        for cmd, names in (("scan", ["TXSCAN_PLUGINS", "TXSCAN_ISOLATION"]),
                           ("serve", ["TXSCAN_PLUGINS", "TXSCAN_ISOLATION", "TXSCAN_LISTEN"]),
                           ("worker", ["TXSCAN_PLUGINS", "TXSCAN_ISOLATION"]),
                           ("plugins", ["TXSCAN_PLUGINS"]),
                           ("follow", ["TXSCAN_PLUGINS", "TXSCAN_ISOLATION"])):
            out = run([cmd, "--help"]).stdout
            for n in names:
                self.assertIn(n, out, "%s --help" % cmd)
            self.assertIn("-q, --quiet", out, "%s --help" % cmd)


def in_pty(args, cwd=ROOT):
    """Runs txscan under a pseudo-terminal (stdout and stderr both on it)."""
    cmd = " ".join("'%s'" % a for a in [TXSCAN, *args])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                       timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode("utf-8", "replace")


@unittest.skipUnless(shutil.which("script"), "script (util-linux) not installed")
class Terminal(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-ops-")
        write_plugin(self.tmp, "fixed", FIXED)
        write_plugin(self.tmp, "talker", """module.exports = { scanTransaction(tx) {
          console.log('talking about', tx.hash); return null; } };""")
        self.txs = os.path.join(self.tmp, "txs.jsonl")
        with open(self.txs, "w") as f:
            for i in range(300):
                f.write(json.dumps({"hash": "0x%064x" % i, "to": "0x" + "1" * 40}) + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_rows_never_share_the_progress_line(self):
        rc, out = in_pty(["scan", "-p", self.tmp, "--quiet-console", self.txs])
        self.assertEqual(rc, 1, out[-2000:])  # high findings: --fail-on high
        self.assertIn("tx/s", out)  # the progress was drawn
        rows = [m.start() for m in re.finditer(r'\{"tx":', out)]
        self.assertEqual(len(rows), 300)
        for at in rows:  # each row starts a line, or right after the line was erased
            before = out[max(0, at - 3):at]
            self.assertTrue(at == 0 or before.endswith("\n") or before.endswith("\x1b[K"),
                            repr(out[max(0, at - 80):at + 20]))
        for line in out.replace("\r\n", "\n").split("\n"):
            shown = line.rsplit("\r", 1)[-1]  # what the terminal shows of it
            self.assertFalse('{"tx"' in shown and "tx/s" in shown, repr(line[:300]))

    def test_jsonl_summary_on_the_terminal(self):
        rc, out = in_pty(["scan", "-p", self.tmp, "--quiet-console", self.txs])
        self.assertRegex(out, r"300 transactions: 0 critical, 300 high")
        one = os.path.join(self.tmp, "one.jsonl")
        with open(one, "w") as f:
            f.write(json.dumps({"hash": "0x1"}) + "\n")
        rc, out = in_pty(["scan", "-p", self.tmp, "--quiet-console", one])
        self.assertRegex(out, r"\b1 transaction: 0 critical, 1 high")
        # not at a terminal: stdout holds reports only, stderr no summary
        r = run(["scan", "-p", self.tmp, "--quiet-console", one])
        self.assertNotIn("transaction", r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 1)
        # table: the summary closes the table, also in the singular
        r = run(["scan", "-p", self.tmp, "--format", "table", one])
        self.assertIn("\n1 transaction: ", r.stdout)

    def test_quiet(self):
        rc, out = in_pty(["scan", "-q", "-p", self.tmp, self.txs])
        self.assertEqual(rc, 1, out[-2000:])
        self.assertEqual(len(re.findall(r'\{"tx":', out)), 300)
        self.assertNotIn("tx/s", out)
        self.assertNotIn("transactions:", out)
        self.assertNotIn("talking about", out)
        loud = in_pty(["scan", "-p", self.tmp, self.txs])[1]
        self.assertIn("talking about", loud)
        # the same meaning elsewhere: check drops the console, keeps its results
        r = run(["check", "-q", os.path.join(self.tmp, "talker"), self.txs])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("talking about", r.stdout + r.stderr)
        self.assertIn("300 transactions, 0 problems", r.stdout)
        r = run(["new", "-q", os.path.join(self.tmp, "newone")])
        self.assertEqual((r.returncode, r.stderr), (0, ""))


# ---- plugin folders added and removed on reload --------------------------------

SPIN = """module.exports = { scanTransaction(tx) {
  const end = Date.now() + (tx.spin_ms || 0); while (Date.now() < end) {}
  return null; } };"""


class Folders(unittest.TestCase):
    """SIGHUP and POST /v1/reload pick up plugin folders added to and removed
    from a folder of plugins: added ones start (init runs) before they serve,
    removed ones finish the scans they have."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-ops-")
        self.root = os.path.join(self.tmp, "plugins")
        write_plugin(self.root, "fixed", FIXED)
        write_plugin(self.root, "spin", SPIN, {"timeout_ms": 5000})
        os.makedirs(os.path.join(self.root, "notes"))  # not a plugin: skipped with a warning
        self.srv = start_serve("-p", self.root)

    def tearDown(self):
        self.srv.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ids(self):
        status, body = request(self.srv.port, "GET", "/v1/plugins")
        self.assertEqual(status, 200)
        return sorted(p["id"] for p in json.loads(body))

    def wait_ids(self, want, timeout=30):
        deadline = time.monotonic() + timeout
        while self.ids() != want and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.ids(), want)

    def test_skipped_subfolder_warns(self):
        self.assertTrue(self.srv.wait_line(lambda l: "notes: skipped: no plugin.json" in l, 10),
                        self.srv.text())

    def test_sighup_adds_and_removes(self):
        self.assertEqual(self.ids(), ["fixed", "spin"])
        write_plugin(self.root, "inventor", INVENTOR)
        shutil.rmtree(os.path.join(self.root, "fixed"))
        self.srv.proc.send_signal(signal.SIGHUP)
        self.wait_ids(["inventor", "spin"])
        status, body = scan(self.srv.port, {"hash": "0x1", "n": 7})
        rep = json.loads(body)
        self.assertEqual(sorted(p["id"] for p in rep["plugins"]), ["inventor", "spin"])
        self.assertTrue(rep["complete"], rep)
        self.assertEqual([f["code"] for f in rep["findings"]], ["CODE_7"])
        self.assertTrue(self.srv.wait_line(lambda l: "plugin fixed removed" in l, 10))
        self.assertTrue(self.srv.wait_line(lambda l: "plugin inventor added" in l, 10))

    def test_post_reload_adds(self):
        write_plugin(self.root, "inventor", INVENTOR)
        status, body = request(self.srv.port, "POST", "/v1/reload")
        self.assertEqual(status, 200, body)
        self.wait_ids(["fixed", "inventor", "spin"])  # /v1/plugins may lag under load

    def test_added_plugin_that_fails_init_is_not_added(self):
        write_plugin(self.root, "broken", "module.exports = { init() { throw new Error('nope') },"
                                          " scanTransaction() { return null } };")
        status, body = request(self.srv.port, "POST", "/v1/reload")
        self.assertNotEqual(status, 200, body)
        self.assertIn("nope", body.decode())
        self.assertEqual(self.ids(), ["fixed", "spin"])
        status, body = scan(self.srv.port, {"hash": "0x1"})
        self.assertTrue(json.loads(body)["complete"], body)

    def test_removed_plugin_drains(self):
        out = {}

        def slow():
            out["r"] = scan(self.srv.port, {"hash": "0x2", "spin_ms": 1500})
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)  # the scan is on the spin plugin's engine now
        shutil.rmtree(os.path.join(self.root, "spin"))
        self.srv.proc.send_signal(signal.SIGHUP)
        t.join(30)
        status, body = out["r"]
        rep = json.loads(body)
        self.assertEqual(status, 200, body)
        self.assertTrue(rep["complete"], rep)  # answered ok, not stopped or unavailable
        self.assertEqual({p["id"]: p["status"] for p in rep["plugins"]},
                         {"fixed": "ok", "spin": "ok"})
        self.wait_ids(["fixed"])
        self.assertTrue(self.srv.wait_line(lambda l: "plugin spin removed" in l, 10))

    def test_last_plugin_is_never_removed(self):
        shutil.rmtree(os.path.join(self.root, "fixed"))
        shutil.rmtree(os.path.join(self.root, "spin"))
        status, body = request(self.srv.port, "POST", "/v1/reload")
        self.assertNotEqual(status, 200, body)
        self.assertIn("no plugin", body.decode())
        self.assertEqual(self.ids(), ["fixed", "spin"])


class WatchFolders(unittest.TestCase):
    """serve --watch follows a folder of plugin folders: a new subfolder is
    loaded, a deleted one removed, and the new plugin's own files are then
    watched like the others'."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-ops-")
        self.root = os.path.join(self.tmp, "plugins")
        write_plugin(self.root, "fixed", FIXED)
        self.srv = start_serve("-p", self.root, "--watch")

    def tearDown(self):
        self.srv.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ids(self):
        _, body = request(self.srv.port, "GET", "/v1/plugins")
        return {p["id"]: p["version"] for p in json.loads(body)}

    def wait_for(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.ids()
            if pred(got):
                return got
            time.sleep(0.1)
        self.fail("plugins now: %s\n%s" % (self.ids(), self.srv.text()[-3000:]))

    def test_watch_adds_removes_follows(self):
        staging = os.path.join(self.tmp, "staging")
        write_plugin(staging, "inventor", INVENTOR)
        os.rename(os.path.join(staging, "inventor"), os.path.join(self.root, "inventor"))
        self.wait_for(lambda p: "inventor" in p)
        # the new plugin's folder is watched: a new version is picked up
        path = os.path.join(self.root, "inventor", "plugin.json")
        with open(path) as f:
            m = json.load(f)
        m["version"] = "2.0.0"
        with open(path, "w") as f:
            json.dump(m, f)
        self.wait_for(lambda p: p.get("inventor") == "2.0.0")
        shutil.rmtree(os.path.join(self.root, "fixed"))
        self.wait_for(lambda p: sorted(p) == ["inventor"])


# ---- docs that match the code ----------------------------------------------------

class Docs(unittest.TestCase):
    def test_readme_make_run_table(self):
        """The README shows the first rows of `make run` exactly, then its summary."""
        with open(os.path.join(ROOT, "README.md")) as f:
            text = f.read()
        m = re.search(r"`make run` scans .*?\n```\n(.*?)```", text, re.S)
        self.assertTrue(m, "no make run block in README.md")
        shown = m.group(1).rstrip("\n").split("\n")
        cut = shown.index("...")
        r = run(["scan", "-p", EXAMPLES, "--format", "table", SAMPLE])
        self.assertIn(r.returncode, (0, 1), r.stderr)
        real = [l.rstrip() for l in r.stdout.rstrip("\n").split("\n")]
        self.assertEqual(shown[:cut], real[:cut])
        self.assertEqual(shown[cut + 1:], real[-1:])
        n = len([d for d in os.listdir(EXAMPLES) if os.path.exists(
            os.path.join(EXAMPLES, d, "plugin.json"))])
        words = {7: "seven", 8: "eight", 9: "nine"}
        self.assertIn("with the %s plugins" % words.get(n, str(n)), text)

    def test_dts_manifest_matches_the_code(self):
        """types/txscan.d.ts: every plugin.json key the loader knows, with its default."""
        with open(os.path.join(ROOT, "types", "txscan.d.ts")) as f:
            dts = f.read()
        body = re.search(r"export interface Manifest<[^{]*\{(.*?)\n\}", dts, re.S).group(1)
        fields = {key: doc for doc, key in re.findall(r"/\*\*(.*?)\*/\s*(\w+)\??:", body, re.S)}
        keys = set(re.findall(r"^\s*(\w+)\??:", body, re.M))
        d = tempfile.mkdtemp(prefix="txs-ops-")
        try:
            write_plugin(d, "p", "module.exports={scanTransaction(){return null}}", {"zzz": 1})
            err = run(["plugins", "-p", os.path.join(d, "p")]).stderr
            known = set(re.search(r"\(known: ([^)]*)\)", err).group(1).split(", "))
            self.assertEqual(keys, known)
            write_plugin(d, "p", "module.exports={scanTransaction(){return null}}")
            info = json.loads(run(["plugins", "--json", "-p", os.path.join(d, "p")]).stdout)[0]
        finally:
            shutil.rmtree(d, ignore_errors=True)
        actual = dict(info["limits"], instances=info["instances"])
        for key, value in actual.items():
            doc = re.search(r"Default (\d+)\.", fields[key])
            self.assertTrue(doc, "%s: no default in the d.ts" % key)
            self.assertEqual(int(doc.group(1)), value, key)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
