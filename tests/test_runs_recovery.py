"""Restart recovery with real processes: the server is killed with SIGKILL mid-run,
and a fresh server process reconciles what happened while it was down."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from sotalab.tools import ledger
from sotalab.tools.runs import logcap, queue
from sotalab.tools.runs.reconcile import reconcile
from test_runs import executor, marked_processes, unique_sleep  # noqa: F401 (executor: fixture)

SERVER = """
import json, sys, time
from sotalab.tools.home import Lab
from sotalab.tools.runs import queue
lab = Lab.open(sys.argv[1])
ids = {name: queue.submit(lab, queue.RunRequest(argv=["sh", "-c", script], cwd=sys.argv[2], sandbox=box,
                                                executor=sys.argv[4]))
       for name, (script, box) in json.loads(sys.argv[3]).items()}
print(json.dumps(ids), flush=True)
time.sleep(600)
"""


def wait_until(condition, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_server_killed_mid_run_then_reconcile(lab, executor):  # noqa: F811 (the imported fixture)
    worktree = lab.path("workspaces", "w")
    worktree.mkdir()
    mark = unique_sleep()
    runs = {
        "finished": ["echo finished-while-down", "auto"],
        "running": ["sleep 8; echo still-ran", "auto"],  # long enough to outlast the other launches on a busy machine
        # Plain process group or a container: the run outlives its supervisor until reconcile kills it.
        "vanished": [f"echo before-vanish; sleep {mark}", "process-group"],
    }
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(lab.home), str(worktree), json.dumps(runs), executor],
                              stdout=subprocess.PIPE, text=True)
    ids = json.loads(server.stdout.readline())
    server.kill()  # SIGKILL: no cleanup of any kind
    server.wait()

    def row(name):
        return queue.get_row(lab, ids[name])

    assert wait_until(lambda: row("finished")["status"] == "succeeded")
    assert wait_until(lambda: marked_processes(mark) and "before-vanish" in logcap.read_text(lab.path("runs", ids["vanished"])))
    os.kill(row("vanished")["supervisor_pid"], signal.SIGKILL)
    assert wait_until(lambda: not queue.supervisor_alive(row("vanished")))

    report = reconcile(lab)  # what a restarted server does first

    assert ids["running"] in report["reattached"]
    assert ids["vanished"] in report["lost"]
    finished = row("finished")
    assert finished["exit_code"] == 0 and ledger.loads(finished["telemetry"])["wall_s"] >= 0
    vanished = row("vanished")
    assert vanished["status"] == "lost" and "log is kept" in vanished["reason"]
    assert "before-vanish" in logcap.read_text(lab.path("runs", ids["vanished"]))
    assert not marked_processes(mark), "reconcile must kill what a vanished run left"
    running = queue.wait(lab, ids["running"], 20)
    assert running["status"] == "succeeded"
    assert "still-ran" in logcap.read_text(lab.path("runs", ids["running"]))


def test_reconcile_collects_status_the_supervisor_could_not_record(lab):
    """The supervisor wrote status.json but died before the ledger took it (here: the
    ledger is locked, then the supervisor is killed). Reconcile reads the status file."""
    worktree = lab.path("workspaces", "w")
    worktree.mkdir()
    run = queue.submit(lab, queue.RunRequest(argv=["sh", "-c", "echo collected-later"], cwd=str(worktree)))
    blocker = sqlite3.connect(lab.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock: record_end must wait
    try:
        status_file = lab.path("runs", run, "status.json")
        assert wait_until(status_file.exists)
        supervisor = json.loads(lab.path("runs", run, "started.json").read_text())["supervisor_pid"]
        os.kill(supervisor, signal.SIGKILL)
        assert wait_until(lambda: not os.path.exists(f"/proc/{supervisor}") or
                          open(f"/proc/{supervisor}/stat").read().split()[2] == "Z")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert queue.get_row(lab, run)["status"] == "running"
    report = reconcile(lab)
    assert report["collected"] == [run]
    row = queue.get_row(lab, run)
    assert (row["status"], row["exit_code"]) == ("succeeded", 0)
    assert json.loads(status_file.read_text())["status"] == "succeeded"
