#!/usr/bin/env python3
"""Integration tests for `txscan follow` and `txscan scan --rpc` (issue 19),
against a real Ethereum node: anvil, from npm (tests/anvil/package.json,
installed here with `npm ci` on first use, the way scripts/fixtures is).

    python3 tests/follow_test.py BUILD/txscan SOURCE_DIR [unittest args]

Each test starts its own anvil on a free loopback port with mining off,
sends real transactions from anvil's unlocked dev accounts
(eth_sendTransaction), mines them with evm_mine, and stops anvil at the end.
Reorgs are made with evm_snapshot / evm_revert and different blocks.
Python 3 standard library only. Exit 77 (skipped) when anvil cannot be
installed.
"""
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

TXSCAN = None
SOURCE = None
ANVIL = None
PLUGINS = []  # -p arguments: the example plugins, approval-event, tests/plugins/chain/echo

DEV = ["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
       "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"]
APPROVAL_TOPIC = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
# A contract that answers every call like approve(spender, amount): it emits
# Approval(caller, spender, amount) and returns true. Runtime (58 bytes):
# CALLDATALOAD(36) MSTORE(0) CALLDATALOAD(4) CALLER PUSH32 topic LOG3(0,32) RETURN(true)
RUNTIME = ("602435600052600435337f" + APPROVAL_TOPIC[2:] +
           "60206000a3600160005260206000f3")
INITCODE = "0x603a600c600039603a6000f3" + RUNTIME
SPENDER = "0x00000000000000000000000000000000000beef1"


def approve_calldata(spender, amount):
    return "0x095ea7b3" + spender[2:].rjust(64, "0") + "%064x" % amount


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Anvil:
    """One anvil on a free port, mining only when told to."""

    def __init__(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen([ANVIL, "--port", str(self.port), "--no-mining", "--silent",
                                      "--accounts", "3"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ids = 0
        wait_for("anvil to answer", self.ready, 30)

    def ready(self):
        try:
            return self.call("eth_chainId") == "0x7a69"
        except OSError:
            return False

    def call(self, method, *params):
        self.ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method,
                           "params": list(params)}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            reply = json.loads(r.read())
        if "error" in reply:
            raise RuntimeError("%s: %s" % (method, reply["error"]))
        return reply["result"]

    def send(self, sender=0, to=None, value=0, data=None):
        tx = {"from": DEV[sender], "value": hex(value)}
        if to:
            tx["to"] = to
        if data:
            tx["data"] = data
        return self.call("eth_sendTransaction", tx)

    def mine(self, n=1):
        for _ in range(n):
            self.call("evm_mine")
        return int(self.call("eth_blockNumber"), 16)

    def block_txs(self, n):
        return self.call("eth_getBlockByNumber", hex(n), False)["transactions"]

    def block_hash(self, n):
        return self.call("eth_getBlockByNumber", hex(n), False)["hash"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)


class Follow:
    """A `txscan follow` process whose stdout lines are collected as they come."""

    def __init__(self, url, *args, plugins=None):
        cmd = [TXSCAN, "follow", "--rpc", url, "--quiet-console"]
        for p in plugins or PLUGINS:
            cmd += ["-p", p]
        self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines, self.err = [], []
        self.threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines)),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append(line)

    def records(self):
        return [json.loads(l) for l in list(self.lines)]

    def reports(self):
        return [r for r in self.records() if not r.get("removed")]

    def reported_blocks(self):
        return {r["block"]["number"] for r in self.reports()}

    def wait_reports(self, n, timeout=20):
        wait_for("%d reports (have %d; stderr %s)" % (n, len(self.reports()), "".join(self.err)),
                 lambda: len(self.reports()) >= n, timeout)

    def finish(self, sig=signal.SIGTERM, timeout=20):
        if sig and self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        for t in self.threads:
            t.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish(None)


def finding(report, code):
    return [f for f in report["findings"] if f["code"] == code]


def echo(report):
    return finding(report, "SEEN")[0]["metadata"]


