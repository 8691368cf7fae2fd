"""The run supervisor: one small detached process per run.

    python -m sotalab.tools.runs.supervisor <run_dir>   (what a cluster job runs)
    python -m sotalab.tools.runs.supervise <run_dir>    (locally: then records the end)

It reads ``spec.json`` from the run directory, starts the run in its own process group
(sandboxed with bubblewrap when the spec says so) or in a Docker container, and stays
with it to the end: it enforces the deadline (TERM, a grace period, then KILL of
everything the run started), watches the memory of the whole process tree and the GPU
memory of the run's own processes against the budget, writes the capped log, samples
telemetry, and finally writes ``status.json`` atomically. Recording the end in the
ledger and starting the next run belong to ``supervise.py``: the lowest process never
imports the scheduler. It runs in its own session, so it outlives the server that
started it.

Imports are kept to the standard library until the run has started, so the launch
overhead stays small.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import cgroups, limits, sandbox, seccomp
from .events import EventSink
from .logcap import CappedLog, write_json_atomic

SPEC = "spec.json"
STARTED = "started.json"
STATUS = "status.json"
CANCEL = "cancel"  # written by run_cancel; a signal alone could arrive before the handler exists
PR_SET_CHILD_SUBREAPER = 36
STATUS_OF_OUTCOME = {"timeout": "timeout", "cpu_exceeded": "timeout", "cancelled": "cancelled"}  # others: failed unless exit 0
FAST_SAMPLE_S, FAST_SAMPLE_FOR_S = 0.05, 3.0  # 20 Hz for the first seconds


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LocalChild:
    """A run started as a local process group, optionally inside bubblewrap.

    The supervisor makes itself a child subreaper, so anything the run leaves behind
    (even a process that called setsid) is re-parented to the supervisor and is
    found and killed when the run ends: no orphan survives.
    """

    def __init__(self, spec: dict):
        self.spec = spec
        self.oom_killed = False
        self.cgroup = None
        self.layers = spec.get("layers") or sandbox.layers_for(spec["sandbox"])  # cluster nodes settle it here

    def start(self) -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        spec = self.spec
        argv = spec["argv"]
        self.cgroup = cgroups.RunCgroup.create(f"sotalab-{spec['home_tag']}-run{spec['run_id']}",
                                               pids_max=spec["pids_max"], memory_bytes=_memory_bytes(spec))
        pass_fds = []
        if spec["sandbox"] == "bwrap":
            # Without a cgroup, the process count is an rlimit taken inside the new user
            # namespace, where it counts only the run's own processes.
            pids_rlimit = None if self.cgroup else spec["pids_max"]
            seccomp_fd = seccomp.program_fd()
            pass_fds.append(seccomp_fd)
            # A cluster node's own /etc is only known here (its spec comes without layers).
            hidden = spec["hidden"] + ([] if spec.get("layers") else list(sandbox.unreadable_system_entries()))
            argv = sandbox.bwrap_argv(argv, cwd=spec["cwd"], writable=spec["writable"],
                                      readable=spec["readable"], hidden=hidden,
                                      gpu_ids=spec["gpu_ids"], seccomp_fd=seccomp_fd,
                                      tmp_bytes=spec["tmp_bytes"], pids_rlimit=pids_rlimit)
        if self.cgroup is None and self.layers["limits"][0].startswith("cgroup"):
            # The cgroup the queue expected could not be made: say what holds instead.
            held = ["rlimit pids", "sampled memory", "disk polled"] if spec["sandbox"] == "bwrap" \
                else ["sampled memory", "disk polled"]
            self.layers = dict(self.layers, limits=held,
                               describe=", ".join(["+".join(self.layers["isolation"]) or "process-group only", *held]))
        if spec.get("cpus"):
            try:  # the supervisor shares its run's CPUs (it needs little), and the run inherits them
                os.sched_setaffinity(0, spec["cpus"])
            except OSError:
                pass  # CPUs outside what this machine lets us use: the thread variables still hold
        if self.cgroup is not None:
            argv = self.cgroup.join_argv(argv)
        self.proc = subprocess.Popen(argv, cwd=spec["cwd"], env=dict(spec["env"]), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True, pass_fds=pass_fds)
        for fd in pass_fds:
            os.close(fd)
        self.pid = self.proc.pid
        self.exit_fd = os.pidfd_open(self.proc.pid)
        self.output_fd = self.proc.stdout.fileno()
        os.set_blocking(self.output_fd, False)

    def telemetry_root(self) -> tuple[int, bool]:
        # The supervisor's own descendants: the run and anything it orphaned.
        return os.getpid(), False

    def members(self) -> list[int] | None:
        """The run's processes as its cgroup lists them (orphans included: nothing in the
        sandbox can leave it), or None without a cgroup. Reading one file instead of
        walking the supervisor's descendants, which reads every process on the machine."""
        return self.cgroup.pids() if self.cgroup is not None else None

    def _descendants(self) -> list:
        import psutil

        pids = self.members()
        if pids is not None:
            found = []
            for pid in pids:
                try:
                    found.append(psutil.Process(pid))
                except psutil.Error:
                    continue
            return found
        try:
            return psutil.Process().children(recursive=True)
        except psutil.Error:
            return []

    def terminate(self) -> None:
        # TERM goes to the run's processes, not to bubblewrap itself: bwrap would die at
        # once and take the sandbox with it, leaving the run no grace period.
        if self.spec["sandbox"] != "bwrap":
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self._descendants():
            try:
                if p.name() != "bwrap":
                    p.send_signal(signal.SIGTERM)
            except Exception:
                pass

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in self._descendants():
            try:
                p.kill()
            except Exception:
                pass

    def finish(self) -> int | None:
        code = self.proc.wait()
        # Kill and reap whatever the run left behind, until nothing is left.
        for _ in range(100):
            if not self._descendants():
                break
            self.kill()
            time.sleep(0.02)
            self._reap()
        self._reap()
        if self.cgroup is not None:
            self.oom_killed = self.cgroup.out_of_memory()
        return code

    @staticmethod
    def _reap() -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


