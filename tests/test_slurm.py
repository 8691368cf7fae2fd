"""Runs on a real Slurm cluster: one node on this machine (tests/slurm_cluster.py).

Every run here is an sbatch job whose payload is sotalab's supervisor. The cases every
cluster executor shares are in cluster_cases.py; the Slurm-only checks look at the job
through Slurm's own commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import cluster_cases as cases
import pytest
import slurm_cluster
from conftest import require
from sotalab.tools.runs import queue, sandbox

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm():
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


def node_cpus() -> int:
    return int(subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout.split("CPUs=")[1].split()[0])


def test_a_run_is_a_job_with_its_log_and_telemetry(slurm, slurm_lab, call, trial_worktree):
    row = cases.completes_with_log_and_telemetry("slurm", slurm_lab, call, trial_worktree)
    cases.wait_until(lambda: squeue(slurm, row["cluster_job"]) == "COMPLETED", 30, "Slurm to call the job completed")


def test_the_wall_time_budget_kills_the_job(slurm_lab, call, trial_worktree):
    cases.deadline_kills(call, trial_worktree)


def test_run_cancel_reaches_the_job(slurm, slurm_lab, call, trial_worktree):
    row = cases.cancel_stops_a_running_job(slurm_lab, call, trial_worktree)
    cases.wait_until(lambda: squeue(slurm, row["cluster_job"]) in ("COMPLETED", "CANCELLED", "FAILED"), 40,
                     "the job to leave the node")


def test_a_job_waits_behind_another(slurm_lab, call, trial_worktree):
    cases.queues_behind_another("slurm", call, trial_worktree, node_cpus())


def test_a_job_slurm_cannot_place_is_withdrawn_at_its_pending_timeout(slurm, slurm_lab, call, trial_worktree):
    # sbatch accepts 500 CPUs on a 2-CPU node and keeps the job pending for good.
    row = cases.over_asking_job_is_withdrawn(slurm_lab, call, trial_worktree)
    cases.wait_until(lambda: squeue(slurm, row["cluster_job"]) == "CANCELLED", 20, "the job to be withdrawn")


def test_a_restarted_server_reconciles_its_jobs(slurm_lab, trial_worktree):
    cases.restarted_server_reconciles(slurm_lab, trial_worktree)


def test_a_job_whose_supervisor_dies_is_lost_with_slurms_word(slurm, slurm_lab, call, trial_worktree):
    info = call("run_start", cwd=str(trial_worktree), command=["sh", "-c", "echo up; sleep 120"])
    cases.wait_until(lambda: "up" in call("run_logs", run=info["id"])["text"], what="the run to start")
    job = queue.get_row(slurm_lab, info["id"])["cluster_job"]
    # The supervisor dies without a word (a node crash looks the same to sotalab).
    started = json.loads((slurm_lab.path("runs", info["id"]) / "started.json").read_text())
    os.kill(started["supervisor_pid"], signal.SIGKILL)
    done = cases.wait_run(call, info["id"], 60)
    assert done["status"] == "lost", done
    assert f"slurm job {job} ended" in done["reason"]


def test_a_node_without_bubblewrap_refuses_the_run_unless_weak_is_allowed(slurm_lab, call, trial_worktree,
                                                                          tmp_path, monkeypatch):
    """As a local run is refused: a node whose sandbox would lack layers ends the run
    before it starts, saying what is missing where and how to allow the weaker sandbox;
    with the server's explicit switch it runs in the process group, and says so."""
    node_path = tmp_path / "node-bin"
    node_path.mkdir()
    (node_path / "bwrap").write_text("#!/bin/sh\necho 'bwrap: cannot build a sandbox on this node' >&2\nexit 1\n")
    (node_path / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{node_path}:{os.environ['PATH']}")  # the job's PATH: the node finds this bwrap
    monkeypatch.delenv(sandbox.WEAK_ENV, raising=False)
    command = ["sh", "-c", "echo the-run-started"]
    refused = cases.wait_run(call, call("run_start", cwd=str(trial_worktree), command=command)["id"], 60)
    assert refused["status"] == "failed" and refused["outcome"] == "start_failed", refused
    assert "cannot sandbox the run fully" in refused["reason"] and "--allow-weak-sandbox" in refused["reason"]
    assert "bwrap" in refused["reason"]  # what is missing, as the node saw it
    log = call("run_logs", run=refused["id"])["text"]
    assert "the-run-started" not in log and "cannot sandbox the run fully" in log, log
    monkeypatch.setenv(sandbox.WEAK_ENV, "1")  # what `sotalab serve --allow-weak-sandbox` sets
    allowed = cases.wait_run(call, call("run_start", cwd=str(trial_worktree), command=command)["id"], 60)
    assert allowed["status"] == "succeeded", allowed
    assert allowed["sandbox"] == "process-group" and allowed["layers"].startswith("process-group only"), allowed
    assert "the-run-started" in call("run_logs", run=allowed["id"])["text"]


def test_an_evaluation_over_three_seeds_runs_as_three_jobs(slurm, lab, call, tmp_path):
    cases.evaluation_seeds_are_jobs("slurm", lab, call, tmp_path)


def test_bad_cluster_settings_are_refused_with_a_hint(lab, call_error):
    assert "set by sotalab itself" in call_error("execution_set", slurm={"extra_flags": ["--output=/etc/x"]})
    assert "one '--name'" in call_error("execution_set", slurm={"extra_flags": ["-p debug"]})
    assert "not a Slurm name" in call_error("execution_set", slurm={"partition": "a;rm -rf /"})
    assert not lab.path("execution.json").exists()  # nothing half-written


def test_lab_status_shows_the_cluster(slurm, slurm_lab, call):
    view = call("lab_status")["clusters"]
    assert len(view) == 1 and view[0]["executor"] == "slurm" and view[0]["reachable"], view
    node = view[0]["nodes"][0]
    assert node["cpus"] == node_cpus() and node["state"] in ("idle", "mixed", "allocated")


def test_an_unreachable_cluster_is_reported_not_raised(lab, call, monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    call("execution_set", executor="slurm")
    view = call("lab_status")["clusters"]
    assert view[0]["reachable"] is False and view[0]["detail"]
