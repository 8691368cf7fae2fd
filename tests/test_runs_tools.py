"""The run tools as a caller sees them, plus placement and telemetry without NVML."""

from __future__ import annotations

import os

import pytest

from sotalab.tools.invoke import invoke
from sotalab.tools.runs import queue
from sotalab.tools.runs.telemetry import GpuState, Sampler, nvml_error


@pytest.fixture
def worktree(trial_worktree):
    return trial_worktree


def test_run_start_wait_logs_metrics_list(lab, worktree, call, call_error):
    started = call("run_start", command=["sh", "-c", "for i in 1 2 3; do echo step $i loss=0.$i; sleep 0.2; done"],
                   cwd=str(worktree), telemetry_hz=10)
    assert started["status"] in ("queued", "running") and started["sandbox"] in ("bwrap", "process-group")
    ticks = []
    done = invoke(lab, "run_wait", {"run": started["id"], "timeout_s": 30},
                  progress=lambda d, t=None, m=None: ticks.append(m))
    assert done["status"] == "succeeded" and done["telemetry"]["samples"] >= 3
    assert ticks and f"run {started['id']} running" in ticks[0]
    grep = call("run_logs", run=started["id"], mode="grep", pattern=r"loss=0\.[23]")
    assert grep["matches"] == 2 and grep["text"].splitlines() == ["2: step 2 loss=0.2", "3: step 3 loss=0.3"]
    metrics = call("run_logs", run=started["id"], mode="metrics")
    assert metrics["series"]["fields"][:3] == ["t", "cpu_pct", "rss_mb"]
    assert len(metrics["series"]["points"]) >= 3
    assert "takes no cursor, pattern" in call_error("run_logs", run=started["id"], mode="metrics", pattern="x", cursor=0)
    now = call("run_wait", run=started["id"], timeout_s=0)  # reads the status without waiting
    assert now == done
    listed = call("run_wait", status="succeeded")
    assert [r["id"] for r in listed["runs"]] == [started["id"]]


def test_run_wait_without_a_run_lists_runs_and_refuses_mixed_modes(call, call_error, worktree):
    """run_list folded into run_wait (#13): without `run` the page, newest first, filtered;
    list filters with `run`, and a timeout_s without `run`, are refused, not ignored."""
    first = call("run_start", command=["true"], cwd=str(worktree))
    second = call("run_start", command=["false"], cwd=str(worktree))
    for run in (first, second):
        call("run_wait", run=run["id"], timeout_s=30)
    page = call("run_wait")
    assert [r["id"] for r in page["runs"]] == [second["id"], first["id"]] and page["total"] == 2
    assert set(page) == {"runs", "total", "next_cursor"}
    assert [r["id"] for r in call("run_wait", status="failed")["runs"]] == [second["id"]]
    paged = call("run_wait", limit=1)
    assert [r["id"] for r in paged["runs"]] == [second["id"]] and paged["next_cursor"]
    assert [r["id"] for r in call("run_wait", limit=1, cursor=paged["next_cursor"])["runs"]] == [first["id"]]
    assert call("run_wait", run=first["id"], timeout_s=0)["status"] == "succeeded"
    assert "status is a list argument" in call_error("run_wait", run=first["id"], status="failed")
    assert "limit, trial are list arguments" in call_error("run_wait", run=first["id"], trial=1, limit=5)
    assert "timeout_s waits for one run" in call_error("run_wait", timeout_s=0)


def test_grep_with_a_runaway_pattern_is_stopped_and_the_server_answers(lab, worktree, call, call_error, monkeypatch):
    from sotalab.tools.runs import tools as run_tools

    run = call("run_start", command=["sh", "-c", "for i in 1 2 3; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"],
               cwd=str(worktree))
    call("run_wait", run=run["id"], timeout_s=30)
    monkeypatch.setattr(run_tools, "GREP_TIMEOUT_S", 2.0)
    assert "took longer" in call_error("run_logs", run=run["id"], mode="grep", pattern=r"(x+x+)+y")
    assert call("run_logs", run=run["id"], mode="grep", pattern=r"x{5}")["matches"] == 3