class Supervisor:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.spec = json.loads((run_dir / SPEC).read_text())
        self.log = CappedLog(run_dir, self.spec["log_cap_bytes"])
        self.outcome: str | None = None
        self.reason: str | None = None
        self.cancel_requested = False
        self.kill_at: float | None = None

    def stop(self, outcome: str, reason: str, grace_s: float) -> None:
        """Begin ending the run: TERM now, KILL after the grace period."""
        if self.outcome is not None:
            return
        self.outcome, self.reason = outcome, reason
        self.kill_at = time.monotonic() + grace_s
        if grace_s > 0:
            self.child.terminate()
        else:
            self.child.kill()

    def run(self) -> dict:
        spec = self.spec
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_cancel)
        if spec["executor"] == "docker":
            from .docker_exec import DockerChild

            self.child = DockerChild(spec, self.log)
        else:
            self.child = LocalChild(spec)
        started_at = stamp()
        if self._cancel_file_present():
            return self._status("cancelled", "cancelled", "cancelled before it started", None, started_at, {})
        events = EventSink(self.run_dir) if spec.get("events") else None  # before the sandbox binds it
        self.watch = limits.LimitWatch(spec)  # sizes before the run writes anything
        try:
            self.child.start()
        except Exception as exc:
            if events:
                events.close()
            return self._status("failed", "start_failed", f"could not start the run: {exc}", None,
                                started_at, {})
        write_json_atomic(self.run_dir / STARTED, {"pid": self.child.pid, "started_at": started_at,
                                                   "supervisor_pid": os.getpid(), "layers": self.child.layers},
                          durable=False)
        from .telemetry import Sampler  # psutil: only once the run is on its way

        sampler = Sampler(self.run_dir, spec["gpu_ids"], spec["telemetry_interval_s"])
        self.watch.cgroup = getattr(self.child, "cgroup", None)
        if spec["sandbox"] == "bwrap":
            for _ in range(100):  # hold the run's /tmp from its first milliseconds (see limits.open_private_tmp)
                self.watch.watch_tmp(limits.first_inside(self.child.pid, self.child.members()))
                if self.watch.tmp_fds or self.child.proc.poll() is not None:
                    break
                time.sleep(0.002)
        start = time.monotonic()
        deadline = start + spec["wall_s"]
        next_sample = start
        sel = selectors.DefaultSelector()
        sel.register(self.child.exit_fd, selectors.EVENT_READ, "exit")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        if self.child.output_fd is not None:
            sel.register(self.child.output_fd, selectors.EVENT_READ, "output")
        exited = False
        while not exited:
            now = time.monotonic()
            timeout = min(next_sample, deadline if self.outcome is None else self.kill_at) - now
            for key, _ in sel.select(max(timeout, 0)):
                if key.data == "output":
                    self._drain(key.fd, sel)
                elif key.data == "wake":
                    os.read(wake_r, 512)
                elif key.data == "exit":
                    exited = True
            now = time.monotonic()
            if self.outcome is None and (self.cancel_requested or self._cancel_file_present()):
                self.stop("cancelled", "cancelled on request", spec["grace_s"])
            if now >= deadline and self.outcome is None:
                self.stop("timeout", f"exceeded the wall-time budget of {spec['wall_s']:g} s", spec["grace_s"])
            if self.kill_at is not None and now >= self.kill_at:
                self.child.kill()
                self.kill_at = now + 1.0
            if now >= next_sample and not exited:
                self._check_budgets(sampler, now)
                # Fast at first: a run shorter than the interval must not slip past its budget.
                next_sample = now + (FAST_SAMPLE_S if now - start < FAST_SAMPLE_FOR_S
                                     else spec["telemetry_interval_s"])
        exit_code = self.child.finish()
        if self.child.output_fd is not None:
            self._drain(self.child.output_fd, None)
        if events:
            events.close()
        if self.child.oom_killed and self.outcome is None:
            self.outcome, self.reason = "oom", (f"the run reached its memory budget of "
                                                f"{(spec.get('memory_gb') or 0) * 1024:.0f} MB (the kernel's limit)")
        self._check_end_limits()
        if getattr(self.child, "cgroup", None) is not None:
            self.child.cgroup.remove()  # empty now: finish() reaped everything in it
        summary = sampler.finish()
        if self.outcome is None:
            self.outcome = "exited"
            self.reason = "exited 0" if exit_code == 0 else _describe_exit(exit_code)
        status = "succeeded" if self.outcome == "exited" and exit_code == 0 else \
            STATUS_OF_OUTCOME.get(self.outcome, "failed")
        return self._status(status, self.outcome, self.reason, exit_code, started_at, summary)

    def _cancel_file_present(self) -> bool:
        return (self.run_dir / CANCEL).exists()

    def _on_cancel(self, signum, frame) -> None:
        self.cancel_requested = True

    def _drain(self, fd: int, sel) -> None:
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                if sel is not None:
                    sel.unregister(fd)
                return
            self.log.write(data)

    def _check_budgets(self, sampler, now: float) -> None:
        spec = self.spec
        root, include_root = self.child.telemetry_root()
        members = self.child.members() if hasattr(self.child, "members") else None
        seen = sampler.sample(sampler.tree(root, include_root, members))
        # A process inside the run's mount namespace, to hold its private /tmp through.
        if not self.watch.tmp_fds:
            self.watch.watch_tmp(limits.first_inside(self.child.pid, members) if spec["sandbox"] == "bwrap" else
                                 (root if spec["executor"] == "docker" else None))
        broken = (self.watch.processes(seen["nproc"]) or self.watch.disk(now)
                  or self.watch.memory(seen["rss_mb"]) or self.watch.cpu_time(sampler.summary.cpu_s))
        if broken:
            self.stop(*broken, 0)
        if spec.get("gpu_memory_gb") and seen["run_gpu_mb"] and seen["run_gpu_mb"] > spec["gpu_memory_gb"] * 1024:
            self.stop("gpu_oom", f"GPU memory {seen['run_gpu_mb']:.0f} MB exceeded the budget of "
                                 f"{spec['gpu_memory_gb'] * 1024:.0f} MB", 0)

    def _check_end_limits(self) -> None:
        """What the run left behind, measured once more after it ended (a short run may
        have written all of it between two checks)."""
        try:
            if self.outcome not in (None, "exited"):
                return
            broken = self.watch.disk(time.monotonic(), force=True) or self.watch.processes(0)
            if broken:
                self.outcome, self.reason = broken
        finally:
            self.watch.close()

    def _status(self, status, outcome, reason, exit_code, started_at, summary) -> dict:
        self.log.close()
        child = getattr(self, "child", None)
        result = {"status": status, "outcome": outcome, "reason": reason, "exit_code": exit_code,
                  "started_at": started_at, "ended_at": stamp(), "telemetry": summary,
                  "layers": getattr(child, "layers", self.spec.get("layers")),
                  "log_bytes": self.log.total, "log_dropped": self.log.dropped}
        write_json_atomic(self.run_dir / STATUS, result)
        return result


def _memory_bytes(spec: dict) -> int | None:
    return int(spec["memory_gb"] * 1024**3) if spec.get("memory_gb") else None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code in (137, 143):
        return f"exited {code} (killed by signal {code - 128})"
    return f"exited {code}"


def supervise(run_dir: Path) -> tuple[dict, dict]:
    """Supervise the run in ``run_dir`` to its end; its spec and final status (also
    written to ``status.json``). The ledger is left alone: see supervise.py."""
    sup = Supervisor(run_dir)
    try:
        status = sup.run()
    except Exception as exc:  # a supervisor bug must not leave an unsupervised run behind
        import traceback

        traceback.print_exc()
        try:
            sup.child.kill()
        except Exception:
            pass  # it never started
        status = sup._status("failed", "supervisor_error", f"the supervisor failed: {exc}; the run was killed",
                             None, stamp(), {})
    return sup.spec, status


def main(argv: list[str]) -> int:
    supervise(Path(argv[0]).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
