"""Supervised runs with real processes, real signals, bubblewrap and Docker.

Each behaviour runs on both executors: local (bubblewrap where it works) and docker
(the registry-free sotalab-base image). CI must provide both; locally they skip.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import require
from sotalab.tools.runs import queue, sandbox
from sotalab.tools.runs.docker_exec import DEFAULT_IMAGE
from sotalab.tools.status import check_docker


def docker_ready() -> tuple[bool, str]:
    cap = check_docker()
    if not cap.available:
        return False, cap.detail
    import docker

    try:
        docker.from_env().images.get(DEFAULT_IMAGE)
    except Exception:
        return False, f"image {DEFAULT_IMAGE} missing: run scripts/make_base_image.sh"
    return True, ""


@pytest.fixture(params=["local", "docker"])
def executor(request):
    if request.param == "docker":
        ok, why = docker_ready()
        require(ok, f"Docker executor tests need a Docker engine and the base image: {why}")
    else:
        require(sandbox.bwrap_works(), "the local sandbox tests need bubblewrap (apt-get install bubblewrap)")
    return request.param



def start(lab, worktree, executor, script: str, **kw):
    """Submit `sh -c script` and return the run id."""
    kw.setdefault("wall_s", 60)
    kw.setdefault("grace_s", 1)
    return queue.submit(lab, queue.RunRequest(argv=["sh", "-c", script], cwd=str(worktree),
                                              executor=executor, **kw))


def finish(lab, run_id, timeout=60) -> dict:
    row = queue.wait(lab, run_id, timeout)
    assert row["status"] in queue.TERMINAL, f"run {run_id} still {row['status']}"
    return row


def log_of(lab, run_id) -> str:
    from sotalab.tools.runs import logcap

    return logcap.read_text(lab.path("runs", run_id))


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def unique_sleep() -> str:
    """A sleep argument no other process on the machine has, to find stray processes."""
    return f"300.{uuid.uuid4().int % 10**6:06d}"


def test_success_records_status_log_and_cpu_telemetry(lab, worktree, executor):
    run = start(lab, worktree, executor, "echo hello from the run; sleep 0.6; echo bye",
                telemetry_interval_s=0.1)
    row = finish(lab, run)
    assert (row["status"], row["outcome"], row["exit_code"]) == ("succeeded", "exited", 0)
    assert "hello from the run" in log_of(lab, run) and "bye" in log_of(lab, run)
    from sotalab.tools import ledger

    summary = ledger.loads(row["telemetry"])
    assert summary["samples"] >= 2 and summary["gpu"] == "none requested"
    assert summary["wall_s"] > 0.5


def test_nonzero_exit_is_failed_with_code(lab, worktree, executor):
    row = finish(lab, start(lab, worktree, executor, "echo failing >&2; exit 3"))
    assert (row["status"], row["outcome"], row["exit_code"]) == ("failed", "exited", 3)
    assert row["reason"] == "exited 3"


def test_deadline_kills_whole_tree_that_ignores_term(lab, worktree, executor):
    mark = unique_sleep()
    # A child, a grandchild, and a process that escaped to its own session: all ignore TERM.
    script = (f"trap '' TERM; (trap '' TERM; sleep {mark}) & "
              f"setsid sh -c \"trap '' TERM; sleep {mark}\" & sleep {mark}; wait")
    run = start(lab, worktree, executor, script, wall_s=1.5, grace_s=0.5)
    deadline = time.monotonic() + 10
    while not marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marked_processes(mark), "the run's processes never appeared"
    row = finish(lab, run)
    assert (row["status"], row["outcome"]) == ("timeout", "timeout")
    assert "wall-time budget" in row["reason"]
    survivors = marked_processes(mark)
    assert not survivors, f"orphans survived the deadline: {[p.pid for p in survivors]}"


def test_memory_overrun_is_killed_and_labelled_oom(lab, worktree, executor):
    # tail keeps the whole newline-free stream in memory.
    run = start(lab, worktree, executor, "head -c 600M /dev/zero | tail > /dev/null; echo survived",
                memory_gb=0.15, telemetry_interval_s=0.1)
    row = finish(lab, run)
    assert (row["status"], row["outcome"]) == ("failed", "oom")
    if executor == "local":  # the supervisor kills the whole run; Docker's kernel OOM kills one process
        assert "survived" not in log_of(lab, run)


def test_log_flood_is_capped_keeping_head_and_tail(lab, worktree, executor, call):
    cap = 64 * 1024
    run = start(lab, worktree, executor, "seq 1 400000", log_cap_bytes=cap)
    row = finish(lab, run)
    assert row["status"] == "succeeded"
    kept = sum(f.stat().st_size for f in lab.path("runs", run).glob("output.*") if f.name != "output.meta")
    assert kept <= cap + cap // 4
    logs = call("run_logs", run=run, mode="tail", lines=3)
    assert logs["text"].split() == ["399998", "399999", "400000"]
    assert logs["total_bytes"] == sum(len(f"{i}\n") for i in range(1, 400001))
    assert logs["dropped_bytes"] > 0
    head = call("run_logs", run=run, mode="cursor", cursor=0, max_bytes=256)
    assert head["text"].startswith("1\n2\n3\n") and head["next_cursor"] == 256
    # Reading on from inside the dropped middle moves to the oldest byte kept.
    middle = call("run_logs", run=run, mode="cursor", cursor=cap, max_bytes=256)
    assert middle["start"] > cap
    assert "bytes dropped by the log cap" in log_of(lab, run)


def test_cancel_stops_run_and_everything_it_started(lab, worktree, executor, call):
    mark = unique_sleep()
    run = start(lab, worktree, executor, f"trap '' TERM; sleep {mark} & sleep {mark}; wait", grace_s=0.5)
    deadline = time.monotonic() + 10
    while len(marked_processes(mark)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    call("run_cancel", run=run)
    row = finish(lab, run)
    assert (row["status"], row["outcome"]) == ("cancelled", "cancelled")
    assert not marked_processes(mark)


def test_environment_is_an_allowlist(lab, worktree, executor, monkeypatch):
    monkeypatch.setenv("SOTALAB_TEST_API_TOKEN", "sk-very-secret")
    run = start(lab, worktree, executor, "env", env={"MY_SETTING": "42"})
    row = finish(lab, run)
    text = log_of(lab, run)
    assert row["status"] == "succeeded"
    assert "sk-very-secret" not in text and "SOTALAB_TEST_API_TOKEN" not in text
    assert "MY_SETTING=42" in text and "CUDA_VISIBLE_DEVICES=" in text


@pytest.fixture
def host_listener():
    """A TCP listener on the host's loopback: reachable from the host, never from a run."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_network_is_denied(lab, worktree, executor, host_listener):
    port, accepted = host_listener
    probe = ("import socket\n"
             "try:\n"
             f"    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\n"
             "except OSError as e:\n"
             "    print('DENIED', e)\n")
    socket.create_connection(("127.0.0.1", port), timeout=3).close()  # reachable from the host
    run = queue.submit(lab, queue.RunRequest(argv=["python3", "-c", probe], cwd=str(worktree),
                                             executor=executor, wall_s=30))
    row = finish(lab, run)
    assert row["status"] == "succeeded"
    assert "DENIED" in log_of(lab, run) and "CONNECTED" not in log_of(lab, run)
    assert len(accepted) == 1


