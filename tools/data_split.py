"""Carve validation and held-out sets out of a repository's data, seeded and by item.

A data file is split by rows: lines, JSON lines or CSV rows (the CSV header is kept on
every part). A directory is split by its files. An *item* is what identifies a row or
file: the row's text (or one JSON field / CSV column when ``key`` names it), or a file's
content hash. Items, not rows, are assigned to parts, so a duplicated item never lands
in two parts; the validation and held-out parts hold each item once, while the training
remainder keeps the repository's own duplicates. The assignment is a seeded shuffle of
the sorted distinct items: the same data and seed give the same split on any machine.

The held-out part is written straight into the campaign's held-out directory in the lab
home and never into the repository, so no trial worktree and no commit after the
upstream one ever holds it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from .errors import InvalidInput
from .protected import file_digest, repo_files

Unit = Literal["line", "jsonl", "csv", "file"]
MAX_SPLIT_BYTES = 512 * 1024 * 1024


def check_repo_path(rel: str) -> str:
    """A repository-relative path the lab may write: no absolute path, '..', leading
    '-', or anything inside .git."""
    parts = rel.strip("/").split("/")
    if rel.startswith(("/", "-")) or not rel.strip("/") or ".." in parts or ".git" in parts or "\0" in rel:
        raise ValueError(f"path {rel!r} must be relative to the repository, without '..', '.git' or a leading '-'")
    return rel.strip("/")


def no_symlink_on_the_way(root: Path, rel: str) -> Path:
    """``root / rel`` after checking that no directory on the way is a symlink, so a
    write there stays inside ``root`` (a repository can hold a link to anywhere)."""
    path = root
    for part in Path(rel).parts[:-1]:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise InvalidInput(f"{rel!r} passes through {path.relative_to(root)}, a symlink or file",
                               hint="write to a path whose directories are real directories of the repository")
    return root / rel


class DataSplit(BaseModel):
    """Where the data is, where its parts go, and how big they are."""

    source: str = Field(..., min_length=1, max_length=500,
                        description="repository-relative data file or directory; it keeps the training remainder")
    unit: Unit | None = Field(None, description="line, jsonl, csv (rows) or file (a directory's files); default: "
                                                "file for a directory, else by suffix (.jsonl, .csv), else line")
    validation: str = Field(..., min_length=1, max_length=500,
                            description="repository-relative path of the validation part (protected, seen by trials)")
    held_out: str = Field(..., min_length=1, max_length=500,
                          description="repository-relative path of the held-out part: it is kept in the lab home only "
                                      "and placed there only for the final evaluation")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="share of distinct items for validation")
    held_out_fraction: float = Field(0.1, gt=0, lt=1, description="share of distinct items held out")
    seed: int = Field(0, description="seed of the shuffle")
    key: str | None = Field(None, max_length=200, description="JSON field or CSV column naming an item "
                                                              "(default: the whole row)")
    seal_validation: bool = Field(False, description="keep the validation part out of trial worktrees as well, as "
                                                     "a label path: only evaluation exports and the scorer get it")

    @model_validator(mode="after")
    def _paths(self):
        for name in ("source", "validation", "held_out"):
            setattr(self, name, check_repo_path(getattr(self, name)))
        paths = (self.source, self.validation, self.held_out)
        if any(a == b or b.startswith(a + "/") for a in paths for b in paths if a is not b):
            raise ValueError("source, validation and held_out must be three separate paths, none inside another "
                             "(a part inside the source directory would stay in training)")
        if self.validation_fraction + self.held_out_fraction >= 1:
            raise ValueError("validation_fraction + held_out_fraction must leave some data for training")
        if self.key and self.unit in ("line", "file"):
            raise ValueError("key names a JSON field or CSV column; it needs unit jsonl or csv")
        return self


class SplitResult(BaseModel):
    """What one split did, with the hashes of what it wrote."""

    source: str
    unit: Unit
    items: int = Field(description="distinct items in the source")
    duplicates: int = Field(description="rows or files that repeated an earlier item")
    train: int = Field(description="distinct items left in the source")
    validation: int
    held_out: int
    sha256: dict[str, str] = Field(description="repository path -> sha256 of the parts written (for a directory, "
                                               "a hash over its files' names and hashes)")


def _unit_of(path: Path, unit: Unit | None) -> Unit:
    if path.is_dir():
        if unit not in (None, "file"):
            raise InvalidInput(f"{path.name} is a directory; it splits by file",
                               hint="give unit 'file' or leave it out")
        return "file"
    if unit == "file":
        raise InvalidInput(f"{path.name} is a file, not a directory", hint="give unit line, jsonl or csv")
    return unit or {".jsonl": "jsonl", ".csv": "csv"}.get(path.suffix.lower(), "line")


def _assign(keys: list[str], spec: DataSplit) -> dict[str, str]:
    """item key -> 'train' | 'validation' | 'held_out'."""
    distinct = sorted(set(keys))
    random.Random(spec.seed).shuffle(distinct)
    n_val = max(1, round(len(distinct) * spec.validation_fraction))
    n_held = max(1, round(len(distinct) * spec.held_out_fraction))
    if n_val + n_held >= len(distinct):
        raise InvalidInput(f"{spec.source} has {len(distinct)} distinct items: too few to split",
                           hint="split a bigger data set, or lower the fractions")
    part = {k: "validation" for k in distinct[:n_val]}
    part |= {k: "held_out" for k in distinct[n_val:n_val + n_held]}
    return part | {k: "train" for k in distinct[n_val + n_held:]}


def _rows(path: Path, unit: Unit, key: str | None) -> tuple[str, list[tuple[str, str]]]:
    """(header, [(item key, row text)]) of a data file; the row text keeps its newline."""
    if path.stat().st_size > MAX_SPLIT_BYTES:
        raise InvalidInput(f"{path.name} is over {MAX_SPLIT_BYTES >> 20} MiB", hint="split a smaller file")
    text = path.read_text(errors="strict")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    header = ""
    if unit == "csv":
        header, lines = (lines[0], lines[1:]) if lines else ("", [])
        columns = next(csv.reader([header]), [])
        if key and key not in columns:
            raise InvalidInput(f"{path.name} has no column {key!r}", hint=f"columns: {', '.join(columns)[:300]}")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = line.rstrip("\r\n")
        if unit == "jsonl" and key:
            try:
                item = json.dumps(json.loads(line)[key], sort_keys=True)
            except (ValueError, KeyError, TypeError):
                raise InvalidInput(f"{path.name} line {number} is no JSON object with field {key!r}",
                                   hint="give a key every line has, or leave key out") from None
        elif unit == "csv" and key:
            item = dict(zip(columns, next(csv.reader(io.StringIO(line)), [])), strict=False).get(key, "")
        rows.append((item, line))
    return header, rows


def _split_file(path: Path, spec: DataSplit, unit: Unit, validation: Path, held_out: Path) -> tuple[int, int, dict]:
    header, rows = _rows(path, unit, spec.key)
    part = _assign([k for k, _ in rows], spec)
    out = {"train": [header] if header else [], "validation": [header] if header else [],
           "held_out": [header] if header else []}
    seen: set[str] = set()
    for item, line in rows:
        where = part[item]
        if where == "train":
            out["train"].append(line)
        elif item not in seen:  # the evaluated parts hold each item once
            out[where].append(line)
        seen.add(item)
    for target, name in ((path, "train"), (validation, "validation"), (held_out, "held_out")):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(out[name]))
    return len(set(part)), len(rows) - len(set(part)), part


def _split_directory(path: Path, spec: DataSplit, validation: Path, held_out: Path) -> tuple[int, int, dict]:
    files = [rel for rel in repo_files(path) if (path / rel).is_file() and not (path / rel).is_symlink()]
    digests = {rel: file_digest(path / rel) for rel in files}
    part = _assign(list(digests.values()), spec)
    placed: set[str] = set()
    for rel in files:
        where = part[digests[rel]]
        if where == "train":
            continue
        if digests[rel] in placed:
            (path / rel).unlink()  # a copy of an evaluated item must not stay in training
            continue
        target = (validation if where == "validation" else held_out) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path / rel), str(target))
        placed.add(digests[rel])
    return len(set(digests.values())), len(files) - len(set(digests.values())), part


def tree_digest(path: Path) -> str:
    """sha256 of a file, or of a directory's sorted (name, file hash) pairs."""
    if not path.is_dir():
        return file_digest(path)
    listing = "".join(f"{rel}\0{file_digest(path / rel)}\n" for rel in repo_files(path))
    return hashlib.sha256(listing.encode()).hexdigest()


