"""Campaign overlays: files and data splits a campaign brings to a repository that lacks them.

A real paper's repository rarely has what sotalab needs to score it: an evaluator that
prints the metric, a scorer, a validation split, a held-out split. The overlay is how a
campaign adds them without forking the repository:

- ``files``: an evaluator, a scorer, split definitions, given inline (``content``) or as
  a file or directory on the server's disk (``source``). They are read and hashed when
  the campaign is created, kept in ``overlay/<campaign>/`` in the lab home, and written
  into the checkout at the baseline, where they become protected files.
- ``splits``: see ``data_split``; the validation part is protected (or, sealed, a label
  path that leaves every worktree), the held-out part goes to the lab home only.

Every path the overlay writes is added to the campaign's protected (or held-out) globs
when the campaign is created, so the baseline manifest hashes them like the
repository's own evaluator, and ``campaign_get`` shows each file's hash and origin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from .data_split import DataSplit, SplitResult, check_repo_path, no_symlink_on_the_way, split
from .errors import InvalidInput, LabError
from .home import Lab
from .protected import repo_files

MAX_FILES = 100
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024


class OverlayFile(BaseModel):
    path: str = Field(..., min_length=1, max_length=500, description="repository-relative destination "
                                                                     "(a directory when source is one)")
    content: str | None = Field(None, max_length=MAX_FILE_BYTES, description="the file's text, inline")
    source: str | None = Field(None, max_length=1000, description="absolute path of a file or directory "
                                                                  "on the server's disk to copy")
    executable: bool = Field(False, description="mark an inline file executable")

    _path = field_validator("path")(lambda v: check_repo_path(v))

    @model_validator(mode="after")
    def _one_origin(self):
        if (self.content is None) == (self.source is None):
            raise ValueError(f"overlay file {self.path!r}: give exactly one of content or source")
        if self.source is not None and not os.path.isabs(self.source):
            raise ValueError(f"overlay file {self.path!r}: source must be an absolute path on the server")
        return self


class Overlay(BaseModel):
    """What a campaign adds to its repository at the baseline."""

    files: list[OverlayFile] = Field(default_factory=list, max_length=MAX_FILES,
                                     description="evaluator, scorer or other files the repository lacks")
    splits: list[DataSplit] = Field(default_factory=list, max_length=10,
                                    description="validation and held-out parts carved from the repository's data")


class OverlayEntry(BaseModel):
    path: str
    sha256: str
    bytes: int
    origin: str = Field(description="'inline' or the server path it was read from")


class OverlayRecord(BaseModel):
    """The overlay as stored on the campaign: each file with its hash, each split with
    what it did once the baseline applied it."""

    files: list[OverlayEntry] = Field(default_factory=list)
    splits: list[DataSplit] = Field(default_factory=list)
    applied: list[SplitResult] = Field(default_factory=list, description="the splits as applied at the baseline")


def store_dir(lab: Lab, campaign_id: int) -> Path:
    return lab.path("overlay", campaign_id)


def guarded_paths(files: list[str], splits: list[DataSplit], protected: list[str], held_out: list[str],
                  labels: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The campaign's protected, held-out and label globs with every overlay path added:
    the overlay's files and each split's source (protected), each validation part
    (protected, or a label path when the split seals it) and each held-out part."""
    new_protected = files + [s.source for s in splits] + [s.validation for s in splits if not s.seal_validation]
    return (list(dict.fromkeys(protected + new_protected)),
            list(dict.fromkeys(held_out + [s.held_out for s in splits])),
            list(dict.fromkeys(labels + [s.validation for s in splits if s.seal_validation])))


SYSTEM_ROOTS = tuple(Path(p) for p in ("/proc", "/sys", "/dev", "/run", "/etc", "/boot"))


def _refuse_private(path: Path, lab: Lab) -> None:
    """Overlay files end up readable by every trial: refuse the lab home (other campaigns'
    held-out data), the hidden files of the user's home (keys, tokens, configs) and the
    system's own places (/proc/self/environ holds the server's environment, /etc its
    configuration)."""
    real, home = path.resolve(), Path.home().resolve()
    inside_lab = real == lab.home.resolve() or lab.home.resolve() in real.parents
    hidden_in_home = home in real.parents and real.relative_to(home).parts[0].startswith(".")
    system = next((root for root in SYSTEM_ROOTS if real == root or root in real.parents), None)
    if inside_lab or hidden_in_home or system:
        place = "the lab home" if inside_lab else f"{system}" if system else "a hidden folder of your home"
        raise InvalidInput(f"overlay source {path} is inside {place}, which the lab keeps private",
                           hint="copy the file somewhere else, or give it inline as content")


