"""A run's event channel: a FIFO the run writes, drained by its supervisor.

In-process evaluations record runtime evidence (tools/evaluation/hook) as JSON lines.
They cannot go to a file the run can reach: the run could truncate or rewrite it. A
FIFO can only be appended to; the supervisor, outside the sandbox, reads it as it fills
and copies it into ``events.jsonl`` in the run directory (capped: a run that floods the
channel loses only its own later lines, and the file says so).

Appending is still open to the run, so ``read`` authenticates every record against the
signatures the hook puts on its own (the hook's docstring has the scheme) and says which
records only the hook can have written (``auth``) and which came from the process the
run started (``root``). A record is never dropped for sitting on a line with others: each
write of the hook is whole (below PIPE_BUF) and starts with ``{"ev": ``, so a line the run
corrupted by writing half a record in front of it is read record by record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import select
import stat
import threading
from pathlib import Path

FIFO = "events.fifo"
LOG = "events.jsonl"
MAX_BYTES = 32 * 1024 * 1024  # the hook's own budget is 100,000 records per process; past either, the audit fails


def fifo_path(run_dir: Path) -> Path:
    return Path(run_dir) / FIFO


def is_channel(path: str | Path) -> bool:
    """Whether a path a run may write is an event channel: sandboxes mount it read-only
    (writing into a FIFO needs no write access to its mount; a read-only mount keeps its
    mode, write-only, as the supervisor set it)."""
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


class EventSink:
    """Create the run's FIFO and copy what arrives into ``events.jsonl`` until closed."""

    def __init__(self, run_dir: Path):
        self.path = fifo_path(run_dir)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        os.mkfifo(self.path, 0o600)
        self.read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the FIFO open, so a reader never sees end-of-file between
        # two of the run's processes.
        self.keep_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        # Write-only for everyone, the run included (it may own the file: a root server's
        # run is host uid 0). A run that could read the FIFO would take records out
        # before the supervisor does, and put back only those it likes; sandboxes bind it
        # read-only (``is_channel``), so the run cannot chmod it back either.
        os.chmod(self.path, 0o222)
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


RECORD_START = b'{"ev": '
SIGNATURE = re.compile(rb', "mac": "([0-9a-f]{32})"\}\s*$')


def read(run_dir: Path, limit: int = 250_000) -> list[dict]:
    """The run's event records (what does not parse, which the run itself may write,
    skipped), each with two keys set here, whatever the line said:

    - ``auth``: ``verified`` (signed with the key its stream's hook committed to at start
      and revealed at a normal exit), ``unverified`` (signed, but its process never
      reached that exit: killed or os._exit) or ``forged`` (unsigned, a stream nobody
      started, a wrong signature, or written after the stream's key was out);
    - ``root``: the record belongs to the first stream, the process the run started.

    A line that is no record at all is returned as a forged ``{"ev": "garbage"}`` (the
    hook writes only records), and a file with more than ``limit`` records ends with an
    ``overflow`` record: nothing is left out without saying so."""
    path = Path(run_dir) / LOG
    if not path.is_file():
        return []
    parsed: list[tuple[dict, bytes]] = []
    with open(path, "rb") as handle:
        for line in handle:
            for piece in _pieces(line):
                try:
                    record = json.loads(piece)
                except (ValueError, UnicodeDecodeError):
                    record = None
                parsed.append((record, piece) if isinstance(record, dict) else ({"ev": "garbage"}, b""))
            if len(parsed) > limit:
                break
    records = authenticate(parsed[:limit])
    if len(parsed) > limit:
        records.append({"ev": "overflow", "read_limit": limit, "auth": "verified", "root": False})
    return records


def _pieces(line: bytes) -> list[bytes]:
    """The records on one line: normally one; more where the run wrote into the middle."""
    line = line.rstrip(b"\n")
    bounds = sorted({0, *(m.start() for m in re.finditer(re.escape(RECORD_START), line))})
    return [line[a:b] for a, b in zip(bounds, [*bounds[1:], len(line)]) if line[a:b]]


def authenticate(parsed: list[tuple[dict, bytes]]) -> list[dict]:
    """Set ``auth`` and ``root`` on each (record, raw line) (see ``read``)."""
    streams: dict[str, dict] = {}
    for i, (record, _) in enumerate(parsed):
        stream = record.get("stream")
        if not isinstance(stream, str):
            continue
        if record.get("ev") == "start" and stream not in streams and isinstance(record.get("commit"), str):
            streams[stream] = {"commit": record["commit"], "start": i, "key": None, "end": None}
        elif record.get("ev") == "exit" and stream in streams and streams[stream]["key"] is None:
            try:
                key = bytes.fromhex(str(record.get("key", "")))
            except ValueError:
                continue
            if key and hmac.compare_digest(hashlib.sha256(key).hexdigest(), streams[stream]["commit"]):
                streams[stream].update(key=key, end=i)
    root = min(streams, key=lambda s: streams[s]["start"]) if streams else None
    records = []
    for i, (record, raw) in enumerate(parsed):
        stream = record.get("stream")
        info = streams.get(stream) if isinstance(stream, str) else None
        signature = SIGNATURE.search(raw)
        if record.get("ev") == "overflow" and stream is None:
            auth = "unverified"  # the supervisor's note that it dropped bytes: it only ever counts against the run
        elif info is None or signature is None or i < info["start"]:
            auth = "forged"
        elif info["key"] is None:
            auth = "unverified"
        elif i > info["end"]:
            auth = "forged"
        else:
            signed = raw[:signature.start()] + b"}"
            expected = hashlib.blake2b(signed, key=info["key"], digest_size=16).hexdigest().encode()
            auth = "verified" if hmac.compare_digest(expected, signature.group(1)) else "forged"
        record = {k: v for k, v in record.items() if k != "mac"}
        record["auth"], record["root"] = auth, auth != "forged" and stream == root
        records.append(record)
    return records
