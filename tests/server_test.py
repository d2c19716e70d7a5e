#!/usr/bin/env python3
"""Integration tests for `txscan serve`: every endpoint and error code, reload
under load, SIGHUP and --watch, overload (503), SIGTERM drain, /metrics through
promtool, and the status page in headless Chromium.

usage: server_test.py TXSCAN_BINARY PROJECT_DIR

Python 3 standard library only. Each server listens on 127.0.0.1 port 0 and
the test reads the bound port from its JSON "start" log line. Every wait is
bounded; every process started is stopped in tearDown/tearDownClass.
"""
import http.client
import json
import os
import shutil
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import zlib

TXSCAN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/txscan"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "."
EXAMPLES = os.path.join(ROOT, "examples", "plugins")
SLOW = os.path.join(ROOT, "tests", "plugins", "slow")
SAMPLE = os.path.join(ROOT, "examples", "transactions", "sample.jsonl")
JSON = {"Content-Type": "application/json"}


def sample_txs(n=None):
    with open(SAMPLE) as f:
        txs = [json.loads(line) for line in f if line.strip()]
    return txs[:n] if n else txs


class Server:
    """A `txscan serve` process; stderr lines are collected by a thread."""

    def __init__(self, *args, cwd=ROOT):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [TXSCAN, "serve", "--listen", "127.0.0.1:0", *args], cwd=cwd,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        start = self.wait_log(lambda e: e.get("event") == "start", 60)
        if not start:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        self.host, self.port = start["listen"].rsplit(":", 1)
        self.port = int(self.port)

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def events(self):
        with self.cond:
            lines = list(self.lines)
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"unparsed": line})
        return out

    def wait_log(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.reader.is_alive():
                    return None
                self.cond.wait(min(left, 0.2))

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers dict with lower-case names, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post_json(self, path, obj, **kw):
        return self.request("POST", path, obj, JSON, **kw)

    def get_json(self, path):
        status, _, body = self.request("GET", path)
        return status, json.loads(body)

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

    def stop_clean(self):
        """Stops the server; raises unless it exited 0 with no sanitizer report
        (the tests also run against ASan/UBSan builds)."""
        rc = self.stop()
        text = "".join(self.lines)
        bad = [m for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")
               if m in text]
        if rc != 0 or bad:
            raise AssertionError("server exited %s %s:\n%s" % (rc, bad, text[-6000:]))


def raw_http(port, data, timeout=10):
    """Sends bytes as is; returns the status line and the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if b"\r\n\r\n" in b"".join(chunks) and b"Content-Length" in b"".join(chunks):
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                for h in head.split(b"\r\n"):
                    if h.lower().startswith(b"content-length:") and len(rest) >= int(h.split(b":")[1]):
                        return b"".join(chunks)
        return b"".join(chunks)


def status_of(raw):
    return int(raw.split(b" ", 2)[1])


def write_plugin(root, pid, version="1.0.0", code=None, extra=None):
    d = os.path.join(root, pid)
    os.makedirs(d, exist_ok=True)
    manifest = {"id": pid, "version": version, "main": "index.js"}
    manifest.update(extra or {})
    with open(os.path.join(d, "plugin.json"), "w") as f:
        json.dump(manifest, f)
    if code is not None:
        with open(os.path.join(d, "index.js"), "w") as f:
            f.write(code)
    return d


VERSIONED = """module.exports = { scanTransaction(tx, ctx) {
  return {code: 'SEEN', severity: 'info', message: 'version ' + ctx.plugin.version};
}};"""


# JSC's regexp engine does not poll the watchdog: this quadratic match runs
# for tens of seconds in one native call whatever the plugin's timeout_ms.
STUCK = """module.exports = { scanTransaction(tx, ctx) {
  if (tx.stuck) /a*b/.test('a'.repeat(tx.stuck));
  return null;
}};"""
STUCK_N = 300000


def plugin_stats(srv, pid):
    return {p["id"]: p["stats"] for p in srv.get_json("/v1/plugins")[1]}[pid]


def wait_busy(srv, pid, timeout=30):
    """True once plugin pid runs a command (its stuck scan has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = srv.request("GET", "/metrics", timeout=10)[2].decode()
        if 'txscan_plugin_busy{plugin="%s"} 1\n' % pid in text:
            return True
        time.sleep(0.05)
    return False


def timed_get(port, path, timeout=10, source="127.0.0.1"):
    """(status, seconds, body) of one GET on a new connection."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, time.monotonic() - t0, body
    finally:
        conn.close()


def fast_enough(port, path, bound=0.1, tries=3):
    """The best of a few tries (noise on a shared machine), each bounded."""
    best = None
    for _ in range(tries):
        try:
            status, took, _ = timed_get(port, path, timeout=5)
        except OSError as e:
            return (path, "error", repr(e))
        best = took if best is None else min(best, took)
        if status != 200:
            return (path, status, took)
        if took < bound:
            return None
    return (path, "slow", best)


# ---------------------------------------------------------------------------


class Api(unittest.TestCase):
    """Every endpoint and every error code, on the example plugins."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("-p", EXAMPLES, "--max-body", "64k", "--max-batch", "50", "--threads", "2")
        cls.txs = [t for t in sample_txs() if len(json.dumps(t)) < 16000][:30]

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop_clean()

    def test_scan_one(self):
        for tx in self.txs[:10]:
            status, headers, body = self.srv.post_json("/v1/scan", tx)
            self.assertEqual(status, 200, body)
            self.assertEqual(headers["content-type"], "application/json")
            rep = json.loads(body)
            self.assertEqual(rep["tx"], tx["hash"])
            self.assertTrue(rep["complete"], rep)
            self.assertEqual(len(rep["plugins"]), len(os.listdir(EXAMPLES)))
            self.assertIn(rep["verdict"], ["none", "info", "low", "medium", "high", "critical"])

    def test_scan_with_curl(self):
        tx = json.dumps(self.txs[2])
        out = subprocess.run(
            ["curl", "-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
             "--data-binary", tx, "http://127.0.0.1:%d/v1/scan" % self.srv.port],
            capture_output=True, text=True, timeout=60)
        body, code = out.stdout.rsplit("\n", 1)
        self.assertEqual(code, "200", out.stderr)
        self.assertEqual(json.loads(body)["tx"], self.txs[2]["hash"])

    def test_nul_in_a_string_is_valid_json(self):
        # "\u0000" is valid JSON; `txscan scan` and the worker accept it too
        status, _, body = self.srv.post_json("/v1/scan", {"hash": "0xnul", "data": "a\u0000b"})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["tx"], "0xnul")

    def test_charset_parameter_accepted(self):
        status, _, _ = self.srv.request("POST", "/v1/scan", json.dumps(self.txs[0]),
                                        {"Content-Type": "Application/JSON; charset=utf-8"})
        self.assertEqual(status, 200)

    def test_batch_in_order(self):
        batch = self.txs[:20] + [42, {"hash": "0xbig", "value": 123456789012345678901234567890}]
        status, _, body = self.srv.post_json("/v1/scan/batch", batch)
        self.assertEqual(status, 200, body)
        reps = json.loads(body)
        self.assertEqual(len(reps), 22)
        for tx, rep in zip(self.txs[:20], reps):
            self.assertEqual(rep["tx"], tx["hash"])
        self.assertIn("error", reps[20])  # not an object: an error report, not a dropped item
        # A number past int64 is valid JSON: scanned, not rejected. (Not
        # "complete": under a sanitizer a plugin may miss the 300 ms deadline.)
        self.assertEqual(reps[21]["tx"], "0xbig")
        self.assertNotIn("error", reps[21])

    def test_batch_empty(self):
        status, _, body = self.srv.post_json("/v1/scan/batch", [])
        self.assertEqual((status, json.loads(body)), (200, []))

    def test_plugins(self):
        status, plugins = self.srv.get_json("/v1/plugins")
        self.assertEqual(status, 200)
        ids = sorted(p["id"] for p in plugins)
        self.assertEqual(ids, sorted(os.listdir(EXAMPLES)))
        for p in plugins:
            self.assertIn("scans", p["stats"])
            self.assertIsInstance(p["stats"]["restarts"]["from_standby"], int)

    def test_health_and_ready(self):
        status, body = self.srv.get_json("/healthz")
        self.assertEqual((status, body["status"], body["draining"]), (200, "ok", False))
        status, body = self.srv.get_json("/readyz")
        self.assertEqual((status, body["ready"]), (200, True))
        status, headers, body = self.srv.request("HEAD", "/healthz")
        self.assertEqual((status, body), (200, b""))

    def test_status_page_served(self):
        status, headers, body = self.srv.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        self.assertIn(b"/v1/plugins", body)
        self.assertNotIn(b"src=\"http", body)  # no external assets

    def test_restart(self):
        _, before = self.srv.get_json("/v1/plugins")
        gen = {p["id"]: p["stats"]["generation"] for p in before}["permit"]
        status, _, body = self.srv.request("POST", "/v1/plugins/permit/restart")
        self.assertEqual(status, 200, body)
        self.assertGreater(json.loads(body)["generation"], gen)
        self.assertTrue(self.srv.wait_log(
            lambda e: e.get("event") == "restart" and e.get("plugin") == "permit", 10))
        # operators see what the restart cost: a fresh realm, timed in the recycle histogram
        want = {'txscan_plugin_recycle_duration_seconds_count{plugin="permit"}',
                'txscan_plugin_realm_restarts_total{plugin="permit"}'}
        seen = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (len(seen) == len(want) and min(seen.values()) >= 1):
            _, _, text = self.srv.request("GET", "/metrics")
            for line in text.decode().splitlines():
                name, _, value = line.rpartition(" ")
                if name in want:
                    seen[name] = float(value)
            time.sleep(0.2)
        self.assertEqual(set(seen), want, seen)
        self.assertGreaterEqual(min(seen.values()), 1, seen)

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            for tx in self.txs[:5]:
                conn.request("POST", "/v1/scan", json.dumps(tx), JSON)
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                self.assertEqual(json.loads(resp.read())["tx"], tx["hash"])
        finally:
            conn.close()

    # ---- errors --------------------------------------------------------------

    def assert_error(self, got, status, contains=""):
        code, headers, body = got
        self.assertEqual(code, status, body)
        self.assertEqual(headers["content-type"], "application/json")
        err = json.loads(body)
        self.assertEqual(err["status"], status)
        self.assertIn(contains, err["error"])
        return headers, err

    def test_400_invalid_json_with_position(self):
        _, err = self.assert_error(
            self.srv.request("POST", "/v1/scan", '{"hash": "0x1",\n "to": }', JSON), 400,
            "invalid JSON")
        self.assertEqual((err["line"], err["column"]), (2, 8))
        self.assertEqual(err["position"], 23)  # the offset of the bad byte

    def test_400_wrong_shape(self):
        self.assert_error(self.srv.post_json("/v1/scan", [self.txs[0]]), 400, "one JSON object")
        self.assert_error(self.srv.post_json("/v1/scan/batch", self.txs[0]), 400, "JSON array")
        self.assert_error(self.srv.request("POST", "/v1/scan", "", JSON), 400, "invalid JSON")

    def test_404(self):
        self.assert_error(self.srv.request("GET", "/nope"), 404, "no such resource")
        self.assert_error(self.srv.request("POST", "/v1/plugins/nope/reload"), 404, "nope")
        self.assert_error(self.srv.request("POST", "/v1/plugins/Bad_Id/restart"), 404)

    def test_405_with_allow(self):
        headers, _ = self.assert_error(self.srv.request("GET", "/v1/scan"), 405)
        self.assertEqual(headers["allow"], "POST")
        headers, _ = self.assert_error(self.srv.request("POST", "/healthz", "{}", JSON), 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        headers, _ = self.assert_error(self.srv.request("DELETE", "/v1/plugins"), 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        headers, _ = self.assert_error(self.srv.request("GET", "/v1/plugins/permit/reload"), 405)
        self.assertEqual(headers["allow"], "POST")

    def test_411_no_length(self):
        raw = raw_http(self.srv.port, b"POST /v1/scan HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Type: application/json\r\n\r\n")
        self.assertEqual(status_of(raw), 411, raw)
        self.assertIn(b"Content-Length", raw.partition(b"\r\n\r\n")[2])

    def test_413_content_length(self):
        big = json.dumps({"hash": "0x1", "data": "0x" + "ab" * 40000})
        self.assert_error(self.srv.request("POST", "/v1/scan", big, JSON), 413, "--max-body")

    def test_413_chunked(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            body = iter([b'{"hash": "0x1", "data": "0x'] + [b"ab" * 8192] * 6 + [b'"}'])
            conn.request("POST", "/v1/scan", body=body, headers=JSON, encode_chunked=True)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 413)
            self.assertIn("--max-body", json.loads(resp.read())["error"])
        finally:
            conn.close()

    def test_chunked_within_cap(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            text = json.dumps(self.txs[1]).encode()
            body = iter([text[:10], text[10:]])
            conn.request("POST", "/v1/scan", body=body, headers=JSON, encode_chunked=True)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(json.loads(resp.read())["tx"], self.txs[1]["hash"])
        finally:
            conn.close()

    def test_413_batch_items(self):
        self.assert_error(self.srv.post_json("/v1/scan/batch", [{}] * 51), 413, "--max-batch")

    def test_415(self):
        self.assert_error(self.srv.request("POST", "/v1/scan", "{}", {"Content-Type": "text/plain"}),
                          415, "application/json")
        self.assert_error(self.srv.request("POST", "/v1/scan/batch", "[]"), 415)

    def test_400_control_byte_in_path(self):
        # MHD decodes the path into a C string: %00 would end it early and
        # "/healthz%00.json" be served as /healthz.
        for path in (b"/healthz%00.json", b"/healthz%00", b"/readyz%0a", b"/v1/plugins%7f",
                     b"/%1b[31m", b"/v1/scan%0d%0a"):
            raw = raw_http(self.srv.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(status_of(raw), 400, (path, raw))
            self.assertIn(b"control character", raw)
        # A control byte in the query string is no path trick.
        raw = raw_http(self.srv.port, b"GET /healthz?a=%00 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of(raw), 200, raw)

    def test_400_conflicting_content_length(self):
        body = json.dumps(self.txs[0]).encode()
        head = (b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n")
        raw = raw_http(self.srv.port, head % (len(body), 5) + body)
        self.assertEqual(status_of(raw), 400, raw)
        self.assertIn(b"conflicting Content-Length", raw)
        self.assertIn(b"Connection: close", raw)
        raw = raw_http(self.srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 0\r\nContent-Length: 1\r\n\r\n")
        self.assertEqual(status_of(raw), 400, raw)
        # The same value twice is one length (RFC 9110 8.6).
        raw = raw_http(self.srv.port, head % (len(body), len(body)) + body)
        self.assertEqual(status_of(raw), 200, raw)
        raw = raw_http(self.srv.port, b"POST /v1/scan HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Type: application/json\r\nContent-Length: 5\r\n"
                                      b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n")
        self.assertEqual(status_of(raw), 400, raw)
        self.assertIn(b"Transfer-Encoding", raw)

    def test_metrics_promtool(self):
        self.srv.post_json("/v1/scan", self.txs[0])
        status, headers, body = self.srv.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        for needle in ['txscan_plugin_scan_duration_seconds_bucket{plugin="permit",le="+Inf"}',
                       'txscan_plugin_restarts_total{plugin="permit",reason="killed"}',
                       'txscan_plugin_results_total{plugin="permit",status="overloaded"}',
                       'txscan_plugin_queue_depth{plugin="permit"}',
                       'txscan_plugin_standby_swaps_total{plugin="permit"}',
                       'txscan_plugin_heap_readings_total{plugin="permit"}',
                       "txscan_http_requests_in_flight ",
                       'txscan_http_requests_total{handler="/v1/scan",code="200"}',
                       "txscan_host_in_flight "]:
            self.assertIn(needle, text)
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (scripts/setup.sh installs prometheus)")
        out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_log_lines_are_json(self):
        self.srv.request("GET", "/nope")
        self.assertTrue(self.srv.wait_log(
            lambda e: e.get("event") == "request_error" and e.get("status") == 404, 10))
        for e in self.srv.events():
            self.assertNotIn("unparsed", e)
            self.assertIn("ts", e)


class Usage(unittest.TestCase):
    def run_serve(self, *args):
        return subprocess.run([TXSCAN, "serve", *args], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)

    def test_help(self):
        r = self.run_serve("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: txscan serve", r.stdout)
        self.assertIn("--max-body", r.stdout)

    def test_bad_options(self):
        for args in (["--max-body", "lots"], ["--threads", "0"], ["--bogus"], ["extra"]):
            r = self.run_serve("-p", EXAMPLES, *args)
            self.assertEqual(r.returncode, 64, args)
            # one JSON log line (stderr is a pipe), an error naming serve
            e = [json.loads(l) for l in r.stderr.splitlines()]
            self.assertEqual([(x["level"], x["event"]) for x in e], [("error", "error")], args)
            self.assertTrue(e[0]["message"].startswith("serve: "), r.stderr)

    def test_bad_listen(self):
        r = self.run_serve("-p", EXAMPLES, "--listen", "nowhere")
        self.assertEqual(r.returncode, 64)  # a usage error (issue 18)
        self.assertIn("--listen 'nowhere'", r.stderr)

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            r = self.run_serve("-p", EXAMPLES, "--listen", "127.0.0.1:%d" % s.getsockname()[1])
        self.assertEqual(r.returncode, 2)
        self.assertIn("Address already in use", r.stderr)


class Reload(unittest.TestCase):
    """Canary reloads (HTTP, SIGHUP, --watch) on a temp copy of the plugins."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-serve-")
        self.plugins = os.path.join(self.tmp, "plugins")
        shutil.copytree(os.path.join(EXAMPLES, "unlimited-approval"),
                        os.path.join(self.plugins, "unlimited-approval"))
        # A reload builds the new engine on the executor's thread, so scans
        # queue behind it for that long: under a sanitizer that is 100s of
        # ms. The generous timeout (scan deadline = 4 x 1000 + 100 ms) keeps
        # the test about lost scans, not about the build's speed.
        self.manifest_extra = {"timeout_ms": 1000}
        self.dir = write_plugin(self.plugins, "versioned", "1.0.0", VERSIONED, self.manifest_extra)
        self.srv = Server("-p", self.plugins, "--watch")

    def tearDown(self):
        try:
            self.srv.stop_clean()
        finally:
            shutil.rmtree(self.tmp)

    def version(self, pid="versioned"):
        return {p["id"]: p["version"] for p in self.srv.get_json("/v1/plugins")[1]}[pid]

    def scan_message(self):
        status, _, body = self.srv.post_json("/v1/scan", {"hash": "0xabc"})
        self.assertEqual(status, 200, body)
        rep = json.loads(body)
        self.assertTrue(rep["complete"], rep)
        return [f["message"] for f in rep["findings"] if f["plugin"] == "versioned"][0]

    def test_http_reload_and_422(self):
        self.assertEqual(self.scan_message(), "version 1.0.0")
        write_plugin(self.plugins, "versioned", "1.1.0", None, self.manifest_extra)
        status, _, body = self.srv.request("POST", "/v1/plugins/versioned/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["version"], "1.1.0")
        self.assertEqual(self.scan_message(), "version 1.1.0")
        # A syntax error: the canary fails, 1.1.0 keeps serving.
        write_plugin(self.plugins, "versioned", "1.2.0", "module.exports = {{{", self.manifest_extra)
        status, _, body = self.srv.request("POST", "/v1/plugins/versioned/reload")
        self.assertEqual(status, 422, body)
        err = json.loads(body)
        self.assertEqual(err["serving_version"], "1.1.0")
        self.assertIn("keeps serving", err["error"])
        self.assertEqual(self.version(), "1.1.0")
        self.assertEqual(self.scan_message(), "version 1.1.0")
        # An invalid manifest is also the new version's fault.
        write_plugin(self.plugins, "versioned", "1.3.0", VERSIONED, {"timeout": 5})
        status, _, body = self.srv.request("POST", "/v1/plugins/versioned/reload")
        self.assertEqual(status, 422, body)
        self.assertIn("timeout", json.loads(body)["detail"])

    def test_concurrent_reloads_409(self):
        write_plugin(self.plugins, "versioned", "2.0.0", extra=self.manifest_extra, code=VERSIONED.replace(
            "module.exports = {", "module.exports = { init() { const e = Date.now() + 400;"
            " while (Date.now() < e) {} },"))
        results = []

        def reload():
            results.append(self.srv.request("POST", "/v1/plugins/versioned/reload")[0])
        threads = [threading.Thread(target=reload) for _ in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.15)
        for t in threads:
            t.join(60)
        self.assertEqual(sorted(results), [200, 409])

    def test_reload_under_load(self):
        stop = threading.Event()
        failures, counts = [], [0]

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
            for i in range(5000):  # bounded; stop normally ends it first
                if stop.is_set():
                    break
                conn.request("POST", "/v1/scan", json.dumps({"hash": "0x%x" % i}), JSON)
                resp = conn.getresponse()
                body = resp.read()
                rep = json.loads(body) if resp.status == 200 else None
                if resp.status != 200 or not rep["complete"]:
                    failures.append((resp.status, body[:300]))
                counts[0] += 1
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for n in range(8):
                write_plugin(self.plugins, "versioned", "3.0.%d" % n, None, self.manifest_extra)
                status, _, body = self.srv.request("POST", "/v1/plugins/versioned/reload")
                self.assertEqual(status, 200, body)
                status, _, body = self.srv.request("POST",
                                                   "/v1/plugins/unlimited-approval/reload")
                self.assertEqual(status, 200, body)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(failures, [])
        self.assertGreater(counts[0], 20)
        self.assertEqual(self.version(), "3.0.7")

    def test_sighup_reloads_all(self):
        write_plugin(self.plugins, "versioned", "4.0.0", None, self.manifest_extra)
        # --watch would pick the change up as well; make sure it has, so the
        # SIGHUP reload below is the one this test looks at.
        self.assertTrue(self.srv.wait_log(
            lambda e: e.get("event") == "reload" and e.get("source") == "watch", 10))
        self.srv.proc.send_signal(signal.SIGHUP)
        e = self.srv.wait_log(lambda e: e.get("event") == "reload" and e.get("source") == "sighup", 30)
        self.assertTrue(e and e["ok"], e)
        self.assertEqual(self.version(), "4.0.0")

    def test_watch(self):
        write_plugin(self.plugins, "versioned", "5.0.0", None, self.manifest_extra)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.version() != "5.0.0":
            time.sleep(0.1)
        self.assertEqual(self.version(), "5.0.0")
        self.assertEqual(self.scan_message(), "version 5.0.0")
        e = self.srv.wait_log(lambda e: e.get("event") == "reload" and e.get("source") == "watch"
                              and e.get("plugin") == "versioned", 10)
        self.assertTrue(e and e["ok"], e)
        # A broken save is logged, the old version serves on.
        with open(os.path.join(self.dir, "index.js"), "w") as f:
            f.write("syntax error here (")
        e = self.srv.wait_log(lambda e: e.get("event") == "reload" and e.get("ok") is False, 15)
        self.assertTrue(e, "no failed reload logged")
        self.assertEqual(self.scan_message(), "version 5.0.0")


class Overload(unittest.TestCase):
    """A full server answers 503 + Retry-After quickly instead of hanging."""

    def test_inflight_cap(self):
        srv = Server("-p", SLOW, "--max-inflight", "2")
        try:
            results = []

            def scan():
                t0 = time.monotonic()
                status, headers, _ = srv.post_json("/v1/scan", {"hash": "0x1", "sleep_ms": 400})
                results.append((status, headers.get("retry-after"), time.monotonic() - t0))
            threads = [threading.Thread(target=scan) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            busy = [r for r in results if r[0] == 503]
            self.assertEqual(len(results), 6)
            self.assertGreaterEqual(len(busy), 3, results)
            self.assertTrue(all(r[1] == "1" for r in busy), busy)
            self.assertTrue(all(r[2] < 2.0 for r in busy), busy)  # fast: no queueing
            self.assertTrue(all(r[0] in (200, 503) for r in results), results)
        finally:
            srv.stop_clean()

    def test_full_queue_is_that_plugins_status(self):
        # A plugin stuck in a native call lets its queue (1024) fill up: it
        # answers `overloaded` in the report (complete: false, HTTP 200)
        # while the other plugin answers; /readyz says which is degraded.
        tmp = tempfile.mkdtemp(prefix="txs-serve-")
        write_plugin(tmp, "stuck", code=STUCK, extra={"timeout_ms": 1000})
        write_plugin(tmp, "versioned", code=VERSIONED)
        srv = Server("-p", tmp, "--max-batch", "2000", "--drain-timeout", "1")
        try:
            first = []
            threading.Thread(target=lambda: first.append(srv.post_json(
                "/v1/scan", {"hash": "0xstuck", "stuck": STUCK_N}, timeout=120)),
                daemon=True).start()
            self.assertTrue(wait_busy(srv, "stuck"), "the stuck scan never started")
            # Two batches (one of 1,100 would overflow the other plugin's
            # queue as well, in the burst): 900 queue, then 200 of which 124 fit.
            full = []
            for n, want in ((900, 900), (200, 1024)):
                batch = [{"hash": "0x%x" % i} for i in range(n)]
                threading.Thread(target=lambda b=batch: full.append(srv.post_json(
                    "/v1/scan/batch", b, timeout=120)), daemon=True).start()
                deadline = time.monotonic() + 30
                depth = 0
                while time.monotonic() < deadline and depth < want:
                    depth = plugin_stats(srv, "stuck")["queue_depth"]
                    time.sleep(0.02)
            self.assertGreaterEqual(depth, 1024)
            t0 = time.monotonic()
            status, headers, body = srv.post_json("/v1/scan", {"hash": "0xone"}, timeout=60)
            took = time.monotonic() - t0
            self.assertEqual(status, 200, body[:300])
            rep = json.loads(body)
            self.assertFalse(rep["complete"])
            by_id = {p["id"]: p["status"] for p in rep["plugins"]}
            self.assertEqual(by_id, {"stuck": "overloaded", "versioned": "ok"})
            self.assertEqual([f["plugin"] for f in rep["findings"]], ["versioned"])
            self.assertLess(took, 2.0)  # answered at once, not after the queue
            status, ready = srv.get_json("/readyz")
            self.assertEqual(status, 200, ready)
            self.assertTrue(ready["ready"])
            self.assertEqual([d["id"] for d in ready["degraded"]], ["stuck"], ready)
            self.assertIn("overloaded recently", ready["degraded"][0]["reasons"])
            self.assertIn("queue over half full", ready["degraded"][0]["reasons"])
            metrics = srv.request("GET", "/metrics")[2].decode()
            self.assertIn('txscan_plugin_degraded{plugin="stuck"} 1\n', metrics)
            self.assertIn('txscan_plugin_degraded{plugin="versioned"} 0\n', metrics)
            # The batches: 200, one report per element, the overflow `overloaded`.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(full) < 2:
                time.sleep(0.05)
            self.assertEqual(len(full), 2, "the batches were not answered")
            reps = []
            for status, _, body in full:
                self.assertEqual(status, 200, body[:300])
                reps += json.loads(body)
            self.assertEqual(len(reps), 1100)
            statuses = [p["status"] for r in reps for p in r["plugins"] if p["id"] == "stuck"]
            self.assertGreaterEqual(statuses.count("overloaded"), 76)
            self.assertTrue(all(p["status"] == "ok" for r in reps for p in r["plugins"]
                                if p["id"] == "versioned"))
        finally:
            srv.stop()
            shutil.rmtree(tmp)


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def closed_within(sock, timeout, trickle=None, every=0.5):
    """Seconds until the server closes sock (sending one trickle byte every
    `every` s meanwhile), or None if it is still open after timeout."""
    t0 = time.monotonic()
    sock.settimeout(every)
    while time.monotonic() - t0 < timeout:
        try:
            if trickle:
                sock.sendall(trickle)
            data = sock.recv(4096)
            if not data:
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


class SlowClients(unittest.TestCase):
    """Slow or idle clients cannot starve health checks or scans."""

    def test_header_and_body_timeouts(self):
        srv = Server("-p", SLOW, "--header-timeout", "2", "--body-timeout", "2",
                     "--idle-timeout", "30")
        try:
            # One header byte every 0.5 s: MHD's idle timeout never fires.
            s1 = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s1.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            took = closed_within(s1, 10, b"X")
            s1.close()
            self.assertIsNotNone(took, "a trickling header was never cut")
            self.assertTrue(1.5 <= took <= 4.5, took)
            # Headers done, then one body byte every 0.5 s.
            s2 = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s2.sendall(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n{\"hash\": \"")
            took = closed_within(s2, 10, b"a")
            s2.close()
            self.assertIsNotNone(took, "a trickling body was never cut")
            self.assertTrue(1.5 <= took <= 4.5, took)
            text = srv.request("GET", "/metrics")[2].decode()
            self.assertIn('txscan_http_connections_timed_out_total{phase="headers"} 1\n', text)
            self.assertIn('txscan_http_connections_timed_out_total{phase="body"} 1\n', text)
            # A keep-alive connection between requests is not cut by the
            # header deadline, only by the idle one.
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            time.sleep(3)
            conn.request("GET", "/healthz")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
        finally:
            srv.stop_clean()

    def test_1100_slow_connections(self):
        # 1,100 connections that never finish their headers (today's limit
        # was 1,024 connections): /healthz and scans still answer, from
        # another client address, whether the slow ones come from one
        # address (the per-IP limit turns the rest away) or from many.
        if raise_nofile() < 2600:
            self.skipTest("RLIMIT_NOFILE too low for 2,300 sockets")
        srv = Server("-p", SLOW)
        socks = []
        try:
            for sources in (["127.0.0.1"], ["127.0.0.%d" % i for i in range(3, 14)]):
                for i in range(1100):
                    s = socket.socket()
                    s.setblocking(False)
                    s.bind((sources[i % len(sources)], 0))
                    s.connect_ex(("127.0.0.1", srv.port))
                    socks.append(s)
                time.sleep(0.5)
                for s in socks:
                    try:
                        s.send(b"GET /healthz HTTP/1.1\r\nHo")
                    except OSError:
                        pass  # turned away: that is the point
                time.sleep(0.5)
                status, took, _ = timed_get(srv.port, "/healthz", timeout=5, source="127.0.0.2")
                self.assertEqual(status, 200)
                self.assertLess(took, 1.0)
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10,
                                                  source_address=("127.0.0.2", 0))
                conn.request("POST", "/v1/scan", json.dumps({"hash": "0x1"}), JSON)
                self.assertEqual(conn.getresponse().status, 200)
                conn.close()
            text = srv.request("GET", "/metrics")[2].decode()
            self.assertIn("txscan_http_connections_limit 10000\n", text)
        finally:
            for s in socks:
                s.close()
            srv.stop_clean()


LOOPS = """module.exports = { scanTransaction(tx, ctx) {
  if (tx.loop) while (true) {}
  return null;
}};"""


class Degraded(unittest.TestCase):
    """A plugin whose circuit breaker opened is degraded: /readyz stays 200
    while another plugin can answer, 503 when none can."""

    def trip(self, srv):
        for i in range(6):  # breaker_after defaults to 5 consecutive kills
            srv.post_json("/v1/scan", {"hash": "0x%d" % i, "loop": True}, timeout=30)

    def test_breaker_open_is_degraded_not_unready(self):
        tmp = tempfile.mkdtemp(prefix="txs-serve-")
        write_plugin(tmp, "loops", code=LOOPS, extra={"timeout_ms": 20})
        write_plugin(tmp, "versioned", code=VERSIONED)
        srv = Server("-p", tmp)
        try:
            self.trip(srv)
            status, ready = srv.get_json("/readyz")
            self.assertEqual(status, 200, ready)
            self.assertEqual([d["id"] for d in ready["degraded"]], ["loops"], ready)
            self.assertIn("breaker open", ready["degraded"][0]["reasons"])
            text = srv.request("GET", "/metrics")[2].decode()
            self.assertIn('txscan_plugin_breaker_opens_total{plugin="loops"} 1\n', text)
            self.assertIn('txscan_plugin_degraded{plugin="loops"} 1\n', text)
            self.assertTrue(srv.wait_log(lambda e: e.get("event") == "breaker_open" and
                                         e.get("plugin") == "loops", 5))
        finally:
            srv.stop_clean()
            shutil.rmtree(tmp)

    def test_no_plugin_can_answer_is_503(self):
        tmp = tempfile.mkdtemp(prefix="txs-serve-")
        write_plugin(tmp, "loops", code=LOOPS, extra={"timeout_ms": 20})
        srv = Server("-p", tmp)
        try:
            self.trip(srv)
            status, ready = srv.get_json("/readyz")
            self.assertEqual(status, 503, ready)
            self.assertIn("no plugin can answer", ready["reason"])
            self.assertEqual(ready["plugins"], ["loops"])
        finally:
            srv.stop_clean()
            shutil.rmtree(tmp)


class StuckPlugin(unittest.TestCase):
    """A plugin stuck in a native call, a restart waiting on it and scans
    queued behind it: /healthz, /readyz, /metrics and /v1/plugins still
    answer within 100 ms."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-serve-")
        write_plugin(self.tmp, "stuck", code=STUCK, extra={"timeout_ms": 1000})
        write_plugin(self.tmp, "versioned", code=VERSIONED)
        self.srv = Server("-p", self.tmp, "--drain-timeout", "1")
        self.answers = []

    def tearDown(self):
        try:
            t0 = time.monotonic()
            self.srv.stop()
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            shutil.rmtree(self.tmp)

    def background(self, method, path, body=None):
        def run():
            t0 = time.monotonic()
            try:
                status, _, data = self.srv.request(method, path, body,
                                                   JSON if body is not None else None, timeout=120)
            except OSError as e:
                status, data = None, repr(e).encode()
            self.answers.append((path, status, time.monotonic() - t0, data))
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def wedge(self):
        """A stuck scan, a restart waiting on it, 30 scans behind it."""
        self.background("POST", "/v1/scan", {"hash": "0xstuck", "stuck": STUCK_N})
        self.assertTrue(wait_busy(self.srv, "stuck"), "the stuck scan never started")
        self.background("POST", "/v1/plugins/stuck/restart")
        for i in range(30):
            self.background("POST", "/v1/scan", {"hash": "0x%x" % i})
        time.sleep(0.3)

    def test_health_endpoints_answer_in_100ms(self):
        self.wedge()
        for _ in range(3):  # at a few points while it lasts
            slow = [fast_enough(self.srv.port, p)
                    for p in ("/healthz", "/readyz", "/metrics", "/v1/plugins")]
            self.assertEqual([x for x in slow if x], [])
            time.sleep(1)
        status, ready = self.srv.get_json("/readyz")
        self.assertEqual(status, 200, ready)  # the other plugin can answer
        # Another plugin's restart meanwhile answers at once: refused while the
        # stuck plugin's restart still runs (one at a time), done once the
        # executor has abandoned the stuck lane and served the restart.
        t0 = time.monotonic()
        status, _, _ = self.srv.request("POST", "/v1/plugins/versioned/restart", timeout=10)
        self.assertIn(status, (200, 409))
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_library_answers_stuck_plugin(self):
        # Needs the executor and host fixes of issue 15 (lock discipline,
        # abandoned lanes): what /v1/plugins shows stays current (the host
        # answers its info calls while a restart waits on the stuck engine),
        # the restart does not wait for the native call to end, and past the
        # backstop (10 x 1000 ms) a fresh lane serves the plugin again.
        t0 = time.monotonic()
        self.wedge()
        time.sleep(1.5)
        status, headers, _ = self.srv.request("GET", "/v1/plugins", timeout=10)
        self.assertEqual(status, 200)
        self.assertLess(float(headers["x-snapshot-age-ms"]), 1000)
        deadline = t0 + 15
        while time.monotonic() < deadline and len(self.answers) < 32:
            time.sleep(0.1)
        restart = [a for a in self.answers if a[0] == "/v1/plugins/stuck/restart"]
        self.assertEqual(len(restart), 1, "the restart was not answered within 15 s")
        self.assertEqual(restart[0][1], 200, restart)
        status, _, body = self.srv.post_json("/v1/scan", {"hash": "0xafter"}, timeout=10)
        self.assertEqual(status, 200)
        by_id = {p["id"]: p["status"] for p in json.loads(body)["plugins"]}
        self.assertEqual(by_id, {"stuck": "ok", "versioned": "ok"})


class Drain(unittest.TestCase):
    def test_malformed_requests_while_stopping(self):
        # libmicrohttpd 0.9.75 crashed (SIGSEGV) answering a malformed
        # request with its own 400 after MHD_stop_daemon had begun; the
        # server now closes every connection before it stops MHD. Before the
        # fix the 0 s round crashed in 3 runs out of 3 (1,000 connections).
        if raise_nofile() < 1200:
            self.skipTest("RLIMIT_NOFILE too low for 1,000 sockets")
        for delay in (0, 0.005, 0.01):
            srv = Server("-p", SLOW, "--max-connections-per-ip", "0")
            socks = []
            try:
                for _ in range(1000):
                    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    socks.append(s)
                time.sleep(0.3)
                srv.proc.send_signal(signal.SIGTERM)
                time.sleep(delay)
                for s in socks:
                    try:
                        s.send(b"no colon in this header line\r\n\r\n")  # MHD's own 400
                    except OSError:
                        pass  # already closed by the stopping server
                srv.proc.wait(30)
            finally:
                for s in socks:
                    s.close()
                srv.stop_clean()

    def test_sigterm_drains_then_exits_0(self):
        srv = Server("-p", SLOW)
        results = []

        def scan(i):
            results.append(srv.post_json("/v1/scan", {"hash": "0x%d" % i, "sleep_ms": 400}))
        threads = [threading.Thread(target=scan, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until all three are in the server
            if "txscan_http_scans_in_flight 3\n" in srv.request("GET", "/metrics")[2].decode():
                break
            time.sleep(0.02)
        srv.proc.send_signal(signal.SIGTERM)
        self.assertTrue(srv.wait_log(lambda e: e.get("event") == "shutdown", 10))
        time.sleep(0.1)
        with self.assertRaises(OSError):  # no new connections while draining
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        for t in threads:
            t.join(60)
        self.assertEqual(srv.proc.wait(30), 0)  # no second signal: that would cut the drain
        srv.stop_clean()
        self.assertEqual([r[0] for r in results], [200, 200, 200], results)
        self.assertTrue(all(json.loads(r[2])["complete"] for r in results))
        stopped = srv.wait_log(lambda e: e.get("event") == "stopped", 1)
        self.assertTrue(stopped and stopped["drained"], stopped)

    def test_sigterm_with_a_stuck_plugin(self):
        # A plugin stuck in a native call and scans waiting on it: SIGTERM
        # with --drain-timeout 1 ends the process within 2 s, and the
        # waiting clients get a clear 503.
        tmp = tempfile.mkdtemp(prefix="txs-serve-")
        write_plugin(tmp, "stuck", code=STUCK, extra={"timeout_ms": 5000})
        srv = Server("-p", tmp, "--drain-timeout", "1")
        results = []

        def scan(tx):
            try:
                results.append(srv.post_json("/v1/scan", tx, timeout=60))
            except OSError as e:
                results.append((None, {}, repr(e).encode()))
        try:
            threads = [threading.Thread(target=scan, args=({"hash": "0xstuck", "stuck": STUCK_N},))]
            threads[0].start()
            self.assertTrue(wait_busy(srv, "stuck"))
            for i in range(5):
                threads.append(threading.Thread(target=scan, args=({"hash": "0x%d" % i},)))
                threads[-1].start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if "txscan_http_scans_in_flight 6\n" in srv.request("GET", "/metrics")[2].decode():
                    break
                time.sleep(0.02)
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            took = time.monotonic() - t0
            for t in threads:
                t.join(10)
            self.assertLess(took, 2.0)
            self.assertEqual(len(results), 6)
            for status, headers, body in results:
                self.assertEqual(status, 503, body)
                self.assertEqual(json.loads(body)["error"], "shutting down: drain timeout passed")
            self.assertNotEqual(srv.proc.returncode, 0)
            stopped = srv.wait_log(lambda e: e.get("event") == "stopped", 1)
            self.assertTrue(stopped and not stopped["drained"], stopped)
        finally:
            srv.stop()
            shutil.rmtree(tmp)

    def test_second_sigterm_ends_at_once(self):
        tmp = tempfile.mkdtemp(prefix="txs-serve-")
        write_plugin(tmp, "stuck", code=STUCK, extra={"timeout_ms": 5000})
        srv = Server("-p", tmp, "--drain-timeout", "60")
        try:
            threading.Thread(target=lambda: srv.post_json(
                "/v1/scan", {"hash": "0xstuck", "stuck": STUCK_N}, timeout=60), daemon=True).start()
            self.assertTrue(wait_busy(srv, "stuck"))
            srv.proc.send_signal(signal.SIGTERM)
            self.assertTrue(srv.wait_log(lambda e: e.get("event") == "shutdown", 10))
            time.sleep(0.3)
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            srv.stop()
            shutil.rmtree(tmp)

    def test_sigint_idle(self):
        srv = Server("-p", EXAMPLES)
        self.assertEqual(srv.stop(signal.SIGINT), 0)
        srv.stop_clean()
        self.assertTrue(srv.wait_log(lambda e: e.get("event") == "stopped", 1))


def png_stats(path):
    """(width, height, distinct pixel values) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    w = h = depth = ctype = 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = {2: 3, 6: 4}.get(ctype, 1) if depth == 8 else 1
    stride = w * bpp + 1
    # Filter bytes make exact decoding long; distinct filtered rows are a
    # fine proxy for "the page is not blank".
    rows = {raw[i * stride + 1:(i + 1) * stride] for i in range(h)}
    return w, h, len(rows)


class StatusPage(unittest.TestCase):
    """The status page renders the plugin list with its script in Chromium."""

    @classmethod
    def setUpClass(cls):
        cls.chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not cls.chromium:
            raise unittest.SkipTest("chromium not installed (scripts/setup.sh installs it)")
        cls.tmp = tempfile.mkdtemp(prefix="txs-chromium-")
        # a plugin that throws on request, for the last-error column
        cls.extra = os.path.join(cls.tmp, "plugins")
        d = os.path.join(cls.extra, "page-thrower")
        os.makedirs(d)
        with open(os.path.join(d, "plugin.json"), "w") as f:
            f.write('{"id": "page-thrower", "version": "1.0.0", "main": "index.js"}')
        with open(os.path.join(d, "index.js"), "w") as f:
            f.write("module.exports = { scanTransaction(tx) {"
                    " if (tx.pageBoom) throw new Error('page boom'); return null; } };")
        cls.srv = Server("-p", EXAMPLES, "-p", cls.extra)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.srv.stop_clean()

    def chromium_run(self, *args):
        profile = tempfile.mkdtemp(dir=self.tmp)
        cmd = [self.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--user-data-dir=" + profile, "--virtual-time-budget=5000",
               *args, "http://127.0.0.1:%d/" % self.srv.port]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def test_dom_lists_plugins(self):
        # A scan first, so the counters the page shows are not all zero.
        self.srv.post_json("/v1/scan", sample_txs(3)[2])
        out = self.chromium_run("--dump-dom")
        dom = out.stdout
        self.assertIn("<table", dom, out.stderr[-2000:])
        for pid in os.listdir(EXAMPLES):
            # data-id is set by the script only: proof that it ran
            self.assertIn('data-id="%s"' % pid, dom, out.stderr[-2000:])
        self.assertIn(">ready<", dom)
        self.assertIn(">running<", dom)

    def test_last_error_column(self):
        status, _, _ = self.srv.post_json("/v1/scan", {"hash": "0xpage", "pageBoom": True})
        self.assertEqual(status, 200)
        deadline = time.monotonic() + 30  # /v1/plugins answers from a snapshot
        while time.monotonic() < deadline:
            _, plugins = self.srv.get_json("/v1/plugins")
            if any(p["id"] == "page-thrower" and p["last_error"] for p in plugins):
                break
            time.sleep(0.2)
        out = self.chromium_run("--dump-dom")
        dom = out.stdout
        self.assertIn("<th>last error</th>", dom, out.stderr[-2000:])
        row = re.search(r'<tr data-id="page-thrower">.*?</tr>', dom, re.S)
        self.assertIsNotNone(row, dom[-3000:])
        self.assertRegex(row.group(0), r'data-col="last_error"[^>]*>error: Error: page boom '
                                        r'\(tx 0xpage\) at ')
        self.assertRegex(row.group(0), r'data-col="failures"[^>]*>1 error<')

    def test_screenshot_not_blank(self):
        png = os.path.join(self.tmp, "status.png")
        out = self.chromium_run("--screenshot=" + png, "--window-size=1200,700")
        self.assertTrue(os.path.exists(png), out.stderr[-2000:])
        self.assertGreater(os.path.getsize(png), 5000)
        w, h, distinct = png_stats(png)
        self.assertEqual((w, h), (1200, 700))
        self.assertGreater(distinct, 20)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
