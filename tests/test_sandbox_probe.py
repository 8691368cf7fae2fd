"""Hostile code against the sandbox, through the tools an agent uses: ``run_start`` and
``trial_evaluate``, on the local executor (as root and, spawned from a root run of this
suite, as the unprivileged user ``sotalab-ci``) and on the Docker executor.

Each probe is ``tests/sandbox_probe.py`` run inside a real sandboxed run; see that file
for what it tries.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, require
from sotalab.tools.errors import InvalidInput
from sotalab.tools.invoke import invoke
from sotalab.tools.runs import queue, sandbox
from test_runs import docker_ready

PROBE_SOURCE = (Path(__file__).parent / "sandbox_probe.py").read_text()
SECRET_VAR = "SOTALAB_PROBE_SERVER_TOKEN"
UNPRIVILEGED_USER = "sotalab-ci"
AS_USER_FLAG = "SOTALAB_PROBE_AS_UNPRIVILEGED"  # set in the suite's unprivileged re-run


@pytest.fixture(params=["local", "docker"])
def executor(request):
    if request.param == "docker":
        ok, why = docker_ready()
        require(ok, f"the Docker probes need a Docker engine and the base image: {why}")
    else:
        require(sandbox.bwrap_works(), f"the local probes need bubblewrap: {sandbox.bwrap_problem()}")
    return request.param


@pytest.fixture
def host(tmp_path, monkeypatch):
    """The supervisor's world as a hostile run would hunt in it: a HOME full of
    credentials, a token in the server's environment, a service on host loopback."""
    home = tmp_path / "home"
    from sandbox_probe import CREDENTIALS

    for rel in CREDENTIALS:
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text("TOP-SECRET credential\n")
    (home / "notes.txt").write_text("an ordinary file of the user's\n")
    monkeypatch.setenv("HOME", str(home))
    secret = "tok-" + os.urandom(8).hex()
    monkeypatch.setenv(SECRET_VAR, secret)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield {"home": str(home), "secret": secret, "port": listener.getsockname()[1]}
    listener.close()


def probe_code(host: dict, extra_paths: list[str]) -> str:
    call = (f"probe({host['home']!r}, {host['secret']!r}, {host['port']}, {extra_paths!r})")
    return PROBE_SOURCE + f"\nprint('PROBE', json.dumps({call}), flush=True)\n"


def probe_result(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("PROBE ")]
    assert lines, f"the probe printed nothing; the run said:\n{text[-3000:]}"
    return json.loads(lines[-1][len("PROBE "):])


def assert_confined(found: dict, host: dict, executor: str = "local") -> None:
    assert found["uid"] == 65534
    assert found["cap_eff"] == "0000000000000000"
    for attempt in ("mount_tmpfs", "umount_proc", "remount_root_rw", "remount_usr_rw", "unshare_user"):
        assert found[attempt] != "ok", f"{attempt} succeeded inside the sandbox"
    # Docker's own seccomp profile allows ptrace; its pid namespace leaves only the run to trace.
    allowed = {"ptrace"} if executor == "docker" else set()
    assert all(result != "ok" for name, result in found["syscalls"].items() if name not in allowed), found["syscalls"]
    outside = [c[:200] for c in found["visible_commands"]
               if any(mark in c for mark in ("runs.supervisor", "runs.launcher", "bin/pytest", "-m pytest", "dockerd"))]
    assert outside == [], f"processes outside the run are visible: {outside}"
    assert found["host_sockets"] == []
    assert found["interfaces"] == ["lo"] and not found["host_port_reachable"]
    assert found["readable_credentials"] == [] and not found["readable_home_file"]
    assert found["readable_extra"] == []
    assert found["writable_system"] == []
    assert not found["secret_in_env"] and not found["secret_in_proc"]
    assert SECRET_VAR not in found["env_names"]
    if executor == "local":  # a worktree on the host's disk: a 60 GB fallocate would fill it in one call
        assert found["instant_allocation"] in ("EOPNOTSUPP", "ENOTSUP"), found["instant_allocation"]


