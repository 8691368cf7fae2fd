"""A unified diff (``git diff``) as files with their added and removed lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")


@dataclass
class FileDiff:
    path: str                       # the file's path after the change (before, when deleted)
    old_path: str | None = None
    added: list[tuple[int, str]] = field(default_factory=list)    # (line in the new file, text)
    removed: list[tuple[int, str]] = field(default_factory=list)  # (line in the old file, text)
    context: list[tuple[int, str]] = field(default_factory=list)  # unchanged lines shown in hunks
    binary: bool = False
    deleted: bool = False
    created: bool = False

    @property
    def first_line(self) -> int | None:
        lines = [n for n, _ in self.added] or [n for n, _ in self.removed]
        return min(lines) if lines else None


def _strip_prefix(name: str) -> str | None:
    name = name.strip()
    if name == "/dev/null":
        return None
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse(text: str) -> list[FileDiff]:
    files: list[FileDiff] = []
    current: FileDiff | None = None
    old_no = new_no = 0
    in_hunk = False
    for line in text.splitlines():
        if line.startswith("diff --git "):
            parts = line[len("diff --git "):].split(" b/", 1)
            path = parts[1] if len(parts) == 2 else parts[0]
            current = FileDiff(path=path, old_path=_strip_prefix(parts[0]))
            files.append(current)
            in_hunk = False
            continue
        if current is None:
            continue
        match = _HUNK.match(line)
        if match:
            old_no, new_no = int(match.group(1)), int(match.group(2))
            in_hunk = True
            continue
        if not in_hunk:
            # Headers come only between "diff --git" and the first hunk; inside a hunk a
            # line like "--- x" is a removed line "-- x".
            if line.startswith("--- "):
                current.old_path = _strip_prefix(line[4:])
                current.created = current.old_path is None
                continue
            if line.startswith("+++ "):
                new = _strip_prefix(line[4:])
                current.deleted = new is None
                if new:
                    current.path = new
                continue
            if line.startswith("Binary files") or line.startswith("GIT binary patch"):
                current.binary = True
                continue
            if line.startswith("new file mode"):
                current.created = True
            if line.startswith("deleted file mode"):
                current.deleted = True
            continue
        if line.startswith("+"):
            current.added.append((new_no, line[1:]))
            new_no += 1
        elif line.startswith("-"):
            current.removed.append((old_no, line[1:]))
            old_no += 1
        elif line.startswith(" ") or line == "":
            current.context.append((new_no, line[1:]))
            old_no += 1
            new_no += 1
        # "\ No newline at end of file" and anything else: no line of either side
    return files

