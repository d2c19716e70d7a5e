#!/usr/bin/env python3
"""Integration tests for plugins that need bundling (src/bundle/): ES modules,
TypeScript, imports of the plugin's own files, Node built-ins refused, nothing
read outside the plugin folder, stack traces through source maps, load errors
that say what to do, and `txscan bundle` ahead of time for hosts without
esbuild.

usage: bundle_test.py TXSCAN_BINARY PROJECT_DIR
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
HAVE_ESBUILD = shutil.which("esbuild") is not None
NO_ESBUILD_ENV = dict(os.environ, PATH="/nonexistent")


CACHE = tempfile.mkdtemp(prefix="txs-bundle-cache-")


def run(*args, stdin=None, env=None, timeout=120):
    env = dict(env if env is not None else os.environ)
    env.setdefault("TXS_BUNDLE_CACHE", CACHE)
    return subprocess.run([TXSCAN, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def messages(stderr):
    """The messages of stderr's log lines (JSON lines: stderr is a pipe)."""
    return "\n".join(json.loads(l).get("message", "") for l in stderr.splitlines() if l.strip())


def write(root, files):
    for name, text in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def manifest(pid, main):
    return json.dumps({"id": pid, "version": "1.0.0", "main": main, "timeout_ms": 500})


TS_PLUGIN = {
    "plugin.json": manifest("typed", "index.ts"),
    "index.ts": """import { selector } from './lib/abi';
import type { Plugin } from './types';

const plugin: Plugin = {
  scanTransaction(tx) {
    const input: string = tx.input ?? '';
    if (input === 'boom') throw new Error('boom from TypeScript');
    if (selector(input) === '0x095ea7b3')
      return { code: 'APPROVE', severity: 'low', message: 'approve' };
    return null;
  },
};
export default plugin;
""",
    "lib/abi.ts": "export const selector = (input: string): string => input.slice(0, 10);\n",
    "types.ts": """export interface Plugin {
  scanTransaction(tx: { input?: string }): unknown;
}
""",
}


def scan_one(plugins, tx, env=None):
    r = run("scan", "-p", plugins, "--no-progress", stdin=json.dumps(tx) + "\n", env=env)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    return r, lines


