"""Start-and-poll: a long tool answers over MCP with a job handle at once, job_wait follows
it for a bounded time, and no tool call ever needs more than 60 s, whatever the work."""

from __future__ import annotations

import asyncio
import subprocess
import time

import psutil
import pytest
from fastmcp import Client

from conftest import SIMPLE_CAMPAIGN
from mcp_helpers import stdio_session
from sotalab.client.session import is_job_handle
from sotalab.server.app import build_server
from sotalab.tools import jobs
from sotalab.tools.errors import InvalidInput, LabError
from sotalab.tools.invoke import invoke

HOST_TIMEOUT_S = 60  # the bound a tool call must stay under (Codex's default tool timeout)


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


def make_repo(path, eval_py: str):
    path.mkdir()
    (path / "eval.py").write_text(eval_py)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "v1")
    return path


@pytest.fixture
def upstream(tmp_path):
    return make_repo(tmp_path / "upstream", "print('accuracy=0.5')\n")


def test_a_job_tool_answers_with_a_handle_and_job_wait_hands_back_the_result(lab, upstream):
    async def scenario():
        async with Client(build_server(lab)) as client:
            await client.call_tool("campaign_create", SIMPLE_CAMPAIGN)
            started = time.monotonic()
            handle = (await client.call_tool("repo_clone", {"campaign": 1, "url": str(upstream)})).structured_content
            assert time.monotonic() - started < jobs.SETTLE_S + 5
            assert is_job_handle("repo_clone", handle), handle
            while handle["status"] == "running":
                assert handle["next"] == f"job_wait(job={handle['job']})"
                handle = (await client.call_tool("job_wait", {"job": handle["job"], "timeout_s": 5})).structured_content
            return handle

    done = asyncio.run(scenario())
    assert done["status"] == "succeeded" and done["error"] is None and done["next"] is None
    commit = done["result"]["commit"]
    assert lab.db.execute("SELECT repo_commit FROM campaigns WHERE id = 1").fetchone()[0] == commit
    # From Python the same tool still runs to the end and returns its own result.
    assert "job" not in invoke(lab, "repo_clone", {"campaign": 1, "url": str(upstream), "replace": True})


def test_a_bad_call_to_a_job_tool_fails_at_once_and_starts_nothing(lab):
    async def scenario():
        async with Client(build_server(lab)) as client:
            return await client.call_tool("repo_clone", {"campaign": "one", "url": "x"}, raise_on_error=False)

    result = asyncio.run(scenario())
    assert result.is_error and "valid integer" in result.content[0].text
    assert lab.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def test_a_failed_job_reports_the_tools_own_error(lab, tmp_path):
    invoke(lab, "campaign_create", SIMPLE_CAMPAIGN)
    job = jobs.start(lab, "repo_clone", {"campaign": 1, "url": str(tmp_path / "nowhere")})
    job = jobs.load(lab, job.job) if job.status != "running" else \
        jobs.Job.model_validate(invoke(lab, "job_wait", {"job": job.job, "timeout_s": 30}))
    assert job.status == "failed" and job.result is None
    assert "nowhere" in job.error
    listed = invoke(lab, "job_wait", {"status": "failed"})
    assert [j["job"] for j in listed["jobs"]] == [job.job] and listed["jobs"][0]["error"] == job.error


def test_job_wait_is_bounded_and_relays_the_jobs_progress(lab, trial_worktree):
    """A real long call (run_wait on a 6-second run) as a job: each wait returns by its
    bound while the job runs, carries the job's progress, and the last one its result."""
    run = invoke(lab, "run_start", {"command": ["python3", "-c", "import time; time.sleep(6)"],
                                    "cwd": str(trial_worktree)})
    job = jobs.start(lab, "run_wait", {"run": run["id"], "timeout_s": 30})
    assert job.status == "running" and job.next == f"job_wait(job={job.job})"
    seen = []
    started = time.monotonic()
    waited = invoke(lab, "job_wait", {"job": job.job, "timeout_s": 1},
                    progress=lambda done, total=None, message=None: seen.append((done, message)))
    assert waited["status"] == "running" and time.monotonic() - started < 3
    while waited["status"] == "running":
        waited = invoke(lab, "job_wait", {"job": job.job, "timeout_s": 5},
                        progress=lambda done, total=None, message=None: seen.append((done, message)))
    assert waited["status"] == "succeeded" and waited["result"]["status"] == "succeeded"
    assert seen, "job_wait relayed none of the job's progress"
    with pytest.raises(LabError, match="timeout_s"):
        invoke(lab, "job_wait", {"job": job.job, "timeout_s": 31})
    with pytest.raises(LabError, match="no job with id 999"):
        invoke(lab, "job_wait", {"job": 999})


def test_a_job_whose_server_stopped_reads_lost_not_running(lab):
    """The owner is a real process that has exited (its pid and start time), as after a
    server was killed mid-job."""
    gone = subprocess.Popen(["sleep", "0.2"])
    owner = f"{gone.pid}:{psutil.Process(gone.pid).create_time():.3f}"
    gone.wait()
    job_id = lab.db["jobs"].insert({"tool": "env_build", "arguments": "{}", "status": "running", "owner": owner,
                                    "created_at": "2026-01-01", "updated_at": "2026-01-01"}).last_pk
    assert invoke(lab, "job_wait", {})["jobs"][0]["status"] == "lost"
    job = invoke(lab, "job_wait", {"job": job_id, "timeout_s": 0})
    assert job["status"] == "lost" and "call env_build again" in job["error"]


