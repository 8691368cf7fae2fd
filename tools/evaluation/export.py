"""A fresh, history-free export of one commit: what every scoring run executes.

Never a worktree: a worktree holds untracked files, caches and whatever an earlier run
left, and its ``.git`` can be pointed anywhere. The export is written blob by blob from
the commit's objects, read by one ``git cat-file --batch`` process (its trees, then its
blobs), so repository attributes (``export-ignore``, ``export-subst``, filters) cannot
change what lands on disk, no bytecode is ever carried, and a symlink that would leave
the export is refused. The campaign's protected files are then put back from the
protected store, so evaluator code and data are the baseline's whatever the commit holds.

Objects never change for a commit, so an evaluation reads a commit once (``read``) and
writes each seed's fresh export from what it read: one git process per commit, not two
per seed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
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


@dataclass(frozen=True)
class Snapshot:
    """A commit's tree entries and blob contents, as read from git."""

    commit: str
    entries: list[tuple[str, str, str, str]]  # (mode, type, sha, path) of every entry, depth first
    contents: dict[str, bytes]  # blob sha -> its bytes


def read(repo: Path, commit: str) -> Snapshot:
    """Every entry of ``commit``'s tree, recursively, and every blob's bytes, from one
    ``git cat-file --batch`` process: the trees one at a time as the walk needs them,
    then all blobs in one stream."""
    check_ref(commit)
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    proc = subprocess.Popen(["git", *SAFE_CONFIG, "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        root, data = _ask(proc, f"{commit}^{{commit}}^{{tree}}", "tree")
        width = len(root) // 2  # raw object ids: 20 bytes (SHA-1) or 32 (SHA-256)
        entries = []
        stack = [(data, 0, "")]
        while stack:  # depth first, in tree order (as ``git ls-tree -r`` lists them)
            data, pos, prefix = stack.pop()
            while pos < len(data):
                space = data.index(b" ", pos)
                nul = data.index(b"\0", space)
                mode = data[pos:space].decode().zfill(6)
                rel = prefix + data[space + 1:nul].decode("utf-8", "surrogateescape")
                sha = data[nul + 1:nul + 1 + width].hex()
                pos = nul + 1 + width
                if mode == "040000":
                    stack += [(data, pos, prefix), (_ask(proc, sha, "tree")[1], 0, rel + "/")]
                    break
                entries.append((mode, "commit" if mode == "160000" else "blob", sha, rel))
        shas = list(dict.fromkeys(sha for _, kind, sha, _ in entries if kind == "blob"))
        requests = "".join(f"{sha}\n" for sha in shas).encode()

        def send() -> None:
            try:
                proc.stdin.write(requests)
                proc.stdin.close()
            except OSError:
                pass  # git died: the reads below say so

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        contents = {sha: _ask(proc, None, "blob")[1] for sha in shas}
        writer.join()
        return Snapshot(commit=commit, entries=entries, contents=contents)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if not stream.closed:
                stream.close()


def _ask(proc: subprocess.Popen, name: str | None, kind: str) -> tuple[str, bytes]:
    """One object from ``cat-file --batch`` (``name`` None: its answer to a request
    already sent): its id and its bytes."""
    if name is not None:
        try:
            proc.stdin.write(f"{name}\n".encode())
            proc.stdin.flush()
        except OSError:
            pass  # git died: the read below says so
    header = proc.stdout.readline().split()
    if len(header) != 3 or header[1].decode() != kind:
        stderr = proc.stderr.read().decode(errors="replace").strip() if proc.poll() is not None else ""
        raise LabError(f"git cat-file failed while exporting: {(stderr or b' '.join(header).decode())[-300:]}",
                       hint="the trial's commit may be missing from the campaign's repository; snapshot it again")
    size = int(header[2])
    data = proc.stdout.read(size + 1)  # the content, then a newline
    return header[0].decode(), data[:size]


def export_commit(repo: Path, commit: str, dest: Path, store: Path | None,
                  snapshot: Snapshot | None = None) -> Export:
    """Write ``commit`` of ``repo`` into the new directory ``dest`` and restore the
    protected files from ``store`` (None: no restore, e.g. for the baseline's scorer
    whose files are the store's own). ``snapshot``: the commit as ``read`` already
    returned it (several exports of one commit read it once)."""
    check_ref(commit)
    if snapshot is not None and snapshot.commit != commit:
        raise LabError(f"export of {commit} given the objects of {snapshot.commit}", hint="this is a bug")
    dest = Path(dest)
    if dest.exists():
        raise LabError(f"export directory {dest} exists already", hint="exports are always fresh; this is a bug")
    dest.mkdir(parents=True)
    result = Export(root=dest, commit=commit)
    snapshot = snapshot or read(repo, commit)
    blobs = [(mode, sha, rel) for mode, kind, sha, rel in snapshot.entries if kind == "blob"]
    result.refused += [rel for _, kind, _, rel in snapshot.entries if kind != "blob"]
    for mode, sha, rel in blobs:
        data = snapshot.contents[sha]
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
