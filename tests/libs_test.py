#!/usr/bin/env python3
"""The library compatibility suite: plugins that import ethers v6 (ES module),
@noble/hashes (TypeScript) and ethers v5's UMD bundle (CommonJS) from their own
node_modules (tests/libs/*), and the TypeScript + viem example plugin, each
loaded the way a user's plugin is (bundled at load by esbuild) and checked
against its fixtures.jsonl. node_modules come from scripts/plugin-deps.sh
(the ctest fixture plugin_deps).

usage: libs_test.py TXSCAN_BINARY PROJECT_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

TXSCAN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/txscan"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "."
PLUGINS = {
    "ethers6": os.path.join(ROOT, "tests", "libs", "ethers6"),
    "noble": os.path.join(ROOT, "tests", "libs", "noble"),
    "ethers5": os.path.join(ROOT, "tests", "libs", "ethers5"),
    "viem": os.path.join(ROOT, "examples", "plugins", "transfer-from-third-party"),
}


@unittest.skipUnless(shutil.which("esbuild"), "esbuild is not installed (scripts/setup.sh)")
class Libraries(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cache = tempfile.mkdtemp(prefix="txs-libs-cache-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.cache)

    def check(self, name):
        d = PLUGINS[name]
        if not os.path.isdir(os.path.join(d, "node_modules")):
            self.fail("%s has no node_modules: run scripts/plugin-deps.sh %s" % (d, d))
        env = dict(os.environ, TXS_BUNDLE_CACHE=self.cache)
        r = subprocess.run([TXSCAN, "check", d, os.path.join(d, "fixtures.jsonl")],
                           capture_output=True, text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"ok +\d+ transactions, 0 problems")

    def test_ethers_v6_es_module(self):
        self.check("ethers6")

    def test_noble_hashes_typescript(self):
        self.check("noble")

    def test_ethers_v5_umd(self):
        self.check("ethers5")

    def test_viem_typescript_example(self):
        self.check("viem")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
