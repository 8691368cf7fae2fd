"""The run queue: submit, place on CPU slots and GPUs, launch supervisors, collect ends.

A run is ``queued`` in the ledger until it fits: CPU-only runs take one of the lab's CPU
slots (``SOTALAB_CPU_SLOTS``, default the core count); GPU runs wait for GPUs chosen by
free memory and then utilisation, and several runs share a GPU when each declared the
``gpu_memory_gb`` it needs and the sum fits. A run waiting longer than its pending
timeout fails with the reason it was waiting.

``dispatch(lab)`` does all the bookkeeping and is cheap; it runs on every run tool
call, when a supervisor exits (the supervisor calls it), and from the optional
dispatcher thread (``start_dispatcher``) in a long-lived server.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from .. import execution, ledger
from ..errors import InvalidInput, LabError
from ..home import Lab
from . import cluster_runs, events, launcher_client, sandbox
from .logcap import DEFAULT_CAP_BYTES, write_json_atomic
from .records import TERMINAL, get_row, read_status, record_end
from .records import end_without_start as _end_without_start
from .records import started as _started

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
REQUEST = "request.json"
# Variables the supervisor itself may see (the run's own environment is built from the
# allowlist in sandbox.run_env): never the server's tokens, which a run could otherwise
# read from its parent's /proc/<pid>/environ.
SUPERVISOR_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "PYTHONPATH", "VIRTUAL_ENV",
                  "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "CUDA_DEVICE_ORDER")

DEFAULT_PIDS_MAX = 1024
DEFAULT_DISK_MB = 20_480.0
DEFAULT_TMP_BYTES = 1 << 30  # private /tmp (and /dev/shm) size, at most the memory and disk budgets

_children: dict[int, subprocess.Popen] = {}  # supervisors this process started, reaped in dispatch
_launcher_homes: set[str] = set()  # labs whose long-lived server keeps a launcher running
_thread_lock = threading.Lock()


@dataclass
class RunRequest:
    """Everything a run needs; stored as the run's ``request.json``."""

    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    executor: str | None = None  # local | docker | slurm | ray; None: the campaign's (execution_set), else local
    cluster: dict = field(default_factory=dict)  # slurm/ray settings, copied from the campaign's when submitted
    cpus: int | None = None  # cluster runs: CPUs asked of the cluster (default: the settings' cpus_per_run)
    sandbox: str = "auto"  # auto (bubblewrap when it works) | bwrap | process-group
    image: str | None = None
    gpus: int | list[int] | str = 0  # count, explicit indices, or "auto"
    gpu_memory_gb: float | None = None
    wall_s: float = 3600.0
    grace_s: float = 10.0
    memory_gb: float | None = None
    artifact_mb: float | None = None
    pending_timeout_s: float = 3600.0
    telemetry_interval_s: float = 1.0
    log_cap_bytes: int = DEFAULT_CAP_BYTES
    path_prefix: list[str] = field(default_factory=list)  # local runs: e.g. the venv's bin/ (Docker: the image's PATH)
    readable: list[str] = field(default_factory=list)  # extra read-only paths (the env)
    writable: list[str] = field(default_factory=list)  # extra writable paths, besides cwd and the output dir
    cwd_read_only: bool = False  # the run may read its cwd but not change it
    disk_mb: float | None = None  # cwd + outputs + writable + /tmp growth; None: DEFAULT_DISK_MB
    cpu_s: float | None = None  # CPU-time budget (outcome cpu_exceeded), besides wall_s
    pids_max: int = DEFAULT_PIDS_MAX
    events: bool = False  # give the run an append-only event channel (runs/events.py): $SOTALAB_EVENTS
    campaign_id: int | None = None
    trial_id: int | None = None
    purpose: str = "adhoc"
    seed: int | None = None
    env_id: str | None = None


def now_ts() -> float:
    return time.time()


