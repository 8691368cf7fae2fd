"""Runs on a real Ray cluster: a local head started by these tests (``ray start --head``,
dashboard and Jobs API included), the same cases as Slurm (cluster_cases.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cluster_cases as cases
import pytest
from conftest import require
from mcp_helpers import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HEAD_CPUS = 2
START_ATTEMPTS = 3


def _answers(url: str) -> bool:
    try:
        from ray.job_submission import JobSubmissionClient

        JobSubmissionClient(url).list_jobs()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def ray_head():
    """The Jobs API address of a local Ray head: $SOTALAB_TEST_RAY_ADDRESS when one
    answers there, else a head started for these tests and stopped after them."""
    try:
        import ray  # noqa: F401
    except ImportError:
        require(False, "ray is not installed (uv sync --extra ray, or the dev group)")
    given = os.environ.get("SOTALAB_TEST_RAY_ADDRESS")
    if given and _answers(given):
        yield given
        return
    ray_cli = str(Path(sys.executable).parent / "ray")
    require(shutil.which(ray_cli) is not None, "the ray command is not installed next to this Python")
    for attempt in range(START_ATTEMPTS):
        temp = tempfile.mkdtemp(prefix="sotalab-ray-")
        try:
            url = start_head(ray_cli, temp)
        except AssertionError:
            stop_head(temp)
            shutil.rmtree(temp, ignore_errors=True)
            if attempt == START_ATTEMPTS - 1:
                raise
            continue  # Ray gives the raylet a fixed 30 s to register: a loaded machine can miss it
        try:
            yield url
        finally:
            stop_head(temp)
            shutil.rmtree(temp, ignore_errors=True)
        return


def start_head(ray_cli: str, temp: str) -> str:
    """Start a head whose files live under ``temp``; its Jobs API address."""
    dashboard = free_port()
    # Every port of its own: Ray's defaults (52365 for the dashboard agent, ...) would
    # clash with any other Ray on the machine, and the raylet then never comes up.
    ports = [f"--{name}={free_port()}" for name in (
        "port", "node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port", "ray-client-server-port")]
    worker_ports = free_port()
    started = subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", *ports,
         f"--min-worker-port={worker_ports}", f"--max-worker-port={worker_ports + 50}",
         f"--num-cpus={HEAD_CPUS}", "--num-gpus=0", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", "--disable-usage-stats", "--object-store-memory=100000000",
         f"--temp-dir={temp}"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    url = f"http://127.0.0.1:{dashboard}"
    cases.wait_until(lambda: _answers(url), 120, "the Ray Jobs API")
    return url


def stop_head(temp: str) -> None:
    """End the processes of the head these tests started, and only those: each names
    the head's private temp dir on its command line (``ray stop`` would end every Ray
    process of the user)."""
    import psutil

    me = psutil.Process()
    spared = {me.pid, *(p.pid for p in me.parents())}
    ours = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid not in spared and any(temp in part for part in proc.info["cmdline"] or []):
            ours.append(proc)
    for proc in ours:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(ours, timeout=15)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


@pytest.fixture
def ray_lab(ray_head, lab, call):
    call("execution_set", executor="ray", ray={"address": ray_head})
    return lab


def ray_status(ray_head: str, job: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(ray_head).get_job_status(job).value)


def test_a_run_is_a_ray_job_with_its_log_and_telemetry(ray_head, ray_lab, call, trial_worktree):
    row = cases.completes_with_log_and_telemetry("ray", ray_lab, call, trial_worktree)
    cases.wait_until(lambda: ray_status(ray_head, row["cluster_job"]) == "SUCCEEDED", 30, "Ray to call it succeeded")


def test_the_wall_time_budget_kills_the_job(ray_lab, call, trial_worktree):
    cases.deadline_kills(call, trial_worktree)


def test_run_cancel_stops_the_job(ray_head, ray_lab, call, trial_worktree):
    row = cases.cancel_stops_a_running_job(ray_lab, call, trial_worktree)
    cases.wait_until(lambda: ray_status(ray_head, row["cluster_job"]) in ("SUCCEEDED", "STOPPED", "FAILED"), 40,
                     "the job to end")


def test_a_job_waits_behind_another(ray_lab, call, trial_worktree):
    cases.queues_behind_another("ray", call, trial_worktree, HEAD_CPUS)


def test_a_job_ray_cannot_place_is_withdrawn_at_its_pending_timeout(ray_head, ray_lab, call, trial_worktree):
    row = cases.over_asking_job_is_withdrawn(ray_lab, call, trial_worktree)
    # Ray answers stop_job on a pending job with True and may leave it PENDING
    # (ray-project/ray#58353); should it ever start, its supervisor finds the cancel
    # file and runs nothing.
    assert (ray_lab.path("runs", row["id"]) / "cancel").exists()


def test_a_restarted_server_reconciles_its_jobs(ray_lab, trial_worktree):
    cases.restarted_server_reconciles(ray_lab, trial_worktree)


def test_an_evaluation_over_three_seeds_runs_as_three_jobs(ray_head, lab, call, tmp_path):
    call("execution_set", ray={"address": ray_head})
    cases.evaluation_seeds_are_jobs("ray", lab, call, tmp_path)


def test_an_unreachable_head_fails_the_run_with_what_to_do(lab, call, trial_worktree):
    call("execution_set", executor="ray", ray={"address": f"http://127.0.0.1:{free_port()}"})
    started = time.monotonic()
    info = call("run_start", cwd=str(trial_worktree), command=["true"])
    assert info["status"] == "failed" and info["outcome"] == "start_failed", info
    assert "no Ray Jobs API answers" in info["reason"] and "ray start --head" in info["reason"]
    assert time.monotonic() - started < 30
