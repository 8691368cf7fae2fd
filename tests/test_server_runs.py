"""Runs through the real server process: progress while waiting, and recovery after
the server is killed mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from mcp_helpers import http_server, http_session


def test_run_wait_sends_progress_and_runs_survive_a_killed_server(lab, trial_worktree):
    home = lab.home
    workdir = trial_worktree  # runs may only work in an open trial's worktree
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async def start_runs(url):
        async with http_session(f"{url}/mcp") as session:
            quick = await session.call_tool("run_start", {
                "command": ["python3", "-c", "import time; time.sleep(2.5); print('quick done')"],
                "cwd": str(workdir)})
            assert not quick.is_error, quick.content
            waited = await session.call_tool("run_wait", {"run": quick.structured_content["id"], "timeout_s": 20},
                                             progress_callback=on_progress)
            assert waited.structured_content["status"] == "succeeded"
            slow = await session.call_tool("run_start", {
                "command": ["python3", "-c", "import time; time.sleep(4); print('slow done')"],
                "cwd": str(workdir)})
            return slow.structured_content["id"]

    with http_server(home) as (url, server):
        slow_id = asyncio.run(start_runs(url))
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGKILL)  # the server dies; the run's supervisor must not
        server.wait(10)
    assert progress, "run_wait must send progress notifications while it waits"
    time.sleep(5)  # the run finishes while no server is up

    async def check(url):
        async with http_session(f"{url}/mcp") as session:
            status = await session.call_tool("run_wait", {"run": slow_id, "timeout_s": 0})
            return status.structured_content

    with http_server(home) as (url, _):
        status = asyncio.run(check(url))
    assert status["status"] == "succeeded", status
    assert status["exit_code"] == 0
