"""A run's event channel: a FIFO the run writes, drained by its supervisor.

In-process evaluations record runtime evidence (tools/evaluation/hook) as JSON lines.
They cannot go to a file the run can reach: the run could truncate or rewrite it. A
FIFO can only be appended to; the supervisor, outside the sandbox, reads it as it fills
and copies it into ``events.jsonl`` in the run directory (capped: a run that floods the
channel loses only its own later lines, and the file says so).
"""

from __future__ import annotations

import os
import select
import stat
import threading
from pathlib import Path

FIFO = "events.fifo"
LOG = "events.jsonl"
MAX_BYTES = 8 * 1024 * 1024


def fifo_path(run_dir: Path) -> Path:
    return Path(run_dir) / FIFO


class EventSink:
    """Create the run's FIFO and copy what arrives into ``events.jsonl`` until closed."""

    def __init__(self, run_dir: Path):
        self.path = fifo_path(run_dir)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        os.mkfifo(self.path, 0o600)
        os.chmod(self.path, 0o666)  # writable by the sandbox's unprivileged uid
        self.read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the FIFO open, so a reader never sees end-of-file between
        # two of the run's processes.
        self.keep_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        self.log = open(Path(run_dir) / LOG, "ab")
        self.written = 0
        self.dropped = 0
        # close() wakes the thread through this pipe: a timed select would hold every
        # in_process run's end back by up to its period (0.1-0.2 s a run, measured).
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="run-events", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.read_fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            room = MAX_BYTES - self.written
            if len(chunk) > room:
                self.dropped += len(chunk) - max(room, 0)
                chunk = chunk[:max(room, 0)]
            if chunk:
                self.log.write(chunk)
                self.written += len(chunk)

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=2)
        self._drain()
        if self.dropped:
            self.log.write(b'{"ev": "overflow", "dropped_bytes": %d}\n' % self.dropped)
        self.log.close()
        for fd in (self.read_fd, self.keep_fd, self._wake_r, self._wake_w):
            os.close(fd)
        if self.path.exists() and stat.S_ISFIFO(self.path.lstat().st_mode):
            self.path.unlink()


def read(run_dir: Path, limit: int = 50_000) -> list[dict]:
    """The run's event records (malformed lines, which the run itself may write, skipped)."""
    import json

    path = Path(run_dir) / LOG
    if not path.is_file():
        return []
    records = []
    with open(path, "rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(record, dict):
                records.append(record)
                if len(records) >= limit:
                    break
    return records
