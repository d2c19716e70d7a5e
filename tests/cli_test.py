#!/usr/bin/env python3
"""Integration tests for the txscan CLI: scan, check, plugins, --help, exit codes.

usage: cli_test.py TXSCAN_BINARY PROJECT_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

TXSCAN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/txscan"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "."
EXAMPLES = os.path.join(ROOT, "examples", "plugins")


def run(*args, stdin=None, timeout=120):
    return subprocess.run([TXSCAN, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def log_lines(stderr):
    """stderr's log lines (JSON: stderr is a pipe), parsed; every line must be one."""
    return [json.loads(l) for l in stderr.splitlines() if l.strip()]


def write_plugin(root, pid, code, extra=""):
    d = os.path.join(root, pid)
    os.makedirs(d)
    with open(os.path.join(d, "plugin.json"), "w") as f:
        f.write('{"id": "%s", "version": "1.0.0", "main": "index.js"%s}' % (pid, extra))
    with open(os.path.join(d, "index.js"), "w") as f:
        f.write(code)
    return d


FLAG = """module.exports = { scanTransaction(tx) {
  if (tx.flag) return {code: 'FLAG', severity: tx.flag, message: 'flagged ' + tx.hash};
  if (tx.boom) throw new Error('boom');
  return null;
}};"""


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-cli-")
        self.plugins = os.path.join(self.tmp, "plugins")
        write_plugin(self.plugins, "flagger", FLAG)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def scan(self, text, *args):
        return run("scan", "-p", self.plugins, "--no-progress", *args, stdin=text)

    def test_help_everywhere(self):
        for cmd in ["scan", "check", "plugins", "serve", "worker", "publish", "new", "bundle"]:
            r = run(cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd + ": " + r.stderr)
            self.assertIn("usage: txscan " + cmd, r.stdout)
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("commands:", r.stdout)
        self.assertRegex(run("--version").stdout, r"^txscan \d+\.\d+\.\d+")
        r = run("frobnicate")
        self.assertEqual(r.returncode, 64)
        self.assertIn("unknown command 'frobnicate'", r.stderr)

    def test_exit_codes(self):
        self.assertEqual(self.scan('{"hash":"a"}\n').returncode, 0)
        self.assertEqual(self.scan('{"hash":"a","flag":"high"}\n').returncode, 1)
        self.assertEqual(self.scan('{"hash":"a","flag":"medium"}\n').returncode, 0)
        self.assertEqual(self.scan('{"hash":"a","flag":"medium"}\n', "--fail-on", "low").returncode, 1)
        self.assertEqual(self.scan('{"hash":"a","boom":1}\n').returncode, 2)
        self.assertEqual(self.scan('not json\n{"flag":"critical"}\n').returncode, 2)
        r = self.scan("{}", "--fail-on", "severe")
        self.assertEqual(r.returncode, 64)
        self.assertIn("unknown severity 'severe'", r.stderr)
        r = run("scan", "-p", os.path.join(self.tmp, "nowhere"), stdin="{}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("nowhere", r.stderr)

    def test_isolation_option(self):
        for mode in ("thread", "process"):
            r = self.scan('{"hash":"a","flag":"high"}\n', "--isolation", mode)
            self.assertEqual(r.returncode, 1, mode + ": " + r.stderr)
            self.assertEqual(json.loads(r.stdout)["findings"][0]["code"], "FLAG")
            r = run("check", "--isolation=" + mode, self.plugins)
            self.assertEqual(r.returncode, 0, mode + ": " + r.stderr)
        r = self.scan("{}", "--isolation", "fork")
        self.assertEqual(r.returncode, 64)
        self.assertIn("thread", r.stderr)
        r = self.scan("{}", "--isolation")
        self.assertEqual(r.returncode, 64)
        for cmd in ("scan", "check", "serve", "worker"):
            self.assertIn("--isolation", run(cmd, "--help").stdout, cmd)

    def test_stuck_native_call_in_process_isolation(self):
        # JSC's regexp engine never polls the watchdog: only a process can
        # be stopped; the next transaction gets a fresh one and completes.
        write_plugin(self.plugins, "stuck", """module.exports = { scanTransaction(tx) {
  if (tx.stuck) /a*b/.test('a'.repeat(300000));
  return null;
}};""", ', "timeout_ms": 50')
        lines = '{"hash":"s","stuck":1}\n{"hash":"n"}\n'
        t0 = time.monotonic()
        r = self.scan(lines, "--isolation", "process")
        took = time.monotonic() - t0
        out = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(r.returncode, 2, r.stderr)
        stuck = {p["id"]: p for p in out[0]["plugins"]}["stuck"]
        self.assertEqual(stuck["status"], "timeout")
        # the host's deadline kill, or the child's executor abandoning the
        # lane first (which gets the process replaced too)
        self.assertRegex(stuck["error"], "killed|abandoned")
        self.assertTrue(out[1]["complete"], out[1])
        self.assertLess(took, 10, "the regexp runs ~40 s unless its process is killed")

    def test_order_10000_lines(self):
        lines = []
        for i in range(10000):
            if i % 997 == 5:
                lines.append("{broken json %d" % i)
            elif i % 1009 == 7:
                lines.append("")  # blank lines are not inputs
            else:
                flag = ',"flag":"low"' if i % 3 == 0 else ""
                lines.append('{"hash":"h%d"%s}' % (i, flag))
        r = self.scan("\n".join(lines) + "\n")
        self.assertEqual(r.returncode, 2, r.stderr[-500:])
        out = r.stdout.splitlines()
        expected = [(i + 1, l) for i, l in enumerate(lines) if l.strip()]
        self.assertEqual(len(out), len(expected))
        for (lineno, src), got in zip(expected, out):
            rep = json.loads(got)
            self.assertEqual(rep["line"], lineno)
            if src.startswith("{broken"):
                self.assertIn("invalid JSON", rep["error"])
                continue
            self.assertEqual(rep["tx"], json.loads(src)["hash"])
            self.assertTrue(rep["complete"])
            self.assertEqual(rep["verdict"], "low" if "flag" in src else "none")

    def test_array_and_single_object(self):
        r = self.scan('[{"hash":"x1"}, {"hash":"x2","flag":"info"}, 5]')
        out = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual([o.get("tx") for o in out], ["x1", "x2", None])
        self.assertEqual(out[1]["findings"][0]["code"], "FLAG")
        self.assertIn("must be a JSON object", out[2]["error"])
        r = self.scan('{\n  "hash": "pretty",\n  "flag": "critical"\n}\n')
        out = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0]["verdict"], "critical")
        self.assertEqual(r.returncode, 1)

    def test_lines_whose_first_is_an_array(self):
        # JSON Lines whose first line is an array: that line is an error of
        # its own, the next lines are scanned (the text was taken for one
        # broken array: one error, and every transaction after it lost)
        for text in ('[1,2]\n{"hash":"y1"}\n{"hash":"y2"}\n', '[]\n{"hash":"y1"}\n{"hash":"y2"}'):
            r = self.scan(text)
            out = [json.loads(l) for l in r.stdout.splitlines()]
            self.assertEqual([o.get("tx") for o in out], [None, "y1", "y2"], text)
            self.assertIn("must be a JSON object", out[0]["error"])
            self.assertEqual(r.returncode, 2)
        # a pretty-printed array is still one array
        r = self.scan('[\n  {"hash":"z1"},\n  {"hash":"z2"}\n]\n')
        self.assertEqual([json.loads(l)["tx"] for l in r.stdout.splitlines()], ["z1", "z2"])

    def test_report_shape(self):
        r = self.scan('{"hash":"0x5c","flag":"high"}\n')
        rep = json.loads(r.stdout)
        self.assertEqual(list(rep.keys()), ["tx", "line", "verdict", "complete", "ms", "findings", "plugins"])
        self.assertEqual(rep["findings"], [{"plugin": "flagger", "code": "FLAG", "severity": "high",
                                            "message": "flagged 0x5c"}])
        self.assertEqual(rep["plugins"][0]["id"], "flagger")
        self.assertEqual(rep["plugins"][0]["status"], "ok")

    def test_files_and_table(self):
        path = os.path.join(self.tmp, "in.jsonl")
        with open(path, "w") as f:
            f.write('{"hash":"t1","flag":"critical"}\n{"hash":"t2"}\n')
        r = run("scan", "-p", self.plugins, "--format", "table", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("flagger:FLAG(critical)", r.stdout)
        self.assertIn("2 transactions: 1 critical", r.stdout)
        r = run("scan", "-p", self.plugins, os.path.join(self.tmp, "missing.jsonl"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.jsonl", r.stderr)

    def test_options_after_files(self):
        # GNU style: an option after a file is an option, never a file name
        # (it was scanned as the file "--format", after scanning the rest)
        path = os.path.join(self.tmp, "in.jsonl")
        with open(path, "w") as f:
            f.write('{"hash":"t1","flag":"critical"}\n')
        r = run("scan", path, "-p", self.plugins, "--format", "table", "--no-progress")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("flagger:FLAG(critical)", r.stdout)
        self.assertNotIn("No such file", r.stderr)
        r = run("scan", "-p", self.plugins, path, "--format")
        self.assertEqual(r.returncode, 64)
        self.assertIn("--format needs a value", r.stderr)
        r = run("scan", "-p", self.plugins, path, "--frob")
        self.assertEqual(r.returncode, 64)
        self.assertIn("unknown option '--frob'", r.stderr)
        # after "--", a name that starts with a dash is a file
        r = run("scan", "-p", self.plugins, "--", "--format")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--format", r.stderr)

    def test_huge_input_builds_no_tree(self):
        # A 64 MB first line, and a 64 MB array element, are refused at the
        # input cap without a parse tree of them: jansson built the first
        # line twice to tell JSON Lines from one pretty-printed value, and the
        # whole array plus a re-encoded copy of each element (~3x the input).
        # Written in pieces: the peak RSS wait4 reports includes this
        # process's own (a spawned child starts with it), so it stays small.
        chunk = "x" * (1 << 20)
        for name, head, tail, first_line in (
                ("line", '{"a":"', '"}\n{"hash":"ok"}\n', 1),
                ("array", '[{"a":"', '"},\n{"hash":"ok"}]', 1)):
            path = os.path.join(self.tmp, name + ".json")
            with open(path, "w") as f:
                f.write(head)
                for _ in range(64):
                    f.write(chunk)
                f.write(tail)
            outp, errp = path + ".out", path + ".err"
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            pid = os.posix_spawn(TXSCAN, [TXSCAN, "scan", "-q", "-p", self.plugins, path],
                                 os.environ, file_actions=[
                                     (os.POSIX_SPAWN_OPEN, 1, outp, flags, 0o600),
                                     (os.POSIX_SPAWN_OPEN, 2, errp, flags, 0o600)])
            _, status, usage = os.wait4(pid, 0)  # bounded: the reports below say why if not
            with open(outp) as f, open(errp) as g:
                out, err = f.read(), g.read()
            reports = [json.loads(l) for l in out.splitlines()]
            self.assertEqual(len(reports), 2, name + ": " + err)
            self.assertIn("the cap is", reports[0]["error"], name)
            self.assertEqual(reports[0]["line"], first_line, name)
            self.assertEqual(reports[1]["tx"], "ok", name)
            # the file's 64 MB mapped, the process's own ~40 MB, and slack;
            # a tree of the input passed 190 MB
            self.assertLess(usage.ru_maxrss, 160 << 10, name + ": peak RSS in KB")
            os.unlink(path)

    def test_stdin_is_a_stream(self):
        # each line's report comes out while the input is still open (it
        # came at end of input: `producer | txscan scan` printed nothing)
        import select
        proc = subprocess.Popen([TXSCAN, "scan", "-q", "-p", self.plugins], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for h, flag in (("s1", "high"), ("s2", None)):
                proc.stdin.write(json.dumps({"hash": h, "flag": flag} if flag else {"hash": h}) + "\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], 30)
                self.assertTrue(ready, "no report for %s while stdin is open" % h)
                self.assertEqual(json.loads(proc.stdout.readline())["tx"], h)
            proc.stdin.write('{"hash":"s3"}')  # the last line may lack its newline
            proc.stdin.close()
            self.assertEqual(json.loads(proc.stdout.readline())["tx"], "s3")
            self.assertEqual(proc.wait(timeout=60), 1)  # s1 was high
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    def test_table_cannot_be_blanked_or_forged(self):
        # A NUL in the input's hash or in a code blanked the whole row (jansson
        # refused the report); a code with a newline and ANSI escapes forged rows.
        write_plugin(self.plugins, "coder", """module.exports = { scanTransaction(tx) {
  if (tx.code !== undefined) return [{code: 'FIRST', severity: 'low', message: 'm'},
                                     {code: tx.code, severity: 'high', message: 'm'}];
  if (tx.big) return {code: 'BIG', severity: 'low', message: 'm', metadata: {n: 1e20}};
  return null;
}};""")
        lines = ['{"hash":"0x\\u0000","flag":"low"}',
                 '{"hash":"0x1","code":"NUL\\u0000"}',
                 '{"hash":"0x2","code":"A\\n99  0xfake..beef  none\\u001b[31m"}',
                 '{"hash":"\\u001b[2J\\u202eabcdefghijklmnop\\n","flag":"info"}',
                 '{"hash":"0x3","big":1}']
        r = self.scan("\n".join(lines) + "\n", "--format", "table")
        self.assertEqual(r.returncode, 2, r.stderr)
        rows = r.stdout.splitlines()
        self.assertEqual(len(rows), 1 + len(lines) + 2, r.stdout)  # header, rows, blank, summary
        self.assertNotIn("\x1b", r.stdout)
        self.assertNotIn("\0", r.stdout)
        self.assertNotIn("\u202e", r.stdout)
        self.assertRegex(rows[1], r"^1 +0x\\x00 +low +flagger:FLAG\(low\)$")
        self.assertRegex(rows[2], r"^2 +0x1 +none +!coder:error$")
        self.assertRegex(rows[3], r"^3 +0x2 +none +!coder:error$")
        self.assertRegex(rows[4], r"^4 +\\x1b\[2\.\.op\\n +info +flagger:FLAG\(info\)$")
        self.assertRegex(rows[5], r"^5 +0x3 +low +coder:BIG\(low\)$")
        self.assertIn("5 transactions: 0 critical, 0 high, 0 medium, 2 low, 1 info, 2 clean; "
                      "2 incomplete", r.stdout)
        # an input array with a NUL in a string is valid JSON too
        r = self.scan('[{"hash":"0x\\u0000","flag":"low"}, {"hash":"b"}]', "--format", "table")
        self.assertRegex(r.stdout.splitlines()[1], r"^1 +0x\\x00 +low +flagger:FLAG\(low\)$")
        # the reports say which finding and why, 1-based
        r = self.scan("\n".join(lines[1:3]) + "\n")
        errs = [next(p["error"] for p in json.loads(l)["plugins"] if p["id"] == "coder")
                for l in r.stdout.splitlines()]
        self.assertEqual(errs[0], 'finding 2: code must be UPPER_SNAKE_CASE ([A-Z][A-Z0-9_]*, '
                                  '1-128 characters), got "NUL\\u0000"')
        self.assertIn('finding 2: code must be UPPER_SNAKE_CASE', errs[1])

    def test_plugins_command(self):
        r = run("plugins", "-p", EXAMPLES)
        self.assertEqual(r.returncode, 0, r.stderr)
        for pid in os.listdir(EXAMPLES):
            self.assertIn(pid, r.stdout)
        r = run("plugins", "-p", EXAMPLES, "--json")
        ids = sorted(p["id"] for p in json.loads(r.stdout))
        self.assertEqual(ids, sorted(os.listdir(EXAMPLES)))

    def test_check_reports_problems(self):
        bad = write_plugin(self.tmp, "broken", "module.exports = { scanTransaction( {")
        r = run("check", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("SyntaxError", r.stderr)
        self.assertIn("FAIL", r.stdout)
        good = os.path.join(self.plugins, "flagger")
        fx = os.path.join(self.tmp, "fx.jsonl")
        with open(fx, "w") as f:
            f.write('{"name":"hit","tx":{"flag":"low"},"expect":["FLAG"]}\n')
            f.write('{"name":"wrong","tx":{},"expect":["FLAG"]}\n')
        r = run("check", good, fx)
        self.assertEqual(r.returncode, 2)
        self.assertIn("line 2 (wrong): findings [], expected [\"FLAG\"]", r.stdout)

    def test_hostile_plugin_source(self):
        # Each crashed the process (SIGSEGV) before the loader checked the source.
        cases = [(b"\xff\xfe", "index.js: invalid UTF-8 at byte offset 0"),
                 (b"}); (function(){ return 5; })(function(){", "closes the module's function early"),
                 (b"})", "index.js:2: SyntaxError"),
                 (b"module.exports = {};\0", "index.js: a NUL byte at offset 20")]
        for i, (code, msg) in enumerate(cases):
            with self.subTest(code=code):
                d = write_plugin(os.path.join(self.tmp, "hostile%d" % i), "hostile", "")
                with open(os.path.join(d, "index.js"), "wb") as f:
                    f.write(code)
                r = run("check", d)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(msg, r.stderr)
                self.assertIn("FAIL", r.stdout)
                r = run("scan", "-p", d, "--no-progress", stdin='{"hash":"a"}\n')
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(msg, r.stderr)

    def test_check_reads_every_report(self):
        # check re-parsed reports with jansson, which refused a NUL in a hash
        # and metadata holding 1e20: a failing plugin then read as "ok".
        d = write_plugin(self.tmp, "big", """module.exports = { scanTransaction(tx) {
  if (tx.boom) throw new Error('broken rule');
  return {code: 'BIG', severity: 'low', message: 'm', metadata: {n: 1e20}};
}};""")
        fx = os.path.join(self.tmp, "fx.jsonl")
        with open(fx, "w") as f:
            f.write('{"hash":"0x\\u0000","boom":1}\n'
                    '{"name":"big","tx":{"hash":"a"},"expect":["BIG"]}\n'
                    '{"name":"nul","tx":{"hash":"a\\u0000"},"expect":["WRONG"]}\n')
        r = run("check", d, fx)
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("FAIL  line 1: big: error: Error: broken rule", r.stdout)
        self.assertIn('ok    line 2 (big): verdict low, findings ["BIG"]', r.stdout)
        self.assertIn('FAIL  line 3 (nul): findings ["BIG"], expected ["WRONG"]', r.stdout)

    def test_example_fixtures(self):
        for pid in sorted(os.listdir(EXAMPLES)):
            d = os.path.join(EXAMPLES, pid)
            fx = os.path.join(d, "fixtures.jsonl")
            with self.subTest(plugin=pid):
                r = run("check", d, fx)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertNotIn("FAIL", r.stdout)

    def test_sample_runs_complete(self):
        r = run("scan", "-p", EXAMPLES, "--no-progress",
                os.path.join(ROOT, "examples", "transactions", "sample.jsonl"))
        reps = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertGreaterEqual(len(reps), 50)
        self.assertTrue(all(rep["complete"] for rep in reps), r.stdout[:2000])
        self.assertEqual(r.returncode, 1)  # the sample holds high and critical findings

    # ---- broken plugins: all named at once; --allow-partial (issue 15 item 9)

    def add_broken(self):
        write_plugin(self.plugins, "bad-init",
                     "module.exports = { init() { throw new Error('init boom'); },"
                     " scanTransaction() {} };")
        write_plugin(self.plugins, "bad-json", "module.exports = {};", ', "timeout_ms": "x"')
        os.makedirs(os.path.join(self.plugins, "notes"))  # no plugin.json: skipped

    def test_every_broken_plugin_named(self):
        self.add_broken()
        r = self.scan('{"hash":"a"}\n')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertTrue(any("bad-init/index.js: init(ctx) failed: Error: init boom" in l
                            for l in lines), r.stderr)
        self.assertTrue(any("bad-json/plugin.json: timeout_ms must be" in l for l in lines),
                        r.stderr)
        self.assertIn("notes: skipped: no plugin.json", r.stderr)
        for cmd in (["plugins"], ["worker", "--redis", "redis://127.0.0.1:1"]):
            r = run(*cmd, "-p", self.plugins, timeout=30)
            self.assertEqual(r.returncode, 2, cmd)
            self.assertIn("init boom", r.stderr)
            self.assertIn("timeout_ms must be", r.stderr)

    def test_scan_allow_partial(self):
        self.add_broken()
        r = self.scan('{"hash":"a","flag":"low"}\n{"hash":"b"}\n', "--allow-partial")
        self.assertEqual(r.returncode, 2, r.stderr)  # incomplete reports
        reps = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual([rep["tx"] for rep in reps], ["a", "b"])
        for rep in reps:
            self.assertFalse(rep["complete"])
            st = {p["id"]: p for p in rep["plugins"]}
            self.assertEqual(st["flagger"]["status"], "ok")
            self.assertEqual(st["bad-init"]["status"], "unavailable")
            self.assertIn("init boom", st["bad-init"]["error"])
            self.assertEqual(st["bad-json"]["status"], "unavailable")
            self.assertIn("timeout_ms must be", st["bad-json"]["error"])
        self.assertEqual(reps[0]["findings"][0]["code"], "FLAG")
        self.assertTrue(any(e["level"] == "warn" and e["event"] == "plugin_load" and
                            "plugin bad-init not started" in e["message"]
                            for e in log_lines(r.stderr)), r.stderr)
        r = run("plugins", "-p", self.plugins, "--json", "--allow-partial")
        self.assertEqual(r.returncode, 2)
        listed = {p["id"]: p for p in json.loads(r.stdout)}
        self.assertTrue(listed["flagger"]["started"])
        self.assertFalse(listed["bad-init"]["started"])
        self.assertIn("init boom", listed["bad-init"]["error"])

    def serve(self, *args):
        """Starts serve; returns (process, port or None, stderr lines so far)."""
        proc = subprocess.Popen([TXSCAN, "serve", "--listen", "127.0.0.1:0", "-p", self.plugins,
                                 *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT)
        lines, port = [], None
        deadline = time.monotonic() + 30
        timer = threading.Timer(30, proc.kill)  # readline cannot outlive the deadline
        timer.start()
        try:
            for line in proc.stderr:
                lines.append(line)
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "start":
                    port = int(ev["listen"].rsplit(":", 1)[1])
                    break
                if time.monotonic() > deadline:
                    break
        finally:
            timer.cancel()
        return proc, port, lines

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()

    def get(self, port, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_serve_allow_partial(self):
        self.add_broken()
        proc, port, lines = self.serve()
        try:
            self.assertIsNone(port, "".join(lines))
            self.assertEqual(proc.wait(15), 2)
            text = "".join(lines) + proc.stderr.read()
            self.assertIn("init boom", text)
            self.assertIn("timeout_ms must be", text)
        finally:
            self.stop(proc)
        proc, port, lines = self.serve("--allow-partial")
        try:
            self.assertIsNotNone(port, "".join(lines))
            status, plugins = self.get(port, "/v1/plugins")
            self.assertEqual(status, 200)
            listed = {p["id"]: p for p in plugins}
            self.assertTrue(listed["flagger"]["started"])
            self.assertFalse(listed["bad-init"]["started"])
            self.assertIn("init boom", listed["bad-init"]["error"])
            self.assertIn("timeout_ms must be", listed["bad-json"]["error"])
            status, ready = self.get(port, "/readyz")
            self.assertEqual(status, 503)
            self.assertEqual(sorted(ready["plugins"]), ["bad-init", "bad-json"])
        finally:
            self.stop(proc)

    def test_worker_allow_partial_parsed(self):
        self.add_broken()
        # Redis on port 1 is not there: the worker gets as far as its start
        # line (plugins loaded), then is stopped.
        proc = subprocess.Popen([TXSCAN, "worker", "-p", self.plugins, "--allow-partial",
                                 "--redis", "redis://127.0.0.1:1", "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        timer = threading.Timer(30, proc.kill)
        timer.start()
        seen = []
        try:
            for line in proc.stderr:
                seen.append(line)
                if '"worker_start"' in line:
                    break
        finally:
            timer.cancel()
            self.stop(proc)
        starts = [e for e in log_lines("".join(seen)) if e["event"] == "worker_start"]
        self.assertEqual([e["plugins"] for e in starts], [3], "".join(seen))
        r = run("worker", "--allow-partial=1", "-p", self.plugins)
        self.assertEqual(r.returncode, 64)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
