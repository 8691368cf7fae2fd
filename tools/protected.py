"""Protected and held-out files of a campaign's repository.

At baseline every file matched by the protected globs (evaluator code and data) is
hashed and copied into the lab home; a trial's worktree can then be checked against
that manifest and restored from it. Held-out files (test labels, splits) are moved out
of the repository into the lab home, so no trial worktree contains them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

MANIFEST = "manifest.json"
FILES = "files"


class ProtectedReport(BaseModel):
    ok: bool = Field(description="true when every protected file is exactly as at baseline")
    changed: list[str] = Field(default_factory=list, description="protected files whose content differs")
    added: list[str] = Field(default_factory=list, description="new files under the protected globs")
    deleted: list[str] = Field(default_factory=list, description="protected files that are gone")
    checked: int = Field(0, description="protected files in the baseline manifest")


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    """A repo-relative glob as a regex: ``*`` and ``?`` stay inside one directory,
    ``**`` spans directories, and a pattern naming a directory covers all below it."""
    pattern = pattern.strip("/")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + "(?:/.*)?")


def matches(rel: str, globs: list[str]) -> bool:
    return any(_glob_regex(g).fullmatch(rel) for g in globs)


def repo_files(root: Path) -> list[str]:
    """Every file and symlink under ``root`` (repo-relative, sorted), outside .git."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # A symlinked directory is listed as an entry, never walked into.
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d != ".git" and d not in links]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames + links:
            if name == ".git":  # worktrees and submodules have a .git file
                continue
            found.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return sorted(set(found))


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes; a symlink is hashed by its target, never followed."""
    if path.is_symlink():
        return "symlink:" + hashlib.sha256(os.readlink(path).encode()).hexdigest()
    if not path.is_file():  # a directory, FIFO or device: never opened (a FIFO would block)
        return "special"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    elif dst.is_symlink() or dst.exists():
        dst.unlink()
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)


def record_baseline(repo: Path, store: Path, protected: list[str], held_out: list[str]) -> dict[str, str]:
    """Hash and copy the protected files of ``repo`` into ``store``; return the manifest.

    Held-out files are excluded: they leave the repository, so no trial could change them.
    """
    if store.exists():
        shutil.rmtree(store)
    (store / FILES).mkdir(parents=True)
    manifest = {}
    for rel in repo_files(repo):
        if matches(rel, protected) and not matches(rel, held_out):
            manifest[rel] = file_digest(repo / rel)
            _copy(repo / rel, store / FILES / rel)
    (store / MANIFEST).write_text(json.dumps({"globs": protected, "held_out": held_out, "files": manifest},
                                             indent=1, sort_keys=True))
    return manifest


def load_manifest(store: Path) -> dict:
    path = store / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"globs": [], "held_out": [], "files": {}}


def verify(worktree: Path, store: Path) -> ProtectedReport:
    """Compare ``worktree`` with the baseline manifest in ``store``."""
    manifest = load_manifest(store)
    files: dict[str, str] = manifest["files"]
    report = ProtectedReport(ok=True, checked=len(files))
    for rel, digest in files.items():
        path = worktree / rel
        if _symlinked_parent(worktree, rel):
            report.changed.append(rel)  # at baseline its directories were real ones
        elif not (path.exists() or path.is_symlink()):
            report.deleted.append(rel)
        elif file_digest(path) != digest:
            report.changed.append(rel)
    if manifest["globs"]:
        report.added = [rel for rel in repo_files(worktree)
                        if rel not in files and matches(rel, manifest["globs"])
                        and not matches(rel, manifest["held_out"])]
    report.ok = not (report.changed or report.added or report.deleted)
    return report


def _symlinked_parent(root: Path, rel: str) -> Path | None:
    """The first directory on the way from ``root`` to ``rel`` that is a symlink, if any."""
    path = root
    for part in Path(rel).parts[:-1]:
        path = path / part
        if path.is_symlink():
            return path
    return None


def _make_real_parents(root: Path, rel: str) -> None:
    """Replace symlinks or files standing where ``rel``'s directories belong with real
    directories, so a restore writes inside ``root`` and never through a link out of it."""
    path = root
    for part in Path(rel).parts[:-1]:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        path.mkdir(exist_ok=True)


def restore(worktree: Path, store: Path) -> list[str]:
    """Put every protected file back as it was at baseline; remove added ones.
    Returns the repo-relative paths it touched."""
    report = verify(worktree, store)
    for rel in report.added:  # first: one may sit inside a directory that replaced a protected file
        (worktree / rel).unlink()
    for rel in report.changed + report.deleted:
        _make_real_parents(worktree, rel)
        _copy(store / FILES / rel, worktree / rel)
    return sorted(report.changed + report.deleted + report.added)


def move_held_out(repo: Path, dest: Path, held_out: list[str]) -> list[str]:
    """Move every file matched by ``held_out`` from ``repo`` into ``dest``; return them."""
    moved = []
    for rel in repo_files(repo):
        if matches(rel, held_out):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()
            shutil.move(str(repo / rel), str(target))
            moved.append(rel)
    return moved
