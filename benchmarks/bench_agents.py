"""Agents against direct calls (issue: scale out, throughput), as a ratio measured in
the same run on the same machine.

    uv run python benchmarks/bench_agents.py [--agents N] [--trials N] [--sleep S]
    uv run python benchmarks/bench_agents.py --cycle [--trials N] [--profile FILE]

A campaign whose evaluator sleeps ``--sleep`` seconds (then prints its metric), on the
local executor. The same trial cycle (lease_take of the next idea, trial_create, workspace_write,
trial_evaluate, idea_set) is run for ``--trials`` trials in two ways:

- direct: N threads calling the tools in-process (``invoke``), with the launcher a
  long-lived server uses: the lab's own work without MCP;
- agents: N official-SDK clients over streamable HTTP to one ``sotalab serve --http``.

It prints trials per minute for both and their ratio (agents / direct; the issue's
target is 0.9x or better).

``--cycle``: the lab's own overhead per trial cycle. One worker, in-process with the
launcher and dispatcher a server runs, a trivial evaluator (``--sleep 0``: it prints its
metric), one seed; each cycle is trial_create, workspace_write, trial_evaluate (snapshot,
export, run, score recorded). Prints the median cycle, the median time of its run (the
supervisor's telemetry wall time: the sandboxed evaluator, from its start to the
supervisor's end of it) and the difference, the lab's overhead (the issue's target:
within 0.3 s); the same evaluator run bare (a plain subprocess) in the same round, the
strictest reference; the split by tool; and the CPU time of the lab's process and the
programs it waited for (git), which a loaded machine inflates less than wall time.
``--profile FILE`` writes a cProfile of the timed cycles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mcp_helpers import http_server, http_session  # noqa: E402
from sotalab.client.session import is_job_handle  # noqa: E402
from sotalab.tools.home import Lab  # noqa: E402
from sotalab.tools.invoke import invoke  # noqa: E402
from sotalab.tools.runs import queue  # noqa: E402


def make_lab(root: Path, trials: int, sleep_s: float) -> tuple[Lab, int]:
    repo = root / "upstream"
    repo.mkdir(parents=True)
    (repo / "model.py").write_text("WIDTH = 1\n")
    (repo / "eval.py").write_text(f"import time\ntime.sleep({sleep_s})\nprint('accuracy=0.5')\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "v1"]):
        subprocess.run(["git", "-C", str(repo), *argv], check=True)
    lab = Lab.open(root / "lab")
    campaign = invoke(lab, "campaign_create", {
        "name": "bench", "objective": {"metric": "accuracy", "direction": "max"},
        "evaluator": {"command": ["python3", "eval.py"], "metrics": [{"name": "accuracy", "regex": r"accuracy=([0-9.]+)"}]},
        "protected_paths": ["eval.py"]})["id"]
    invoke(lab, "repo_clone", {"campaign": campaign, "url": str(repo)})
    baseline = invoke(lab, "trial_create", {"campaign": campaign, "kind": "baseline"})["id"]
    invoke(lab, "trial_evaluate", {"trial": baseline})
    for i in range(trials):
        invoke(lab, "idea_set", {"campaign": campaign, "title": f"width {i}", "type": "PARAM"})
    return lab, campaign


def cycle_steps(campaign: int, agent: str, idea: dict | None):
    """The cycle after claiming the next idea, as (tool, arguments-from-trial) steps."""
    return [
        ("trial_create", lambda t: {"campaign": campaign, "kind": "param", "idea": idea["id"]}),
        ("workspace_write", lambda t: {"trial": t, "path": "model.py", "content": f"WIDTH = {idea['id']}\n"}),
        ("trial_evaluate", lambda t: {"trial": t}),
        ("idea_set", lambda t: {"idea": idea["id"], "status": "done"}),
        ("lease_take", lambda t: {"kind": "idea", "id": idea["id"], "agent": agent, "ttl_s": 0}),
    ]


def direct(lab: Lab, campaign: int, agents: int) -> tuple[float, int]:
    # The same machinery a long-lived server runs (the launcher forks supervisors), so
    # the ratio is what MCP over HTTP costs, not how supervisors are started.
    queue.enable_launcher(lab)
    done = []

    def worker(n: int) -> None:
        name = f"direct-{n}"
        while True:
            idea = invoke(lab, "lease_take", {"kind": "idea", "campaign": campaign, "agent": name})["idea"]
            if idea is None:
                return
            trial = None
            for tool, arguments in cycle_steps(campaign, name, idea):
                result = invoke(lab, tool, arguments(trial))
                trial = trial or result.get("id")
            done.append(trial)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, len(done)


async def over_http(url: str, campaign: int, agents: int) -> tuple[float, int]:
    done = []

    async def call(session, tool: str, arguments: dict) -> dict:
        result = (await session.call_tool(tool, arguments))
        if result.is_error:
            raise RuntimeError(f"{tool}: {result.content}")
        data = result.structured_content or {}
        while is_job_handle(tool, data) and data["status"] == "running":
            data = (await session.call_tool("job_wait", {"job": data["job"], "timeout_s": 30})).structured_content
        if is_job_handle(tool, data):
            if data["status"] != "succeeded":
                raise RuntimeError(f"{tool}: {data['error']}")
            data = data["result"] or {}
        return data

    async def agent(n: int) -> None:
        name = f"agent-{n}"
        async with http_session(f"{url}/mcp") as session:
            while True:
                claim = {"kind": "idea", "campaign": campaign, "agent": name}
                idea = (await call(session, "lease_take", claim))["idea"]
                if idea is None:
                    return
                trial = None
                for tool, arguments in cycle_steps(campaign, name, idea):
                    result = await call(session, tool, arguments(trial))
                    trial = trial or result.get("id")
                done.append(trial)

    started = time.perf_counter()
    await asyncio.gather(*(agent(n) for n in range(agents)))
    return time.perf_counter() - started, len(done)


def cycle(trials: int, profile: str | None) -> None:
    """The overhead of a trivial evaluator's trial cycle beyond its run (see --cycle)."""
    with tempfile.TemporaryDirectory() as tmp:
        lab, campaign = make_lab(Path(tmp), trials + 2, 0.0)
        dispatcher = queue.start_dispatcher(lab)
        profiler = None
        rows = []
        for n in range(trials + 2):  # the first two warm the launcher and the caches
            if profile and n == 2:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            cpu = _cpu_s()
            marks = [time.perf_counter()]
            idea = invoke(lab, "lease_take", {"kind": "idea", "campaign": campaign, "agent": "cycle"})["idea"]
            trial = invoke(lab, "trial_create", {"campaign": campaign, "kind": "param", "idea": idea["id"]})["id"]
            marks.append(time.perf_counter())
            invoke(lab, "workspace_write", {"trial": trial, "path": "model.py", "content": f"WIDTH = {n + 2}\n"})
            marks.append(time.perf_counter())
            scored = invoke(lab, "trial_evaluate", {"trial": trial})
            marks.append(time.perf_counter())
            cpu = _cpu_s() - cpu
            run_ids = [r for seed in scored["runs"] for r in seed["run_ids"]]
            run_s = sum(json.loads(lab.db["runs"].get(r)["telemetry"])["wall_s"] for r in run_ids)
            # Reference: the evaluator run bare (no sandbox, no supervisor), in the same round.
            bare = time.perf_counter()
            subprocess.run(["python3", "eval.py"], cwd=Path(tmp) / "upstream", check=True, capture_output=True)
            bare = time.perf_counter() - bare
            if n >= 2:
                rows.append((marks[-1] - marks[0], run_s, bare, *(b - a for a, b in zip(marks, marks[1:])), cpu))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        dispatcher.stop()
    med = [statistics.median(col) for col in zip(*rows)]
    print(f"{trials} cycles, trivial evaluator, 1 seed, in_process level (median):")
    print(f"  cycle {med[0]:.3f} s, its run {med[1]:.3f} s, lab overhead {med[0] - med[1]:.3f} s "
          f"(min {min(r[0] - r[1] for r in rows):.3f}, max {max(r[0] - r[1] for r in rows):.3f})")
    print(f"  the evaluator run bare (subprocess, no sandbox) {med[2]:.3f} s: cycle - bare {med[0] - med[2]:.3f} s")
    print(f"  lease_take (next idea) + trial_create {med[3]:.3f} s, workspace_write {med[4]:.3f} s, "
          f"trial_evaluate {med[5]:.3f} s")
    print(f"  CPU of the lab's process and the programs it waited for (git): {med[6]:.3f} s a cycle "
          f"(less sensitive to the machine's load than wall time)")