def _parse_ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def cpu_slots() -> int:
    value = os.environ.get("SOTALAB_CPU_SLOTS")
    return max(1, int(value)) if value else (os.cpu_count() or 1)


def gpus_wanted(gpus) -> int | list[int]:
    """A request's GPUs as a count or explicit indices; "auto" means one if NVML has any."""
    if gpus == "auto":
        from .telemetry import nvml_error

        return 0 if nvml_error() else 1
    return gpus


def submit(lab: Lab, req: RunRequest) -> int:
    """Record a run as queued and try to start it at once; returns the run id."""
    cwd = Path(req.cwd)
    if not cwd.is_dir():
        raise InvalidInput(f"working directory {req.cwd} does not exist",
                           hint="create the trial's worktree first (workspace tools)")
    settings = execution.resolve(lab, req.campaign_id)
    req.executor = req.executor or settings.executor
    if req.executor not in execution.Executor.__args__:
        raise InvalidInput(f"unknown executor {req.executor!r}", hint=f"use one of {', '.join(execution.Executor.__args__)}")
    sandbox.check_env_names(req.env)
    _check_run_paths(req)
    if req.executor == "local":
        _check_sandbox_strength(req)
    if req.executor in execution.CLUSTER_EXECUTORS:
        want = cluster_runs.check_request(req, settings)  # the cluster's GPUs, not this machine's
    else:
        want = gpus_wanted(req.gpus)
        _check_gpus_exist(want)
    req.gpus = want
    stamp = ledger.now()
    row = {
        "campaign_id": req.campaign_id, "trial_id": req.trial_id, "purpose": req.purpose,
        "seed": req.seed, "argv": ledger.dumps(req.argv), "env": ledger.dumps(req.env),
        "cwd": str(cwd), "executor": req.executor, "env_id": req.env_id,
        "resources": ledger.dumps({"gpus": want, "gpu_memory_gb": req.gpu_memory_gb, "gpu_ids": []}),
        "budget": ledger.dumps({"wall_s": req.wall_s, "memory_gb": req.memory_gb,
                                "gpu_memory_gb": req.gpu_memory_gb, "artifact_mb": req.artifact_mb,
                                "grace_s": req.grace_s, "pending_timeout_s": req.pending_timeout_s}),
        "status": "queued", "reason": "waiting to be placed", "created_at": stamp,
    }
    # One transaction: no dispatcher (another thread, a supervisor) may see the queued
    # row before its request file exists.
    with ledger.transaction(lab.db) as db:
        run_id = db.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            list(row.values())).lastrowid
        run_dir = lab.path("runs", run_id)
        (run_dir / "out").mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / REQUEST, asdict(req), durable=False)
        db.execute("UPDATE runs SET run_dir = ? WHERE id = ?", [str(run_dir), run_id])
    dispatch(lab)
    return run_id


def _check_gpus_exist(want) -> None:
    count = len(want) if isinstance(want, list) else want
    if not count:
        return
    from .telemetry import gpu_states, nvml_error

    error = nvml_error()
    if error:
        raise InvalidInput(f"this run asks for {count} GPU(s) but {error}",
                           hint="run it with gpus=0 (CPU) or gpus='auto', or on a machine with a GPU")
    present = [g.index for g in gpu_states()]
    missing = [i for i in want if i not in present] if isinstance(want, list) else []
    if missing or count > len(present):
        raise InvalidInput(f"this run asks for GPUs {want} but the machine has {present}",
                           hint="ask for fewer GPUs or for ids lab_status lists")


def _check_run_paths(req: RunRequest) -> None:
    """Every path the sandbox will mount exists, and every interpreter directory the
    run's PATH starts with is there: a run never silently falls back to another Python."""
    for entry in req.path_prefix:
        if not Path(entry).is_dir():
            raise InvalidInput(f"the run's interpreter directory {entry} does not exist",
                               hint="rebuild the environment (env_build) or pass an existing venv's bin/")
    for path in [*req.readable, *req.writable]:
        if not Path(path).is_absolute() or not Path(path).exists():
            raise InvalidInput(f"path {path} given to the run does not exist (or is not absolute)")


