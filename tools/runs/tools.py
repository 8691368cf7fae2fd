"""Run tools: start, watch, read and stop supervised runs; see the GPUs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from .. import ledger
from ..errors import InvalidInput, LabError
from ..home import Lab
from ..paging import DEFAULT_LIMIT, MAX_LIMIT, refuse_list_arguments, select_page
from ..registry import Progress, tool
from . import logcap, queue
from .environments import RunEnvironment, for_env_id
from .telemetry import latest_sample, read_series

MAX_LOG_BYTES = 48_000
MAX_GREP_MATCHES = 200


SEALED_PURPOSE = "finalize"  # runs of campaign_finalize, which see the held-out split

class RunBudget(BaseModel):
    wall_s: float = Field(3600, gt=0, le=7 * 24 * 3600, description="wall-time limit; then TERM, grace, KILL")
    grace_s: float = Field(10, ge=0, le=600, description="seconds between TERM and KILL")
    memory_gb: float | None = Field(None, gt=0, description="RAM limit for the whole process tree; exceeding it kills the run (outcome oom)")
    gpu_memory_gb: float | None = Field(None, gt=0, description="GPU memory limit for the run's processes (outcome gpu_oom)")
    artifact_mb: float | None = Field(None, gt=0, description="limit on files written to $SOTALAB_OUTPUT_DIR")
    disk_mb: float | None = Field(None, gt=0, description="limit on what the run writes to its worktree, outputs and /tmp together (outcome disk_exceeded); default 20480")
    pids: int = Field(1024, ge=8, le=65536, description="limit on the run's processes and threads together (outcome pids_exceeded)")
    cpu_s: float | None = Field(None, gt=0, description="CPU-time limit, summed over the run's processes (outcome cpu_exceeded): unlike wall time, other load does not decide it")
    pending_timeout_s: float = Field(3600, gt=0, description="how long the run may wait in the queue before it fails")


class RunStartIn(BaseModel):
    command: list[str] = Field(..., min_length=1, max_length=1000, description="argv, no shell")
    trial: int | None = Field(None, description="an open trial's worktree")
    cwd: str | None = Field(None, description="or a directory inside one")
    env: dict[str, str] = Field(default_factory=dict, description="extra variables")
    environment: str | None = Field(None, max_length=200, description="env id or 'server'")
    executor: Literal["local", "docker", "slurm", "ray"] | None = Field(None, description="default: the campaign's")
    cpus: int | None = Field(None, ge=1, le=512, description="slurm/ray")
    image: str | None = Field(None, description="docker")
    gpus: int | list[int] | Literal["auto"] = Field(0, description="a count, indices, or 'auto'")
    gpu_memory_gb: float | None = Field(None, gt=0, description="to share a GPU")
    budget: RunBudget = Field(default_factory=RunBudget)
    telemetry_hz: float = Field(1.0, ge=0.1, le=10)

    @field_validator("command")
    @classmethod
    def _argv(cls, v):
        if any("\x00" in a for a in v):
            raise ValueError("arguments may not contain NUL bytes")
        return v


class RunRef(BaseModel):
    run: int


RunStatus = Literal["queued", "running", "succeeded", "failed", "timeout", "cancelled", "lost"]
WAIT_S = 30  # run_wait's default and most timeout_s


class RunWaitIn(BaseModel):
    run: int | None = Field(None, description="omit to list")
    timeout_s: float = Field(WAIT_S, ge=0, le=WAIT_S, description="0: at once")
    status: RunStatus | None = None
    trial: int | None = None
    campaign: int | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


LOG_ONLY = ("lines", "pattern", "cursor", "max_bytes")  # what mode=metrics refuses


class RunLogsIn(RunRef):
    mode: Literal["tail", "grep", "cursor", "metrics"] = "tail"
    lines: int = Field(100, ge=1, le=2000)
    pattern: str | None = Field(None, max_length=500, description="a regex")
    cursor: int | None = Field(None, ge=0, description="0: the start")
    max_bytes: int = Field(16_000, ge=256, le=MAX_LOG_BYTES)


class RunInfo(BaseModel):
    id: int
    status: str = Field(description="queued, running, succeeded, failed, timeout, cancelled, lost")
    outcome: str | None = Field(description="why it ended: exited, timeout, cpu_exceeded, oom, gpu_oom, pids_exceeded, disk_exceeded, cancelled, artifact_exceeded, pending_timeout, start_failed, supervisor_error, lost")
    reason: str | None = Field(description="one line: what happened, or what a queued run waits for")
    exit_code: int | None
    executor: str
    sandbox: str | None = Field(description="bwrap, process-group or docker")
    layers: str | None = Field(None, description="what isolated and limited the run, e.g. 'userns+capdrop+seccomp+allowlist, cgroup1 memory/pids, disk polled'")
    interpreter: str | None = Field(None, description="the Python first on the run's PATH (its environment's, or the server's)")
    cpus: list[int] = Field(default_factory=list, description="CPUs the run was pinned to; thread variables (OMP_NUM_THREADS, ...) match their count")
    command: list[str]
    cwd: str
    trial_id: int | None
    campaign_id: int | None
    purpose: str
    seed: int | None
    gpu_ids: list[int]
    budget: dict
    telemetry: dict | None = Field(description="summary: peak RSS, CPU, GPU memory/utilisation, energy, wall and GPU seconds")
    latest: dict | None = Field(None, description="while it runs: the newest telemetry sample (t, cpu_pct, rss_mb, nproc, GPU fields)")
    created_at: str
    started_at: str | None
    ended_at: str | None


class RunLogs(BaseModel):
    run: int
    text: str
    start: int = Field(description="stream offset of the first byte returned")
    next_cursor: int | None = Field(description="pass as cursor to read on; null when the run has ended and all is read")
    total_bytes: int = Field(description="bytes the run has written")
    dropped_bytes: int = Field(description="bytes the log cap dropped from the middle")
    matches: int | None = None
    truncated: bool


class RunMetrics(BaseModel):
    run: int
    status: str
    metrics: dict | None = Field(description="metrics the evaluation path parsed from this run, if it was an evaluation")
    telemetry: dict | None
    series: dict = Field(description="telemetry series thinned to at most 200 points: fields and points")


class RunPage(BaseModel):
    runs: list[RunInfo]
    total: int
    next_cursor: str | None


def sealed(row: dict) -> bool:
    """A run of a held-out final evaluation: what it did never reaches an agent. Its
    predict step sees the held-out inputs, and its exit code, reason, time and memory are
    channels it controls (a sleep of so many ms per input value), as its log is."""
    return row["purpose"] == SEALED_PURPOSE


def run_info(row: dict, live: bool = False) -> RunInfo:
    """The run's record; ``live`` adds the newest telemetry sample of a running run.
    A sealed run shows its status and nothing it could have shaped."""
    if sealed(row):
        row = {**row, "reason": None, "exit_code": None, "telemetry": None, "outcome": None}
        live = False
    resources = ledger.loads(row["resources"], {})
    latest = latest_sample(Path(row["run_dir"])) if live and row["status"] == "running" and row["run_dir"] else None
    argv = ledger.loads(row["argv"], [])
    shown = [a if len(a) <= 500 else a[:500] + "..." for a in argv[:50]]
    return RunInfo(
        id=row["id"], status=row["status"], outcome=row["outcome"], reason=row["reason"],
        exit_code=row["exit_code"], executor=row["executor"], sandbox=resources.get("sandbox"),
        layers=(resources.get("layers") or {}).get("describe"), interpreter=resources.get("interpreter"),
        cpus=resources.get("cpus") or [], latest=latest,
        command=shown, cwd=row["cwd"], trial_id=row["trial_id"], campaign_id=row["campaign_id"],
        purpose=row["purpose"], seed=row["seed"], gpu_ids=resources.get("gpu_ids") or [],
        budget=ledger.loads(row["budget"], {}), telemetry=ledger.loads(row["telemetry"], None),
        created_at=row["created_at"], started_at=row["started_at"], ended_at=row["ended_at"])


def _confined_cwd(lab: Lab, args: RunStartIn):
    """The run's working directory and its trial: the trial's own worktree or a directory
    inside it, for an open trial that is not the baseline. Never audit scratch, another
    trial's worktree, a frozen one, or anything else the lab holds."""
    from .. import trials, workspaces

    root = lab.path("workspaces").resolve()
    cwd = None
    if args.cwd:
        cwd = Path(args.cwd)
        cwd = (root / cwd if not cwd.is_absolute() else cwd).resolve()
    if args.trial is None:
        if cwd is None:
            raise InvalidInput("give a trial or a cwd", hint="runs execute in an open trial's worktree: pass trial=")
        trial_id = _trial_of(root, cwd)
        if trial_id is None:
            raise InvalidInput(f"cwd {args.cwd} is not inside an open trial's worktree",
                               hint="pass trial= (runs may only work in an open trial's worktree, "
                                    "never in the campaign's clone, audit scratch or elsewhere)")
    else:
        trial_id = args.trial
    trial = trials.load(lab, trial_id)
    if trial.status != "open":
        # Its files are frozen: a run could change them after the score (or the audit)
        # that rests on them, e.g. drop in a module the held-out evaluation would import.
        raise LabError(f"trial {trial.id} is {trial.status}; its files are frozen",
                       hint="create a child trial with trial_create and run there")
    if trial.kind == "baseline":
        raise LabError(f"trial {trial.id} is the campaign's baseline; runs may not change its files",
                       hint="create a child trial with trial_create (kind=param or code) and run there")
    worktree = workspaces.worktree_path(lab, trial.campaign_id, trial.id).resolve()
    if cwd is None:
        return str(workspaces.ensure_worktree(lab, trial.id)), trial
    if cwd != worktree and worktree not in cwd.parents:
        raise InvalidInput(f"cwd {args.cwd} is outside trial {trial.id}'s worktree ({worktree})",
                           hint="omit cwd to run at the worktree's top, or give a directory inside it")
    if ".git" in cwd.relative_to(worktree).parts:
        # git config there is executed by the server (core.fsmonitor)
        raise InvalidInput(f"cwd {args.cwd} is inside git metadata", hint="run in the worktree itself")
    if not cwd.is_dir():
        raise InvalidInput(f"cwd {args.cwd} is not a directory")
    return str(cwd), trial