class ChainTest(unittest.TestCase):
    def setUp(self):
        self.anvil = Anvil()
        self.tmp = tempfile.TemporaryDirectory()
        self.followers = []

    def tearDown(self):
        for f in self.followers:
            f.kill()
        self.anvil.stop()
        self.tmp.cleanup()

    def follow(self, *args, **kw):
        f = Follow(self.anvil.url, *args, **kw)
        self.followers.append(f)
        return f

    def scan(self, *args):
        cmd = [TXSCAN, "scan", "--rpc", self.anvil.url, "--quiet-console"]
        for p in PLUGINS:
            cmd += ["-p", p]
        out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
        return out.returncode, [json.loads(l) for l in out.stdout.splitlines()], out.stderr

    def plugin(self, name, code, extra=""):
        """A plugin folder under the test's temporary folder: its path."""
        d = os.path.join(self.tmp.name, "plugins", name)
        if not os.path.isdir(d):
            os.makedirs(d)
            with open(os.path.join(d, "plugin.json"), "w") as fh:
                fh.write('{"id": "%s", "version": "1.0.0", "main": "index.js"%s}' % (name, extra))
            with open(os.path.join(d, "index.js"), "w") as fh:
                fh.write(code)
        return d

    def slow_plugin(self):
        """A plugin of ~25 ms per scan, for tests that stop a follower midway."""
        return self.plugin("slow", "module.exports = { scanTransaction() {"
                           " const end = Date.now() + 25; while (Date.now() < end) {}"
                           " return null; } };", ', "timeout_ms": 2000')

    def busy_blocks(self, n, per_block=2):
        """n blocks of value transfers; returns their tx hashes in chain order."""
        hashes = []
        for i in range(n):
            for k in range(per_block):
                self.anvil.send(sender=k % 2, to=DEV[2], value=1000 + i)
            self.anvil.mine()
        head = int(self.anvil.call("eth_blockNumber"), 16)
        for b in range(head - n + 1, head + 1):
            hashes += self.anvil.block_txs(b)
        return hashes

    def deploy_and_approve(self):
        """Block 1: a deployment and a transfer; block 2: an unlimited approve
        through the contract, which emits an Approval log."""
        deploy = self.anvil.send(data=INITCODE)
        transfer = self.anvil.send(sender=1, to=DEV[2], value=10**18)
        self.anvil.mine()
        contract = self.anvil.call("eth_getTransactionReceipt", deploy)["contractAddress"]
        approve = self.anvil.send(to=contract, data=approve_calldata(SPENDER, 2**256 - 1))
        self.anvil.mine()
        return deploy, transfer, approve, contract

    # ---- scan --rpc ------------------------------------------------------------

    def test_scan_rpc_tx_block_blocks(self):
        deploy, transfer, approve, contract = self.deploy_and_approve()
        rc, out, err = self.scan("--tx", approve)
        self.assertEqual(rc, 1, err)  # UNLIMITED_APPROVAL is high: --fail-on high
        self.assertEqual(len(out), 1)
        r = out[0]
        self.assertEqual(r["tx"], approve)
        self.assertEqual(r["chainId"], 31337)
        self.assertEqual(r["block"]["number"], 2)
        self.assertEqual(r["block"]["hash"], self.anvil.block_hash(2))
        self.assertTrue(r["complete"])
        self.assertEqual(len(finding(r, "UNLIMITED_APPROVAL")), 1)  # from the calldata
        ev = finding(r, "UNLIMITED_APPROVAL_EVENT")  # from the receipt's Approval log
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["metadata"]["token"], contract.lower())
        self.assertEqual(ev[0]["metadata"]["owner"], DEV[0])
        self.assertEqual(ev[0]["metadata"]["spender"], SPENDER)
        self.assertEqual(ev[0]["metadata"]["amount"], str(2**256 - 1))
        seen = echo(r)  # what the plugin saw: the node's tx + receipt + block
        self.assertEqual(seen["block"], "0x2")
        self.assertEqual(seen["input"], "string")
        self.assertEqual(seen["status"], "0x1")
        self.assertEqual(seen["logs"], 1)
        self.assertEqual(seen["log0"]["address"].lower(), contract.lower())
        self.assertEqual(seen["log0"]["topics"][0], APPROVAL_TOPIC)
        self.assertEqual(seen["log0"]["topics"][2], "0x" + SPENDER[2:].rjust(64, "0"))
        self.assertEqual(seen["log0"]["data"], "0x" + "f" * 64)

        rc, out, err = self.scan("--block", "1")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["tx"] for r in out], [deploy, transfer])
        self.assertEqual(echo(out[0])["contractAddress"].lower(), contract.lower())
        self.assertEqual(echo(out[1])["contractAddress"], None)

        rc, out, err = self.scan("--blocks", "0..2", "--no-receipts")
        self.assertEqual(rc, 1, err)
        self.assertEqual([r["tx"] for r in out], [deploy, transfer, approve])
        self.assertEqual(echo(out[2])["receipt"], None)
        self.assertEqual(finding(out[2], "UNLIMITED_APPROVAL_EVENT"), [])  # no logs to read

        rc, out, err = self.scan("--block", "latest", "--tx", transfer)
        self.assertEqual([r["tx"] for r in out], [transfer, approve])

        pending = self.anvil.send(to=DEV[2], value=3)  # not mined: no block, no receipt
        rc, out, err = self.scan("--tx", pending)
        self.assertEqual(rc, 0, err)
        self.assertEqual((out[0]["tx"], out[0]["block"], out[0]["chainId"]), (pending, None, 31337))
        self.assertEqual((echo(out[0])["receipt"], echo(out[0])["block"]), (None, None))

        missing = "0x" + "ab" * 32
        rc, out, err = self.scan("--tx", missing)
        self.assertEqual(rc, 2)
        self.assertEqual(out[0]["tx"], missing)
        self.assertIn("no such transaction", out[0]["error"])
        rc, out, err = self.scan("--blocks", "2..9")
        self.assertEqual(rc, 2)
        self.assertIn("block 3: the node does not have it", err)
        rc, out, err = self.scan("--tx", "0x1234")
        self.assertEqual(rc, 64)
        self.assertIn("not a transaction hash", err)

    def test_failures_logged_with_tx(self):
        """A plugin's failed scans are plugin_failure log lines naming the
        transaction, in scan --rpc and in follow (docs/logging.md)."""
        deploy, transfer, approve, _ = self.deploy_and_approve()
        d = self.plugin("thrower", "module.exports = { scanTransaction(tx) {"
                        " throw new Error('chain boom ' + tx.hash); } };")
        out = subprocess.run([TXSCAN, "scan", "--rpc", self.anvil.url, "-p", d, "--tx", approve],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 2, out.stderr)
        fails = [e for e in map(json.loads, out.stderr.splitlines())
                 if e["event"] == "plugin_failure"]
        self.assertEqual([(e["tx"], e["error"]) for e in fails],
                         [(approve, "Error: chain boom " + approve)])
        f = self.follow("--from-block", "1", "--to-block", "2", plugins=[d])
        self.assertEqual(f.finish(None), 0, "".join(f.err))
        fails = [e for e in map(json.loads, f.err) if e["event"] == "plugin_failure"]
        self.assertEqual(sorted(e["tx"] for e in fails), sorted([deploy, transfer, approve]),
                         "".join(f.err))

    # ---- follow ---------------------------------------------------------------

    def test_follow_backlog_is_not_a_timeout(self):
        """A block of 120 transactions and a plugin of 4 ms a scan, inside its
        50 ms timeout: the scans queued behind the block's others must not
        expire. Under the host's default report deadline (300 ms here) about
        half of them were reported `timeout` (queued behind other scans)."""
        hashes = self.busy_blocks(1, per_block=120)
        slow = self.plugin("four-ms", "module.exports = { scanTransaction() {"
                           " const end = Date.now() + 4; while (Date.now() < end) {}"
                           " return null; } };", ', "timeout_ms": 50')
        f = self.follow("--from-block", "1", "--poll-ms", "50", plugins=[slow])
        f.wait_reports(len(hashes), timeout=60)
        self.assertEqual(f.finish(), 0, "".join(f.err))
        self.assertEqual([r["tx"] for r in f.reports()], hashes)
        bad = [r["plugins"] for r in f.reports() if not r["complete"]]
        self.assertEqual(bad, [], "%d of %d incomplete" % (len(bad), len(hashes)))

    def test_follow_restart_exactly_once(self):
        hashes = self.busy_blocks(30, per_block=3)
        cp = os.path.join(self.tmp.name, "cp.json")
        f = self.follow("--from-block", "1", "--checkpoint", cp, "--poll-ms", "50", "--batch", "1",
                        plugins=PLUGINS + [self.slow_plugin()])
        f.wait_reports(10)
        self.assertEqual(f.finish(signal.SIGTERM), 0, "".join(f.err))  # mid-stream
        first = f.reports()
        self.assertLess(len(first), len(hashes), "stopped before the end")
        self.assertEqual(len(first) % 3, 0, "a block is finished, not cut")
        with open(cp) as fh:
            saved = json.load(fh)
        self.assertEqual(saved["number"], first[-1]["block"]["number"])
        self.assertEqual(saved["hash"], first[-1]["block"]["hash"])

        more = self.busy_blocks(5, per_block=2)  # mined while it was down
        head = int(self.anvil.call("eth_blockNumber"), 16)
        g = self.follow("--checkpoint", cp, "--poll-ms", "50", "--to-block", str(head + 2))
        g.wait_reports(len(hashes) + len(more) - len(first))
        more += self.busy_blocks(2, per_block=1)  # mined while it follows
        self.assertEqual(g.finish(None), 0, "".join(g.err))  # exits by itself at --to-block
        self.assertIn("resuming after block %d" % saved["number"], "".join(g.err))
        seen = [r["tx"] for r in first + g.reports()]
        self.assertEqual(seen, hashes + more)  # every one, once, in chain order
        for r in first + g.reports():
            self.assertTrue(r["complete"], r)
            self.assertEqual(echo(r)["hash"], r["tx"])

    def test_follow_kill9_repeats_nothing_skipped(self):
        hashes = self.busy_blocks(40, per_block=2)
        head = int(self.anvil.call("eth_blockNumber"), 16)
        cp = os.path.join(self.tmp.name, "cp.json")
        # slow scans, so that the kill lands before the follower is through the
        # 80 transactions (it once finished them all between its 4th report
        # and the kill, and left nothing to resume)
        f = self.follow("--from-block", "1", "--checkpoint", cp, "--batch", "8",
                        plugins=PLUGINS + [self.slow_plugin()])
        f.wait_reports(4)
        f.proc.kill()  # no chance to finish anything
        f.finish(None)
        first = [r["tx"] for r in f.reports()]
        saved = 0  # killed before the first checkpoint: it starts over
        if os.path.exists(cp):
            with open(cp) as fh:
                saved = json.load(fh)["number"]
        self.assertLess(saved, head, "the kill came after the last block: nothing to resume")
        g = self.follow("--checkpoint", cp, "--from-block", "1", "--to-block", str(head))
        self.assertEqual(g.finish(None), 0, "".join(g.err))
        second = g.reports()
        self.assertEqual(second[0]["block"]["number"], saved + 1)
        # the checkpoint never names a block whose reports were not all out
        self.assertEqual(hashes[:2 * saved], first[:2 * saved])
        self.assertEqual([r["tx"] for r in second], hashes[2 * saved:])  # the rest, once

    def test_follow_reorg(self):
        cp = os.path.join(self.tmp.name, "cp.json")
        base = self.busy_blocks(3, per_block=1)  # blocks 1-3
        snap = self.anvil.call("evm_snapshot")
        old = self.busy_blocks(2, per_block=2)  # blocks 4-5, to be replaced
        f = self.follow("--from-block", "1", "--checkpoint", cp, "--poll-ms", "50")
        f.wait_reports(len(base) + len(old))
        old_hashes = {4: self.anvil.block_hash(4), 5: self.anvil.block_hash(5)}
        # same height: the new block 5 is seen only by checking the tip
        self.assertTrue(self.anvil.call("evm_revert", snap))
        new = []
        for i in range(2):
            self.anvil.send(sender=2, to=DEV[0], value=7 + i)  # other transactions
            self.anvil.mine()
            new += self.anvil.block_txs(4 + i)
        wait_for("the new blocks", lambda: all(h in [r["tx"] for r in f.reports()] for h in new))
        removed = [r for r in f.records() if r.get("removed")]
        self.assertEqual(sorted(r["tx"] for r in removed), sorted(old))
        for r in removed:
            self.assertEqual(r["block"]["hash"], old_hashes[r["block"]["number"]])
            self.assertEqual(r["chainId"], 31337)
        # newest block first, and every removed line before the new reports
        self.assertEqual([r["block"]["number"] for r in removed], [5, 5, 4, 4])
        recs = f.records()
        last_removed = max(i for i, r in enumerate(recs) if r.get("removed"))
        first_new = min(i for i, r in enumerate(recs) if r.get("tx") in new and not r.get("removed"))
        self.assertLess(last_removed, first_new)
        self.assertEqual(f.finish(), 0, "".join(f.err))
        self.assertIn("reorg", "".join(f.err))

        # reorgs while it is down, seen on restart through the checkpoint's window:
        # (a) the chain is as long as before: the tip itself is checked
        snap = self.anvil.call("evm_snapshot")
        gone = self.busy_blocks(1, per_block=1)  # block 6
        self.assertEqual(self.run_follow(cp, 6), [gone[0]])
        self.assertTrue(self.anvil.call("evm_revert", snap))
        again = self.busy_blocks(1, per_block=2)  # block 6'
        recs = self.run_follow(cp, 6, records=True)
        self.assertEqual(recs[0], {"removed": True, "tx": gone[0], "chainId": 31337,
                                   "block": recs[0]["block"]})
        self.assertEqual(recs[0]["block"]["number"], 6)
        self.assertEqual([r["tx"] for r in recs[1:]], again)
        # (b) the chain is longer: the next block's parent does not match
        snap = self.anvil.call("evm_snapshot")
        gone = self.busy_blocks(1, per_block=1)  # block 7
        self.assertEqual(self.run_follow(cp, 7), gone)
        self.assertTrue(self.anvil.call("evm_revert", snap))
        again = self.busy_blocks(2, per_block=1)  # blocks 7', 8'
        recs = self.run_follow(cp, 8, records=True)
        self.assertEqual([(r.get("removed"), r["tx"]) for r in recs],
                         [(True, gone[0])] + [(None, h) for h in again])

    def run_follow(self, cp, to, records=False):
        """follow --checkpoint cp --to-block to; its reports' txs (or records)."""
        f = self.follow("--checkpoint", cp, "--poll-ms", "50", "--to-block", str(to))
        self.assertEqual(f.finish(None), 0, "".join(f.err))
        return f.records() if records else [r["tx"] for r in f.reports()]

    def test_follow_anvil_reorg(self):
        """anvil_reorg: the last 2 blocks replaced at the same height, with other
        transactions, while following."""
        self.busy_blocks(4, per_block=1)
        old = {n: self.anvil.block_txs(n) for n in (3, 4)}
        old_hash = {n: self.anvil.block_hash(n) for n in (3, 4)}
        f = self.follow("--from-block", "1", "--poll-ms", "50")
        f.wait_reports(4)
        self.anvil.call("anvil_reorg", 2, [[{"from": DEV[2], "to": DEV[1], "value": "0x5"}, 0],
                                           [{"from": DEV[2], "to": DEV[0], "value": "0x6"}, 1]])
        new = self.anvil.block_txs(3) + self.anvil.block_txs(4)
        self.assertNotEqual(self.anvil.block_hash(4), old_hash[4])
        wait_for("the replacement blocks", lambda: len(f.records()) >= 4 + 2 + len(new))
        recs = f.records()[4:]
        self.assertEqual([(r["tx"], r["block"]["hash"]) for r in recs[:2]],
                         [(old[4][0], old_hash[4]), (old[3][0], old_hash[3])])
        self.assertTrue(all(r.get("removed") for r in recs[:2]))
        self.assertEqual([r["tx"] for r in recs[2:]], new)
        self.assertEqual([r["block"]["number"] for r in recs[2:]],
                         [3] * len(self.anvil.block_txs(3)) + [4] * len(self.anvil.block_txs(4)))
        self.assertEqual(f.finish(), 0)

    def test_reorg_deeper_than_max(self):
        self.busy_blocks(2, per_block=1)
        snap = self.anvil.call("evm_snapshot")
        self.busy_blocks(3, per_block=1)  # blocks 3-5
        cp = os.path.join(self.tmp.name, "cp.json")
        f = self.follow("--from-block", "1", "--checkpoint", cp, "--poll-ms", "50",
                        "--max-reorg", "2")
        f.wait_reports(5)

        def saved_at_5():
            if not os.path.exists(cp):
                return None
            with open(cp) as fh:
                text = fh.read()
            return text if json.loads(text)["number"] == 5 else None
        before = wait_for("the checkpoint at block 5", saved_at_5)
        self.anvil.call("evm_revert", snap)
        self.busy_blocks(4, per_block=1)  # 3'-6': three blocks replaced, 2 allowed
        rc = f.finish(None)
        self.assertEqual(rc, 2)
        err = "".join(f.err)
        self.assertIn("reorg deeper than 2 blocks (--max-reorg)", err)
        with open(cp) as fh:
            self.assertEqual(fh.read(), before)  # left where it was

    def test_bad_checkpoint(self):
        cp = os.path.join(self.tmp.name, "cp.json")
        for text, msg in (("{nope", "not JSON"), ('{"txscan_checkpoint":1}', "not a txscan checkpoint")):
            with open(cp, "w") as fh:
                fh.write(text)
            f = self.follow("--checkpoint", cp)
            self.assertEqual(f.finish(None), 2)
            self.assertIn("checkpoint: %s: %s" % (cp, msg), "".join(f.err))
        self.busy_blocks(1)
        os.unlink(cp)
        f = self.follow("--checkpoint", cp, "--from-block", "1", "--to-block", "1")
        self.assertEqual(f.finish(None), 0, "".join(f.err))
        with open(cp) as fh:
            saved = json.load(fh)
        saved["chainId"] = 1
        with open(cp, "w") as fh:
            json.dump(saved, fh)
        f = self.follow("--checkpoint", cp)
        self.assertEqual(f.finish(None), 2)
        self.assertIn("written for chain 1, the node is chain 31337", "".join(f.err))

    def test_confirmations(self):
        self.busy_blocks(6, per_block=1)  # head 6
        f = self.follow("--from-block", "1", "--confirmations", "3", "--poll-ms", "50")
        f.wait_reports(3)
        time.sleep(0.5)
        self.assertEqual(f.reported_blocks(), {1, 2, 3})
        self.busy_blocks(2, per_block=1)  # head 8
        wait_for("block 5", lambda: 5 in f.reported_blocks())
        time.sleep(0.5)
        self.assertEqual(f.reported_blocks(), {1, 2, 3, 4, 5})
        self.assertEqual(f.finish(), 0)

    def test_from_latest_and_node_away(self):
        self.busy_blocks(3, per_block=1)
        f = self.follow("--poll-ms", "50", "--timeout-ms", "300", "--retries", "0")
        f.wait_reports(1)  # the head block
        self.assertEqual(f.reported_blocks(), {3})
        self.anvil.proc.send_signal(signal.SIGSTOP)  # the node stops answering
        wait_for("a warning", lambda: "retrying" in "".join(f.err), 10)
        self.anvil.proc.send_signal(signal.SIGCONT)
        txs = self.busy_blocks(2, per_block=1)
        wait_for("blocks 4-5", lambda: f.reported_blocks() == {3, 4, 5})
        self.assertEqual(f.finish(), 0)
        self.assertIn("answers again", "".join(f.err))
        self.assertEqual([r["tx"] for r in f.reports()[1:]], txs)


