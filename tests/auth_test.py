#!/usr/bin/env python3
"""Integration tests for access control in `txscan serve` (issue 21): bearer
tokens per role on every endpoint, token rotation on SIGHUP, the refusal to
listen beyond loopback without access control, TLS from files (curl
--cacert), plain HTTP refused on the TLS port, certificate reload on SIGHUP
with a keep-alive connection kept, mutual TLS accepted and refused.

usage: auth_test.py TXSCAN_BINARY PROJECT_DIR

Python 3 standard library, plus the openssl and curl programs. Certificates
are made by the test in a temporary folder. Servers listen on port 0 and the
test reads the bound port from the JSON "start" log line. Every wait is
bounded; every process started is stopped.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

TXSCAN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/txscan"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "."
PLUGIN = os.path.join(ROOT, "examples", "plugins", "permit")
JSON = {"Content-Type": "application/json"}
TX = {"hash": "0x01", "to": "0x0c54fccd2e384b4bb6f2e405bf5cbc15a017aafb", "value": "0x0"}

SCAN1 = "scan-token-one-0123456789abcdef"
SCAN2 = "scan-token-two-0123456789abcdef"
SCAN3 = "scan-token-three-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
METRICS = "metrics-token-0123456789abcdef"
WRONG = "not-a-token-0123456789abcdef"
ALL_TOKENS = (SCAN1, SCAN2, SCAN3, ADMIN, METRICS, WRONG)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)  # as a secret manager would: never half a file


class Server:
    """A `txscan serve` process; stderr lines are collected by a thread."""

    def __init__(self, *args, listen="127.0.0.1:0", env=None, tls_ca=None, client=None):
        self.lines = []
        self.cond = threading.Condition()
        self.tls_ca = tls_ca
        self.client = client  # (cert, key) for mutual TLS
        e = dict(os.environ)
        for k in ("TXSCAN_SCAN_TOKEN", "TXSCAN_ADMIN_TOKEN", "TXSCAN_METRICS_TOKEN"):
            e.pop(k, None)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [TXSCAN, "serve", "-p", PLUGIN, "--listen", listen, "--threads", "2", *args],
            cwd=ROOT, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        start = self.wait_log(lambda e: e.get("event") == "start", 60)
        if not start:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        self.start = start
        self.port = int(start["listen"].rsplit(":", 1)[1])

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def text(self):
        with self.cond:
            return "".join(self.lines)

    def wait_log(self, pred, timeout, after=0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[after:]:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(min(left, 0.2))

    def mark(self):
        with self.cond:
            return len(self.lines)

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.tls_ca)
        if self.client:
            ctx.load_cert_chain(*self.client)
        return ctx

    def connection(self, timeout=30):
        if self.tls_ca:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_context())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """(status, headers dict with lower-case names, body bytes)."""
        own = conn is None
        conn = conn or self.connection()
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            if own:
                conn.close()

    def sighup_and_wait(self, event, timeout=20):
        at = self.mark()
        self.proc.send_signal(signal.SIGHUP)
        e = self.wait_log(lambda e: e.get("event") == event, timeout, after=at)
        if not e:
            raise AssertionError("no %s log line after SIGHUP:\n%s" % (event, self.text()[-3000:]))
        return e

    def metric(self, name, token=None):
        status, _, body = self.request("GET", "/metrics", headers=bearer(token) if token else None)
        if status != 200:
            raise AssertionError("/metrics answered %d" % status)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(5)
        if not self.reader.is_alive():
            self.proc.stderr.close()


def run_serve(*args, env=None, timeout=60):
    """Runs `txscan serve` expected to exit on its own; (code, stderr)."""
    e = dict(os.environ)
    for k in ("TXSCAN_SCAN_TOKEN", "TXSCAN_ADMIN_TOKEN", "TXSCAN_METRICS_TOKEN"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.Popen([TXSCAN, "serve", "-p", PLUGIN, *args], cwd=ROOT, env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        return None, err
    return p.returncode, err


# ---- certificates ------------------------------------------------------------------------


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


class PKI:
    """A CA, server certificates for 127.0.0.1 and client certificates (openssl)."""

    def __init__(self, folder):
        self.dir = folder
        self.ca_key, self.ca = self.path("ca.key"), self.path("ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=txscan test CA")
        self.serial = 1

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, cn, ext):
        key, csr, pem, extf = (self.path(name + s) for s in (".key", ".csr", ".pem", ".ext"))
        with open(extf, "w") as f:
            f.write(ext)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        self.serial += 1
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial",
                str(self.serial), "-out", pem, "-days", "2", "-extfile", extf)
        return pem, key

    def server(self, name):
        return self.issue(name, "localhost",
                          "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")

    def client(self, name):
        return self.issue(name, "client " + name, "extendedKeyUsage=clientAuth\n")


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


# ---- tokens on every endpoint ------------------------------------------------------------


class TokenRoutes(unittest.TestCase):
    """scan, admin and metrics tokens from files; every endpoint with no token, a malformed
    header, a wrong token, another role's token and its own."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="txscan-auth-")
        cls.files = {}
        for role, text in (("scan", "# scan clients\n%s\n\n  %s  \n" % (SCAN1, SCAN2)),
                           ("admin", ADMIN + "\n"), ("metrics", METRICS + "\n")):
            cls.files[role] = os.path.join(cls.tmp, role)
            write(cls.files[role], text)
        cls.srv = Server("--scan-token-file", cls.files["scan"], "--admin-token-file",
                         cls.files["admin"], "--metrics-token-file", cls.files["metrics"])

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # (method, path, body, role, status with the right token)
    ROUTES = [
        ("POST", "/v1/scan", TX, "scan", 200),
        ("POST", "/v1/scan/batch", [TX], "scan", 200),
        ("GET", "/v1/plugins", None, "admin", 200),
        ("POST", "/v1/plugins/permit/restart", None, "admin", 200),
        ("POST", "/v1/plugins/permit/reload", None, "admin", 200),
        ("POST", "/v1/reload", None, "admin", 200),
        ("GET", "/metrics", None, "metrics", 200),
    ]
    TOKENS = {"scan": SCAN1, "admin": ADMIN, "metrics": METRICS}

    def call(self, method, path, body, headers):
        h = dict(headers)
        if method == "POST":
            h.update(JSON)
            body = json.dumps(body) if body is not None else ""
        return self.srv.request(method, path, body, h)

    def assert_refused(self, status, headers, body, code, error=None):
        self.assertEqual(status, code, body)
        self.assertEqual(json.loads(body)["status"], code)
        challenge = headers.get("www-authenticate", "")
        self.assertTrue(challenge.startswith('Bearer realm="txscan"'), headers)
        if error:
            self.assertIn('error="%s"' % error, challenge)

    def test_every_route(self):
        before = {r: self.srv.metric('txscan_http_auth_failures_total{reason="%s"}' % r, METRICS)
                  for r in ("missing", "malformed", "invalid", "forbidden")}
        expect = dict.fromkeys(before, 0)
        for method, path, body, role, ok in self.ROUTES:
            with self.subTest(path=path, token="none"):
                self.assert_refused(*self.call(method, path, body, {}), 401)
                expect["missing"] += 1
            with self.subTest(path=path, token="malformed"):
                self.assert_refused(*self.call(method, path, body,
                                               {"Authorization": "Basic " + ADMIN}), 401,
                                    "invalid_token")
                expect["malformed"] += 1
            with self.subTest(path=path, token="wrong"):
                self.assert_refused(*self.call(method, path, body, bearer(WRONG)), 401,
                                    "invalid_token")
                expect["invalid"] += 1
            # Another role's token: 403. Admin does not imply scan, nor scan admin; a
            # scan token on GET /v1/plugins is let through, redacted (test_plugins_redacted).
            others = [r for r in self.TOKENS if r != role and not (path == "/v1/plugins" and
                                                                    r == "scan")]
            for other in others:
                with self.subTest(path=path, token=other):
                    self.assert_refused(*self.call(method, path, body,
                                                   bearer(self.TOKENS[other])), 403,
                                        "insufficient_scope")
                    expect["forbidden"] += 1
            with self.subTest(path=path, token=role):
                status, _, data = self.call(method, path, body, bearer(self.TOKENS[role]))
                self.assertEqual(status, ok, data)
        for reason, n in expect.items():
            got = self.srv.metric('txscan_http_auth_failures_total{reason="%s"}' % reason, METRICS)
            self.assertEqual(got - before[reason], n, reason)

    def test_both_tokens_of_a_file_and_scheme_case(self):
        for tok in (SCAN1, SCAN2):
            status, _, body = self.srv.request("POST", "/v1/scan", json.dumps(TX),
                                               {**JSON, **bearer(tok)})
            self.assertEqual(status, 200, body)
        status, _, _ = self.srv.request("POST", "/v1/scan", json.dumps(TX),
                                        {**JSON, "Authorization": "bearer   " + SCAN2})
        self.assertEqual(status, 200)
        # A prefix or an extension of a valid token is not valid.
        for tok in (SCAN1[:-1], SCAN1 + "x"):
            status, _, _ = self.srv.request("POST", "/v1/scan", json.dumps(TX),
                                            {**JSON, **bearer(tok)})
            self.assertEqual(status, 401)

    def test_open_routes(self):
        for path in ("/healthz", "/readyz", "/"):
            status, _, body = self.srv.request("GET", path)
            self.assertEqual(status, 200, (path, body))

    def test_status_page_asks_for_a_token(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            self.skipTest("chromium not installed (scripts/setup.sh installs it)")
        with tempfile.TemporaryDirectory() as profile:
            out = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile,
                 "--virtual-time-budget=5000", "--dump-dom", "http://127.0.0.1:%d/" % self.srv.port],
                capture_output=True, text=True, timeout=120)
        dom = out.stdout
        self.assertIn('<form id="tok">', dom, out.stderr[-2000:])  # shown: no hidden attribute
        self.assertIn("/v1/plugins: this route needs a token", dom)
        self.assertIn(">ok<", dom)  # /healthz stays open to the page

    def test_plugins_redacted(self):
        status, _, body = self.srv.request("GET", "/v1/plugins", headers=bearer(ADMIN))
        self.assertEqual(status, 200)
        full = json.loads(body)
        self.assertIn("dir", full[0])
        status, _, body = self.srv.request("GET", "/v1/plugins", headers=bearer(SCAN2))
        self.assertEqual(status, 200)
        seen = json.loads(body)
        self.assertEqual([p["id"] for p in seen], [p["id"] for p in full])
        self.assertNotIn("dir", seen[0])
        self.assertNotIn(os.path.dirname(PLUGIN), body.decode())

    def test_failures_logged_without_tokens(self):
        time.sleep(1.1)  # a fresh second of the error log's rate limit
        at = self.srv.mark()
        self.srv.request("POST", "/v1/plugins/permit/restart", "", {**JSON, **bearer(SCAN1)})
        e = self.srv.wait_log(lambda e: e.get("event") == "auth_failed", 10, after=at)
        self.assertIsNotNone(e)
        self.assertEqual((e["client"], e["path"], e["reason"]),
                         ("127.0.0.1", "/v1/plugins/permit/restart", "forbidden"))
        time.sleep(0.3)
        log = self.srv.text()
        for tok in ALL_TOKENS:
            self.assertNotIn(tok, log)
        self.assertNotIn(tok[:12], log)

    def test_failures_rate_limited(self):
        at = self.srv.mark()
        for _ in range(60):  # in well under a second: the limit is 20 error lines a second
            self.srv.request("GET", "/v1/plugins", headers=bearer(WRONG))
        time.sleep(0.3)
        with self.srv.cond:
            lines = [l for l in self.srv.lines[at:] if '"auth_failed"' in l]
        self.assertLess(len(lines), 60)
        self.assertGreater(self.srv.metric("txscan_log_suppressed_total", METRICS), 0)


