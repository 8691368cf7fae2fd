"""Runs on a real Slurm cluster: one node on this machine (tests/slurm_cluster.py).

Every run here is an sbatch job whose payload is sotalab's supervisor; the tests check
what a user relies on: the log and telemetry come back, the wall-time budget holds,
run_cancel reaches the job, a job waits behind another, a restarted server picks up
its jobs, and an evaluation's seeds each run as a job.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from conftest import require
from sotalab.tools.home import Lab
from sotalab.tools.invoke import invoke
from sotalab.tools.runs import cluster_runs, queue, reconcile

import slurm_cluster

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm(request):
    require(slurm_cluster.missing() is None, slurm_cluster.missing() or "")
    cluster = slurm_cluster.ensure_cluster()
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", cluster.conf)
    yield cluster
    mp.undo()
    cluster.stop()


@pytest.fixture
def slurm_lab(slurm, lab, call):
    call("execution_set", executor="slurm")
    return lab


def squeue(slurm, job: str) -> str:
    return subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], env=slurm.env(),
                          capture_output=True, text=True).stdout.strip()


def wait_until(predicate, timeout_s: float = 60.0, what: str = "the condition"):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def wait_run(call, run_id: int, timeout_s: float = 90.0) -> dict:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        info = call("run_wait", run=run_id, timeout_s=min(30, max(1, end - time.monotonic())))
        if info["status"] not in ("queued", "running"):
            return info
    raise AssertionError(f"run {run_id} did not end in {timeout_s} s")


def test_a_run_is_a_job_with_its_log_and_telemetry(slurm, slurm_lab, call, worktree):
    info = call("run_start", cwd=str(worktree), telemetry_hz=5,
                command=["sh", "-c", "echo hello from the node; echo \"run=$SOTALAB_RUN_ID\"; sleep 1.5"])
    assert info["executor"] == "slurm"
    row = queue.get_row(slurm_lab, info["id"])
    assert row["cluster_job"], "the run was not submitted to Slurm"
    assert squeue(slurm, row["cluster_job"])  # Slurm knows the job
    done = wait_run(call, info["id"])
    assert done["status"] == "succeeded", done
    assert done["exit_code"] == 0
    log = call("run_logs", run=info["id"])["text"]
    assert "hello from the node" in log and f"run={info['id']}" in log
    assert done["telemetry"] and done["telemetry"].get("samples", 0) >= 1, done["telemetry"]
    assert done["sandbox"] in ("bwrap", "process-group")  # settled on the node
    wait_until(lambda: squeue(slurm, row["cluster_job"]) == "COMPLETED", 30, "Slurm to call the job completed")


def test_the_wall_time_budget_kills_the_job(slurm_lab, call, worktree):
    info = call("run_start", cwd=str(worktree), command=["sleep", "120"], budget={"wall_s": 2, "grace_s": 1})
    started = time.monotonic()
    done = wait_run(call, info["id"])
    assert done["status"] == "timeout", done
    assert "wall-time budget of 2 s" in done["reason"]
    assert time.monotonic() - started < 30


def test_run_cancel_reaches_the_job(slurm, slurm_lab, call, worktree):
    info = call("run_start", cwd=str(worktree), command=["sh", "-c", "echo started; sleep 120"],
                budget={"grace_s": 2})
    wait_until(lambda: "started" in call("run_logs", run=info["id"])["text"], what="the run to start")
    call("run_cancel", run=info["id"])
    done = wait_run(call, info["id"], 60)
    assert done["status"] == "cancelled", done
    job = queue.get_row(slurm_lab, info["id"])["cluster_job"]
    wait_until(lambda: squeue(slurm, job) in ("COMPLETED", "CANCELLED", "FAILED"), 40, "the job to leave the node")


def test_a_job_waits_behind_another_and_a_pending_one_cancels(slurm, slurm_lab, call, worktree):
    cpus = int(subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout.split("CPUs=")[1].split()[0])
    first = call("run_start", cwd=str(worktree), cpus=cpus, command=["sleep", "4"])
    second = call("run_start", cwd=str(worktree), cpus=cpus, command=["echo", "second"])
    third = call("run_start", cwd=str(worktree), cpus=cpus, command=["echo", "third"])
    # While the first holds every CPU, the others are queued with Slurm's reason.
    row = wait_until(lambda: (r := call("run_status", run=second["id"]))["status"] == "queued"
                     and "PENDING" in (r["reason"] or "") and r, 20, "Slurm's pending reason")
    assert "slurm job" in row["reason"]
    cancelled = call("run_cancel", run=third["id"])
    assert cancelled["status"] == "cancelled"
    assert wait_run(call, first["id"])["status"] == "succeeded"
    done = wait_run(call, second["id"])
    assert done["status"] == "succeeded" and "second" in call("run_logs", run=second["id"])["text"]
    assert "third" not in call("run_logs", run=third["id"])["text"]


def test_a_job_pending_past_its_timeout_is_withdrawn(slurm, slurm_lab, call, worktree):
    blocker = call("run_start", cwd=str(worktree), cpus=2, command=["sleep", "5"])
    waiting = call("run_start", cwd=str(worktree), cpus=2, command=["echo", "never"],
                   budget={"pending_timeout_s": 1})
    done = wait_run(call, waiting["id"], 30)
    assert done["status"] == "failed" and done["outcome"] == "pending_timeout", done
    assert "pending timeout" in done["reason"]
    job = queue.get_row(slurm_lab, waiting["id"])["cluster_job"]
    wait_until(lambda: squeue(slurm, job) == "CANCELLED", 20, "the job to be withdrawn")
    call("run_cancel", run=blocker["id"])


def test_a_restarted_server_reconciles_its_jobs(slurm, slurm_lab, worktree):
    # The first server is a separate process that submits and exits at once.
    code = textwrap.dedent(f"""
        from sotalab.tools.home import Lab
        from sotalab.tools.invoke import invoke
        lab = Lab.open({str(slurm_lab.home)!r})
        a = invoke(lab, "run_start", {{"cwd": {str(worktree)!r}, "command": ["sh", "-c", "sleep 8; echo slow done"]}})
        b = invoke(lab, "run_start", {{"cwd": {str(worktree)!r}, "command": ["sh", "-c", "echo fast done"]}})
        print(a["id"], b["id"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    slow, fast = int(out[0]), int(out[1])
    wait_until(lambda: (slurm_lab.path("runs", fast) / "status.json").exists(), 30, "the fast job to end")
    # A new server: a fresh handle on the same home, nothing in memory.
    fresh = Lab.open(slurm_lab.home)
    cluster_runs._last_poll.clear()
    report = reconcile.reconcile(fresh)
    assert queue.get_row(fresh, fast)["status"] == "succeeded", report
    assert queue.get_row(fresh, slow)["status"] in ("queued", "running")
    row = queue.wait(fresh, slow, 60)
    assert row["status"] == "succeeded", row
    assert "slow done" in invoke(fresh, "run_logs", {"run": slow})["text"]


def test_a_job_that_vanishes_is_lost_with_slurms_word(slurm, slurm_lab, call, worktree):
    info = call("run_start", cwd=str(worktree), command=["sh", "-c", "echo up; sleep 120"])
    wait_until(lambda: "up" in call("run_logs", run=info["id"])["text"], what="the run to start")
    job = queue.get_row(slurm_lab, info["id"])["cluster_job"]
    # Killed behind sotalab's back: the supervisor gets no chance to write its status.
    subprocess.run(["scancel", "--signal=KILL", "--full", job], env=slurm.env(), check=True)
    done = wait_run(call, info["id"], 60)
    assert done["status"] in ("lost", "cancelled", "failed"), done
    if done["status"] == "lost":
        assert f"slurm job {job} ended" in done["reason"]


def test_an_evaluation_over_three_seeds_runs_as_three_jobs(slurm, lab, call, tmp_path):
    repo = tmp_path / "code"
    repo.mkdir()
    (repo / "eval.py").write_text("import os\nprint(f\"accuracy={0.5 + int(os.environ['SOTALAB_SEED']) / 100}\")\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                   check=True)
    campaign = call("campaign_create", name="seeds", objective={"metric": "accuracy", "direction": "max"},
                    evaluator={"command": ["python3", "eval.py"], "seeds": [0, 1, 2],
                               "metrics": [{"name": "accuracy", "regex": r"accuracy=([0-9.]+)"}]},
                    protected_paths=["eval.py"])["id"]
    call("execution_set", campaign=campaign, executor="slurm")
    call("repo_clone", campaign=campaign, url=str(repo))
    trial = call("trial_create", campaign=campaign, kind="baseline")["id"]
    result = call("trial_evaluate", trial=trial)
    assert result["score"] == pytest.approx(0.51)
    runs = call("run_list", trial=trial)["runs"]
    evaluation = [r for r in runs if r["purpose"] in ("evaluation", "predict", "in_process") or r["seed"] is not None]
    assert sorted(r["seed"] for r in evaluation) == [0, 1, 2]
    assert {r["executor"] for r in evaluation} == {"slurm"}
    jobs = {queue.get_row(lab, r["id"])["cluster_job"] for r in evaluation}
    assert len(jobs) == 3 and None not in jobs


def test_bad_cluster_settings_are_refused_with_a_hint(lab, call_error):
    assert "set by sotalab itself" in call_error("execution_set", slurm={"extra_flags": ["--output=/etc/x"]})
    assert "one '--name'" in call_error("execution_set", slurm={"extra_flags": ["-p debug"]})
    assert "not a Slurm name" in call_error("execution_set", slurm={"partition": "a;rm -rf /"})
    assert not lab.path("execution.json").exists()  # nothing half-written