def test_run_wait_is_bounded_and_returns_running_status(call, worktree):
    run = call("run_start", command=["sleep", "5"], cwd=str(worktree))
    waited = call("run_wait", run=run["id"], timeout_s=0.3)
    assert waited["status"] == "running"
    assert call("run_cancel", run=run["id"])["id"] == run["id"]


def test_run_start_refuses_cwd_outside_workspaces(call_error, tmp_path):
    message = call_error("run_start", command=["true"], cwd=str(tmp_path))
    assert "not inside an open trial's worktree" in message
    assert "cwd" in call_error("run_start", command=["true"], cwd="../../etc")


@pytest.mark.parametrize("where", [(), ("1",), ("1", "repo"), ("1", "repo", ".git"), ("1", "trials")])
def test_run_start_refuses_cwd_holding_a_campaign_repository(lab, call_error, where):
    """A run may write its cwd: one holding a campaign's clone could set that clone's git
    config (core.fsmonitor ran on the server at the next git command) or move its tags."""
    (lab.path("workspaces", "1", "repo", ".git")).mkdir(parents=True)
    (lab.path("workspaces", "1", "trials", "2")).mkdir(parents=True)
    message = call_error("run_start", command=["true"], cwd=str(lab.path("workspaces", *where)))
    assert "repository" in message or "trial" in message, message


def test_run_start_refuses_a_trial_whose_files_are_frozen(lab, call, call_error, tmp_path):
    """An evaluated (or evaluating) trial's worktree is what its score and audit rest on:
    a run must not add to it (say, a module the held-out evaluation would then import)."""
    from conftest import SIMPLE_CAMPAIGN
    from test_repos import make_upstream

    from sotalab.tools import trials

    cid = call("campaign_create", **SIMPLE_CAMPAIGN)["id"]
    call("repo_clone", campaign=cid, url=str(make_upstream(tmp_path)))
    tid = call("trial_create", campaign=cid, kind="baseline")["id"]
    for status in ("evaluating", "evaluated"):
        trials.set_fields(lab, tid, status=status)
        assert "frozen" in call_error("run_start", command=["touch", "json.py"], trial=tid)
    assert call("run_wait", trial=tid)["total"] == 0


def test_run_start_refuses_bad_env_name(call_error, worktree):
    assert "not valid" in call_error("run_start", command=["true"], cwd=str(worktree), env={"BAD-NAME": "1"})


def test_gpu_requests_without_nvml_are_refused_plainly(call, call_error, worktree):
    if not nvml_error():
        pytest.skip("this machine has a GPU; the no-NVML path is tested where there is none")
    assert "NVML found no GPU" in call_error("run_start", command=["true"], cwd=str(worktree), gpus=1)
    status = call("lab_status")["compute"]
    assert status["gpus_available"] is False and "NVML" in status["detail"] and status["gpus"] == []
    assert status["cpu_slots"] >= 1 and status["cpu_slots_busy"] == 0 and status["queued"] == 0
    auto = call("run_start", command=["true"], cwd=str(worktree), gpus="auto")
    assert auto["gpu_ids"] == []  # auto falls back to CPU


def test_telemetry_without_nvml_keeps_cpu_fields(lab, tmp_path):
    if not nvml_error():
        pytest.skip("this machine has a GPU; the no-NVML path is tested where there is none")
    import os

    sampler = Sampler(tmp_path, gpu_ids=[0], interval_s=1.0)
    sampler.sample(sampler.tree(os.getpid()))
    summary = sampler.finish()
    assert summary["gpu"].startswith("unavailable: NVML") and summary["peak_rss_mb"] > 0
    assert summary["peak_gpu_memory_mb"] is None and summary["energy_j"] is None


def gpu(index, used_mb, util, total_mb=80_000):
    return GpuState(index=index, uuid=f"GPU-{index}", name="stand-in", memory_total_mb=total_mb,
                    memory_used_mb=used_mb, utilization_pct=util)


