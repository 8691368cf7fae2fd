"""The lab home: one directory holding the ledger and every file the lab keeps."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

from . import ledger

SUBDIRS = ("papers", "workspaces", "envs", "runs", "protected", "held_out", "reports")


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """``--home``, else ``$SOTALAB_HOME``, else the platform data dir."""
    if home:
        return Path(home).expanduser().resolve()
    if os.environ.get("SOTALAB_HOME"):
        return Path(os.environ["SOTALAB_HOME"]).expanduser().resolve()
    from platformdirs import user_data_dir

    return Path(user_data_dir("sotalab", appauthor=False)).resolve()


@dataclass
class Lab:
    """A handle on one lab home. Thread-safe: each thread gets its own connection,
    opened (and the ledger created or migrated) on first use."""

    home: Path
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @classmethod
    def open(cls, home: str | os.PathLike | None = None) -> "Lab":
        root = resolve_home(home)
        root.mkdir(parents=True, exist_ok=True)
        for name in SUBDIRS:
            (root / name).mkdir(exist_ok=True)
        return cls(root)

    @property
    def db_path(self) -> Path:
        return self.home / "lab.db"

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = ledger.connect(self.db_path)
        return db

    def path(self, *parts: str | int) -> Path:
        """A path under the home, e.g. ``lab.path("runs", 12)``."""
        return self.home.joinpath(*(str(p) for p in parts))