def _trial_of(root: Path, cwd: Path) -> int | None:
    """The trial whose worktree holds ``cwd`` (workspaces/<campaign>/trials/<trial>/...)."""
    if root not in cwd.parents:
        return None
    parts = cwd.relative_to(root).parts
    if len(parts) >= 3 and parts[1] == "trials" and parts[0].isdigit() and parts[2].isdigit():
        return int(parts[2])
    return None


def _run_environment(lab: Lab, choice: str | None, campaign_id: int) -> tuple[RunEnvironment, str | None]:
    """The environment the run asked for, the campaign's, or the server's Python; and its id."""
    if choice == "server":
        return for_env_id(lab, None), None
    if choice is None:
        from .. import campaigns

        choice = campaigns.load(lab, campaign_id).env_id
    return for_env_id(lab, choice), choice


@tool(open_world=False)
def run_start(lab: Lab, args: RunStartIn) -> RunInfo:
    """Start a sandboxed, budgeted run in an open trial's worktree; follow it with run_wait.

    Start a supervised run and return at once with its id (status queued or running).
    It works in an open trial's own worktree (``trial``, or ``cwd`` inside one), with the
    trial's campaign environment, or the one named (``environment``: an env_get id, or
    'server' for the server's own Python, which is also the default of a campaign without
    one). ``command`` is an argv, not a shell line: use ['sh', '-c', '...'] for one. ``env``
    adds variables; the server's own environment is never passed. ``executor`` defaults
    to the campaign's (execution_set), else local; ``cpus`` is what a Slurm or Ray run asks
    of the cluster, ``image`` the Docker image (default sotalab-base:bookworm). ``gpus`` is
    0 (CPU), a count, explicit indices, or 'auto' (one if any); ``gpu_memory_gb`` is what
    the run needs, so runs can share a GPU.

    The sandbox denies by default: uid 65534 in a user namespace, no
    capabilities, a seccomp filter, no network, only system directories, the interpreter
    and the worktree (writable) plus $SOTALAB_OUTPUT_DIR mounted, nothing of any home;
    or a locked-down Docker container. Budgets: wall and CPU time, memory, processes,
    disk, GPU memory; a capped log and telemetry. Follow it with run_wait (timeout_s=0
    reads its status at once) and run_logs; stop it with run_cancel."""
    cwd, trial = _confined_cwd(lab, args)
    environment, env_id = _run_environment(lab, args.environment, trial.campaign_id)
    settings = dict(environment.settings)
    if args.executor == "docker" and "image" not in settings:
        settings.pop("path_prefix", None)  # the image's own interpreter
    b = args.budget
    req = queue.RunRequest(
        argv=args.command, cwd=cwd, env={**environment.env, **args.env}, cpus=args.cpus,
        executor=settings.pop("executor", args.executor), image=settings.pop("image", args.image),
        gpus=args.gpus, gpu_memory_gb=args.gpu_memory_gb or b.gpu_memory_gb,
        wall_s=b.wall_s, grace_s=b.grace_s, memory_gb=b.memory_gb, artifact_mb=b.artifact_mb,
        disk_mb=b.disk_mb, cpu_s=b.cpu_s, pids_max=b.pids, pending_timeout_s=b.pending_timeout_s,
        telemetry_interval_s=1.0 / args.telemetry_hz, trial_id=trial.id, campaign_id=trial.campaign_id,
        env_id=env_id, **settings)
    try:
        run_id = queue.submit(lab, req)
    except ValueError as exc:  # a bad environment variable name
        raise InvalidInput(str(exc)) from None
    return run_info(queue.get_row(lab, run_id))


