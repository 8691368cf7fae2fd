"""A cgroup per run, where the machine lets the supervisor make one: pids and memory
limits the kernel enforces on the whole process tree, /tmp's tmpfs pages included.

The run's cgroup is a child of the supervisor's own (never the hierarchy's root), so
whatever limits the machine already puts on the lab still hold above it. cgroup v2
(the unified hierarchy with the memory and pids controllers delegated) is used where
present, else the v1 ``memory`` and ``pids`` hierarchies. Where neither is writable
(an ordinary user without delegation), ``RunCgroup.create`` returns None and the
supervisor falls back to rlimits and fast sampling; the run's record says which.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
# Write our pid into each cgroup.procs given before "--", then become the command after it.
JOIN_SCRIPT = 'for f; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 126; done; exec "$@"'


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path for a v1 controller, or for v2 (controller None)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller and controller in controllers.split(",")):
            return path
    return None


def _v2_base() -> Path | None:
    """Where v2 run cgroups go: under our own cgroup, with memory and pids delegated."""
    for mount in (ROOT, ROOT / "unified"):
        if (mount / "cgroup.controllers").exists():
            own = _own_path(None)
            if own is None:
                return None
            base = mount / own.lstrip("/")
            available = (base / "cgroup.controllers").read_text().split() if (base / "cgroup.controllers").exists() else []
            if {"memory", "pids"} <= set(available) and os.access(base, os.W_OK):
                return base
    return None


def _v1_bases() -> dict[str, Path] | None:
    bases = {}
    for controller in ("memory", "pids"):
        own = _own_path(controller)
        base = ROOT / controller / (own or "/").lstrip("/")
        if own is None or not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            return None
        bases[controller] = base
    return bases


def available() -> str | None:
    """"v2" or "v1" when run cgroups can be made here, else None."""
    if _v2_base() is not None:
        return "v2"
    return "v1" if _v1_bases() is not None else None


class RunCgroup:
    """The cgroup(s) one run lives in, with its pids and memory limits."""

    def __init__(self, version: str, dirs: dict[str, Path]):
        self.version = version
        self.dirs = dirs  # controller -> directory (v2: one directory under both keys)

    @classmethod
    def create(cls, name: str, *, pids_max: int, memory_bytes: int | None) -> "RunCgroup | None":
        try:
            base2 = _v2_base()
            if base2 is not None:
                return cls._create_v2(base2, name, pids_max, memory_bytes)
            bases = _v1_bases()
            if bases is not None:
                return cls._create_v1(bases, name, pids_max, memory_bytes)
        except OSError:
            return None  # the machine said no after all: the caller falls back
        return None

    @classmethod
    def _create_v2(cls, base: Path, name: str, pids_max: int, memory_bytes: int | None) -> "RunCgroup":
        control = base / "cgroup.subtree_control"
        enabled = control.read_text().split()
        missing = [c for c in ("memory", "pids") if c not in enabled]
        if missing:
            control.write_text(" ".join(f"+{c}" for c in missing))
        path = base / name
        path.mkdir(exist_ok=True)
        (path / "pids.max").write_text(str(pids_max))
        if memory_bytes:
            (path / "memory.max").write_text(str(memory_bytes))
            (path / "memory.swap.max").write_text("0")
            # Out of memory ends the whole run, never one process of it: otherwise the
            # kernel kills the biggest process and the rest of the run carries on.
            # (Kernels before 4.19 lack the switch; the supervisor then ends the rest of
            # the run when it sees the kill.)
            with contextlib.suppress(OSError):
                (path / "memory.oom.group").write_text("1")
        return cls("v2", {"memory": path, "pids": path})

    @classmethod
    def _create_v1(cls, bases: dict[str, Path], name: str, pids_max: int, memory_bytes: int | None) -> "RunCgroup":
        dirs = {c: bases[c] / name for c in bases}
        for path in dirs.values():
            path.mkdir(exist_ok=True)
        (dirs["pids"] / "pids.max").write_text(str(pids_max))
        if memory_bytes:
            (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
            swap = dirs["memory"] / "memory.memsw.limit_in_bytes"
            if swap.exists():  # no swap either: memory+swap capped at the same figure
                swap.write_text(str(memory_bytes))
            # v1 has no group kill: pause the run at its limit instead of letting the
            # kernel pick one victim, and the supervisor (which sees ``under_oom``) ends
            # the whole run.
            (dirs["memory"] / "memory.oom_control").write_text("1")
        return cls("v1", dirs)

    def join_argv(self, argv: list[str]) -> list[str]:
        """``argv`` behind a shell that first moves itself into the run's cgroups, then
        execs it: everything the run starts is inside from its first instruction. (A
        ``preexec_fn`` would do the same but forces a full fork of the supervisor: about
        10 ms more per run on a busy machine.)"""
        files = sorted({str(Path(p) / "cgroup.procs") for p in self.dirs.values()})
        return ["/bin/sh", "-c", JOIN_SCRIPT, "sotalab-cgroup-join", *files, "--", *argv]

    def out_of_memory(self) -> bool:
        """Whether the run hit its memory limit: killed by the kernel (v2, the whole
        group) or paused there (v1)."""
        path = self.dirs["memory"]
        if self.version == "v2":
            return _field(_read(path / "memory.events"), "oom_kill") > 0
        text = _read(path / "memory.oom_control")
        return _field(text, "under_oom") > 0 or _field(text, "oom_kill") > 0

    def pids_refused(self) -> int:
        """How many forks the pids limit refused."""
        return _field(_read(self.dirs["pids"] / "pids.events"), "max")

    def memory_bytes(self) -> int:
        name = "memory.current" if self.version == "v2" else "memory.usage_in_bytes"
        text = _read(self.dirs["memory"] / name).strip()
        return int(text) if text.isdigit() else 0

    def pids(self) -> list[int]:
        text = _read(self.dirs["pids"] / "cgroup.procs")
        return [int(p) for p in text.split()]

    def remove(self) -> None:
        """Delete the cgroups (they must be empty: call after the run's processes are gone)."""
        for path in {str(p) for p in self.dirs.values()}:
            try:
                os.rmdir(path)
            except OSError:
                pass  # still busy or already gone: the kernel frees it once empty


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _field(text: str, name: str) -> int:
    match = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(match.group(1)) if match else 0
