"""A fresh, history-free export of one commit: what every scoring run executes.

Never a worktree: a worktree holds untracked files, caches and whatever an earlier run
left, and its ``.git`` can be pointed anywhere. The export is written blob by blob from
``git ls-tree`` and ``git cat-file --batch``, so repository attributes (``export-ignore``,
``export-subst``, filters) cannot change what lands on disk, no bytecode is ever
carried, and a symlink that would leave the export is refused. The campaign's protected
files are then put back from the protected store, so evaluator code and data are the
baseline's whatever the commit holds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import protected
from ..errors import LabError
from ..gitcmd import SAFE_CONFIG, check_ref

# Bytecode is never exported: Python would run a .pyc without reading its source.
BYTECODE_SUFFIXES = (".pyc", ".pyo")


@dataclass
class Export:
    root: Path
    commit: str
    files: dict[str, str] = field(default_factory=dict)  # repo-relative path -> sha256 of what was written
    restored: list[str] = field(default_factory=list)  # protected files the commit had changed, put back
    refused: list[str] = field(default_factory=list)  # entries not written: escaping symlinks, bytecode, submodules


def is_bytecode(rel: str) -> bool:
    return rel.endswith(BYTECODE_SUFFIXES) or "__pycache__" in PurePosixPath(rel).parts


def export_commit(repo: Path, commit: str, dest: Path, store: Path | None) -> Export:
    """Write ``commit`` of ``repo`` into the new directory ``dest`` and restore the
    protected files from ``store`` (None: no restore, e.g. for the baseline's scorer
    whose files are the store's own)."""
    check_ref(commit)
    dest = Path(dest)
    if dest.exists():
        raise LabError(f"export directory {dest} exists already", hint="exports are always fresh; this is a bug")
    dest.mkdir(parents=True)
    result = Export(root=dest, commit=commit)
    entries = _tree(repo, commit)
    blobs = [(mode, sha, rel) for mode, kind, sha, rel in entries if kind == "blob"]
    result.refused += [rel for _, kind, _, rel in entries if kind != "blob"]
    contents = _cat_blobs(repo, [sha for _, sha, _ in blobs])
    for (mode, sha, rel), data in zip(blobs, contents):
        if is_bytecode(rel) or not _inside(rel):
            result.refused.append(rel)
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            link = data.decode("utf-8", "surrogateescape")
            if not _link_stays_inside(rel, link):
                result.refused.append(rel)
                continue
            os.symlink(link, target)
            result.files[rel] = "symlink:" + hashlib.sha256(link.encode("utf-8", "surrogateescape")).hexdigest()
            continue
        target.write_bytes(data)
        if mode == "100755":
            target.chmod(0o755)
        result.files[rel] = hashlib.sha256(data).hexdigest()
    if store is not None:
        result.restored = protected.restore(dest, store)
        for rel in result.restored:
            path = dest / rel
            if path.exists() or path.is_symlink():
                result.files[rel] = protected.file_digest(path)
            else:
                result.files.pop(rel, None)
    return result


def remove(export: Export | Path) -> None:
    """Delete an export (and anything its run wrote into it)."""
    root = export.root if isinstance(export, Export) else Path(export)
    shutil.rmtree(root, ignore_errors=True)


def _git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    proc = subprocess.run(["git", *SAFE_CONFIG, "-C", str(repo), *args], input=input, capture_output=True,
                          env=env, timeout=600)
    if proc.returncode != 0:
        raise LabError(f"git {args[0]} failed while exporting: {proc.stderr.decode(errors='replace').strip()[-300:]}",
                       hint="the trial's commit may be missing from the campaign's repository; snapshot it again")
    return proc.stdout


def _tree(repo: Path, commit: str) -> list[tuple[str, str, str, str]]:
    """(mode, type, sha, path) of every entry of the commit's tree, recursively."""
    raw = _git(repo, "ls-tree", "-r", "-z", "--full-tree", "--end-of-options", f"{commit}^{{commit}}")
    entries = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, path = record.split(b"\t", 1)
        mode, kind, sha = meta.decode().split()
        entries.append((mode, kind, sha, path.decode("utf-8", "surrogateescape")))
    return entries


def _cat_blobs(repo: Path, shas: list[str]) -> list[bytes]:
    """The contents of many blobs from one ``git cat-file --batch`` process."""
    if not shas:
        return []
    raw = _git(repo, "cat-file", "--batch", input="".join(f"{sha}\n" for sha in shas).encode())
    out, pos = [], 0
    for _ in shas:
        end = raw.index(b"\n", pos)
        size = int(raw[pos:end].split()[2])
        out.append(raw[end + 1:end + 1 + size])
        pos = end + 1 + size + 1  # the content is followed by a newline
    return out


def _inside(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(parts) and not rel.startswith("/") and ".." not in parts and ".git" not in parts


def _link_stays_inside(rel: str, link: str) -> bool:
    """A symlink at ``rel`` pointing at ``link`` resolves inside the export."""
    if link.startswith("/"):
        return False
    depth = 0
    for part in (*PurePosixPath(rel).parent.parts, *PurePosixPath(link).parts):
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return True