def test_host_unix_sockets_under_run_are_out_of_reach(lab, worktree):
    """A read-only bind of / still lets a process connect to host sockets such as
    /run/docker.sock (a way out of any sandbox): /run is hidden from local runs."""
    require(sandbox.bwrap_works(), "the local sandbox tests need bubblewrap (apt-get install bubblewrap)")
    if not os.access("/run", os.W_OK):
        pytest.skip("placing a host socket needs a writable /run (run the tests as root)")
    with tempfile.TemporaryDirectory(dir="/run") as where:
        path = os.path.join(where, "host.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)
        probe = ("import socket\n"
                 "s = socket.socket(socket.AF_UNIX)\n"
                 "try:\n"
                 f"    s.connect({path!r}); print('CONNECTED')\n"
                 "except OSError as e:\n"
                 "    print('DENIED', e)\n")
        run = queue.submit(lab, queue.RunRequest(argv=["python3", "-c", probe], cwd=str(worktree), wall_s=30))
        row = finish(lab, run)
        server.close()
    assert row["status"] == "succeeded" and '"sandbox": "bwrap"' in row["resources"]
    assert "DENIED" in log_of(lab, run) and "CONNECTED" not in log_of(lab, run)


def test_writes_outside_worktree_are_denied(lab, worktree, executor, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o777)
    script = (f"echo inside > result.txt; echo $SOTALAB_OUTPUT_DIR; echo art > $SOTALAB_OUTPUT_DIR/a.txt; "
              f"echo escaped > {outside}/x.txt; echo ledger >> {lab.db_path}; touch /usr/evil; true")
    run = start(lab, worktree, executor, script)
    row = finish(lab, run)
    assert row["status"] == "succeeded"
    assert (worktree / "result.txt").read_text() == "inside\n"
    assert (lab.path("runs", run, "out", "a.txt")).read_text() == "art\n"
    assert not (outside / "x.txt").exists()
    assert b"ledger" not in lab.db_path.read_bytes()
    assert not os.path.exists("/usr/evil")


def test_queue_waits_for_a_cpu_slot_and_times_out_with_reason(lab, worktree, executor, monkeypatch):
    monkeypatch.setenv("SOTALAB_CPU_SLOTS", "1")
    first = start(lab, worktree, executor, "sleep 1.5")
    second = start(lab, worktree, executor, "echo second ran", pending_timeout_s=60)
    third = start(lab, worktree, executor, "echo third ran", pending_timeout_s=0.3)
    row = queue.get_row(lab, second)
    assert row["status"] == "queued" and "CPU slot (1 of 1 busy)" in row["reason"]
    third_row = finish(lab, third)
    assert (third_row["status"], third_row["outcome"]) == ("failed", "pending_timeout")
    assert "CPU slot" in third_row["reason"] and "pending timeout" in third_row["reason"]
    assert finish(lab, first)["status"] == "succeeded"
    second_row = finish(lab, second)
    assert second_row["status"] == "succeeded" and "second ran" in log_of(lab, second)
    assert second_row["started_at"] >= queue.get_row(lab, first)["ended_at"][:19]


def test_cancel_of_a_queued_run(lab, worktree, monkeypatch, call):
    monkeypatch.setenv("SOTALAB_CPU_SLOTS", "1")
    first = start(lab, worktree, "local", "sleep 30")
    waiting = start(lab, worktree, "local", "echo never")
    assert call("run_cancel", run=waiting)["status"] == "cancelled"
    call("run_cancel", run=first)
    assert finish(lab, first)["status"] == "cancelled"
    assert queue.get_row(lab, waiting)["started_at"] is None


def test_cancel_arriving_while_the_run_is_launched_is_not_lost(lab, worktree, monkeypatch):
    real_start = queue._start_supervisor
    cancelling = []

    def start_while_a_cancel_arrives(lab_, run_dir):
        caller = threading.Thread(target=queue.cancel, args=(lab, int(run_dir.name)))
        caller.start()
        caller.join(1.0)  # give the cancel its chance to land mid-launch
        cancelling.append(caller)
        return real_start(lab_, run_dir)

    monkeypatch.setattr(queue, "_start_supervisor", start_while_a_cancel_arrives)
    run = start(lab, worktree, "local", "sleep 20")
    monkeypatch.setattr(queue, "_start_supervisor", real_start)
    cancelling[0].join(30)
    assert finish(lab, run)["status"] == "cancelled"


def test_process_group_fallback_runs_and_kills_tree(lab, worktree):
    mark = unique_sleep()
    run = start(lab, worktree, "local", f"trap '' TERM; setsid sh -c \"trap '' TERM; sleep {mark}\" & sleep {mark}",
                sandbox="process-group", wall_s=1, grace_s=0.3)
    row = finish(lab, run)
    assert row["status"] == "timeout"
    assert "process-group" in (lab.path("runs", run, "spec.json")).read_text()
    assert not marked_processes(mark)


def test_artifact_budget_exceeded(lab, worktree):
    run = start(lab, worktree, "local", "head -c 3000000 /dev/zero > $SOTALAB_OUTPUT_DIR/model.bin",
                artifact_mb=1)
    row = finish(lab, run)
    assert (row["status"], row["outcome"]) == ("failed", "artifact_exceeded")


def test_docker_run_keeps_the_image_path_and_runs_as_non_root(lab, worktree):
    ok, why = docker_ready()
    require(ok, f"Docker executor tests need a Docker engine and the base image: {why}")
    import io

    import docker

    tag = "sotalab-test-path:1"
    docker.from_env().images.build(fileobj=io.BytesIO(
        f"FROM {DEFAULT_IMAGE}\nENV PATH=/opt/probe/bin:/usr/bin:/bin\n".encode()), tag=tag)
    run = start(lab, worktree, "docker", "echo PATH=$PATH; id -u; cat /proc/self/status | grep CapEff",
                image=tag)
    row = finish(lab, run)
    text = log_of(lab, run)
    assert row["status"] == "succeeded"
    assert "PATH=/opt/probe/bin:/usr/bin:/bin" in text  # an environment image's venv stays first
    assert "\n65534\n" in text and "CapEff:\t0000000000000000" in text


@pytest.fixture
def lab_outside_tmp():
    """A lab home outside /tmp (the sandbox's /tmp is private anyway), like a real one."""
    import shutil
    import tempfile

    from sotalab.tools.home import Lab

    root = tempfile.mkdtemp(dir="/var/tmp", prefix="sotalab-test-")
    yield Lab.open(root)
    shutil.rmtree(root, ignore_errors=True)


def test_sandbox_hides_the_lab_home_but_its_own_directories(lab_outside_tmp):
    require(sandbox.bwrap_works(), "the local sandbox tests need bubblewrap (apt-get install bubblewrap)")
    lab = lab_outside_tmp
    worktree = lab.path("workspaces", "1", "trials", "2")
    worktree.mkdir(parents=True)
    (lab.path("held_out") / "labels.csv").write_text("secret labels\n")
    venv = lab.path("envs", "e1", "venv")
    venv.mkdir(parents=True)
    (venv / "marker").write_text("env visible\n")
    script = (f"cat {lab.path('held_out', 'labels.csv')}; cat {lab.db_path} | head -c 20; "
              f"cat {venv / 'marker'}; echo new > {venv / 'written'}; echo work > result.txt")
    run = queue.submit(lab, queue.RunRequest(argv=["sh", "-c", script], cwd=str(worktree), readable=[str(venv)]))
    row = finish(lab, run)
    text = log_of(lab, run)
    assert row["status"] == "succeeded"
    assert "secret labels" not in text and "SQLite" not in text
    assert "env visible" in text and not (venv / "written").exists()
    assert (worktree / "result.txt").read_text() == "work\n"


def test_sandbox_hides_credentials_and_the_campaign_clone_source(lab_outside_tmp, monkeypatch):
    """Nothing of the user's home is mounted (keys or not), nor the local directory the
    campaign was cloned from (it still holds the held-out split)."""
    require(sandbox.bwrap_works(), "the local sandbox tests need bubblewrap (apt-get install bubblewrap)")
    import shutil
    import tempfile

    from sotalab.tools import campaigns
    from sotalab.tools.invoke import invoke
    from conftest import SIMPLE_CAMPAIGN

    lab = lab_outside_tmp
    outside = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="sotalab-host-"))
    try:
        home = outside / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
        (home / ".netrc").write_text("machine x password hunter2\n")
        (home / "notes.txt").write_text("ordinary file\n")
        source = outside / "paper-code"
        (source / "heldout").mkdir(parents=True)
        (source / "heldout" / "test.csv").write_text("held-out labels\n")
        monkeypatch.setenv("HOME", str(home))
        cid = invoke(lab, "campaign_create", SIMPLE_CAMPAIGN)["id"]
        campaigns.set_fields(lab, cid, repo_url=str(source))
        worktree = lab.path("workspaces", str(cid), "trials", "1")
        worktree.mkdir(parents=True)
        script = (f"cat {home}/.ssh/id_ed25519; cat {home}/.netrc; cat {home}/notes.txt; "
                  f"cat {source}/heldout/test.csv; echo done")
        run = queue.submit(lab, queue.RunRequest(argv=["sh", "-c", script], cwd=str(worktree), campaign_id=cid))
        row = finish(lab, run)
        text = log_of(lab, run)
        assert row["status"] == "succeeded", text
        assert "ordinary file" not in text and "done" in text  # the mount allowlist: no home at all
        assert "PRIVATE KEY" not in text and "hunter2" not in text and "held-out labels" not in text
    finally:
        shutil.rmtree(outside, ignore_errors=True)
