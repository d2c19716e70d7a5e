#!/usr/bin/env python3
"""Integration tests for the txscan CLI: scan, check, plugins, --help, exit codes.

usage: cli_test.py TXSCAN_BINARY PROJECT_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

TXSCAN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/txscan"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "."
EXAMPLES = os.path.join(ROOT, "examples", "plugins")


def run(*args, stdin=None, timeout=120):
    return subprocess.run([TXSCAN, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


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
        for cmd in ["scan", "check", "plugins", "serve", "worker", "publish"]:
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


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
