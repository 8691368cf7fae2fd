"""A fork server for supervisors, one per lab home, so a run starts in milliseconds.

Starting a supervisor as a fresh Python process costs tens of milliseconds of
interpreter start-up and imports (more for the Docker client). The launcher is started
once, imports everything a supervisor needs, and forks one per request (running
``supervise.main``: supervise, record the end, dispatch). Clients talk to it through
``launcher_client``. It is
single-threaded, so forking is safe, and it opens no database: each supervisor opens
its own ledger connection at the end.

    python -m sotalab.tools.runs.launcher <lab home> [<owner pid>:<owner start time>]

It listens on ``runs/launcher.sock`` (mode 0600), holds ``runs/launcher.lock`` for its
lifetime (one launcher per lab), reaps its supervisors, and exits when it has no
supervisor left and its owner (the server that started it) is gone or it has been idle
``IDLE_S`` seconds, or when the lab home is gone. A long-lived server asks for
one (``queue.enable_launcher``); whenever none answers, the queue starts the supervisor
as its own process (the same code).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from .launcher_client import CONNECT_TIMEOUT_S, LOCK, SOCKET

IDLE_S = 120.0


def _preload() -> None:
    """Import what every supervisor needs, once, before any fork."""
    import psutil  # noqa: F401
    import sqlite_utils  # noqa: F401  # the end-of-run ledger write: 0.4-1.2 s per run if each fork imported it

    from .. import home, ledger  # noqa: F401
    from . import supervise, telemetry  # noqa: F401

    try:
        from . import docker_exec

        docker_exec.learn_api_version()
    except Exception:  # no docker-py or no engine: local runs only, Docker runs negotiate themselves
        pass


def _owner_alive(owner: str | None) -> bool:
    import psutil

    if not owner:
        return True
    pid, ctime = owner.split(":")
    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - float(ctime)) < 1.0
    except psutil.Error:
        return False


def serve(home: Path, owner: str | None = None) -> int:
    runs_dir = home / "runs"
    lock = open(runs_dir / LOCK, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another launcher serves this lab
    _preload()
    # Everything loaded so far lives as long as the launcher: keep the collector off
    # those pages, so forked supervisors do not copy them on their first collection.
    import gc

    gc.freeze()
    path = runs_dir / SOCKET
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(64)
    server.settimeout(0.5)
    children: set[int] = set()
    idle_since = time.monotonic()
    try:
        while runs_dir.is_dir():
            _reap(children)
            if children:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_S or not _owner_alive(owner):
                break  # nothing running, and idle or its server is gone
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                idle_since = time.monotonic()
                pid = _fork_supervisor(conn, server, lock, runs_dir)
                if pid:
                    children.add(pid)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    finally:
        if path.exists():
            path.unlink(missing_ok=True)
    return 0


def _fork_supervisor(conn, server, lock, runs_dir: Path) -> int | None:
    conn.settimeout(CONNECT_TIMEOUT_S)
    try:
        run_dir = Path(conn.makefile("rb").readline().decode().strip()).resolve()
    except (OSError, UnicodeDecodeError):
        return None
    if run_dir.parent != runs_dir.resolve() or not (run_dir / "spec.json").is_file():
        return None
    pid = os.fork()
    if pid:
        return pid
    # The supervisor: its own session, the launcher's sockets and lock closed, its
    # output to the run's supervisor.log, default signal handling.
    code = 1
    try:
        server.close()
        conn.close()
        lock.close()
        os.setsid()
        log = os.open(run_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        from . import supervise

        code = supervise.main([str(run_dir)])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1]).resolve(), sys.argv[2] if len(sys.argv) > 2 else None))