@tool(read_only=True)
def run_wait(lab: Lab, args: RunWaitIn, progress: Progress) -> RunInfo | RunPage:
    """A run's status after waiting up to timeout_s for it to end; without `run`, runs.

    With `run`: wait up to timeout_s (at most 30) for it to end, sending progress while
    it waits (its last log line and current CPU/memory); returns its status either way:
    outcome and reason, exit code, placement, sandbox layers, budget, telemetry summary,
    and while it runs its newest telemetry sample (`latest`). timeout_s=0 reads the
    status without waiting. Call again to keep waiting; list filters are refused.

    Without `run`: the runs, newest first, filtered by status, trial or campaign, paged
    with `cursor`; it never waits, so a timeout_s other than the default is refused."""
    if args.run is None:
        if args.timeout_s != WAIT_S:
            raise InvalidInput("timeout_s waits for one run; without `run` run_wait lists runs at once",
                               hint="give `run` to wait for it, or drop timeout_s to list")
        queue.dispatch(lab)
        rows, total, cursor = select_page(lab.db, "runs", {"status": args.status, "trial_id": args.trial,
                                                           "campaign_id": args.campaign},
                                          "id DESC", args.limit, args.cursor)
        return RunPage(runs=[run_info(r) for r in rows], total=total, next_cursor=cursor)
    refuse_list_arguments(args, "run", modes=("timeout_s",))
    started = [None]

    def tick(row):
        import time

        started[0] = started[0] or time.monotonic()
        progress(time.monotonic() - started[0], args.timeout_s, _progress_line(row))

    return run_info(queue.wait(lab, args.run, args.timeout_s, on_tick=tick), live=True)


