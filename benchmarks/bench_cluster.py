"""Cluster benchmark (issue: scale out), printed as ratios against a reference measured
in the same run, on a real one-node Slurm cluster (tests/slurm_cluster.py; needs
slurm-wlm and munge, and root to start the daemons).

    uv run python benchmarks/bench_cluster.py [--runs N] [--agents N]

1. Throughput: N short runs (``true``) through sotalab's Slurm executor, submitted by
   one client over MCP/HTTP to a long-lived ``sotalab serve --http``, from the first
   submission to the last run recorded as ended, against N plain ``sbatch`` submissions
   of the same command with the same resources, to the last job COMPLETED.
2. Agents under that load: while the runs go, ``--agents`` more clients (each its own
   official-SDK session over HTTP) call light tools in a loop (idea_list, note_add,
   run_wait, trial_get ranked=true, trial_get); p50/p99 of their calls, against the same calls
   on the same server with no run in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import slurm_cluster  # noqa: E402
from mcp_helpers import http_server, http_session  # noqa: E402
from sotalab.tools.home import Lab  # noqa: E402
from sotalab.tools.invoke import invoke  # noqa: E402

COMMAND = ["true"]


def squeue_states(env: dict, name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-n", name, "-o", "%T"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def plain_sbatch(cluster, runs: int, workdir: Path) -> float:
    """N plain sbatch jobs of the same command (one CPU each, output to a file like
    sotalab's), from the first submission to the last one COMPLETED."""
    name = f"plain-{time.time_ns()}"
    env = cluster.env()
    started = time.perf_counter()
    for i in range(runs):
        subprocess.run(["sbatch", "--parsable", f"--job-name={name}", f"--output={workdir}/plain-{i}.log",
                        "--nodes=1", "--ntasks=1", "--cpus-per-task=1", "--time=5", "--wrap", " ".join(COMMAND)],
                       env=env, capture_output=True, text=True, check=True)
    while True:
        states = squeue_states(env, name)
        if len(states) == runs and all(s in ("COMPLETED", "FAILED", "CANCELLED") for s in states):
            return time.perf_counter() - started
        time.sleep(0.1)


def percentile(timed: list[tuple[float, str]], q: float) -> float:
    values = sorted(t for t, _ in timed)
    return values[min(len(values) - 1, int(len(values) * q))]


def describe(timed: list[tuple[float, str]]) -> str:
    median = statistics.median(t for t, _ in timed)
    slowest = ", ".join(f"{tool} {t * 1000:.0f}" for t, tool in sorted(timed, reverse=True)[:3])
    return (f"{median * 1000:6.1f} ms / {percentile(timed, 0.99) * 1000:6.1f} ms ({len(timed)} calls; "
            f"slowest ms: {slowest})")


async def agent_loop(url: str, campaign: int, trial: int, stop: asyncio.Event, latencies: list[float], n: int):
    async with http_session(f"{url}/mcp") as session:
        calls = [("idea_list", {"campaign": campaign, "limit": 10}),
                 ("note_add", {"campaign": campaign, "title": f"agent {n}", "body": "observation"}),
                 ("run_wait", {"limit": 10}), ("trial_get", {"campaign": campaign, "ranked": True}),
                 ("trial_get", {"trial": trial})]
        i = 0
        while not stop.is_set():
            tool, arguments = calls[i % len(calls)]
            started = time.perf_counter()
            result = await session.call_tool(tool, arguments)
            latencies.append((time.perf_counter() - started, tool))
            if result.is_error:
                raise RuntimeError(f"{tool}: {result.content}")
            i += 1
            await asyncio.sleep(0.05)  # an agent thinks between calls


async def sotalab_runs(url: str, worktree: str, runs: int, agents: int, campaign: int, trial: int
                       ) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = asyncio.Event()
    workers = [asyncio.create_task(agent_loop(url, campaign, trial, stop, latencies, n)) for n in range(agents)]
    async with http_session(f"{url}/mcp") as session:
        started = time.perf_counter()
        ids = []
        for _ in range(runs):
            result = await session.call_tool("run_start", {"cwd": worktree, "command": COMMAND})
            ids.append(result.structured_content["id"])
        async def count(status: str) -> int:
            result = await session.call_tool("run_wait", {"status": status, "limit": 1})
            return result.structured_content["total"]

        while await count("queued") + await count("running"):
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        succeeded = await count("succeeded")
        if succeeded != len(ids):
            raise RuntimeError(f"only {succeeded} of {len(ids)} runs succeeded")
    stop.set()
    await asyncio.gather(*workers)
    return elapsed, latencies


async def quiet_latencies(url: str, agents: int, campaign: int, trial: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = asyncio.Event()
    workers = [asyncio.create_task(agent_loop(url, campaign, trial, stop, latencies, n)) for n in range(agents)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*workers)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--agents", type=int, default=4)
    args = parser.parse_args()
    problem = slurm_cluster.missing()
    if problem:
        sys.exit(f"cannot run: {problem}")
    cluster = slurm_cluster.ensure_cluster()
    import os

    os.environ["SLURM_CONF"] = cluster.conf
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            lab = Lab.open(tmp / "lab")
            campaign = invoke(lab, "campaign_create", {
                "name": "bench", "objective": {"metric": "accuracy", "direction": "max"},
                "evaluator": {"command": ["true"], "metrics": [{"name": "accuracy", "regex": "a=(.*)"}]}})["id"]
            invoke(lab, "trial_create", {"campaign": campaign, "kind": "baseline"})
            trial = invoke(lab, "trial_create", {"campaign": campaign, "kind": "param"})["id"]
            from sotalab.tools import workspaces

            worktree = workspaces.worktree_path(lab, campaign, trial)
            worktree.mkdir(parents=True)
            invoke(lab, "execution_set", {"executor": "slurm"})
            for i in range(20):
                invoke(lab, "idea_set", {"campaign": campaign, "title": f"idea {i}", "type": "PARAM"})

            reference = plain_sbatch(cluster, args.runs, tmp)
            with http_server(lab.home) as (url, _):
                quiet = asyncio.run(quiet_latencies(url, args.agents, campaign, trial, 10))
                elapsed, loaded = asyncio.run(sotalab_runs(url, str(worktree), args.runs, args.agents, campaign, trial))
    finally:
        cluster.stop()
    print(f"{args.runs} runs of {COMMAND!r} on a one-node Slurm cluster")
    print(f"  plain sbatch:           {reference:7.1f} s ({args.runs / reference:.2f} jobs/s)")
    print(f"  sotalab Slurm executor: {elapsed:7.1f} s ({args.runs / elapsed:.2f} runs/s)  "
          f"ratio {elapsed / reference:.2f}x")
    print(f"{args.agents} agents' tool calls over HTTP (p50 / p99):")
    print(f"  quiet:          {describe(quiet)}")
    print(f"  under the runs: {describe(loaded)}")
    print(f"  p99 ratio {percentile(loaded, 0.99) / percentile(quiet, 0.99):.2f}x")


if __name__ == "__main__":
    main()
