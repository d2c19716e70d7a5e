#!/usr/bin/env python3
"""Integration tests for txscan's one log format (docs/logging.md): JSON lines
on stderr (text at a terminal or with --log-format text), plugin failure
events with their tx and line, rate-limited per plugin with the count held
back, console lines tagged with their scan, last errors in /v1/plugins and
`txscan plugins --json`, and fatal start-up errors as log lines.

usage: logging_test.py TXSCAN_BINARY PROJECT_DIR
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TXSCAN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/txscan"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "."
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Throws for transactions with "bad"; prints a console line for every one;
# busy-waits for "wait" ms first (to cross a rate-limit second).
THROWER = """module.exports = { scanTransaction(tx) {
  console.log('seen ' + tx.hash);
  if (tx.wait) { const t = Date.now() + tx.wait; while (Date.now() < t) {} }
  if (tx.bad) { throw new Error('boom ' + tx.hash); }
  return null;
}};
"""


def run(*args, stdin=None, env=None, timeout=120):
    return subprocess.run([TXSCAN, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def write_plugin(root, pid, code, extra=""):
    d = os.path.join(root, pid)
    os.makedirs(d)
    with open(os.path.join(d, "plugin.json"), "w") as f:
        f.write('{"id": "%s", "version": "2.3.4", "main": "index.js"%s}' % (pid, extra))
    with open(os.path.join(d, "index.js"), "w") as f:
        f.write(code)
    return d


def log_lines(test, stderr):
    """Every stderr line parsed as a JSON log line with ts, level and event."""
    out = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except ValueError:
            test.fail("not a JSON log line: %r\n%s" % (line, stderr[-3000:]))
        test.assertRegex(e.get("ts", ""), TS, line)
        test.assertIn(e.get("level"), ("debug", "info", "warn", "error"), line)
        test.assertIsInstance(e.get("event"), str, line)
        test.assertEqual(list(e)[:3], ["ts", "level", "event"], line)
        out.append(e)
    return out


class Scan(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-log-")
        self.plugins = os.path.join(self.tmp, "plugins")
        os.makedirs(self.plugins)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def scan(self, txs, *args, env=None):
        text = "".join(json.dumps(t) + "\n" for t in txs)
        return run("scan", "-p", self.plugins, *args, stdin=text, env=env)

    def test_failure_logged_with_tx_line_and_location(self):
        write_plugin(self.plugins, "thrower", THROWER)
        r = self.scan([{"hash": "0xa1"}, {"hash": "0xb2", "bad": 1}, {"id": 7, "bad": 1}])
        self.assertEqual(r.returncode, 2, r.stderr)
        events = log_lines(self, r.stderr)
        fails = [e for e in events if e["event"] == "plugin_failure"]
        self.assertEqual([(e["tx"], e["line"]) for e in fails], [("0xb2", 2), (7, 3)], r.stderr)
        f = fails[0]
        self.assertEqual(f["level"], "warn")
        self.assertEqual((f["plugin"], f["version"], f["status"]), ("thrower", "2.3.4", "error"))
        self.assertGreaterEqual(f["generation"], 1)
        self.assertEqual(f["error"], "Error: boom 0xb2")  # the first line only
        self.assertRegex(f["at"], r"thrower/index\.js:4:\d+$")
        self.assertIsInstance(f["ms"], float)
        # every console line carries the scan that printed it
        cons = [e for e in events if e["event"] == "console"]
        self.assertEqual(sorted(((e["line"], e["tx"], e["message"]) for e in cons),
                                key=lambda t: t[0]),
                         [(1, "0xa1", "seen 0xa1"), (2, "0xb2", "seen 0xb2"),
                          (3, 7, "seen undefined")], r.stderr)
        for e in cons:
            self.assertEqual((e["level"], e["plugin"], e["method"]), ("info", "thrower", "log"))

    def test_failures_rate_limited_with_suppressed_count(self):
        write_plugin(self.plugins, "thrower", THROWER, ', "timeout_ms": 5000')
        n = 200
        txs = [{"hash": "0x%x" % i, "bad": 1} for i in range(n)]
        # the last one waits past the second the others fail in: the lines
        # after it (its own, and those of the scans answered in its batch)
        # pass again, the first saying how many were held back
        txs.append({"hash": "0xlast", "bad": 1, "wait": 1100})
        t0 = time.monotonic()
        r = self.scan(txs, "--quiet-console")
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 2, r.stderr[-2000:])
        fails = [e for e in log_lines(self, r.stderr) if e["event"] == "plugin_failure"]
        self.assertLess(len(fails), n, "not rate-limited")
        self.assertLessEqual(len(fails), 10 * (int(took) + 2))
        self.assertEqual(fails[-1]["tx"], "0xlast")
        held = [e["suppressed_before"] for e in fails if "suppressed_before" in e]
        self.assertTrue(held and min(held) > 0, fails)
        # nothing lost: lines written plus lines held back = failures
        self.assertEqual(len(fails) + sum(e.get("suppressed_before", 0) for e in fails), n + 1)

    def test_breaker_transition_is_a_log_line(self):
        write_plugin(self.plugins, "looper",
                     "module.exports = { scanTransaction() { while (true) {} } };",
                     ', "timeout_ms": 20')
        r = self.scan([{"hash": "0x%d" % i} for i in range(7)], "--log-format", "json")
        events = log_lines(self, r.stderr)
        opened = [e for e in events if e["event"] == "breaker_open"]
        self.assertEqual(len(opened), 1, r.stderr[-3000:])
        self.assertEqual((opened[0]["plugin"], opened[0]["level"]), ("looper", "warn"))
        statuses = [e["status"] for e in events if e["event"] == "plugin_failure"]
        self.assertEqual(statuses[:5], ["timeout"] * 5, r.stderr[-3000:])
        self.assertIn("unavailable", statuses)

    def test_text_format(self):
        write_plugin(self.plugins, "thrower", THROWER)
        txs = [{"hash": "0xb2", "bad": 1}]
        for how in (["--log-format", "text"], ["--log-format=text"]):
            r = self.scan(txs, *how)
            lines = [l for l in r.stderr.splitlines() if l]
            self.assertTrue(lines, r.stderr)
            for l in lines:
                self.assertTrue(l.startswith("txscan: "), l)
            self.assertTrue(any(l.startswith("txscan: warning: plugin_failure:") and
                                "tx=0xb2" in l and "line=1" in l and
                                'error="Error: boom 0xb2"' in l for l in lines), r.stderr)
        env = dict(os.environ, TXSCAN_LOG_FORMAT="text")
        r = self.scan(txs, env=env)
        self.assertTrue(r.stderr.startswith("txscan: "), r.stderr)
        # the option beats the environment
        r = self.scan(txs, "--log-format", "json", env=env)
        log_lines(self, r.stderr)

    def test_text_is_the_default_at_a_terminal(self):
        if not shutil.which("script"):
            self.skipTest("no script(1)")
        write_plugin(self.plugins, "thrower", THROWER)
        txs = os.path.join(self.tmp, "txs.jsonl")
        with open(txs, "w") as f:
            f.write('{"hash":"0xb2","bad":1}\n')
        cmd = "%s scan -p %s --no-progress %s >/dev/null" % (TXSCAN, self.plugins, txs)
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                           timeout=120, cwd=ROOT)
        self.assertIn("txscan: warning: plugin_failure:", r.stdout)
        self.assertNotIn('"event"', r.stdout)
        # with the progress line drawn, a log line first erases it: never
        # "   2 tx   213 tx/s  100%  ETA 0s txscan: warning: ..."
        with open(txs, "w") as f:
            f.write("".join('{"hash":"0x%d","bad":1}\n' % i for i in range(50)))
        cmd = "%s scan -p %s --progress %s >/dev/null" % (TXSCAN, self.plugins, txs)
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           timeout=120, cwd=ROOT)
        out = r.stdout.decode()  # bytes: text mode would turn "\r" into "\n"
        starts = [m.start() for m in re.finditer("txscan: ", out)]
        self.assertGreater(len(starts), 1, out)
        for i in starts:
            self.assertTrue(i == 0 or out[:i].endswith(("\n", "\r\x1b[K")),
                            repr(out[max(0, i - 60):i + 20]))

    def test_log_level(self):
        write_plugin(self.plugins, "thrower", THROWER)
        txs = [{"hash": "0xb2", "bad": 1}]
        r = self.scan(txs, "--log-level", "warn")
        events = log_lines(self, r.stderr)
        self.assertEqual([e["event"] for e in events], ["plugin_failure"], r.stderr)
        r = self.scan(txs, env=dict(os.environ, TXSCAN_LOG_LEVEL="error"))
        self.assertEqual(r.stderr, "")
        self.assertEqual(r.returncode, 2)  # the report still says it

    def test_bad_log_options_are_usage_errors(self):
        for args, env, name in ((["--log-format", "xml"], None, "--log-format"),
                                (["--log-level=loud"], None, "--log-level"),
                                (["--log-format"], None, "--log-format"),
                                ([], {"TXSCAN_LOG_FORMAT": "yaml"}, "TXSCAN_LOG_FORMAT")):
            e = dict(os.environ, **(env or {}))
            for cmd in ("scan", "serve", "worker", "plugins", "check", "follow"):
                r = run(cmd, *args, env=e, timeout=30)
                self.assertEqual(r.returncode, 64, (cmd, args, r.stderr))
                self.assertIn(name, r.stderr, (cmd, args))
        for cmd in ("scan", "check", "serve", "worker", "follow", "plugins", "new", "bundle",
                    "publish"):
            r = run(cmd, "--help")
            self.assertIn("--log-format", r.stdout, cmd)
            self.assertIn("--log-level", r.stdout, cmd)
            self.assertIn("TXSCAN_LOG_FORMAT", r.stdout, cmd)

    def test_cli_errors_are_log_lines(self):
        r = run("scan", "--bogus", "--log-format", "json")
        self.assertEqual(r.returncode, 64)
        events = log_lines(self, r.stderr)
        self.assertEqual([(e["level"], e["event"]) for e in events], [("error", "error")])
        self.assertIn("--bogus", events[0]["message"])
        r = run("scan", "-p", os.path.join(self.tmp, "nowhere"), "--log-format", "text",
                stdin="{}")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"^txscan: error: .*nowhere")

    def test_plugins_json_has_last_error_fields(self):
        write_plugin(self.plugins, "thrower", THROWER)
        r = run("plugins", "-p", self.plugins, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        p = json.loads(r.stdout)[0]
        self.assertIsNone(p["last_error"])
        self.assertEqual(p["failures_last_minute"],
                         {"error": 0, "timeout": 0, "memory": 0, "overloaded": 0,
                          "unavailable": 0})


class Serve(unittest.TestCase):
    """`txscan serve`: failures logged with their tx; last errors in /v1/plugins;
    a fatal start-up error is a JSON line."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-log-serve-")
        self.plugins = os.path.join(self.tmp, "plugins")
        os.makedirs(self.plugins)
        write_plugin(self.plugins, "thrower", THROWER)
        self.lines = []
        self.cond = threading.Condition()
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_event(self, pred, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    e = json.loads(line)
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(min(left, 0.2))

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def test_failure_logged_and_last_error_listed(self):
        self.proc = subprocess.Popen([TXSCAN, "serve", "--listen", "127.0.0.1:0", "-p",
                                      self.plugins], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        start = self.wait_event(lambda e: e["event"] == "start")
        self.assertIsNotNone(start, "".join(self.lines))
        self.port = int(start["listen"].rsplit(":", 1)[1])
        status, rep = self.request("POST", "/v1/scan", '{"hash":"0xfeed","bad":true}')
        self.assertEqual(status, 200)
        self.assertFalse(rep["complete"])
        f = self.wait_event(lambda e: e["event"] == "plugin_failure")
        self.assertIsNotNone(f, "".join(self.lines))
        self.assertEqual((f["plugin"], f["version"], f["status"], f["tx"], f["error"]),
                         ("thrower", "2.3.4", "error", "0xfeed", "Error: boom 0xfeed"))
        self.assertNotIn("line", f)
        con = self.wait_event(lambda e: e["event"] == "console")
        self.assertEqual((con["tx"], con["message"]), ("0xfeed", "seen 0xfeed"))
        # /v1/plugins answers from a snapshot refreshed in the background
        deadline = time.monotonic() + 30
        while True:
            status, plugins = self.request("GET", "/v1/plugins")
            p = plugins[0]
            if p["last_error"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        e = p["last_error"]
        self.assertIsNotNone(e, p)
        self.assertEqual((e["status"], e["tx"], e["message"]),
                         ("error", "0xfeed", "Error: boom 0xfeed"))
        self.assertRegex(e["time"], TS)
        self.assertEqual(p["failures_last_minute"]["error"], 1)
        self.assertEqual(p["failures_last_minute"]["timeout"], 0)
        for line in self.lines:  # one format for everything serve writes
            json.loads(line)

    def test_fatal_start_error_is_a_json_line(self):
        for args in (["-p", os.path.join(self.tmp, "nowhere")],
                     ["-p", self.plugins, "--listen", "256.0.0.1:1"]):
            r = run("serve", "--log-format", "json", *args, timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            events = log_lines(self, r.stderr)
            self.assertTrue(events, r.stderr)
            self.assertEqual(events[-1]["level"], "error", r.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