class TokenSources(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txscan-auth-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_rotation_on_sighup(self):
        f = os.path.join(self.tmp, "scan")
        write(f, "%s\n%s\n" % (SCAN1, SCAN2))
        srv = Server("--scan-token-file", f)
        try:
            scan = lambda tok: srv.request("POST", "/v1/scan", json.dumps(TX),
                                           {**JSON, **bearer(tok)})[0]
            self.assertEqual((scan(SCAN1), scan(SCAN2), scan(SCAN3)), (200, 200, 401))
            write(f, "%s\n%s\n" % (SCAN2, SCAN3))
            e = srv.sighup_and_wait("tokens_reload")
            self.assertEqual((e["ok"], e["scan"]), (True, 2))
            self.assertEqual((scan(SCAN1), scan(SCAN2), scan(SCAN3)), (401, 200, 200))
            # A file that cannot be read keeps the tokens in use.
            os.unlink(f)
            e = srv.sighup_and_wait("tokens_reload")
            self.assertFalse(e["ok"])
            self.assertEqual((scan(SCAN2), scan(SCAN3)), (200, 200))
            # An empty file closes the role; it does not open the server.
            write(f, "\n")
            srv.sighup_and_wait("tokens_reload")
            self.assertEqual((scan(SCAN2), scan(SCAN3)), (401, 401))
        finally:
            srv.stop()

    def test_environment_tokens(self):
        srv = Server("--isolation", "process",
                     env={"TXSCAN_SCAN_TOKEN": "%s, %s" % (SCAN1, SCAN2),
                          "TXSCAN_ADMIN_TOKEN": ADMIN})
        try:
            # Neither the server's /proc environ nor its engine processes' hold them.
            pids = [srv.proc.pid]
            for task in os.listdir("/proc/%d/task" % srv.proc.pid):
                with open("/proc/%d/task/%s/children" % (srv.proc.pid, task)) as f:
                    pids += [int(p) for p in f.read().split()]
            self.assertGreater(len(pids), 1, "no engine process found")
            for pid in pids:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    env = f.read()
                for tok in (SCAN1, SCAN2, ADMIN):
                    self.assertNotIn(tok.encode(), env, pid)
            for tok, want in ((SCAN1, 200), (SCAN2, 200), (ADMIN, 403), (WRONG, 401)):
                status, _, _ = srv.request("POST", "/v1/scan", json.dumps(TX),
                                           {**JSON, **bearer(tok)})
                self.assertEqual(status, want, tok)
            status, _, _ = srv.request("POST", "/v1/plugins/permit/restart", "",
                                       {**JSON, **bearer(ADMIN)})
            self.assertEqual(status, 200)
            # /metrics stays open without a metrics token.
            self.assertEqual(srv.request("GET", "/metrics")[0], 200)
        finally:
            srv.stop()

    def test_scan_tokens_alone_close_admin_routes(self):
        f = os.path.join(self.tmp, "scan")
        write(f, SCAN1 + "\n")
        srv = Server("--scan-token-file", f)
        try:
            status, _, _ = srv.request("POST", "/v1/plugins/permit/restart", "", JSON)
            self.assertEqual(status, 401)
            status, _, _ = srv.request("POST", "/v1/plugins/permit/restart", "",
                                       {**JSON, **bearer(SCAN1)})
            self.assertEqual(status, 403)
        finally:
            srv.stop()

    def test_bad_token_sources_refused(self):
        short = os.path.join(self.tmp, "short")
        write(short, "# ok\ntoo-short\n")
        code, err = run_serve("--scan-token-file", short)
        self.assertNotEqual(code, 0)
        self.assertIn(short + ":2:", err)
        self.assertIn("at least 16", err)
        self.assertNotIn("too-short", err.replace(short, ""))
        empty = os.path.join(self.tmp, "empty")
        write(empty, "# nothing yet\n")
        code, err = run_serve("--admin-token-file", empty)
        self.assertNotEqual(code, 0)
        self.assertIn("no token", err)
        code, err = run_serve("--scan-token-file", os.path.join(self.tmp, "absent"))
        self.assertNotEqual(code, 0)
        self.assertIn("absent", err)
        code, err = run_serve(env={"TXSCAN_SCAN_TOKEN": "a b c d e f g h i j k l m n o p q"})
        self.assertNotEqual(code, 0)
        self.assertIn("TXSCAN_SCAN_TOKEN", err)


class SafeDefault(unittest.TestCase):
    def test_refuses_every_address_without_auth(self):
        for listen in ("0.0.0.0:0", ":0"):
            with self.subTest(listen=listen):
                code, err = run_serve("--listen", listen)
                self.assertEqual(code, 2, err)
                self.assertIn("refusing to listen", err)
                for hint in ("--scan-token-file", "TXSCAN_SCAN_TOKEN", "--insecure-no-auth"):
                    self.assertIn(hint, err)

    def test_ipv6_any_refused_and_loopback_names_allowed(self):
        try:
            with socket.socket(socket.AF_INET6) as s6:
                s6.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback here")
        code, err = run_serve("--listen", "[::]:0")
        self.assertEqual(code, 2, err)
        self.assertIn("refusing to listen", err)
        for listen in ("[::1]:0", "localhost:0", "127.0.0.2:0"):
            with self.subTest(listen=listen):
                Server(listen=listen).stop()

    def test_insecure_no_auth_allows_it(self):
        srv = Server("--insecure-no-auth", listen="0.0.0.0:0")
        try:
            self.assertTrue(srv.start.get("insecure_no_auth"))
            self.assertEqual(srv.request("POST", "/v1/scan", json.dumps(TX), JSON)[0], 200)
        finally:
            srv.stop()

    def test_tokens_allow_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, "admin")
            write(f, ADMIN + "\n")
            srv = Server("--admin-token-file", f, listen="0.0.0.0:0")
            try:
                self.assertEqual(srv.request("POST", "/v1/scan", json.dumps(TX), JSON)[0], 401)
            finally:
                srv.stop()

    def test_loopback_stays_open_without_tokens(self):
        srv = Server()
        try:
            self.assertEqual(srv.request("POST", "/v1/scan", json.dumps(TX), JSON)[0], 200)
            self.assertIn("dir", json.loads(srv.request("GET", "/v1/plugins")[2])[0])
        finally:
            srv.stop()


