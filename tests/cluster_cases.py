"""The cases every cluster executor must pass (test_slurm.py, test_ray.py run them on a
real cluster): a run completes with its log and telemetry, the wall-time budget kills
it, run_cancel stops it, a job waits behind another, a job the cluster cannot place is
withdrawn at its pending timeout, a restarted server reconciles, and an evaluation
over three seeds runs as three jobs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke
from sotalab.tools.runs import cluster_runs, queue, reconcile


def wait_until(predicate, timeout_s: float = 60.0, what: str = "the condition"):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def wait_run(call, run_id: int, timeout_s: float = 120.0) -> dict:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        info = call("run_wait", run=run_id, timeout_s=min(30, max(1, end - time.monotonic())))
        if info["status"] not in ("queued", "running"):
            return info
    raise AssertionError(f"run {run_id} did not end in {timeout_s} s")


def completes_with_log_and_telemetry(executor: str, lab: Lab, call, worktree) -> dict:
    info = call("run_start", cwd=str(worktree), telemetry_hz=5,
                command=["sh", "-c", "echo hello from the node; echo \"run=$SOTALAB_RUN_ID\"; sleep 1.5"])
    assert info["executor"] == executor
    row = queue.get_row(lab, info["id"])
    assert row["cluster_job"], f"the run was not submitted to {executor}"
    done = wait_run(call, info["id"])
    assert done["status"] == "succeeded", done
    assert done["exit_code"] == 0
    log = call("run_logs", run=info["id"])["text"]
    assert "hello from the node" in log and f"run={info['id']}" in log
    assert done["telemetry"] and done["telemetry"].get("samples", 0) >= 1, done["telemetry"]
    assert done["sandbox"] in ("bwrap", "process-group")  # settled on the node
    return queue.get_row(lab, info["id"])


def deadline_kills(call, worktree) -> None:
    info = call("run_start", cwd=str(worktree), command=["sleep", "120"], budget={"wall_s": 2, "grace_s": 1})
    done = wait_run(call, info["id"])
    assert done["status"] == "timeout", done
    assert "wall-time budget of 2 s" in done["reason"]


def cancel_stops_a_running_job(lab: Lab, call, worktree) -> dict:
    info = call("run_start", cwd=str(worktree), command=["sh", "-c", "echo started; sleep 120"],
                budget={"grace_s": 2})
    wait_until(lambda: "started" in call("run_logs", run=info["id"])["text"], 90, "the run to start")
    call("run_cancel", run=info["id"])
    done = wait_run(call, info["id"], 60)
    assert done["status"] == "cancelled", done
    return queue.get_row(lab, info["id"])


def queues_behind_another(executor: str, call, worktree, cpus: int) -> None:
    first = call("run_start", cwd=str(worktree), cpus=cpus, command=["sleep", "5"])
    second = call("run_start", cwd=str(worktree), cpus=cpus, command=["echo", "second"])
    third = call("run_start", cwd=str(worktree), cpus=cpus, command=["echo", "third"])
    # While the first holds every CPU, the others are queued with the cluster's word.
    row = wait_until(lambda: (r := call("run_wait", run=second["id"], timeout_s=0))["status"] == "queued"
                     and "PENDING" in (r["reason"] or "") and r, 30, "the cluster's pending state")
    assert f"{executor} job" in row["reason"]
    assert call("run_cancel", run=third["id"])["status"] == "cancelled"  # withdrawn before it ran
    assert wait_run(call, first["id"])["status"] == "succeeded"
    done = wait_run(call, second["id"])
    assert done["status"] == "succeeded" and "second" in call("run_logs", run=second["id"])["text"]
    assert "third" not in call("run_logs", run=third["id"])["text"]


def over_asking_job_is_withdrawn(lab: Lab, call, worktree) -> dict:
    waiting = call("run_start", cwd=str(worktree), cpus=500, command=["echo", "never"],
                   budget={"pending_timeout_s": 3})
    done = wait_run(call, waiting["id"], 60)
    assert done["status"] == "failed" and done["outcome"] == "pending_timeout", done
    assert "pending timeout" in done["reason"]
    return queue.get_row(lab, waiting["id"])


def restarted_server_reconciles(lab: Lab, worktree) -> None:
    # The first server is a separate process that submits and exits at once.
    code = textwrap.dedent(f"""
        from sotalab.tools.home import Lab
        from sotalab.tools.invoke import invoke
        lab = Lab.open({str(lab.home)!r})
        a = invoke(lab, "run_start", {{"cwd": {str(worktree)!r}, "command": ["sh", "-c", "sleep 8; echo slow done"]}})
        b = invoke(lab, "run_start", {{"cwd": {str(worktree)!r}, "command": ["sh", "-c", "echo fast done"]}})
        print(a["id"], b["id"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    slow, fast = int(out[0]), int(out[1])
    wait_until(lambda: (lab.path("runs", fast) / "status.json").exists(), 90, "the fast job to end")
    # A new server: a fresh handle on the same home, nothing in memory.
    fresh = Lab.open(lab.home)
    cluster_runs._last_poll.clear()
    report = reconcile.reconcile(fresh)
    assert fast in report["collected"] and slow in report["reattached"], report
    assert queue.get_row(fresh, fast)["status"] == "succeeded", report
    assert queue.get_row(fresh, slow)["status"] in ("queued", "running")
    row = queue.wait(fresh, slow, 60)
    assert row["status"] == "succeeded", row
    assert "slow done" in invoke(fresh, "run_logs", {"run": slow})["text"]


def evaluation_seeds_are_jobs(executor: str, lab: Lab, call, tmp_path) -> None:
    repo = tmp_path / "code"
    repo.mkdir()
    (repo / "eval.py").write_text("import os\nprint(f\"accuracy={0.5 + int(os.environ['SOTALAB_SEED']) / 100}\")\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(repo), *argv], check=True)
    campaign = call("campaign_create", name="seeds", objective={"metric": "accuracy", "direction": "max"},
                    evaluator={"command": ["python3", "eval.py"], "seeds": [0, 1, 2],
                               "metrics": [{"name": "accuracy", "regex": r"accuracy=([0-9.]+)"}]},
                    protected_paths=["eval.py"])["id"]
    call("execution_set", campaign=campaign, executor=executor)
    call("repo_clone", campaign=campaign, url=str(repo))
    trial = call("trial_create", campaign=campaign, kind="baseline")["id"]
    result = call("trial_evaluate", trial=trial)
    assert result["score"] == pytest.approx(0.51)
    runs = [r for r in call("run_wait", trial=trial)["runs"] if r["seed"] is not None]
    assert sorted(r["seed"] for r in runs) == [0, 1, 2]
    assert {r["executor"] for r in runs} == {executor}
    jobs = {queue.get_row(lab, r["id"])["cluster_job"] for r in runs}
    assert len(jobs) == 3 and None not in jobs
