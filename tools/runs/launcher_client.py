"""Talking to the lab's launcher (launcher.py): ask it to fork a supervisor, or start one.

Apart from the launcher itself so the queue can use it without importing what the
launcher preloads (the supervisor's entry point, which imports the queue).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

SOCKET = "launcher.sock"
LOCK = "launcher.lock"
CONNECT_TIMEOUT_S = 2.0


def spawn(runs_dir: Path, run_dir: Path) -> int | None:
    """Ask the lab's launcher to fork a supervisor for ``run_dir``; its pid, or None
    when no launcher answers."""
    path = runs_dir / SOCKET
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(CONNECT_TIMEOUT_S)
            conn.connect(str(path))
            conn.sendall(str(run_dir).encode() + b"\n")
            reply = json.loads(conn.makefile("rb").readline() or b"{}")
    except (OSError, ValueError):
        return None
    return reply.get("pid")


def start_detached(runs_dir: Path, home: Path, env: dict[str, str]) -> None:
    """Start a launcher for the lab in its own session, owned by this process (it
    leaves once this process and its own supervisors are gone); returns at once."""
    import psutil

    owner = f"{os.getpid()}:{psutil.Process().create_time()}"
    with open(runs_dir / "launcher.log", "ab") as log:
        subprocess.Popen([sys.executable, "-m", "sotalab.tools.runs.launcher", str(home), owner], cwd=runs_dir,
                         env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