def assert_gets_keep_alive(test, srv, headers=None):
    """GETs answered on one keep-alive connection: a TLS client (a Prometheus scrape, the
    status page) pays no new handshake per request."""
    conn = srv.connection()
    try:
        sock = None
        for path in ("/healthz", "/readyz", "/metrics", "/v1/plugins", "/", "/healthz"):
            status, h, _ = srv.request("GET", path, headers=headers, conn=conn)
            test.assertEqual(status, 200, path)
            test.assertNotEqual(h.get("connection"), "close", path)
            test.assertIsNotNone(conn.sock, path)
            sock = sock or conn.sock
            test.assertIs(conn.sock, sock, path)
    finally:
        conn.close()


class KeepAlive(unittest.TestCase):
    def test_gets_keep_the_connection(self):
        srv = Server()
        try:
            assert_gets_keep_alive(self, srv)
        finally:
            srv.stop()


# ---- TLS -------------------------------------------------------------------------------


@unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "needs openssl and curl")
class TLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="txscan-tls-")
        cls.pki = PKI(cls.tmp)
        cls.cert, cls.key = cls.pki.server("srv1")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def serve(self, *args, client=None, **kw):
        cert, key = self.pki.path("live.pem"), self.pki.path("live.key")
        shutil.copy(self.cert, cert)
        shutil.copy(self.key, key)
        self.live = (cert, key)
        return Server("--tls-cert", cert, "--tls-key", key, *args, tls_ca=self.pki.ca,
                      client=client, **kw)

    def curl(self, srv, path, *args):
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                            "20", "--cacert", self.pki.ca, *args,
                            "https://127.0.0.1:%d%s" % (srv.port, path)],
                           capture_output=True, text=True)
        return p.returncode, p.stdout

    def test_https_with_tokens(self):
        f = self.pki.path("scan-tokens")
        write(f, SCAN1 + "\n")
        srv = self.serve("--scan-token-file", f)
        try:
            self.assertTrue(srv.start["tls"])
            self.assertEqual(self.curl(srv, "/healthz"), (0, "200"))
            self.assertEqual(self.curl(srv, "/v1/scan", "-H", "Content-Type: application/json",
                                       "--data", json.dumps(TX), "-H",
                                       "Authorization: Bearer " + SCAN1), (0, "200"))
            self.assertEqual(self.curl(srv, "/v1/scan", "-H", "Content-Type: application/json",
                                       "--data", json.dumps(TX)), (0, "401"))
            # An unknown CA is refused by the client: the certificate is the one given.
            p = subprocess.run(["curl", "-s", "--max-time", "20",
                                "https://127.0.0.1:%d/healthz" % srv.port], capture_output=True)
            self.assertNotEqual(p.returncode, 0)
        finally:
            srv.stop()

    def test_plain_http_refused(self):
        srv = self.serve()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
            with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            conn.close()
            p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "20", "http://127.0.0.1:%d/healthz" % srv.port],
                               capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(p.stdout, "000")
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)  # TLS still answers
        finally:
            srv.stop()

    def test_tls_before_1_2_refused(self):
        srv = self.serve()
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(self.pki.ca)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            try:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            except ssl.SSLError:
                pass
            with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
                with self.assertRaises((ssl.SSLError, OSError)):
                    ctx.wrap_socket(s, server_hostname="127.0.0.1").close()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                    self.assertEqual(t.version(), "TLSv1.2")
        finally:
            srv.stop()

    def test_certificate_reload_keeps_connections(self):
        srv = self.serve()
        try:
            # POST /v1/scan: libmicrohttpd 0.9.75 closes the connection after a GET
            # answered from its first callback, as /healthz is; a scan keeps it open.
            scan = lambda: srv.request("POST", "/v1/scan", json.dumps(TX), JSON, conn=conn)[0]
            conn = srv.connection()
            self.assertEqual(scan(), 200)
            sock = conn.sock
            self.assertEqual(sock.getpeercert(binary_form=True), der_of(self.cert))
            cert2, key2 = self.pki.server("srv2")
            # The key first: until the certificate follows, the pair does not match and
            # the reload keeps the certificate in use.
            shutil.copy(key2, self.live[1])
            e = srv.sighup_and_wait("tls_reload")
            self.assertFalse(e["ok"])
            self.assertIn("does not match", e["error"])
            with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
                with srv.ssl_context().wrap_socket(s, server_hostname="127.0.0.1") as t:
                    self.assertEqual(t.getpeercert(binary_form=True), der_of(self.cert))
            shutil.copy(cert2, self.live[0])
            e = srv.sighup_and_wait("tls_reload")
            self.assertTrue(e["ok"] and e["changed"], e)
            # The keep-alive connection made before the reload still answers, on the same
            # socket (http.client would raise, not reconnect, had the server closed it).
            self.assertEqual(scan(), 200)
            self.assertIs(conn.sock, sock)
            conn.close()
            with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
                with srv.ssl_context().wrap_socket(s, server_hostname="127.0.0.1") as t:
                    self.assertEqual(t.getpeercert(binary_form=True), der_of(cert2))
            self.assertEqual(self.curl(srv, "/healthz"), (0, "200"))
        finally:
            srv.stop()

    def test_gets_keep_the_connection(self):
        f = self.pki.path("admin-tokens")
        write(f, ADMIN + "\n")
        srv = self.serve("--admin-token-file", f)
        try:
            assert_gets_keep_alive(self, srv, bearer(ADMIN))
        finally:
            srv.stop()

    def test_mutual_tls(self):
        good = self.pki.client("alice")
        other = PKI(tempfile.mkdtemp(dir=self.tmp))
        stranger = other.client("mallory")
        srv = self.serve("--tls-client-ca", self.pki.ca, client=good, listen="0.0.0.0:0")
        try:
            self.assertTrue(srv.start["mutual_tls"])  # and no refusal of 0.0.0.0
            self.assertEqual(self.curl(srv, "/healthz", "--cert", good[0], "--key", good[1]),
                             (0, "200"))
            for args in ((), ("--cert", stranger[0], "--key", stranger[1]),
                         ("--tls-max", "1.2"), ("--tls-max", "1.2", "--cert", stranger[0],
                                                 "--key", stranger[1])):
                with self.subTest(args=args):
                    rc, code = self.curl(srv, "/healthz", *args)
                    self.assertNotEqual(rc, 0)
                    self.assertEqual(code, "000")
            self.assertEqual(srv.metric('txscan_http_auth_failures_total{reason="client_cert"}'),
                             4)
            e = srv.wait_log(lambda e: e.get("event") == "auth_failed", 5)
            self.assertEqual((e["reason"], e["client"]), ("client_cert", "127.0.0.1"))
        finally:
            srv.stop()

    def test_client_ca_reload(self):
        ca_file = self.pki.path("clients-ca.pem")
        shutil.copy(self.pki.ca, ca_file)
        alice = self.pki.client("alice2")
        other = PKI(tempfile.mkdtemp(dir=self.tmp))
        bob = other.client("bob")
        srv = self.serve("--tls-client-ca", ca_file)
        try:
            cert = lambda c: self.curl(srv, "/healthz", "--cert", c[0], "--key", c[1])
            self.assertEqual(cert(alice)[1], "200")
            self.assertEqual(cert(bob)[1], "000")
            shutil.copy(other.ca, ca_file)
            e = srv.sighup_and_wait("tls_reload")
            self.assertTrue(e["ok"] and e["changed"], e)
            self.assertEqual(cert(alice)[1], "000")
            self.assertEqual(cert(bob)[1], "200")
        finally:
            srv.stop()

    def test_tls_options_checked(self):
        code, err = run_serve("--tls-cert", self.cert)
        self.assertEqual(code, 64)  # a usage error
        self.assertIn("--tls-key", err)
        _, other_key = self.pki.server("srv3")
        code, err = run_serve("--tls-cert", self.cert, "--tls-key", other_key)
        self.assertEqual(code, 64)
        self.assertIn("does not match", err)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