def _progress_line(row: dict) -> str:
    """What a waiting caller sees: the status, the newest sample and the last log line
    (clipped, quoted: the log is the run's own text)."""
    if sealed(row):
        return f"run {row['id']} {row['status']} (held-out: sealed)"
    line = f"run {row['id']} {row['status']}" + (f": {row['reason']}" if row["reason"] else "")
    if row["status"] != "running" or not row["run_dir"]:
        return line
    sample = latest_sample(Path(row["run_dir"]))
    if sample:
        line += f"; t={sample.get('t')}s cpu={sample.get('cpu_pct')}% rss={sample.get('rss_mb')}MB"
    _, tail = logcap.view(Path(row["run_dir"])).tail_bytes(400)
    last = tail.decode("utf-8", "replace").rstrip("\n").rsplit("\n", 1)[-1][-200:]
    return line + (f"; last log line: {last!r}" if last else "")


@tool(read_only=True)
def run_logs(lab: Lab, args: RunLogsIn) -> RunLogs | RunMetrics:
    """A run's log (tail, grep, cursor) or, with mode=metrics, its metrics and telemetry.

    A run's log, bounded: `tail` (last lines), `grep` (lines matching a regex, with
    line numbers), or `cursor` (read on from a stream offset; next_cursor continues).
    The log keeps the head and the tail of long output and says how much was dropped.

    `metrics`: the run's parsed metrics (for evaluation runs), telemetry summary, and
    telemetry series (CPU %, RSS, I/O; per GPU: utilisation, memory, the run's own GPU
    memory, power, temperature, SM clock, throttle reasons) thinned to 200 points."""
    if args.mode == "metrics":
        return _run_metrics(lab, args)
    row = queue.get_row(lab, args.run)
    if sealed(row):  # held-out outputs never reach an agent, not even as log text
        raise LabError(f"run {args.run} is part of a held-out final evaluation: its log is sealed",
                       hint="campaign_get shows the finalization's result")
    run_dir = Path(row["run_dir"] or lab.path("runs", args.run))
    snap = logcap.view(run_dir)
    ended = row["status"] in queue.TERMINAL
    if args.mode == "cursor":
        start, data = snap.read(args.cursor or 0, args.max_bytes)
        end = start + len(data)
        more = end < snap.total or not ended
        return RunLogs(run=args.run, text=data.decode("utf-8", "replace"), start=start,
                       next_cursor=end if more else None, total_bytes=snap.total,
                       dropped_bytes=snap.dropped, truncated=end < snap.total)
    if args.mode == "tail":
        start, data = snap.tail_bytes(args.max_bytes)
        lines = data.decode("utf-8", "replace").splitlines(keepends=True)
        cut = len(lines) > args.lines or start > 0
        text = "".join(lines[-args.lines:])
        return RunLogs(run=args.run, text=text, start=snap.total - len(text.encode()),
                       next_cursor=None if ended else snap.total, total_bytes=snap.total,
                       dropped_bytes=snap.dropped, truncated=cut)
    if not args.pattern:
        raise InvalidInput("grep needs a pattern")
    try:
        re.compile(args.pattern)
    except re.error as exc:
        raise InvalidInput(f"pattern does not compile: {exc}") from None
    found, matches = _grep(args.pattern, logcap.read_text(run_dir))
    kept, size = [], 0
    for number, line in found:
        entry = f"{number}: {line}\n"
        if len(kept) >= MAX_GREP_MATCHES or size + len(entry) > args.max_bytes:
            break
        kept.append(entry)
        size += len(entry)
    return RunLogs(run=args.run, text="".join(kept), start=0, next_cursor=None, total_bytes=snap.total,
                   dropped_bytes=snap.dropped, matches=matches, truncated=len(kept) < matches)