@unittest.skipUnless(HAVE_ESBUILD, "esbuild is not installed (scripts/setup.sh)")
class Bundled(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-bundle-")
        self.plugins = os.path.join(self.tmp, "plugins")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def plugin(self, name, files):
        d = os.path.join(self.plugins, name)
        write(d, files)
        return d

    def test_typescript_with_imports(self):
        self.plugin("typed", TS_PLUGIN)
        r, out = scan_one(self.plugins, {"hash": "0x1", "input": "0x095ea7b3" + "00" * 64})
        self.assertEqual([f["code"] for f in out[0]["findings"]], ["APPROVE"], r.stderr)

    def test_stack_trace_points_at_the_original_file(self):
        d = self.plugin("typed", TS_PLUGIN)
        r, out = scan_one(self.plugins, {"hash": "0x1", "input": "boom"})
        err = out[0]["plugins"][0]["error"]
        self.assertIn("boom from TypeScript", err)
        # line 7 of index.ts, not a line of the bundle
        self.assertIn(os.path.join(d, "index.ts") + ":7:", err)
        self.assertNotIn("(bundled)", err)

    def test_es_module_forms(self):
        self.plugin("mjs", {"plugin.json": manifest("mjs", "index.mjs"),
                            "index.mjs": "export function scanTransaction() { return {code: 'M', severity: 'info', message: 'm'}; }\n"})
        self.plugin("typemod", {"plugin.json": manifest("typemod", "main.js"),
                                "package.json": '{"type": "module"}',
                                "main.js": "import { c } from './c.js';\nexport const scanTransaction = () => ({code: c, severity: 'info', message: 'x'});\n",
                                "c.js": "export const c = 'T';\n"})
        self.plugin("cjsreq", {"plugin.json": manifest("cjsreq", "index.js"),
                               "index.js": "const { code } = require('./lib');\nmodule.exports = { scanTransaction: () => ({code, severity: 'info', message: 'r'}) };\n",
                               "lib.js": "exports.code = 'R';\n"})
        r, out = scan_one(self.plugins, {"hash": "0x1"})
        self.assertEqual(sorted(f["code"] for f in out[0]["findings"]), ["M", "R", "T"], r.stderr)

    def test_node_builtin_is_a_load_error_naming_the_file(self):
        self.plugin("nodey", {"plugin.json": manifest("nodey", "index.ts"),
                              "index.ts": "import { helper } from './helper';\nexport const scanTransaction = helper;\n",
                              "helper.ts": "import { readFileSync } from 'fs';\nexport const helper = () => readFileSync;\n"})
        r = run("check", os.path.join(self.plugins, "nodey"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("helper.ts:1:", messages(r.stderr))
        self.assertIn('Node built-in module "fs"', messages(r.stderr))

    def test_nothing_outside_the_plugin_folder(self):
        write(self.tmp, {"secret.ts": "export default 'secret';\n"})
        self.plugin("escape", {"plugin.json": manifest("escape", "index.ts"),
                               "index.ts": "import s from '../../secret';\nexport const scanTransaction = () => s;\n"})
        # a package in a parent folder's node_modules does not count either
        write(self.plugins, {"node_modules/leftpad/package.json": '{"name": "leftpad", "main": "index.js"}',
                             "node_modules/leftpad/index.js": "module.exports = 1;\n"})
        self.plugin("parentpkg", {"plugin.json": manifest("parentpkg", "index.ts"),
                                  "index.ts": "import p from 'leftpad';\nexport const scanTransaction = () => p;\n"})
        for name in ["escape", "parentpkg"]:
            r = run("check", os.path.join(self.plugins, name))
            self.assertEqual(r.returncode, 2, name)
            self.assertIn("outside the plugin folder", messages(r.stderr), name)

    def test_missing_package_says_how_to_install_it(self):
        self.plugin("nopkg", {"plugin.json": manifest("nopkg", "index.ts"),
                              "index.ts": "import { x } from 'viem';\nexport const scanTransaction = () => x;\n"})
        r = run("check", os.path.join(self.plugins, "nopkg"))
        self.assertEqual(r.returncode, 2)
        self.assertIn('cannot find the package "viem"', messages(r.stderr))
        self.assertIn("npm install viem", messages(r.stderr))

    def test_load_errors_say_what_to_do(self):
        self.plugin("noscan", {"plugin.json": manifest("noscan", "index.mjs"),
                               "index.mjs": "export function scan() {}\nexport const other = 1;\n"})
        r = run("check", os.path.join(self.plugins, "noscan"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("scanTransaction is missing (the module exports: other, scan)", messages(r.stderr))
        shutil.rmtree(os.path.join(self.plugins, "noscan"))
        self.plugin("forta", {"plugin.json": manifest("forta", "index.ts"),
                              "index.ts": "export const handleTransaction = async (e: unknown) => [];\n"})
        r = run("check", os.path.join(self.plugins, "forta"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("handleTransaction, a Forta bot's handler", messages(r.stderr))

    def test_bundle_ahead_of_time_for_a_host_without_esbuild(self):
        d = self.plugin("typed", TS_PLUGIN)
        r = run("check", d, env=NO_ESBUILD_ENV)
        self.assertEqual(r.returncode, 2)
        self.assertIn("esbuild is not installed", messages(r.stderr))
        self.assertIn("txscan bundle " + d + " -o FILE", messages(r.stderr))
        r = run("bundle", d, "-o", os.path.join(d, "dist.js"))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(d, "plugin.json"), "w") as f:
            f.write(manifest("typed", "dist.js"))
        r, out = scan_one(self.plugins, {"hash": "0x1", "input": "boom"}, env=NO_ESBUILD_ENV)
        err = out[0]["plugins"][0]["error"]
        self.assertIn("boom from TypeScript", err)
        self.assertIn(os.path.join(d, "index.ts") + ":7:", err)  # through dist.js.map

    def test_cache_by_content(self):
        """A second load with nothing changed does not run esbuild; a change
        to any file the bundle was made from does."""
        d = self.plugin("typed", TS_PLUGIN)
        count = os.path.join(self.tmp, "esbuild-runs")
        wrapper = os.path.join(self.tmp, "esbuild")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\necho run >> %s\nexec %s \"$@\"\n" % (count, shutil.which("esbuild")))
        os.chmod(wrapper, 0o755)
        env = dict(os.environ, TXS_ESBUILD=wrapper,
                   TXS_BUNDLE_CACHE=os.path.join(self.tmp, "cache"))
        runs = lambda: open(count).read().count("run") if os.path.exists(count) else 0
        tx = {"hash": "0x1", "input": "0x095ea7b3" + "00" * 64}
        for _ in range(2):
            r, out = scan_one(self.plugins, tx, env=env)
            self.assertEqual([f["code"] for f in out[0]["findings"]], ["APPROVE"], r.stderr)
        self.assertEqual(runs(), 1)
        with open(os.path.join(d, "lib", "abi.ts"), "w") as f:
            f.write("export const selector = (input: string): string => 'changed';\n")
        r, out = scan_one(self.plugins, tx, env=env)
        self.assertEqual(out[0]["findings"], [], r.stderr)
        self.assertEqual(runs(), 2)

    def test_bundle_usage(self):
        r = run("bundle")
        self.assertEqual(r.returncode, 64)
        r = run("bundle", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: txscan bundle", r.stdout)


class NoBundling(unittest.TestCase):
    """A plain CommonJS plugin loads as it is, esbuild or not, even when a
    comment has lines that start with "import" or "export"."""

    def test_plain_commonjs_needs_no_esbuild(self):
        tmp = tempfile.mkdtemp(prefix="txs-cjs-")
        try:
            write(os.path.join(tmp, "p"), {
                "plugin.json": manifest("plain", "index.js"),
                "index.js": "/*\nimport this file as a plain script;\nexport nothing of note\n*/\n"
                            "const s = `\nimport { x } from 'y'\n`; // in a string\n"
                            "module.exports = { scanTransaction: () => ({code: 'P', severity: 'info', message: s}) };\n",
            })
            r, out = scan_one(tmp, {"hash": "0x1"}, env=NO_ESBUILD_ENV)
            self.assertEqual([f["code"] for f in out[0]["findings"]], ["P"], r.stderr)
        finally:
            shutil.rmtree(tmp)


class Authoring(unittest.TestCase):
    """txscan new and txscan check on a plugin's own fixtures."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="txs-new-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def new(self, *args):
        return subprocess.run([TXSCAN, "new", *args], capture_output=True, text=True,
                              timeout=60, cwd=self.tmp)

    def check(self, *args):
        return run("check", *args)

    def test_new_javascript_passes_check_with_its_fixtures(self):
        r = self.new("my-rule")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = os.path.join(self.tmp, "my-rule")
        self.assertEqual(sorted(os.listdir(d)), ["fixtures.jsonl", "index.js", "plugin.json", "types"])
        r = self.check(d)  # no TX_FILE: its own fixtures.jsonl
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("3 transactions, 0 problems", r.stdout)
        self.assertRegex(r.stdout, r"a transfer to the watched address\): verdict medium, "
                                   r"findings \[\"WATCHED_ADDRESS\"\], \d+\.\d{3} ms")

    @unittest.skipUnless(HAVE_ESBUILD, "esbuild is not installed (scripts/setup.sh)")
    def test_new_typescript_passes_check(self):
        r = self.new("ts-rule", "--ts")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = os.path.join(self.tmp, "ts-rule")
        self.assertTrue(os.path.exists(os.path.join(d, "tsconfig.json")))
        r = self.check(d)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("3 transactions, 0 problems", r.stdout)

    def test_new_refuses_bad_names_and_existing_folders(self):
        self.assertEqual(self.new("Bad_Name").returncode, 64)
        self.assertEqual(self.new("twice").returncode, 0)
        self.assertEqual(self.new("twice").returncode, 2)

    def test_check_config_overrides_ctx_config(self):
        self.new("my-rule")
        d = os.path.join(self.tmp, "my-rule")
        r = self.check(d, "--config", '{"watchlist": []}')
        self.assertEqual(r.returncode, 2)  # the first fixture expects a finding
        self.assertIn("expected [\"WATCHED_ADDRESS\"]", r.stdout)
        self.assertEqual(self.check(d, "--config", "[1]").returncode, 64)

    def test_check_folder_of_plugins_expects_per_plugin(self):
        """Each plugin's fixtures expect its own findings: another plugin that
        flags the same transaction does not make them fail."""
        for name in ["rule-a", "rule-b"]:
            self.new(name)
        r = self.check(self.tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("6 transactions, 0 problems", r.stdout)


if __name__ == "__main__":
    try:
        unittest.main(argv=sys.argv[:1], verbosity=2)
    finally:
        shutil.rmtree(CACHE, ignore_errors=True)