def extra_paths(lab) -> list[str]:
    """Host files a run must not read: the ledger, this checkout and another one, the
    system's secrets."""
    other = lab.home.parent / "other-checkout"
    other.mkdir(exist_ok=True)
    (other / "train.py").write_text("someone else's code\n")
    return [str(lab.home / "lab.db"), str(REPO / "README.md"), str(other / "train.py"), "/etc/shadow"]


def wait_for_end(lab, run_id: int, limit_s: float = 120) -> dict:
    """run_wait until the run ends (each call blocks 30 s at most, as for a host)."""
    end = time.monotonic() + limit_s
    while True:
        done = invoke(lab, "run_wait", {"run": run_id, "timeout_s": 30})
        if done["status"] not in ("queued", "running") or time.monotonic() > end:
            return done


def test_run_start_probe(lab, trial_worktree, host, executor):
    command = ["python" if executor == "local" else "python3", "-c", probe_code(host, extra_paths(lab))]
    run = invoke(lab, "run_start", {"command": command, "cwd": str(trial_worktree), "executor": executor})
    done = wait_for_end(lab, run["id"])
    text = invoke(lab, "run_logs", {"run": run["id"], "lines": 50})["text"]
    assert done["status"] == "succeeded", text
    assert_confined(probe_result(text), host, executor)
    if executor == "local":
        assert done["layers"].startswith("userns+capdrop+seccomp+allowlist")


def test_trial_evaluate_probe(tmp_path, host):
    """The same probe as a trial's code: tinynet's predict step imports train.py."""
    require(sandbox.bwrap_works(), f"the local probes need bubblewrap: {sandbox.bwrap_problem()}")
    from tinynet_lab import TinynetCampaign

    from sotalab.tools import workspaces

    camp = TinynetCampaign(tmp_path / "tinynet")
    trial = camp.call("trial_create", campaign=camp.id, kind="code", hypothesis="probe the sandbox")["id"]
    worktree = workspaces.worktree_path(camp.lab, camp.id, trial)
    held_out = [str(p) for p in workspaces.held_out_dir(camp.lab, camp.id).rglob("*") if p.is_file()][:3]
    (worktree / "train.py").write_text(probe_code(host, extra_paths(camp.lab) + held_out) + "\nraise SystemExit(3)\n")
    camp.call("trial_evaluate", trial=trial)
    runs = camp.call("run_wait", trial=trial)["runs"]
    assert runs, "the evaluation started no run"
    text = "".join(camp.call("run_logs", run=r["id"], lines=50)["text"] for r in runs)
    assert_confined(probe_result(text), host)


@pytest.mark.parametrize("hostile, budget, outcome", [
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
     {"pids": 64}, "pids_exceeded"),
    ("import time\nopen('/tmp/fill', 'wb').write(b'x' * (300 << 20))\ntime.sleep(30)\n",
     {"disk_mb": 100}, "disk_exceeded"),
    ("open('fill.bin', 'wb').write(b'x' * (150 << 20))\n", {"disk_mb": 100}, "disk_exceeded"),
    ("import time\nspike = b'x' * (600 << 20)\ntime.sleep(0.2)\n", {"memory_gb": 0.25}, "oom"),
    # Empty files hold no blocks, yet each costs the host an inode (and every later walk and snapshot a file).
    ("import os\nfor d in range(1000):\n    os.mkdir('c%d' % d)\n    for i in range(1000):\n"
     "        open('c%d/%d' % (d, i), 'w').close()\n", {"disk_mb": 100}, "disk_exceeded"),
], ids=["fork-bomb", "tmp-fill", "worktree-fill", "memory-spike-0.2s", "inode-fill"])
def test_limits_stop_hostile_runs(lab, trial_worktree, executor, hostile, budget, outcome):
    command = ["python" if executor == "local" else "python3", "-c", hostile]
    run = invoke(lab, "run_start", {"command": command, "cwd": str(trial_worktree), "executor": executor,
                                    "budget": {"wall_s": 60, "grace_s": 1, **budget}})
    done = wait_for_end(lab, run["id"])
    assert (done["status"], done["outcome"]) == ("failed", outcome), done["reason"]