def split(repo: Path, held_dir: Path, spec: DataSplit) -> SplitResult:
    """Apply ``spec`` to the checkout ``repo``: the remainder stays at ``source``, the
    validation part goes to ``validation`` in the repository, the held-out part to the
    same relative path under ``held_dir`` (the lab home), never into ``repo``."""
    source = no_symlink_on_the_way(repo, spec.source)
    if source.is_symlink() or not source.exists():
        raise InvalidInput(f"the repository has no data file or directory {spec.source!r}",
                           hint="give a path that exists at the pinned commit (see repo_tree after a clone)")
    for rel in (spec.validation, spec.held_out):
        if (repo / rel).exists() or (repo / rel).is_symlink():
            raise InvalidInput(f"the repository already has {rel!r}", hint="write the split parts to new paths")
    unit = _unit_of(source, spec.unit)
    validation, held_out = no_symlink_on_the_way(repo, spec.validation), held_dir / spec.held_out
    if unit == "file":
        items, duplicates, part = _split_directory(source, spec, validation, held_out)
    else:
        items, duplicates, part = _split_file(source, spec, unit, validation, held_out)
    counts = {name: sum(1 for where in part.values() if where == name) for name in ("train", "validation", "held_out")}
    return SplitResult(source=spec.source, unit=unit, items=items, duplicates=duplicates, **counts,
                       sha256={spec.source: tree_digest(source), spec.validation: tree_digest(validation),
                               spec.held_out: tree_digest(held_out)})