def _cpu_s() -> float:
    """User + system CPU of this process and of its children that ended (git, the bare
    reference excluded by the caller's order of measurement)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycle", action="store_true", help="the lab's overhead per trial cycle (one worker)")
    parser.add_argument("--profile", default=None, help="with --cycle: write a cProfile of the timed cycles here")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.cycle:
        cycle(args.trials, args.profile)
        return
    ratios = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            lab, campaign = make_lab(Path(tmp) / "direct", args.trials, args.sleep)
            direct_s, direct_n = direct(lab, campaign, args.agents)
            lab, campaign = make_lab(Path(tmp) / "http", args.trials, args.sleep)
            with http_server(lab.home) as (url, _):
                http_s, http_n = asyncio.run(over_http(url, campaign, args.agents))
        assert direct_n == http_n == args.trials, (direct_n, http_n)
        d_rate, h_rate = 60 * direct_n / direct_s, 60 * http_n / http_s
        ratios.append(h_rate / d_rate)
        print(f"round {round_ + 1}: {args.trials} trials, {args.agents} workers, evaluator sleeps {args.sleep:g} s")
        print(f"  direct (in-process): {direct_s:6.1f} s  {d_rate:6.1f} trials/min")
        print(f"  agents over HTTP:    {http_s:6.1f} s  {h_rate:6.1f} trials/min  ratio {h_rate / d_rate:.2f}x")
    print(f"median ratio over {args.rounds} rounds: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