class Garbage(http.server.BaseHTTPRequestHandler):
    """A 'node' that answers eth_chainId, then garbage of the kind in self.server.mode."""

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        one = req[0] if isinstance(req, list) else req
        mode = self.server.mode
        if one["method"] == "eth_chainId":
            body = {"jsonrpc": "2.0", "id": one["id"], "result": "0x1"}
        elif mode == "not-json":
            body = None
        elif mode == "escape":  # a node's message with a newline and a terminal escape
            body = [{"jsonrpc": "2.0", "id": r["id"],
                     "error": {"code": -32000, "message": "bad\n\u001b[31mred"}}
                    for r in (req if isinstance(req, list) else [req])]
            if not isinstance(req, list):
                body = body[0]
        elif mode == "401":  # a gateway's own JSON error page
            body = {"message": "invalid key"}
        elif mode == "huge":
            body = {"jsonrpc": "2.0", "id": one["id"], "result": "0x" + "00" * (1 << 20)}
        elif mode == "wrong-id":
            body = [{"jsonrpc": "2.0", "id": r["id"] + 1000, "result": None}
                    for r in (req if isinstance(req, list) else [req])]
            if not isinstance(req, list):
                body = body[0]
        else:  # a block whose hash is not 32 bytes
            blk = {"number": "0x5", "hash": "0x1234", "parentHash": "0x" + "0" * 64,
                   "timestamp": "0x1", "transactions": []}
            body = [{"jsonrpc": "2.0", "id": r["id"], "result": blk}
                    for r in (req if isinstance(req, list) else [req])]
            if not isinstance(req, list):
                body = body[0]
        data = b"\x1b[2J<html>oops" if body is None else json.dumps(body).encode()
        self.send_response(401 if mode == "401" and one["method"] != "eth_chainId" else 200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def fake_hash(kind, n):
    return "0x" + ("%s%063x" % (kind, n))


class Flaky(http.server.BaseHTTPRequestHandler):
    """A small honest node without eth_getBlockReceipts (blocks 0-9, one
    transaction each) that answers every other request with 503 or 429."""

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests += 1
        self.server.auth.add(self.headers.get("Authorization"))
        if self.server.requests % 2:
            self.send_response(503 if self.server.requests % 4 == 1 else 429)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        reps = [self.answer(r) for r in (req if isinstance(req, list) else [req])]
        data = json.dumps(reps if isinstance(req, list) else reps[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self, r):
        m, p = r["method"], r["params"]
        self.server.methods.append(m)
        out = {"jsonrpc": "2.0", "id": r["id"]}
        if m == "eth_chainId":
            out["result"] = "0x5"
        elif m == "eth_getBlockByNumber":
            n = 9 if p[0] == "latest" else int(p[0], 16)
            tx = {"hash": fake_hash("e", n), "from": "0x" + "11" * 20, "to": None, "input": "0x",
                  "value": "0x0", "blockHash": fake_hash("b", n), "blockNumber": hex(n)}
            out["result"] = None if n > 9 else {
                "number": hex(n), "hash": fake_hash("b", n), "timestamp": hex(1000 + n),
                "parentHash": fake_hash("b", n - 1) if n else "0x" + "0" * 64,
                "transactions": [tx] if p[1] else [tx["hash"]]}
        elif m == "eth_getTransactionReceipt":
            out["result"] = {"transactionHash": p[0], "status": "0x1", "gasUsed": "0x5208",
                             "contractAddress": None, "logs": []}
        else:
            out["error"] = {"code": -32601, "message": "the method %s does not exist" % m}
        return out

    def log_message(self, *args):
        pass


def serve(handler, **attrs):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for k, v in attrs.items():
        setattr(srv, k, v)
    t = threading.Thread(target=srv.serve_forever)
    t.start()
    return srv, t


class GarbageTest(unittest.TestCase):
    def test_retries_and_receipts_fallback(self):
        srv, t = serve(Flaky, requests=0, methods=[], auth=set())
        try:
            url = "http://127.0.0.1:%d" % srv.server_address[1]
            out = subprocess.run([TXSCAN, "scan", "-p", PLUGINS[-1],
                                  "--blocks", "2..4", "--retries", "2"],
                                 capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, TXSCAN_RPC_URL=url,
                                          TXSCAN_RPC_AUTH="Bearer t0ken"))
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(srv.auth, {"Bearer t0ken"})  # on every request
            reps = [json.loads(l) for l in out.stdout.splitlines()]
            self.assertEqual([r["tx"] for r in reps], [fake_hash("e", n) for n in (2, 3, 4)])
            self.assertEqual([r["chainId"] for r in reps], [5, 5, 5])
            self.assertEqual(echo(reps[0])["status"], "0x1")  # from eth_getTransactionReceipt
            self.assertIn("eth_getBlockReceipts", srv.methods)
            self.assertEqual(srv.methods.count("eth_getTransactionReceipt"), 3)
            out = subprocess.run([TXSCAN, "scan", "--rpc", url, "-p", PLUGINS[-1],
                                  "--block", "2", "--retries", "0"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 2)
            self.assertRegex(out.stderr, "HTTP (503|429)")
        finally:
            srv.shutdown()
            srv.server_close()
            t.join(10)

    def test_garbage_is_a_clear_error(self):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
        t = threading.Thread(target=srv.serve_forever)
        t.start()
        url = "http://user:secret@127.0.0.1:%d/" % srv.server_address[1]
        try:
            for mode, msg in (("escape", "error -32000: bad??[31mred"),
                              ("401", "HTTP 401"),
                              ("huge", "response over 1048576 bytes"),
                              ("not-json", "the answer is not JSON"),
                              ("wrong-id", "an id that was not asked for"),
                              ("bad-block", "malformed: hash")):
                srv.mode = mode
                for blocks in ("5..5", "1..8"):  # one block, and a batch of them
                    out = subprocess.run([TXSCAN, "scan", "--rpc", url, "-p", PLUGINS[-1],
                                          "--blocks", blocks, "--max-response-mb", "1"],
                                         capture_output=True, text=True, timeout=60)
                    self.assertEqual(out.returncode, 2, mode + out.stderr)
                    self.assertIn(msg, out.stderr)
                    self.assertNotIn("secret", out.stderr)
                    self.assertNotIn("\x1b", out.stderr)
                f = subprocess.run([TXSCAN, "follow", "--rpc", url, "-p", PLUGINS[-1],
                                    "--poll-ms", "20", "--retries", "0", "--max-response-mb", "1"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(f.returncode, 2, mode + f.stderr)
                self.assertIn(msg, f.stderr)
                self.assertIn("3 times in a row", f.stderr)
        finally:
            srv.shutdown()
            srv.server_close()
            t.join(10)
        out = subprocess.run([TXSCAN, "follow", "-p", PLUGINS[-1]], capture_output=True,
                             text=True, env={k: v for k, v in os.environ.items()
                                             if k != "TXSCAN_RPC_URL"})
        self.assertEqual(out.returncode, 64)
        self.assertIn("TXSCAN_RPC_URL", out.stderr)
        for args, msg in ((["follow", "--batch", "65"], "--batch: at most 64 (got 65)"),
                          (["follow", "--max-reorg", "0"], "--max-reorg: out of range"),
                          (["follow", "--from-block", "x"], "--from-block: not a number"),
                          (["scan", "--blocks", "5..2"], "--blocks: 5..2 is empty"),
                          (["scan", "--tx", "0x12"], "not a transaction hash"),
                          (["follow", "--rpc", "ftp://x"], "must start with http:// or https://")):
            out = subprocess.run([TXSCAN] + args + ["-p", PLUGINS[-1]], capture_output=True,
                                 text=True, env=dict(os.environ, TXSCAN_RPC_URL="http://127.0.0.1:1"))
            self.assertEqual(out.returncode, 64, args)
            self.assertIn(msg, out.stderr)
        for cmd in ("follow", "scan"):  # --help names the environment
            out = subprocess.run([TXSCAN, cmd, "--help"], capture_output=True, text=True)
            self.assertIn("TXSCAN_RPC_URL", out.stdout)


def install_anvil():
    """tests/anvil/node_modules/.bin/anvil, installed with npm ci if missing."""
    here = os.path.join(SOURCE, "tests", "anvil")
    path = os.path.join(here, "node_modules", ".bin", "anvil")
    if not os.access(path, os.X_OK):
        try:
            subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                            "--loglevel=error"], cwd=here, check=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            print("anvil could not be installed from npm (%s): skipping" % e)
            return None
    return path if os.access(path, os.X_OK) else None


def main():
    global TXSCAN, SOURCE, ANVIL, PLUGINS
    if len(sys.argv) < 3:
        sys.exit("usage: follow_test.py TXSCAN SOURCE_DIR [unittest args]")
    TXSCAN = os.path.abspath(sys.argv[1])
    SOURCE = os.path.abspath(sys.argv[2])
    PLUGINS = [os.path.join(SOURCE, "examples", "plugins"),
               os.path.join(SOURCE, "examples", "chain-plugins"),
               os.path.join(SOURCE, "tests", "plugins", "chain", "echo")]
    ANVIL = install_anvil()
    if not ANVIL:
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)


if __name__ == "__main__":
    main()