def _check_sandbox_strength(req: RunRequest) -> None:
    """Refuse a local run whose sandbox would lack a layer, unless weak mode is allowed.
    A request for ``sandbox="process-group"`` is itself that explicit choice (library
    callers only: ``run_start`` never offers it)."""
    if req.sandbox == "process-group":
        return
    layers = sandbox.layers_for("bwrap")  # what the full sandbox lacks here, with bubblewrap's own reason
    if req.sandbox == "bwrap" and not sandbox.bwrap_works():
        raise LabError(f"bubblewrap was asked for but cannot build a sandbox here: {sandbox.bwrap_problem()}")
    if layers["missing"] and not sandbox.weak_allowed():
        raise LabError("this machine cannot sandbox the run fully: " + "; ".join(layers["missing"]),
                       hint="fix what is missing (lab_status lists it), use executor='docker', or allow the "
                            f"weaker sandbox explicitly: `sotalab serve --allow-weak-sandbox` or "
                            f"{sandbox.WEAK_ENV}=1 (docs/runs.md says what it gives up)")


@contextlib.contextmanager
def _dispatch_lock(lab: Lab):
    """One dispatcher at a time across threads and processes (server, supervisors, CLI)."""
    with _thread_lock, open(lab.path("runs", ".dispatch.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def dispatch(lab: Lab) -> None:
    """Collect ended runs, fail expired waits, and start every queued run that fits."""
    with _dispatch_lock(lab):
        _reap_children()
        collect(lab)
        cluster_runs.advance(lab)
        queued = list(lab.db.query("SELECT * FROM runs WHERE status = 'queued' AND cluster_job IS NULL ORDER BY id"))
        if not queued:
            return
        running = list(lab.db.query("SELECT id, resources FROM runs WHERE status = 'running' AND cluster_job IS NULL"))
        cpu_busy = sum(1 for r in running if not ledger.loads(r["resources"], {}).get("gpu_ids"))
        gpu_view = None
        for row in queued:
            budget = ledger.loads(row["budget"], {})
            resources = ledger.loads(row["resources"], {})
            waited = now_ts() - _parse_ts(row["created_at"])
            want = resources.get("gpus") or 0
            if row["executor"] in execution.CLUSTER_EXECUTORS:
                placed, waiting_for = [], "the cluster"  # the cluster places it; no slot or GPU here
            elif want:
                if gpu_view is None:
                    gpu_view = _gpu_view(lab)
                placed = choose_gpus(want, resources.get("gpu_memory_gb"), *gpu_view)
                waiting_for = f"GPUs ({want}{', %g GB each' % resources['gpu_memory_gb'] if resources.get('gpu_memory_gb') else ', exclusive'})"
            else:
                placed = [] if cpu_busy < cpu_slots() else None
                waiting_for = f"a CPU slot ({cpu_busy} of {cpu_slots()} busy)"
            if placed is None:
                if waited > budget.get("pending_timeout_s", 3600):
                    _end_without_start(lab, row["id"], "failed", "pending_timeout",
                                       f"waited {waited:.0f} s for {waiting_for}, over the pending timeout of "
                                       f"{budget['pending_timeout_s']:g} s; cancel other runs or raise pending_timeout_s")
                elif row["reason"] != f"waiting for {waiting_for}":
                    lab.db["runs"].update(row["id"], {"reason": f"waiting for {waiting_for}"})
                continue
            try:
                _launch(lab, row, placed)
            except Exception as exc:
                _end_without_start(lab, row["id"], "failed", "start_failed", f"could not start the supervisor: {exc}")
                continue
            if row["executor"] in execution.CLUSTER_EXECUTORS:
                continue
            if placed:
                gpu_view[1].update({i: gpu_view[1].get(i, []) + [resources.get("gpu_memory_gb")] for i in placed})
            else:
                cpu_busy += 1


def _gpu_view(lab: Lab):
    """GPU states plus what this lab's running runs have reserved on each."""
    from .telemetry import gpu_states

    try:
        states = gpu_states()
    except RuntimeError:
        states = []
    reserved: dict[int, list[float | None]] = {}
    for r in lab.db.query("SELECT resources FROM runs WHERE status = 'running' AND cluster_job IS NULL"):
        res = ledger.loads(r["resources"], {})
        for i in res.get("gpu_ids") or []:
            reserved.setdefault(i, []).append(res.get("gpu_memory_gb"))
    return states, reserved


def choose_gpus(want: int | list[int], memory_gb: float | None, states: list,
                reserved: dict[int, list[float | None]]) -> list[int] | None:
    """GPU indices for a run, or None when it must wait.

    A GPU with a run that declared no ``gpu_memory_gb`` is held exclusively. A run that
    declares ``memory_gb`` may join a GPU when that much is free both by NVML's count and
    after every reservation; one that declares nothing needs a GPU nobody of ours uses.
    Among fitting GPUs the most free memory wins, then the least utilisation.
    """
    fitting = []
    for g in states:
        holds = reserved.get(g.index, [])
        if any(r is None for r in holds):
            continue
        free_mb = g.memory_total_mb - max(g.memory_used_mb, sum(holds) * 1024)
        if memory_gb is None:
            ok = not holds and g.memory_used_mb < 0.5 * g.memory_total_mb
        else:
            ok = free_mb >= memory_gb * 1024
        if ok:
            fitting.append((-free_mb, g.utilization_pct, g.index))
    fitting.sort()
    ids = [index for _, _, index in fitting]
    if isinstance(want, list):
        return list(want) if all(i in ids for i in want) else None
    return ids[:want] if len(ids) >= want else None


def _launch(lab: Lab, row: dict, gpu_ids: list[int]) -> None:
    run_id = row["id"]
    run_dir = lab.path("runs", run_id)
    req = RunRequest(**json.loads((run_dir / REQUEST).read_text()))
    uuids = _gpu_uuids(gpu_ids)
    output_dir = str(run_dir / "out")
    cluster = req.executor in execution.CLUSTER_EXECUTORS
    if cluster:
        kind, docker = req.sandbox, None  # "auto" is settled on the node the cluster picks (cluster_job)
    elif req.executor == "docker":
        from .docker_exec import DEFAULT_IMAGE, container_name

        kind = "docker"
        docker = {"image": req.image or DEFAULT_IMAGE, "name": container_name(run_id, str(lab.home))}
    else:
        kind = "process-group" if req.sandbox == "process-group" or not sandbox.bwrap_works() else "bwrap"
        if req.sandbox == "bwrap" and kind != "bwrap":
            raise LabError("bubblewrap was asked for but cannot build a sandbox here")
        docker = None
    cpus = [] if cluster else _cpu_allotment(lab, run_id)
    # A cluster run's share is what it asked of the cluster (cpus), else a local slot's.
    threads = len(cpus) or (cluster and req.cpus) or max(1, (os.cpu_count() or 1) // cpu_slots())
    if docker is not None:
        docker["cpus"] = threads
    env = sandbox.run_env(req.env, run_id=run_id, output_dir=output_dir,
                          gpu_visible=",".join(uuids or [str(i) for i in gpu_ids]), path_prefix=req.path_prefix,
                          threads=threads, home=sandbox.SANDBOX_HOME if kind == "bwrap" else "/tmp")
    disk_mb = req.disk_mb or DEFAULT_DISK_MB
    tmp_bytes = int(min(DEFAULT_TMP_BYTES, disk_mb * 2**20, (req.memory_gb or 1 << 20) * 2**30))
    writable = ([] if req.cwd_read_only else [req.cwd]) + [output_dir, *req.writable]
    readable = [*sandbox.interpreter_roots(req.path_prefix), *req.readable, *([req.cwd] if req.cwd_read_only else [])]
    channel = [str(events.fifo_path(run_dir))] if req.events else []  # the supervisor makes it before the start
    if channel:
        env["SOTALAB_EVENTS"] = channel[0]
    spec = {
        "run_id": run_id, "home": str(lab.home), "argv": req.argv, "env": env, "cwd": req.cwd,
        "executor": req.executor, "sandbox": kind, "docker": docker,
        "writable": [*writable, *channel], "readable": readable, "events": req.events, "hidden": hidden_paths(lab, req),
        "path_prefix": req.path_prefix, "output_dir": output_dir,
        "gpu_ids": gpu_ids, "gpu_uuids": uuids,
        "wall_s": req.wall_s, "grace_s": req.grace_s, "memory_gb": req.memory_gb,
        "gpu_memory_gb": req.gpu_memory_gb, "artifact_mb": req.artifact_mb,
        "telemetry_interval_s": req.telemetry_interval_s, "log_cap_bytes": req.log_cap_bytes,
        "cpu_slots": cpu_slots(),  # the supervisor dispatches at its end with the server's setting
        "pids_max": req.pids_max, "disk_mb": disk_mb, "tmp_bytes": tmp_bytes, "cpu_s": req.cpu_s,
        "cpus": cpus, "layers": sandbox.layers_for(kind) if not cluster else None,
        "home_tag": hashlib.sha256(str(lab.home).encode()).hexdigest()[:8],
    }
    if cluster:
        # The node settles the sandbox; whether a weaker one may run is the server's call.
        spec.update(gpus_wanted=ledger.loads(row["resources"], {}).get("gpus") or 0,
                    weak_sandbox_allowed=sandbox.weak_allowed())
        write_json_atomic(run_dir / "spec.json", spec, durable=False)
        cluster_runs.submit(lab, run_id, run_dir, req)
        return
    write_json_atomic(run_dir / "spec.json", spec, durable=False)
    supervisor_pid = _start_supervisor(lab, run_dir)
    resources = ledger.loads(row["resources"], {})
    resources.update({"gpu_ids": gpu_ids, "gpu_uuids": uuids, "sandbox": kind, "cpus": cpus, "threads": threads,
                      "layers": spec["layers"], "interpreter": _interpreter(req)})
    lab.db["runs"].update(run_id, {
        "status": "running", "reason": None, "started_at": ledger.now(), "supervisor_pid": supervisor_pid,
        "supervisor_ctime": _ctime(supervisor_pid), "resources": ledger.dumps(resources),
        "container": docker["name"] if docker else None,
    })


def _cpu_allotment(lab: Lab, run_id: int) -> list[int]:
    """The CPUs this run is pinned to: its share of the machine (cores / CPU slots),
    the least used by this lab's other running runs; [] where affinity is unavailable."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []
    share = max(1, len(usable) // cpu_slots())
    load = {cpu: 0 for cpu in usable}
    for r in lab.db.query("SELECT resources FROM runs WHERE status = 'running' AND id != ?", [run_id]):
        for cpu in ledger.loads(r["resources"], {}).get("cpus") or []:
            if cpu in load:
                load[cpu] += 1
    return sorted(sorted(usable, key=lambda cpu: (load[cpu], cpu))[:share])


def _interpreter(req: RunRequest) -> str | None:
    """The Python the run's PATH finds first, as the run record states it."""
    for entry in req.path_prefix:
        for name in ("python", "python3"):
            if (Path(entry) / name).exists():
                return str(Path(entry) / name)
    return None


def hidden_paths(lab: Lab, req: RunRequest) -> list[str]:
    """What a local sandbox covers where a mounted path would show it: the lab home, the
    local directory the campaign was cloned from (it still holds the held-out files), and
    what an ordinary user could not read in the mounted system directories. Nothing else
    of the host is mounted, so the user's credentials need no list."""
    hidden = [str(lab.home), *sandbox.unreadable_system_entries()]
    row = lab.db.execute("SELECT repo_url FROM campaigns WHERE id = ?", [req.campaign_id]).fetchone() \
        if req.campaign_id is not None else None
    url = row[0] if row and row[0] else ""
    if url and ("://" not in url or url.startswith("file://")):
        source = Path(url.removeprefix("file://")).expanduser()
        # Never a directory the run itself needs: one holding its interpreter or worktree.
        needed = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, req.cwd, *req.path_prefix, *req.readable)]
        if source.is_absolute() and source.is_dir() and not any(
                source.resolve() == n or source.resolve() in n.parents for n in needed):
            hidden.append(str(source.resolve()))
    return hidden


def _start_supervisor(lab: Lab, run_dir: Path) -> int:
    """Fork the supervisor from the lab's launcher (fast), or start it as its own
    process and start a launcher for the next run."""
    runs_dir = lab.path("runs")
    pid = launcher_client.spawn(runs_dir, run_dir)
    if pid:
        return pid
    sup_env = {k: os.environ[k] for k in SUPERVISOR_ENV if k in os.environ}
    with open(run_dir / "supervisor.log", "ab") as sup_log:
        proc = subprocess.Popen([sys.executable, "-m", "sotalab.tools.runs.supervise", str(run_dir)],
                                cwd=run_dir, env=sup_env, stdin=subprocess.DEVNULL, stdout=sup_log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    _children[proc.pid] = proc
    if str(lab.home) in _launcher_homes:
        launcher_client.start_detached(runs_dir, lab.home, sup_env)
    return proc.pid


def enable_launcher(lab: Lab) -> None:
    """Keep a launcher (fork server) running for this lab, started now and again
    whenever a run finds none. For long-lived servers: one-shot callers (CLI, tests)
    start supervisors as plain processes and leave no launcher behind."""
    _launcher_homes.add(str(lab.home))
    if not lab.path("runs", launcher_client.SOCKET).exists():
        launcher_client.start_detached(lab.path("runs"), lab.home,
                                {k: os.environ[k] for k in SUPERVISOR_ENV if k in os.environ})


def _gpu_uuids(gpu_ids: list[int]) -> list[str]:
    if not gpu_ids:
        return []
    from .telemetry import gpu_states

    return [g.uuid for g in gpu_states(gpu_ids)]


def _ctime(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def supervisor_alive(row: dict) -> bool:
    """Whether the run's supervisor is still the live process the ledger recorded."""
    import psutil

    pid = row.get("supervisor_pid")
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        ctime = row.get("supervisor_ctime")
        return ctime is None or abs(proc.create_time() - ctime) < 1.0
    except psutil.Error:
        return False


def _reap_children() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def collect(lab: Lab) -> dict[str, list[int]]:
    """Bring every running run's ledger row up to date with its supervisor.

    Ended (status file written): record it. Supervisor alive: leave it (reattached).
    Supervisor gone without a status: the run is lost; whatever it left is killed and
    its log kept.
    """
    report = {"reattached": [], "collected": [], "lost": []}
    for row in lab.db.query("SELECT * FROM runs WHERE status = 'running' AND cluster_job IS NULL"):
        run_dir = row["run_dir"] or str(lab.path("runs", row["id"]))
        status = read_status(run_dir)
        if status is None and supervisor_alive(row):
            report["reattached"].append(row["id"])
            if row["pid"] is None and _started(Path(run_dir)).get("pid"):
                lab.db["runs"].update(row["id"], {"pid": _started(Path(run_dir))["pid"]})
            continue
        status = status or read_status(run_dir)  # it may have finished just now
        if status is not None:
            record_end(lab, row["id"], status)
            report["collected"].append(row["id"])
            continue
        _clean_up_after_lost(row, run_dir)
        lab.db.execute(
            "UPDATE runs SET status = 'lost', outcome = 'lost', reason = ?, ended_at = ? WHERE id = ? AND status = 'running'",
            ["the supervisor ended without a final status (machine restart or killed); the log is kept",
             ledger.now(), row["id"]])
        report["lost"].append(row["id"])
    return report


def _clean_up_after_lost(row: dict, run_dir: str) -> None:
    """Kill what a vanished supervisor left running: its process group or container."""
    import psutil

    if row.get("container"):
        from .docker_exec import remove_container

        remove_container(row["container"])
        return
    started = _started(Path(run_dir))
    pgid = started.get("pid")
    if not pgid:
        return
    killed = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                proc.kill()
                killed.append(proc)
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
    psutil.wait_procs(killed, timeout=5)  # gone before the run is reported lost


def cancel(lab: Lab, run_id: int) -> str:
    """Cancel a queued run at once, or ask a running run's supervisor to stop it
    (TERM, grace, KILL). Returns what was done."""
    with _dispatch_lock(lab):  # never while a dispatcher launches it (that would mark it running again)
        row = get_row(lab, run_id)
        if row["cluster_job"]:
            return cluster_runs.cancel(lab, row)
        if row["status"] == "queued" and _end_without_start(lab, run_id, "cancelled", "cancelled",
                                                            "cancelled before it started"):
            return "cancelled before it started"
    if row["status"] != "running":
        return f"already {row['status']}"
    if supervisor_alive(row):
        import signal

        run_dir = Path(row["run_dir"])
        (run_dir / "cancel").touch()
        # The signal wakes a supervisor at once; one still starting up reads the file.
        if (run_dir / "started.json").exists():
            os.kill(row["supervisor_pid"], signal.SIGTERM)
        return "stop requested: TERM now, KILL after the grace period"
    dispatch(lab)
    return "the supervisor had already ended"


def wait(lab: Lab, run_id: int, timeout_s: float, on_tick=None, poll_s: float = 0.1,
         dispatch_every_s: float = 1.0) -> dict:
    """Block until the run ends or ``timeout_s`` passes; returns its ledger row.

    Every ``poll_s`` it only looks for the run's status file (a stat); it dispatches the
    whole queue when that file appears and every ``dispatch_every_s`` besides. Why: a
    dispatch costs milliseconds, and several agents each waiting on an evaluation would
    otherwise spend a good part of a core dispatching ten times a second. Runs waiting
    for a slot lose nothing: an ending supervisor dispatches on its own.
    """
    end = time.monotonic() + timeout_s
    last_tick = 0.0
    last_dispatch = -dispatch_every_s
    status_file = lab.path("runs", run_id, "status.json")
    while True:
        if status_file.exists() or time.monotonic() - last_dispatch >= dispatch_every_s:
            dispatch(lab)
            last_dispatch = time.monotonic()
        row = get_row(lab, run_id)
        now = time.monotonic()
        if row["status"] in TERMINAL or now >= end:
            return row
        if on_tick and now - last_tick >= 1.0:
            on_tick(row)
            last_tick = now
        time.sleep(min(poll_s, max(end - now, 0)))


class Dispatcher:
    """A background thread that dispatches every ``interval_s`` (for a long-lived server)."""

    def __init__(self, lab: Lab, interval_s: float = 1.0):
        self.lab = lab
        self.interval_s = interval_s
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sotalab-run-dispatcher", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                dispatch(self.lab)
            except Exception:  # never let one bad row stop the queue
                log.exception("run dispatch failed")

    def start(self) -> "Dispatcher":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def start_dispatcher(lab: Lab, interval_s: float = 1.0) -> Dispatcher:
    """What a long-lived server runs after ``reconcile``: the launcher for fast starts
    and a thread that dispatches the queue every ``interval_s``."""
    enable_launcher(lab)
    return Dispatcher(lab, interval_s).start()
