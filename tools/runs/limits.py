"""The run's limits as the supervisor checks them while it runs: processes, memory, disk,
CPU time. Each check returns ``(outcome, reason)`` when a limit is broken, else None.

Where the kernel enforces a limit (the run's cgroup), the check reads what the kernel
did (forks refused, OOM kills); elsewhere it measures: the process count against the
rlimit, the tree's RSS plus its private /tmp and /dev/shm (tmpfs pages are memory), and
the growth of every writable directory plus /tmp against the disk budget.
"""

from __future__ import annotations

import os
import time

MB = 1024 * 1024
DISK_CHECK_S = 1.0  # walking a worktree costs more than a sample; once a second is enough,
DISK_WALK_SHARE = 0.02  # and less often for a big tree: its walks take at most 2% of a core,
DISK_CHECK_MAX_S = 10.0  # but never so rarely that a run outwrites its budget between two walks
ENTRY_BYTES = 4096  # what the host pays at least for any file or directory: an inode and a block


def tree_bytes(path: str) -> int:
    """Bytes held by the entries under ``path``: allocated blocks (so sparse files count
    what they use), and at least ``ENTRY_BYTES`` for every file, directory and link (a
    million empty files hold no blocks, yet use up the host's inodes and make every later
    walk and snapshot crawl); never following symlinks; hard links counted once."""
    total, seen = 0, set()
    stack = [path]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    total += max(st.st_blocks * 512, ENTRY_BYTES)
                elif (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += max(st.st_blocks * 512, ENTRY_BYTES)
    return total


def open_private_tmp(inside_pid: int) -> list[int]:
    """Directory descriptors on the run's private /tmp and /dev/shm, opened through a
    process inside its mount namespace. Holding them keeps the tmpfs mounts alive, so
    what the run left there can still be measured after its last process is gone."""
    fds = []
    for mount in ("tmp", "dev/shm"):
        try:
            fds.append(os.open(f"/proc/{inside_pid}/root/{mount}", os.O_RDONLY | os.O_DIRECTORY))
        except OSError:
            continue
    return fds


def tmp_usage(fds: list[int]) -> tuple[int, bool]:
    """Bytes held in the private tmpfs mounts, and whether either is full."""
    used, full = 0, False
    for fd in fds:
        st = os.fstatvfs(fd)
        used += (st.f_blocks - st.f_bfree) * st.f_frsize
        full = full or (st.f_blocks > 0 and st.f_bavail == 0)
    return used, full


class LimitWatch:
    """Checks one run's limits; built from its spec before the run starts (the sizes it
    grows from), given the run's cgroup once there is one."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.cgroup = None
        self.writable = list(dict.fromkeys(spec["writable"]))
        self.disk_start = sum(tree_bytes(p) for p in self.writable)
        self.out_start = tree_bytes(spec["output_dir"])
        self.next_disk_check = 0.0
        self.tmp_used = 0
        self.tmp_fds: list[int] = []

    def processes(self, nproc: int):
        limit = self.spec["pids_max"]
        if self.cgroup is not None:
            refused = self.cgroup.pids_refused()
            if refused:
                return "pids_exceeded", f"the run tried to exceed its limit of {limit} processes ({refused} forks refused)"
        elif nproc >= limit - 1:  # an rlimit or Docker's pids limit: forks fail quietly, so count
            return "pids_exceeded", f"the run reached its limit of {limit} processes"
        return None

    def memory(self, rss_mb: float):
        budget = self.spec.get("memory_gb")
        if self.cgroup is not None and self.cgroup.out_of_memory():
            return "oom", f"the run reached its memory budget of {budget * 1024:.0f} MB (the kernel's limit)" \
                if budget else "the run ran out of memory"
        if not budget:
            return None
        used = rss_mb + self.tmp_used / MB  # tmpfs pages are memory, whoever holds them
        if used > budget * 1024:
            return "oom", f"memory {used:.0f} MB (processes and /tmp) exceeded the budget of {budget * 1024:.0f} MB"
        return None

    def watch_tmp(self, inside_pid: int | None) -> None:
        if not self.tmp_fds and inside_pid:
            self.tmp_fds = open_private_tmp(inside_pid)

    def close(self) -> None:
        for fd in self.tmp_fds:
            os.close(fd)
        self.tmp_fds = []

    def disk(self, now: float, force: bool = False):
        """Growth of the writable directories plus /tmp against ``disk_mb``, and of the
        output directory against ``artifact_mb``; measured at most once a second, less
        often where a walk is slow."""
        self.tmp_used, full = tmp_usage(self.tmp_fds)
        if full:
            return "disk_exceeded", f"the run filled its private /tmp ({self.spec['tmp_bytes'] / MB:.0f} MB)"
        if not force and now < self.next_disk_check:
            return None
        walk_started = time.monotonic()
        grown = max(sum(tree_bytes(p) for p in self.writable) - self.disk_start, 0)
        self.next_disk_check = now + min(max(DISK_CHECK_S, (time.monotonic() - walk_started) / DISK_WALK_SHARE),
                                         DISK_CHECK_MAX_S)
        written = grown + self.tmp_used
        cap = self.spec.get("disk_mb")
        if cap and written >= cap * MB:
            return "disk_exceeded", (f"the run wrote {written / MB:.0f} MB (worktree, outputs and /tmp together), "
                                     f"over its disk budget of {cap:g} MB")
        artifact_cap = self.spec.get("artifact_mb")
        out = tree_bytes(self.spec["output_dir"]) - self.out_start
        if artifact_cap and out > artifact_cap * MB:
            return "artifact_exceeded", f"artifacts {out / MB:.1f} MB exceeded the budget of {artifact_cap:g} MB"
        return None

    def cpu_time(self, cpu_s: float):
        cap = self.spec.get("cpu_s")
        if cap and cpu_s > cap:
            return "cpu_exceeded", f"the run used {cpu_s:.1f} s of CPU time, over its budget of {cap:g} s"
        return None


def first_inside(root_pid: int, members: list[int] | None = None) -> int | None:
    """One of the run's own processes under bwrap (not bwrap itself, which may still be
    setting the sandbox up), for reaching the run's mounts through /proc. ``members``:
    the run's processes where its cgroup lists them (else bwrap's descendants are
    found by reading every process on the machine)."""
    import psutil

    try:
        if members is not None:
            children = [psutil.Process(pid) for pid in members if pid != root_pid]
        else:
            children = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            if child.name() != "bwrap":
                return child.pid
        except psutil.Error:
            continue
    return None
