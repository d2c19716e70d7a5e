#!/usr/bin/env python3
"""bench/chain/follow_bench.py - `txscan follow` against anvil (issue 19 figures).

    python3 bench/chain/follow_bench.py [--blocks 1000] [--per-block 5] [--latency 100] [--rounds 3]

1. Catch-up: anvil (tests/anvil, installed with npm ci if missing) gets
   BLOCKS blocks of PER_BLOCK real transactions each (value transfers,
   unlimited approves through a contract that emits Approval logs, a
   deployment now and then); then `txscan follow --from-block 1 --to-block
   BLOCKS` with the 7 example plugins is timed from start to exit, with
   receipts, without (--no-receipts), and with a checkpoint; ROUNDS runs of
   each, interleaved, the median kept. blocks/s and transactions/s are over
   the whole run, plugin loading included.
2. Latency: while follow runs (--poll-ms 50), one transaction is mined every
   100 ms; the time from evm_mine returning to the block's report arriving
   on follow's stdout, p50 and p99 over LATENCY blocks.
Not part of `make test`. Prints one JSON object (and a table on stderr).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests"))
import follow_test as ft  # noqa: E402  (Anvil, the contract, install_anvil)


def batch(anvil, calls):
    ft_id = [0]
    body = []
    for m, p in calls:
        ft_id[0] += 1
        body.append({"jsonrpc": "2.0", "id": ft_id[0], "method": m, "params": p})
    import urllib.request
    req = urllib.request.Request(anvil.url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    for o in out:
        if "error" in o:
            raise RuntimeError(o["error"])
    return out


def fill(anvil, blocks, per_block):
    deploy = anvil.send(data=ft.INITCODE)
    anvil.mine()
    contract = anvil.call("eth_getTransactionReceipt", deploy)["contractAddress"]
    approve = ft.approve_calldata(ft.SPENDER, 2**256 - 1)
    first = int(anvil.call("eth_blockNumber"), 16) + 1
    nonce = [int(anvil.call("eth_getTransactionCount", a, "pending"), 16) for a in ft.DEV]
    for b in range(blocks):
        calls = []
        for k in range(per_block):
            tx = {"from": ft.DEV[k % 3], "value": hex(1000 + b), "nonce": hex(nonce[k % 3])}
            nonce[k % 3] += 1
            if k % 2:
                tx.update(to=contract, data=approve, value="0x0")
            elif b % 50 == 0 and k == 0:
                tx.update(data=ft.INITCODE, value="0x0")
            else:
                tx["to"] = ft.DEV[(k + 1) % 3]
            calls.append(("eth_sendTransaction", [tx]))
        batch(anvil, calls)
        anvil.call("evm_mine")
    return first, first + blocks - 1


def catch_up(anvil, first, last, *extra):
    cmd = [ft.TXSCAN, "follow", "--rpc", anvil.url, "-p", os.path.join(SOURCE, "examples", "plugins"),
           "--quiet-console", "--from-block", str(first), "--to-block", str(last),
           "--poll-ms", "50"] + list(extra)
    t0 = time.monotonic()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
    el = time.monotonic() - t0
    if out.returncode:
        raise RuntimeError(out.stderr.decode())
    n = out.stdout.count(b"\n")
    return {"seconds": round(el, 3), "txs": n, "blocks": last - first + 1,
            "blocks_per_s": round((last - first + 1) / el, 1), "txs_per_s": round(n / el, 1),
            "command": " ".join(cmd[1:3] + ["URL"] + cmd[4:])}


def latency(anvil, n):
    f = ft.Follow(anvil.url, "--poll-ms", "50", plugins=[os.path.join(SOURCE, "examples", "plugins")])
    arrived = {}

    def watch():  # the first report line of each block, stamped as it arrives
        seen = 0
        while len(arrived) < n + 1 and (f.proc.poll() is None or seen < len(f.lines)):
            lines = list(f.lines)
            for line in lines[seen:]:
                arrived.setdefault(json.loads(line)["block"]["number"], time.monotonic())
            seen = len(lines)
            time.sleep(0.001)
    time.sleep(1.5)  # plugins loaded, following the head
    base = len(f.lines)
    w = threading.Thread(target=watch)
    w.start()
    mined = {}
    for _ in range(n):
        anvil.send(to=ft.DEV[1], value=1)
        anvil.call("evm_mine")
        mined[int(anvil.call("eth_blockNumber"), 16)] = time.monotonic()
        time.sleep(0.1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(b in arrived for b in mined):
        time.sleep(0.01)
    f.finish()
    w.join(5)
    lat = sorted((arrived[b] - t) * 1000 for b, t in mined.items() if b in arrived)
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)
    return {"blocks": len(lat), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": round(lat[-1], 1),
            "skipped_at_start": base}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=1000)
    ap.add_argument("--per-block", type=int, default=5)
    ap.add_argument("--latency", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="catch-up runs of each kind; the median is kept")
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(SOURCE, "build")))
    a = ap.parse_args()
    ft.TXSCAN = os.path.join(a.build, "txscan")
    ft.SOURCE = SOURCE
    ft.ANVIL = ft.install_anvil()
    anvil = ft.Anvil()
    try:
        t0 = time.monotonic()
        first, last = fill(anvil, a.blocks, a.per_block)
        res = {"fill_seconds": round(time.monotonic() - t0, 1)}
        runs = {"receipts": [], "no_receipts": [], "receipts_checkpoint": []}
        with tempfile.TemporaryDirectory() as d:
            cp = os.path.join(d, "cp.json")
            for _ in range(a.rounds):  # interleaved: the machine is shared and noisy
                runs["receipts"].append(catch_up(anvil, first, last))
                runs["no_receipts"].append(catch_up(anvil, first, last, "--no-receipts"))
                if os.path.exists(cp):
                    os.unlink(cp)
                runs["receipts_checkpoint"].append(catch_up(anvil, first, last, "--checkpoint", cp))
        for k, v in runs.items():
            v.sort(key=lambda r: r["seconds"])
            res[k] = dict(v[len(v) // 2], rounds=[r["seconds"] for r in v])
        res["latency"] = latency(anvil, a.latency)
    finally:
        anvil.stop()
    for k in ("receipts", "no_receipts", "receipts_checkpoint"):
        r = res[k]
        print("%-20s %5d blocks %6d txs %7.2f s %7.1f blocks/s %8.1f tx/s" %
              (k, r["blocks"], r["txs"], r["seconds"], r["blocks_per_s"], r["txs_per_s"]), file=sys.stderr)
    print("latency mined->report: p50 %.1f ms, p99 %.1f ms (%d blocks, --poll-ms 50)" %
          (res["latency"]["p50_ms"], res["latency"]["p99_ms"], res["latency"]["blocks"]), file=sys.stderr)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