def test_gpu_placement_by_free_memory_then_utilisation_and_sharing():
    states = [gpu(0, 30_000, 10), gpu(1, 1_000, 90), gpu(2, 1_000, 5)]
    assert queue.choose_gpus(1, None, states, {}) == [2]  # most free, then least busy
    assert queue.choose_gpus(2, None, states, {}) == [2, 1]
    # A run that declared no GPU memory holds its GPU exclusively.
    assert queue.choose_gpus(1, 10, states, {2: [None]}) == [1]
    # Declared memory lets runs share a GPU while the sum fits.
    assert queue.choose_gpus(1, 30, [gpu(0, 1_000, 0)], {0: [40]}) == [0]
    assert queue.choose_gpus(1, 50, [gpu(0, 1_000, 0)], {0: [40]}) is None
    assert queue.choose_gpus([0, 1], 10, states, {}) == [0, 1]
    assert queue.choose_gpus([0], None, states, {0: [10]}) is None


def test_launcher_forks_supervisors_and_runs_go_on_without_it(lab, worktree):
    import os
    import signal
    import time

    import psutil

    from sotalab.tools.runs import launcher

    first = queue.submit(lab, queue.RunRequest(argv=["true"], cwd=str(worktree)))
    assert queue.wait(lab, first, 30)["status"] == "succeeded"
    sock = lab.path("runs", launcher.SOCKET)
    assert not sock.exists(), "one-shot callers leave no launcher behind"
    queue.enable_launcher(lab)  # what start_dispatcher does in a long-lived server
    deadline = time.monotonic() + 20
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sock.exists(), "the first run should have started a launcher"
    second = queue.submit(lab, queue.RunRequest(argv=["sleep", "1"], cwd=str(worktree)))
    supervisor = psutil.Process(queue.get_row(lab, second)["supervisor_pid"])
    forker = supervisor.parent()
    assert "sotalab.tools.runs.launcher" in " ".join(forker.cmdline())
    forker.send_signal(signal.SIGKILL)  # the launcher dies: its supervisors and later runs carry on
    forker.wait(10)
    assert sock.exists()  # stale socket: nobody answers
    assert queue.wait(lab, second, 30)["status"] == "succeeded"
    third = queue.submit(lab, queue.RunRequest(argv=["echo", "fallback"], cwd=str(worktree)))
    assert queue.wait(lab, third, 30)["status"] == "succeeded"
    assert os.path.getsize(lab.path("runs", third, "output.head")) > 0

    def launchers():
        return [p for p in psutil.process_iter(["cmdline"])
                if f"sotalab.tools.runs.launcher {lab.home}" in " ".join(p.info["cmdline"] or [])]

    deadline = time.monotonic() + 20  # and a new launcher replaced the dead one
    while time.monotonic() < deadline and not launchers():
        time.sleep(0.1)
    replacement = launchers()
    assert replacement and replacement[0].pid != forker.pid
    for proc in replacement:
        proc.kill()


def test_launcher_leaves_with_the_server_that_started_it(lab):
    import subprocess
    import sys
    import time

    import psutil

    server = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sotalab.tools.home import Lab; from sotalab.tools.runs import queue;"
        "queue.enable_launcher(Lab.open(sys.argv[1])); time.sleep(1.5)"), str(lab.home)])

    def launchers():
        return [p for p in psutil.process_iter(["cmdline"])
                if f"sotalab.tools.runs.launcher {lab.home}" in " ".join(p.info["cmdline"] or [])]

    deadline = time.monotonic() + 15
    while not launchers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert launchers(), "enable_launcher should start a launcher"
    server.wait(15)
    deadline = time.monotonic() + 15
    while launchers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not launchers(), "the launcher must leave once its server is gone and nothing runs"


def test_run_start_works_only_in_an_open_trials_own_worktree(lab, call, call_error, worktree):
    """Not the baseline's worktree, not another trial's, not audit scratch (lab/evals)."""
    cid = int(worktree.parent.parent.name)
    baseline = call("campaign_get", campaign=cid)["baseline_trial_id"]
    base_dir = worktree.parent / str(baseline)
    base_dir.mkdir()
    assert "baseline" in call_error("run_start", command=["true"], cwd=str(base_dir))
    assert "baseline" in call_error("run_start", command=["true"], trial=baseline)
    other = call("trial_create", campaign=cid, kind="param", hypothesis="other")["id"]
    message = call_error("run_start", command=["true"], trial=other, cwd=str(worktree))
    assert f"outside trial {other}'s worktree" in message
    scratch = lab.path("evals", "audit-1-x")
    scratch.mkdir(parents=True)
    assert "not inside an open trial's worktree" in call_error("run_start", command=["true"], cwd=str(scratch))
    (worktree / "sub").mkdir()
    inside = call("run_start", command=["pwd"], cwd=str(worktree / "sub"))
    assert inside["trial_id"] == int(worktree.name) and inside["campaign_id"] == cid