def test_missing_interpreter_is_a_clear_error_never_another_python(lab, trial_worktree, tmp_path):
    with pytest.raises(InvalidInput) as info:
        queue.submit(lab, queue.RunRequest(argv=["python", "-c", "1"], cwd=str(trial_worktree),
                                           path_prefix=[str(tmp_path / "gone-venv" / "bin")]))
    assert "interpreter directory" in str(info.value) and "does not exist" in str(info.value)


def test_an_interpreter_under_tmp_is_visible_in_the_sandbox(lab, trial_worktree, tmp_path):
    """/tmp is private in a run; an environment that lives there is mounted back read-only
    (the venv and its base interpreter), and it is the one the run uses."""
    require(sandbox.bwrap_works(), f"the local probes need bubblewrap: {sandbox.bwrap_problem()}")
    venv = tmp_path / "server-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    run = queue.submit(lab, queue.RunRequest(argv=["python", "-c", "import sys; print(sys.prefix)"],
                                             cwd=str(trial_worktree), path_prefix=[str(venv / "bin")]))
    row = queue.wait(lab, run, 30)
    text = invoke(lab, "run_logs", {"run": run})["text"]
    assert row["status"] == "succeeded" and text.strip() == str(venv), text


def test_weak_sandbox_is_refused_unless_allowed(lab, trial_worktree, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bwrap is not on PATH (apt-get install bubblewrap)")
    sandbox.layers_for.cache_clear()
    try:
        monkeypatch.delenv(sandbox.WEAK_ENV, raising=False)
        message = str(pytest.raises(Exception, invoke, lab, "run_start",
                                    {"command": ["true"], "cwd": str(trial_worktree)}).value)
        assert "cannot sandbox the run fully" in message and "--allow-weak-sandbox" in message
        status = invoke(lab, "lab_status", {})
        assert status["sandbox_missing"] and status["sandbox_layers"].startswith("process-group only")
        monkeypatch.setenv(sandbox.WEAK_ENV, "1")
        run = invoke(lab, "run_start", {"command": ["true"], "cwd": str(trial_worktree)})
        done = invoke(lab, "run_wait", {"run": run["id"], "timeout_s": 30})
        assert done["status"] == "succeeded" and done["layers"].startswith("process-group only")
    finally:
        sandbox.layers_for.cache_clear()


def test_probe_suite_as_an_unprivileged_user():
    """The local half of this suite again, as an ordinary user: a root server's runs
    must be confined exactly as an ordinary user's."""
    if os.geteuid() != 0:
        pytest.skip("already running as an ordinary user")
    if os.environ.get(AS_USER_FLAG):
        pytest.skip("this is the unprivileged re-run itself")
    try:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        user = None
    require(user is not None, f"user {UNPRIVILEGED_USER} is missing (.ci/run creates it: useradd --system {UNPRIVILEGED_USER})")
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="sotalab-unprivileged-"))  # pytest's own temp dirs are private to root
    shutil.chown(base, user.pw_uid, user.pw_gid)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base), AS_USER_FLAG: "1",
           "PYTHONDONTWRITEBYTECODE": "1", "CI": os.environ.get("CI", ""), "LANG": "C.UTF-8"}
    reach = subprocess.run(["runuser", "-u", UNPRIVILEGED_USER, "--", sys.executable, "-c", "import sotalab.tools.errors"],
                           env=env, capture_output=True, text=True)
    require(reach.returncode == 0, f"{UNPRIVILEGED_USER} cannot run this interpreter ({reach.stderr.strip()[-200:]}); "
                                   ".ci/run makes its directories traversable")
    try:
        done = subprocess.run(["runuser", "-u", UNPRIVILEGED_USER, "--", sys.executable, "-m", "pytest", __file__,
                               "-q", "-p", "no:cacheprovider", f"--basetemp={base / 'pytest'}",
                               "-k", "not docker and not unprivileged"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