GREP_TIMEOUT_S = 10.0
# Runs in a child process: Python's re cannot be interrupted, and a pattern that
# backtracks catastrophically would otherwise hold the whole server.
_GREP_CHILD = """
import json, re, sys
rx = re.compile(sys.argv[1])
found, matches = [], 0
for number, line in enumerate(sys.stdin.read().splitlines(), start=1):
    if rx.search(line):
        matches += 1
        if len(found) <= int(sys.argv[2]):
            found.append((number, line[:1000]))
json.dump([found, matches], sys.stdout)
"""


def _grep(pattern: str, text: str) -> tuple[list[tuple[int, str]], int]:
    """Lines of ``text`` matching ``pattern`` (number, line clipped), at most a page's
    worth, and how many matched in all."""
    import json
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", _GREP_CHILD, pattern, str(MAX_GREP_MATCHES)], input=text,
                              capture_output=True, text=True, timeout=GREP_TIMEOUT_S, errors="replace")
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"pattern {pattern[:80]!r} took longer than {GREP_TIMEOUT_S:g} s on this log",
                           hint="simplify it (nested repeats like (a+)+ backtrack without end), or use mode=tail") from None
    found, matches = json.loads(done.stdout)
    return [tuple(item) for item in found], matches


def _run_metrics(lab: Lab, args: RunLogsIn) -> RunMetrics:
    """run_logs' mode=metrics: the parsed metrics, telemetry summary and series."""
    given = sorted(set(LOG_ONLY) & args.model_fields_set)
    if given:
        raise InvalidInput(f"mode=metrics takes no {', '.join(given)}: those read the log",
                           hint="drop them, or use mode=tail, grep or cursor")
    queue.dispatch(lab)
    row = queue.get_row(lab, args.run)
    if sealed(row):
        raise LabError(f"run {args.run} is part of a held-out final evaluation: its metrics and telemetry are sealed",
                       hint="campaign_get shows the finalization's result")
    return RunMetrics(run=args.run, status=row["status"], metrics=ledger.loads(row["metrics"], None),
                      telemetry=ledger.loads(row["telemetry"], None),
                      series=read_series(Path(row["run_dir"] or lab.path("runs", args.run))))


@tool(destructive=True, idempotent=True)
def run_cancel(lab: Lab, args: RunRef) -> RunInfo:
    """Stop a run: TERM, then after its grace period KILL of all it started.

    Stop a run: a queued one is cancelled at once; a running one gets TERM, then
    KILL of everything it started after its grace period (status cancelled). Use
    run_wait to see it end."""
    queue.cancel(lab, args.run)
    return run_info(queue.get_row(lab, args.run))
