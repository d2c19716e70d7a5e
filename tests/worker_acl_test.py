#!/usr/bin/env python3
"""`txscan worker` under a Redis ACL user with the least rights (issue 21).

    python3 tests/worker_acl_test.py BUILD/txscan SOURCE_DIR

The ACL rule is read from docs/scale-out.md, so the documented rule is the
one tested: with it the worker writes reports and dead letters; without any
one of its commands, or its keys, the worker exits at start with an error
that names what is missing. Uses worker_test.py's Redis helpers.
"""
import os
import re
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_test as wt  # noqa: E402

PASSWORD = "acl-test-password"


def documented_rule(source):
    """The `ACL SETUSER txscan-worker ...` line of docs/scale-out.md, as arguments."""
    with open(os.path.join(source, "docs", "scale-out.md")) as f:
        text = f.read()
    m = re.search(r"^ACL SETUSER txscan-worker (.+)$", text, re.M)
    if not m:
        raise AssertionError("docs/scale-out.md has no `ACL SETUSER txscan-worker` line")
    return [a.replace(">CHANGE-ME", ">" + PASSWORD) for a in m.group(1).split()]


class WorkerACL(unittest.TestCase):
    def setUp(self):
        self.server = wt.RedisServer()
        self.r = self.server.client()
        self.tmp = __import__("tempfile").mkdtemp(prefix="txscan-acl-")
        self.rule = documented_rule(wt.SOURCE)
        self.url = "redis://txscan-worker:%s@127.0.0.1:%d" % (PASSWORD, self.server.port)
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            if w.proc.poll() is None:
                w.kill()
        self.r.close()
        self.server.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def set_user(self, *rules):
        self.r("ACL", "SETUSER", "txscan-worker", "reset")
        self.r("ACL", "SETUSER", "txscan-worker", *rules)

    def start(self, name, *extra):
        w = wt.Worker(self.server, name, self.tmp, *extra, redis=self.url)
        self.workers.append(w)
        return w

    def test_documented_rule_is_enough(self):
        self.set_user(*self.rule)
        w = self.start("w1", "--max-deliveries", "2")
        path = os.path.join(self.tmp, "in.jsonl")
        wt.write_jsonl(path, [wt.tx(i) for i in range(5)] + ["[1, 2]"])
        wt.publish(self.server, path)
        wt.wait_for("5 reports", lambda: self.r("XLEN", "reports") >= 5, 60, [w])
        wt.wait_for("a dead letter", lambda: self.r("XLEN", "txs:dead") >= 1, 60, [w])
        self.assertEqual(w.stop(), 0, w.output())
        self.assertNotIn("NOPERM", w.output())
        self.assertEqual(wt.pending_total(self.r), 0)

    def test_each_missing_command_named(self):
        commands = [a for a in self.rule if a.startswith("+")]
        self.assertGreaterEqual(len(commands), 11, commands)
        for cmd in commands:
            with self.subTest(missing=cmd):
                self.set_user(*[a for a in self.rule if a != cmd])
                w = self.start("w-" + re.sub(r"\W", "", cmd))
                code = w.proc.wait(20)
                w.log.close()
                out = w.output()
                self.assertEqual(code, 2, out)
                name = cmd[1:].replace("|", " ").upper()
                self.assertRegex(out, r"\b%s\b" % re.escape(name), out)
                self.assertIn("docs/scale-out.md#a-redis-user-for-the-worker", out)

    def test_missing_key_named(self):
        for pattern in (a for a in self.rule if a.startswith("~")):
            with self.subTest(missing=pattern):
                self.set_user(*[a for a in self.rule if a != pattern])
                w = self.start("w-key")
                code = w.proc.wait(20)
                w.log.close()
                self.assertEqual(code, 2, w.output())
                key = pattern[1:].rstrip("*")
                self.assertIn(key, w.output())
                self.workers.remove(w)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: worker_acl_test.py TXSCAN SOURCE_DIR")
    wt.TXSCAN = os.path.abspath(sys.argv[1])
    wt.SOURCE = os.path.abspath(sys.argv[2])
    wt.PLUGINS = os.path.join(wt.SOURCE, "tests", "plugins", "worker")
    if not shutil.which("redis-server"):
        print("redis-server not found: skipping")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]], verbosity=2)


if __name__ == "__main__":
    main()
