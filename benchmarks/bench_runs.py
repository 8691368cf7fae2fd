"""Run benchmarks (issue: supervised runs), printed as ratios against a reference
measured in the same run.

    uv run python benchmarks/bench_runs.py [--rounds N] [--cpu-window S]

1. Launch overhead: run_start (through the tool path) to the child's first instruction,
   against bare ``subprocess.Popen`` of the same command (local: bubblewrap and plain
   process group), and against ``docker run`` of the same image (docker executor).
   The child is ``date +%s%N``: the first thing it does is read the clock.
2. Telemetry cost: CPU seconds the supervisor spends per hour of run at 1 Hz, as a
   percentage of one core (measured over a steady window after start-up).
3. Deadline precision: from deadline + grace to every process of a TERM-ignoring
   three-process tree gone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke
from sotalab.tools.runs import logcap, queue, sandbox
from sotalab.tools.runs.docker_exec import DEFAULT_IMAGE

CLOCK = ["date", "+%s%N"]


def child_clock(text: str) -> float:
    return int(text.strip().splitlines()[-1]) / 1e9


def popen_latency() -> float:
    t0 = time.time()
    out = subprocess.run(CLOCK, capture_output=True, text=True, check=True).stdout
    return child_clock(out) - t0


# The same lock-down run_start applies, as docker run flags (the fair reference).
HARDENED = ["--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only",
            "--tmpfs", "/tmp:rw,nosuid,nodev,size=1g,mode=1777", "--pids-limit", "1024", "--init",
            "--user", "65534:65534"]


def bare_bwrap_latency(cwd: Path) -> float:
    """The same bubblewrap sandbox a local run gets (user namespace, seccomp, allowlist),
    started directly: the reference for what run_start adds on top of it."""
    import os

    from sotalab.tools.runs import seccomp

    fd = seccomp.program_fd()
    argv = sandbox.bwrap_argv(CLOCK, cwd=str(cwd), writable=[str(cwd)], readable=[],
                              hidden=list(sandbox.unreadable_system_entries()), gpu_ids=[],
                              seccomp_fd=fd, tmp_bytes=1 << 30)
    try:
        t0 = time.time()
        out = subprocess.run(argv, capture_output=True, text=True, check=True, pass_fds=[fd]).stdout
    finally:
        os.close(fd)
    return child_clock(out) - t0


def docker_run_latency(flags=("--network", "none")) -> float:
    t0 = time.time()
    out = subprocess.run(["docker", "run", "--rm", *flags, DEFAULT_IMAGE, *CLOCK],
                         capture_output=True, text=True, check=True).stdout
    return child_clock(out) - t0


def run_start_latency(lab: Lab, cwd: Path, **args) -> float:
    t0 = time.time()
    run = invoke(lab, "run_start", {"command": CLOCK, "cwd": str(cwd), **args})["id"]
    row = queue.wait(lab, run, 60, poll_s=0.02)
    assert row["status"] == "succeeded", row
    return child_clock(logcap.read_text(lab.path("runs", run))) - t0


def median_ms(fn, rounds: int) -> float:
    fn()  # warm caches (page cache, imports, image layers)
    return statistics.median(fn() for _ in range(rounds)) * 1000


def launch_overhead(lab: Lab, cwd: Path, rounds: int, with_docker: bool) -> list[tuple]:
    rows = []
    popen = median_ms(popen_latency, rounds)
    rows.append(("bare Popen (reference)", popen, None))
    if sandbox.bwrap_works():
        bare = median_ms(lambda: bare_bwrap_latency(cwd), rounds)
        rows.append(("bare bwrap, same sandbox (reference)", bare, popen))
        bw = median_ms(lambda: run_start_latency(lab, cwd), rounds)
        rows.append(("run_start, local, bubblewrap", bw, popen))
        rows.append(("run_start, local, bubblewrap (vs bare bwrap)", bw, bare))
    pg = median_ms(lambda: _process_group(lab, cwd), rounds)
    rows.append(("run_start, local, process group", pg, popen))
    if with_docker:
        plain = median_ms(docker_run_latency, rounds)
        rows.append(("docker run --network none (reference)", plain, None))
        ref = median_ms(lambda: docker_run_latency(HARDENED), rounds)
        rows.append(("docker run, same lock-down flags", ref, plain))
        dk = median_ms(lambda: run_start_latency(lab, cwd, executor="docker"), rounds)
        rows.append(("run_start, docker (vs plain docker run)", dk, plain))
        rows.append(("run_start, docker (vs same flags)", dk, ref))
    return rows


def _process_group(lab: Lab, cwd: Path) -> float:
    t0 = time.time()
    run = queue.submit(lab, queue.RunRequest(argv=CLOCK, cwd=str(cwd), sandbox="process-group"))
    row = queue.wait(lab, run, 60, poll_s=0.02)
    assert row["status"] == "succeeded", row
    return child_clock(logcap.read_text(lab.path("runs", run))) - t0


def supervisor_cpu(lab: Lab, cwd: Path, window_s: float) -> tuple[float, float]:
    """Supervisor CPU over a steady window at 1 Hz: (percent of one core, s per hour)."""
    import psutil

    run = queue.submit(lab, queue.RunRequest(argv=["sleep", str(window_s + 6)], cwd=str(cwd)))
    sup = psutil.Process(queue.get_row(lab, run)["supervisor_pid"])
    time.sleep(3)  # past start-up: imports, first samples
    c0, t0 = sum(sup.cpu_times()[:2]), time.monotonic()
    time.sleep(window_s)
    c1, t1 = sum(sup.cpu_times()[:2]), time.monotonic()
    queue.wait(lab, run, 60)
    rate = (c1 - c0) / (t1 - t0)
    return rate * 100, rate * 3600


def deadline_precision(lab: Lab, cwd: Path, rounds: int) -> list[float]:
    import psutil

    lags = []
    wall, grace = 1.0, 0.5
    for _ in range(rounds):
        mark = f"300.{uuid.uuid4().int % 10**6:06d}"
        script = f"trap '' TERM; (trap '' TERM; sleep {mark}) & (trap '' TERM; sleep {mark}) & sleep {mark}; wait"
        run = queue.submit(lab, queue.RunRequest(argv=["sh", "-c", script], cwd=str(cwd), wall_s=wall, grace_s=grace))
        started = lab.path("runs", run, "started.json")
        while not started.exists():
            time.sleep(0.005)
        from datetime import datetime

        t_start = datetime.fromisoformat(json.loads(started.read_text())["started_at"]).timestamp()
        seen = False
        while True:
            alive = [p for p in psutil.process_iter(["cmdline"]) if mark in " ".join(p.info["cmdline"] or [])]
            seen = seen or bool(alive)
            if seen and not alive:
                break
            time.sleep(0.005)
        lags.append(time.time() - (t_start + wall + grace))
        queue.wait(lab, run, 30)
    return lags


def open_trial_worktree(lab: Lab) -> Path:
    """run_start works only in an open trial's worktree: a campaign, its baseline and one trial."""
    from sotalab.tools import workspaces

    spec = {"name": "bench", "objective": {"metric": "accuracy", "direction": "max"},
            "evaluator": {"command": ["true"], "metrics": [{"name": "accuracy", "regex": "accuracy=([0-9.]+)"}]}}
    cid = invoke(lab, "campaign_create", spec)["id"]
    invoke(lab, "trial_create", {"campaign": cid, "kind": "baseline"})
    tid = invoke(lab, "trial_create", {"campaign": cid, "kind": "param", "hypothesis": "bench"})["id"]
    path = workspaces.worktree_path(lab, cid, tid)
    path.mkdir(parents=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cpu-window", type=float, default=30.0)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        lab = Lab.open(Path(tmp) / "lab")
        cwd = open_trial_worktree(lab)
        queue.enable_launcher(lab)  # as the server's start_dispatcher does
        with_docker = not args.no_docker and subprocess.run(
            ["docker", "image", "inspect", DEFAULT_IMAGE], capture_output=True).returncode == 0
        print(f"launch overhead, median of {args.rounds} (to the child's first instruction):")
        for name, ms, ref in launch_overhead(lab, cwd, args.rounds, with_docker):
            extra = "" if ref is None else f"   {ms / ref:.2f}x the reference, +{ms - ref:.1f} ms"
            print(f"  {name:42s} {ms:8.1f} ms{extra}")
        pct, per_hour = supervisor_cpu(lab, cwd, args.cpu_window)
        print(f"supervisor CPU at 1 Hz: {pct:.3f}% of one core ({per_hour:.1f} CPU-s per hour of run)")
        lags = deadline_precision(lab, cwd, max(3, args.rounds // 2))
        while any(queue.supervisor_alive(r) for r in lab.db.query("SELECT * FROM runs")):
            time.sleep(0.1)  # let the last supervisors finish before the lab is removed
        print(f"deadline precision (deadline + grace -> whole tree gone): median {statistics.median(lags) * 1000:.0f} ms,"
              f" max {max(lags) * 1000:.0f} ms over {len(lags)} runs")


if __name__ == "__main__":
    sys.exit(main())