def test_job_wait_without_a_job_lists_jobs_and_refuses_mixed_modes(lab):
    """job_list folded into job_wait (#13): without `job` the page, newest first, filtered;
    list filters with `job`, and a timeout_s without `job`, are refused, not ignored."""
    first = jobs.start(lab, "lab_status", {})
    second = jobs.start(lab, "trial_get", {"trial": 999})
    page = invoke(lab, "job_wait", {})
    assert [j["job"] for j in page["jobs"]] == [second.job, first.job] and page["total"] == 2
    assert set(page) == {"jobs", "total", "next_cursor"}
    assert [j["job"] for j in invoke(lab, "job_wait", {"tool": "lab_status"})["jobs"]] == [first.job]
    paged = invoke(lab, "job_wait", {"limit": 1})
    assert [j["job"] for j in paged["jobs"]] == [second.job] and paged["next_cursor"]
    assert [j["job"] for j in invoke(lab, "job_wait", {"limit": 1, "cursor": paged["next_cursor"]})["jobs"]] \
        == [first.job]
    assert invoke(lab, "job_wait", {"job": first.job, "timeout_s": 0})["job"] == first.job
    with pytest.raises(InvalidInput, match="status is a list argument"):
        invoke(lab, "job_wait", {"job": first.job, "status": "failed"})
    with pytest.raises(InvalidInput, match="limit, tool are list arguments"):
        invoke(lab, "job_wait", {"job": first.job, "tool": "lab_status", "limit": 5})
    with pytest.raises(InvalidInput, match="timeout_s waits for one job"):
        invoke(lab, "job_wait", {"timeout_s": 5})


SLOW_EVAL = """\
import os, time
seed = int(os.environ["SOTALAB_SEED"])
for second in range(180):
    time.sleep(1)
    if second % 30 == 0:
        print(f"seed {seed}: {second}s", flush=True)
print(f"accuracy={0.5 + seed / 100:.4f}")
"""


@pytest.mark.slow
def test_no_tool_call_exceeds_60s_while_a_3_minute_evaluation_runs_to_the_end(tmp_path):
    """Over stdio with the official SDK, as a host: an evaluator that runs for three
    minutes, followed only through handles. Every single call returns well inside a
    host's tool timeout."""
    upstream = make_repo(tmp_path / "upstream", SLOW_EVAL)
    home = tmp_path / "lab"
    longest = 0.0

    async def call(session, tool, arguments):
        nonlocal longest
        started = time.monotonic()
        result = await session.call_tool(tool, arguments)
        longest = max(longest, time.monotonic() - started)
        assert not result.is_error, result.content
        return result.structured_content

    async def scenario():
        async with stdio_session(home) as session:
            spec = dict(SIMPLE_CAMPAIGN, evaluator=dict(SIMPLE_CAMPAIGN["evaluator"], timeout_s=300, seeds=[7]),
                        budgets={"run_wall_s": 300})
            await call(session, "campaign_create", spec)
            clone = await call(session, "repo_clone", {"campaign": 1, "url": str(upstream)})
            while clone["status"] == "running":
                clone = await call(session, "job_wait", {"job": clone["job"], "timeout_s": 30})
            trial = await call(session, "trial_create", {"campaign": 1, "kind": "baseline"})
            started = time.monotonic()
            handle = await call(session, "trial_evaluate", {"trial": trial["id"]})
            assert is_job_handle("trial_evaluate", handle), "trial_evaluate must answer with a job handle"
            waits = 0
            while handle["status"] == "running":
                handle = await call(session, "job_wait", {"job": handle["job"], "timeout_s": 30})
                waits += 1
            return handle, time.monotonic() - started, waits

    done, elapsed, waits = asyncio.run(scenario())
    assert done["status"] == "succeeded", done["error"]
    assert elapsed >= 180 and waits >= 6, (elapsed, waits)
    assert done["result"]["score"] == pytest.approx(0.57, abs=1e-6)  # what seed 7's run printed
    assert longest < min(HOST_TIMEOUT_S, jobs.MAX_WAIT_S + 10), f"a tool call took {longest:.1f}s"


def test_a_campaigns_running_jobs_are_in_its_role_prompts(lab, trial_worktree):
    """A role resuming a campaign sees the evaluation a previous session started and is
    told to follow it, not to start it again. Jobs on a trial count for its campaign."""
    from sotalab.server.roles import campaign_state

    done = jobs.start(lab, "trial_get", {"trial": 2})
    assert invoke(lab, "job_wait", {"campaign": 1})["jobs"][0]["job"] == done.job
    running = lab.db["jobs"].insert({"tool": "trial_evaluate", "arguments": '{"trial": 2}', "campaign_id": 1,
                                     "status": "running", "owner": jobs._this_process(),
                                     "created_at": "2026-01-01", "updated_at": "2026-01-01"}).last_pk
    state = campaign_state(lab, 1)
    assert "### Running jobs (1)" in state
    assert f"job {running}: trial_evaluate" in state and f"job_wait(job={running})" in state


def test_a_dry_run_of_env_build_answers_in_one_call(lab, tmp_path):
    """env_build is a job tool, but its dry run builds nothing: it settles within the
    job's first second, so the plan comes back in the call itself."""
    (tmp_path / "requirements.txt").write_text("six\n")

    async def scenario():
        async with Client(build_server(lab)) as client:
            return (await client.call_tool("env_build", {"path": str(tmp_path), "dry_run": True})).structured_content

    handle = asyncio.run(scenario())
    assert handle["status"] == "succeeded", handle
    assert handle["result"]["spec"]["requirements"] == ["six"] and handle["result"]["built"] is False
    assert lab.db["environments"].count == 0
