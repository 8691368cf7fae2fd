"""Core benchmarks (issue: the lab's core), printed as ratios against a reference run in
the same process.

    uv run python benchmarks/bench_core.py [--rounds N]

1. Server start to first tools/list answer over stdio: sotalab vs a bare fastmcp echo server.
2. Round trip over stdio: trial_list on a 10,000-trial ledger vs the echo tool (p50, p99).
3. leaderboard and trial_lineage on 100,000 trials, in-process (p50).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent
SOTALAB = [sys.executable, "-m", "sotalab.server.cli", "serve"]
ECHO = [sys.executable, str(HERE / "echo_server.py")]


def seed_ledger(home: Path, trials: int):
    from sotalab.tools import ledger
    from sotalab.tools.home import Lab
    from sotalab.tools.invoke import invoke

    lab = Lab.open(home)
    cid = invoke(lab, "campaign_create", {
        "name": "bench", "objective": {"metric": "acc", "direction": "max"},
        "evaluator": {"command": ["python", "e.py"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]}})["id"]
    base = invoke(lab, "trial_create", {"campaign": cid, "kind": "baseline"})["id"]
    stamp = ledger.now()
    rows, parents = [], [base]
    for i in range(trials - 1):
        parent = parents[(i * 7919) % len(parents)]  # a bushy, deterministic tree
        rows.append({"id": base + 1 + i, "campaign_id": cid, "parent_id": parent, "kind": "param",
                     "hypothesis": f"trial {i}", "depth": 1, "score": (i * 37 % 1000) / 1000,
                     "cost": "{}", "created_at": stamp, "updated_at": stamp})
        parents.append(base + 1 + i)
    with lab.db.conn:
        lab.db["trials"].insert_all(rows, batch_size=5000)
    return lab, cid, base


async def start_and_list(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        elapsed = time.perf_counter() - started  # shutdown is not part of start-up
    return elapsed


async def round_trips(command: list[str], env: dict, tool: str, args: dict, n: int) -> list[float]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for _ in range(5):
            await session.call_tool(tool, args)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            result = await session.call_tool(tool, args)
            times.append(time.perf_counter() - t)
            assert not result.isError if hasattr(result, "isError") else not result.is_error
        return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sotalab-bench-"))

    env = {"SOTALAB_HOME": str(work / "start")}
    ours, ref = [], []
    for _ in range(opts.rounds):  # interleaved so both see the same machine state
        ref.append(asyncio.run(start_and_list(ECHO, env)))
        ours.append(asyncio.run(start_and_list(SOTALAB, env)))
    start_ratio = statistics.median(ours) / statistics.median(ref)
    print(f"start-up to tools/list: sotalab {statistics.median(ours)*1000:.0f} ms, "
          f"echo {statistics.median(ref)*1000:.0f} ms, ratio {start_ratio:.2f}x (target <= 1.2x)")

    seed_ledger(work / "ten", 10_000)
    env = {"SOTALAB_HOME": str(work / "ten")}
    ours = asyncio.run(round_trips(SOTALAB, env, "trial_list", {"campaign": 1, "limit": 50}, opts.calls))
    ref = asyncio.run(round_trips(ECHO, env, "echo", {"text": "x"}, opts.calls))
    print(f"trial_list round trip (10k trials): p50 {pct(ours, .5)*1000:.2f} ms / p99 {pct(ours, .99)*1000:.2f} ms; "
          f"echo p50 {pct(ref, .5)*1000:.2f} ms / p99 {pct(ref, .99)*1000:.2f} ms; "
          f"ratio p50 {pct(ours, .5)/pct(ref, .5):.2f}x (target <= 1.5x), p99 {pct(ours, .99)/pct(ref, .99):.2f}x")

    from sotalab.tools.invoke import invoke

    lab, cid, base = seed_ledger(work / "hundred", 100_000)
    for name, args in (("leaderboard", {"campaign": cid, "limit": 10}),
                       ("trial_lineage", {"trial": base + 50_000, "max_depth": 3, "max_nodes": 200}),
                       ("trial_lineage", {"trial": base, "max_depth": 3, "max_nodes": 200})):
        times = []
        for _ in range(50):
            t = time.perf_counter()
            invoke(lab, name, args)
            times.append(time.perf_counter() - t)
        print(f"{name} {args} on 100k trials: p50 {pct(times, .5)*1000:.2f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()