def test_run_start_uses_an_explicit_interpreter_and_says_so(lab, call, worktree):
    """No campaign environment: the server's own Python, visible inside the sandbox and
    named in the record; thread variables match the CPUs the run was pinned to."""
    import sys
    from pathlib import Path

    run = call("run_start", command=["sh", "-c", "command -v python; echo threads=$OMP_NUM_THREADS/$MKL_NUM_THREADS; "
                                     "python -c 'import sys; print(sys.prefix)'"], cwd=str(worktree))
    done = call("run_wait", run=run["id"], timeout_s=30)
    text = call("run_logs", run=run["id"])["text"]
    assert done["status"] == "succeeded", text
    assert done["interpreter"] == str(Path(sys.executable).parent / "python")
    assert text.splitlines()[0] == done["interpreter"] and sys.prefix in text
    assert f"threads={len(done['cpus'])}/{len(done['cpus'])}" in text and done["cpus"]
    assert done["layers"].startswith("userns+capdrop+seccomp+allowlist")


def test_run_wait_0_shows_the_latest_sample_and_wait_progress_the_last_log_line(lab, call, worktree):
    import time

    run = call("run_start", command=["sh", "-c", "echo warming up; echo epoch=1 loss=0.5; sleep 5"],
               cwd=str(worktree), telemetry_hz=10)
    deadline = time.monotonic() + 20
    status = call("run_wait", run=run["id"], timeout_s=0)
    while status["latest"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
        status = call("run_wait", run=run["id"], timeout_s=0)
    assert status["status"] == "running" and {"t", "cpu_pct", "rss_mb", "nproc"} <= set(status["latest"])
    ticks = []
    invoke(lab, "run_wait", {"run": run["id"], "timeout_s": 1.5}, progress=lambda d, t=None, m=None: ticks.append(m))
    assert any("last log line: 'epoch=1 loss=0.5'" in tick and "rss=" in tick for tick in ticks), ticks
    call("run_cancel", run=run["id"])
    assert call("run_wait", run=run["id"], timeout_s=30)["latest"] is None  # ended: the summary says it all


def test_cpu_time_budget_and_side_run_cost(lab, call, worktree):
    from sotalab.tools.runs.cost import side_run_cost

    run = call("run_start", command=["python", "-c", "while True: pass"], cwd=str(worktree),
               budget={"cpu_s": 0.5, "wall_s": 60})
    done = call("run_wait", run=run["id"], timeout_s=30)
    assert (done["status"], done["outcome"]) == ("timeout", "cpu_exceeded"), done["reason"]
    assert done["telemetry"]["mean_cpu_pct"] <= 100.0 * (os.cpu_count() or 1)
    cost = side_run_cost(lab, int(worktree.name))
    assert cost["runs"] == 1 and cost["cpu_s"] >= 0.5 and cost["wall_s"] >= cost["cpu_s"] / (os.cpu_count() or 1)
    assert call("trial_get", trial=int(worktree.name))["cost"]["side_runs"] == cost  # shown with the trial


def test_run_start_with_a_named_environment_uses_its_venv_inside_the_sandbox(lab, call, call_error, worktree, tmp_path):
    """The venv lives in the lab home, which no run sees; it is mounted back read-only,
    with its base interpreter, and it is the Python the run gets."""
    (tmp_path / "src").mkdir()
    env = call("env_build", path=str(tmp_path / "src"), detect=False)["env"]
    run = call("run_start", command=["python", "-c", "import sys, os; print(sys.prefix, os.environ['VIRTUAL_ENV'])"],
               cwd=str(worktree), environment=env["id"])
    done = call("run_wait", run=run["id"], timeout_s=30)
    text = call("run_logs", run=run["id"])["text"]
    assert done["status"] == "succeeded", text
    assert text.split() == [env["location"], env["location"]]
    assert done["interpreter"] == f"{env['location']}/bin/python"
    assert "no environment" in call_error("run_start", command=["true"], cwd=str(worktree), environment="venv-missing")
