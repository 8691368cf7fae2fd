"""File access to a trial's worktree for hosts that cannot see the lab's disk.

Every path is relative to the worktree and confined to it: absolute paths, ``..``,
anything inside ``.git`` and symlinks that lead outside are refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, Field

from . import workspaces
from .errors import InvalidInput, LabError, NotFound
from .home import Lab
from .paging import DEFAULT_LIMIT, MAX_LIMIT
from .registry import tool

READ_LIMIT_CHARS = 40_000
MAX_WRITE_BYTES = 1_000_000
MAX_READ_BYTES = 20_000_000
MAX_NAME_BYTES = 255  # the kernel's limits (NAME_MAX, PATH_MAX less room for the worktree)
MAX_PATH_BYTES = 3072


def confine(root: Path, rel: str) -> Path:
    """``rel`` resolved inside ``root``; refuses escapes and the .git directory."""
    if not rel:
        raise InvalidInput("empty path", hint="give a path relative to the trial's worktree")
    if "\0" in rel:
        raise InvalidInput(f"path {rel!r} contains a NUL byte", hint="give a path relative to the trial's worktree")
    if len(rel.encode()) > MAX_PATH_BYTES or any(len(p.encode()) > MAX_NAME_BYTES for p in rel.split("/")):
        raise InvalidInput(f"path {rel[:80]!r}... is too long ({MAX_NAME_BYTES} bytes a name, {MAX_PATH_BYTES} in all)",
                           hint="give a shorter path relative to the trial's worktree")
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts:
        raise InvalidInput(f"path {rel!r} leaves the trial's worktree",
                           hint="give a path relative to the worktree, without '..'")
    if ".git" in parts:
        raise InvalidInput(f"path {rel!r} is inside .git, which the lab owns",
                           hint="commit changes with trial_snapshot instead")
    base = root.resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise InvalidInput(f"path {rel!r} resolves outside the trial's worktree (a symlink escapes)",
                           hint="symlinks that leave the worktree cannot be followed")
    if ".git" in target.relative_to(base).parts:
        raise InvalidInput(f"path {rel!r} leads into .git (through a symlink), which the lab owns",
                           hint="commit changes with trial_snapshot instead")
    return target


def _open_trial(lab: Lab, trial_id: int, writing: bool) -> Path:
    trial, path = workspaces.trial_worktree(lab, trial_id)
    if writing and trial.status != "open":
        raise LabError(f"trial {trial.id} is {trial.status}; its files are frozen",
                       hint="create a child trial with trial_create and edit that")
    return path


LIST_LIMIT = DEFAULT_LIMIT * 4  # entries a directory page holds by default
MAX_LIST_LIMIT = MAX_LIMIT * 5


class ReadIn(BaseModel):
    trial: int
    path: str = Field(".", description="a file or a directory")
    offset: int = Field(0, ge=0, description="characters or entries to skip")
    limit: int | None = Field(None, ge=1, le=60_000, description=f"{READ_LIMIT_CHARS} characters or {LIST_LIMIT} entries")
    recursive: bool = False


class Entry(BaseModel):
    path: str
    type: str = Field(description="file, dir or symlink")
    size: int | None


class ListOut(BaseModel):
    trial: int
    path: str
    entries: list[Entry]
    total: int
    next_offset: int | None = Field(description="offset of the next page; null at the end")


class ReadOut(BaseModel):
    trial: int
    path: str
    content: str
    total_chars: int
    next_offset: int | None = Field(description="offset of the next page; null at the end")


class WriteIn(BaseModel):
    trial: int
    path: str | None = None
    content: str | None = Field(None, max_length=MAX_WRITE_BYTES, description="the whole new text")
    patch: str | None = Field(None, min_length=1, max_length=MAX_WRITE_BYTES,
                              description="or a unified diff")


class WriteOut(BaseModel):
    trial: int
    path: str
    bytes: int


class PatchOut(BaseModel):
    trial: int
    files: list[str] = Field(description="files the patch touched")


def _entry(root: Path, path: Path) -> Entry:
    rel = path.relative_to(root).as_posix()
    if path.is_symlink():
        return Entry(path=rel, type="symlink", size=None)
    if path.is_dir():
        return Entry(path=rel, type="dir", size=None)
    return Entry(path=rel, type="file", size=path.stat().st_size)


@tool(read_only=True)
def workspace_read(lab: Lab, args: ReadIn) -> ReadOut | ListOut:
    """A file's text (paged) or a directory's listing, in a trial's worktree.

    Paths are relative to the trial's worktree. A file: its text from `offset`, at most
    `limit` characters (default 40,000). A directory (`path` omitted: the worktree's top):
    its files and directories, .git hidden, `limit` entries from `offset` (default 200,
    at most 1,000); `recursive` lists every file below it."""
    root = _open_trial(lab, args.trial, writing=False).resolve()
    target = confine(root, args.path)
    if target.is_dir():
        return _listing(root, target, args)
    if args.recursive:
        raise InvalidInput(f"{args.path!r} is a file; recursive lists a directory",
                           hint="drop recursive, or give a directory")
    if not target.is_file():
        raise NotFound(f"no file {args.path!r} in trial {args.trial}'s worktree",
                       hint="list its directory with workspace_read")
    size = target.stat().st_size
    if size > MAX_READ_BYTES:
        raise InvalidInput(f"{args.path!r} is {size} bytes, over the {MAX_READ_BYTES}-byte read limit",
                           hint="read a smaller file, or look at it through a run's output")
    data = target.read_bytes()
    if b"\0" in data[:8192]:
        raise InvalidInput(f"{args.path!r} is a binary file ({len(data)} bytes)", hint="only text files can be read")
    text = data.decode("utf-8", errors="replace")
    end = args.offset + (args.limit or READ_LIMIT_CHARS)
    return ReadOut(trial=args.trial, path=args.path, content=text[args.offset:end], total_chars=len(text),
                   next_offset=end if end < len(text) else None)


def _listing(root: Path, start: Path, args: ReadIn) -> ListOut:
    """workspace_read on a directory: one page of its entries (or every file below it)."""
    limit = args.limit or LIST_LIMIT
    if limit > MAX_LIST_LIMIT:
        raise InvalidInput(f"limit {limit} is over {MAX_LIST_LIMIT} entries for a directory",
                           hint="page with offset and next_offset")
    if args.recursive:
        from .protected import repo_files

        paths = [start / rel for rel in repo_files(start)]
    else:
        paths = sorted(p for p in start.iterdir() if p.name != ".git")
    page = paths[args.offset:args.offset + limit]
    end = args.offset + len(page)
    return ListOut(trial=args.trial, path=args.path, entries=[_entry(root, p) for p in page], total=len(paths),
                   next_offset=end if end < len(paths) else None)


@tool(destructive=True)
def workspace_write(lab: Lab, args: WriteIn) -> WriteOut | PatchOut:
    """Write a file (path, content) or apply a diff (patch) in a trial's worktree.

    With path (relative to the worktree) and content (the file's complete new text):
    create or overwrite that text file (parents created); answers
    WriteOut. With patch: apply a unified diff (git diff or diff -u, paths relative to the
    worktree), all or nothing; paths must stay inside the worktree; answers PatchOut, the
    files it touched. Commit the trial's changes with trial_snapshot."""
    if args.patch is not None:
        mixed = [k for k in ("path", "content") if getattr(args, k) is not None]
        if mixed:
            raise InvalidInput(f"{' and '.join(mixed)} and patch are two ways to write; give one",
                               hint="either path and content (a whole file), or patch (a unified diff)")
        return _apply_patch(lab, args.trial, args.patch)
    if args.path is None or args.content is None:
        missing = " and ".join(k for k in ("path", "content") if getattr(args, k) is None)
        raise InvalidInput(f"workspace_write needs path and content, or patch; {missing} missing",
                           hint="path and content write a whole file; patch applies a unified diff")
    root = _open_trial(lab, args.trial, writing=True)
    target = confine(root, args.path)
    if target.is_dir():
        raise InvalidInput(f"{args.path!r} is a directory")
    data = args.content.encode()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a symlink swapped in after confine() must not redirect the write.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise InvalidInput(f"cannot write {args.path!r}: {exc.strerror}",
                           hint="check the path with workspace_read on its directory") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return WriteOut(trial=args.trial, path=args.path, bytes=len(data))


_PATCH_PATH = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(\S+)", re.MULTILINE)
_GIT_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.MULTILINE)


def _apply_patch(lab: Lab, trial: int, patch: str) -> PatchOut:
    """workspace_write with a patch: apply a unified diff to the worktree, all or nothing."""
    root = _open_trial(lab, trial, writing=True)
    named = {m for m in _PATCH_PATH.findall(patch) if m != "/dev/null"}
    named |= {p for pair in _GIT_HEADER.findall(patch) for p in pair}
    if not named:
        raise InvalidInput("the patch names no files", hint="send a unified diff with ---/+++ headers")
    for rel in named:
        confine(root, rel)
    patch = patch if patch.endswith("\n") else patch + "\n"
    # git apply refuses paths outside the tree and through symlinks on its own as well.
    check = workspaces.worktree_git(root, "apply", "--check", "--recount", "-", input=patch, check=False)
    if check.returncode != 0:
        raise InvalidInput("the patch does not apply: " + " | ".join(check.stderr.strip().splitlines()[:3]),
                           hint="read the current file with workspace_read and rebase the patch on it")
    applied = workspaces.worktree_git(root, "apply", "--recount", "--numstat", "--apply", "-", input=patch)
    files = [line.split("\t", 2)[2] for line in applied.stdout.splitlines() if line.count("\t") >= 2]
    return PatchOut(trial=trial, files=sorted(files))
