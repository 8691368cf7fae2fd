"""A capped run log that keeps the head and the tail and drops the middle.

A run's output goes to ``output.head`` until it holds ``cap/2`` bytes; after that to
``output.tail``, which rotates to ``output.tail.prev`` every ``cap/4`` bytes (the older
``.prev`` is dropped and counted in ``output.meta``). The log never holds more than
about ``cap`` bytes, and a reader always sees how the run started and how it ended.

Readers address the log by stream offset: the byte position in everything the run
ever wrote. Offsets inside the dropped middle move forward to the oldest byte kept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

HEAD = "output.head"
TAIL = "output.tail"
PREV = "output.tail.prev"
META = "output.meta"
DEFAULT_CAP_BYTES = 8 * 1024 * 1024


class CappedLog:
    """The writer; owned by the supervisor, one per run."""

    def __init__(self, run_dir: Path, cap_bytes: int = DEFAULT_CAP_BYTES):
        self.dir = Path(run_dir)
        self.head_cap = max(cap_bytes // 2, 1)
        self.chunk = max(cap_bytes // 4, 1)
        self.head = open(self.dir / HEAD, "ab", buffering=0)
        self.head_len = self.head.tell()
        self.tail = None
        self.tail_len = 0
        self.dropped = 0
        self.total = self.head_len

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - self.head_len
        if room > 0:
            self.head.write(data[:room])
            self.head_len += min(room, len(data))
            data = data[room:]
        while data:
            if self.tail is None:
                self.tail = open(self.dir / TAIL, "wb", buffering=0)
                self.tail_len = 0
            piece = data[: self.chunk - self.tail_len]
            self.tail.write(piece)
            self.tail_len += len(piece)
            data = data[len(piece):]
            if self.tail_len >= self.chunk:
                self._rotate()

    def _rotate(self) -> None:
        self.tail.close()
        self.tail = None
        prev = self.dir / PREV
        if prev.exists():
            self.dropped += prev.stat().st_size
        os.replace(self.dir / TAIL, prev)
        write_json_atomic(self.dir / META, {"dropped": self.dropped}, durable=False)

    def close(self) -> None:
        self.head.close()
        if self.tail is not None:
            self.tail.close()


def write_json_atomic(path: Path, data, durable: bool = True) -> None:
    """Write JSON so a reader sees the old file or the new one, never half of one;
    ``durable`` also survives a machine crash (fsync), for final statuses."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class Segment:
    start: int  # stream offset of the segment's first byte
    path: Path
    size: int


@dataclass
class LogView:
    """What a reader sees of a run's log at one moment."""

    segments: list[Segment]
    dropped: int
    total: int

    @property
    def kept(self) -> int:
        return sum(s.size for s in self.segments)

    def read(self, offset: int, max_bytes: int) -> tuple[int, bytes]:
        """Bytes from stream ``offset`` (moved past any dropped middle); returns the
        offset actually read from and the data."""
        for seg in self.segments:
            end = seg.start + seg.size
            if offset >= end:
                continue
            offset = max(offset, seg.start)
            with open(seg.path, "rb") as fh:
                fh.seek(offset - seg.start)
                data = fh.read(min(max_bytes, end - offset))
            if len(data) < max_bytes and offset + len(data) == end:
                more_from, more = self.read(end, max_bytes - len(data))
                if more and more_from == end:
                    data += more
            return offset, data
        return self.total, b""

    def tail_bytes(self, max_bytes: int) -> tuple[int, bytes]:
        return self.read(max(self.total - max_bytes, 0), max_bytes)


def view(run_dir: Path) -> LogView:
    """A consistent-enough snapshot of the log (the writer may be appending)."""
    run_dir = Path(run_dir)
    meta = run_dir / META
    dropped = json.loads(meta.read_text())["dropped"] if meta.exists() else 0
    sizes = {}
    for name in (HEAD, PREV, TAIL):
        try:
            sizes[name] = (run_dir / name).stat().st_size
        except FileNotFoundError:
            sizes[name] = 0
    segments = [Segment(0, run_dir / HEAD, sizes[HEAD])]
    position = sizes[HEAD] + dropped
    for name in (PREV, TAIL):
        segments.append(Segment(position, run_dir / name, sizes[name]))
        position += sizes[name]
    return LogView(segments=[s for s in segments if s.size], dropped=dropped, total=position)


def read_text(run_dir: Path, max_bytes: int = DEFAULT_CAP_BYTES) -> str:
    """The whole kept log as text (head, a marker where the middle was dropped, tail)."""
    snapshot = view(run_dir)
    parts = []
    for i, seg in enumerate(snapshot.segments):
        if i and snapshot.dropped and seg.path.name != HEAD and snapshot.segments[i - 1].path.name == HEAD:
            parts.append(f"\n[... {snapshot.dropped} bytes dropped by the log cap ...]\n".encode())
        with open(seg.path, "rb") as fh:
            parts.append(fh.read(seg.size))
    data = b"".join(parts)
    return data[-max_bytes:].decode("utf-8", "replace")