def _read_source(lab: Lab, item: OverlayFile, budget: list[int]) -> list[tuple[str, bytes, bool, str]]:
    """(repository path, bytes, executable, origin) for each file an overlay entry brings.
    ``budget`` is [files left, bytes left], spent as files are read, so a huge directory
    is refused before it is in memory."""
    if item.content is not None:
        return [(item.path, item.content.encode(), item.executable, "inline")]
    source = Path(item.source)
    if source.is_symlink() or not source.exists():
        raise InvalidInput(f"overlay source {item.source} does not exist or is a symlink",
                           hint="give the absolute path of a regular file or directory on the server")
    _refuse_private(source, lab)
    rels = [""] if source.is_file() else repo_files(source)
    found = []
    for rel in rels:
        path = source / rel if rel else source
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"overlay source {path} is not a regular file", hint="overlays copy regular files only")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidInput(f"overlay source {path} is over {MAX_FILE_BYTES >> 20} MiB",
                               hint="bring large data with the code: a copy of the repository as a plain "
                                    "directory (no .git) with the data where the code looks for it, cloned with "
                                    "repo_clone url=<directory>, upstream and upstream_commit (files its "
                                    ".gitignore lists are committed too); carve splits from it with overlay.splits")
        budget[0], budget[1] = budget[0] - 1, budget[1] - size
        if budget[0] < 0 or budget[1] < 0:
            raise InvalidInput(f"the overlay is over {MAX_FILES} files or {MAX_TOTAL_BYTES >> 20} MiB",
                               hint="bring fewer or smaller files: an evaluator and a scorer rarely need more")
        found.append((f"{item.path}/{rel}" if rel else item.path, path.read_bytes(),
                      os.access(path, os.X_OK), str(path)))
    return found


def read(lab: Lab, overlay: Overlay) -> list[tuple[str, bytes, bool, str]]:
    """Every file of the overlay, read and checked (sizes, duplicates, private places)
    before anything is stored."""
    budget = [MAX_FILES, MAX_TOTAL_BYTES]
    files = [entry for item in overlay.files for entry in _read_source(lab, item, budget)]
    paths = [f[0] for f in files]
    if len(files) > MAX_FILES:
        raise InvalidInput(f"the overlay brings {len(files)} files; at most {MAX_FILES}",
                           hint="bring fewer files: an evaluator and a scorer rarely need more")
    if len(set(paths)) < len(paths):
        raise InvalidInput("the overlay writes one path twice", hint="give every file its own path")
    if sum(len(f[1]) for f in files) > MAX_TOTAL_BYTES:
        raise InvalidInput(f"the overlay is over {MAX_TOTAL_BYTES >> 20} MiB", hint="bring fewer or smaller files")
    return files


def store(lab: Lab, campaign_id: int, overlay: Overlay, files: list[tuple[str, bytes, bool, str]]) -> OverlayRecord:
    """Keep the overlay's files in the lab home; return the record with their hashes."""
    root = store_dir(lab, campaign_id)
    if root.exists():
        shutil.rmtree(root)
    entries = []
    for rel, data, executable, origin in files:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if executable else 0o644)
        entries.append(OverlayEntry(path=rel, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), origin=origin))
    return OverlayRecord(files=entries, splits=overlay.splits)


def apply_overlay(lab: Lab, campaign_id: int, record: OverlayRecord, repo: Path, held_dir: Path) -> OverlayRecord:
    """Write the overlay into the checkout ``repo`` (files, then splits, held-out parts
    into ``held_dir``). Each stored file is checked against its recorded hash first."""
    root = store_dir(lab, campaign_id)
    for entry in record.files:
        stored = root / entry.path
        data = stored.read_bytes() if stored.is_file() and not stored.is_symlink() else None
        if data is None or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise LabError(f"overlay file {entry.path} in the lab home no longer matches its recorded hash",
                           hint="create a new campaign with the overlay")
        target = no_symlink_on_the_way(repo, entry.path)
        if target.is_symlink() or target.is_dir():
            raise InvalidInput(f"the repository has a symlink or directory at overlay path {entry.path}",
                               hint="give the overlay file a path the repository does not use")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(stored, target)
    applied = [split(repo, held_dir, spec) for spec in record.splits]
    return record.model_copy(update={"applied": applied})
