"""Long work as start-and-poll: a job is one tool call run in the background.

Why: every MCP host cuts a tool call off after a fixed time (Codex after
``tool_timeout_sec`` even while progress flows), and an evaluation, an audit or an
environment build can take hours. A tool declared ``@tool(job=True)`` therefore answers
over MCP at once with a job handle (``start``); ``job_wait`` follows it for at most
``MAX_WAIT_S`` per call, relaying the job's own progress messages, and hands back the
result or the error when it ends. Called from Python (``invoke``, ``sotalab call``) the
same tool still runs to the end, so tests and scripts keep their plain results.

A job runs in a thread of the server that started it; its ledger row (status, progress,
result or error, and ``owner``: the server process) is the record every server reads. A
job whose server stopped before it ended is reported ``lost``, never left running.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Literal

import psutil
from pydantic import BaseModel, Field

from . import ledger
from .errors import InvalidInput, LabError, NotFound
from .home import Lab
from .invoke import LEDGER_INT, encode_arguments, find_tool, invoke, parse_arguments
from .paging import DEFAULT_LIMIT, MAX_LIMIT, refuse_list_arguments, select_page
from .registry import Progress, tool

JobStatus = Literal["running", "succeeded", "failed", "lost"]

MAX_WAIT_S = 30  # one job_wait call: well inside every host's tool timeout (Codex: 60 s by default)
WAIT_S = 20  # job_wait's default timeout_s
SETTLE_S = 1.0  # a start waits this long, so quick work (a cache hit) answers in one call
POLL_S = 0.5  # how often a wait looks at a job another server runs
PROGRESS_WRITE_S = 0.5  # progress is written to the ledger at most this often

_finished: dict[int, threading.Event] = {}  # jobs this process runs, set when each ends


class JobWaitIn(BaseModel):
    job: int | None = Field(None, description="omit to list")
    timeout_s: float = Field(WAIT_S, ge=0, le=MAX_WAIT_S,
                             description="0: at once")
    status: JobStatus | None = None
    tool: str | None = Field(None, max_length=100)
    campaign: int | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class Job(BaseModel):
    """A job handle: what it runs, how far it got, and its result or error once it ended."""

    job: int
    tool: str
    status: JobStatus
    progress: float | None
    total: float | None
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    created_at: str
    ended_at: str | None
    next: str | None = Field(description="the call that follows this job while it runs")


class JobSummary(BaseModel):
    job: int
    tool: str
    status: JobStatus
    campaign_id: int | None
    message: str | None
    error: str | None
    created_at: str
    ended_at: str | None


class JobPage(BaseModel):
    jobs: list[JobSummary]
    total: int
    next_cursor: str | None


def _this_process() -> str:
    """This server's identity: pid plus start time, so a reused pid never passes for it."""
    return f"{os.getpid()}:{psutil.Process().create_time():.3f}"


def _alive(owner: str) -> bool:
    pid, _, started = owner.partition(":")
    try:
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except (psutil.Error, ValueError):
        return False


def _row(lab: Lab, job_id: int) -> dict:
    rows = list(lab.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    if not rows:
        raise NotFound(f"no job with id {job_id}", hint="list jobs with job_wait")
    row = rows[0]
    if row["status"] == "running" and job_id not in _finished and not _alive(row["owner"]):
        _end(lab, job_id, "lost", error="the server running this job stopped before it ended; "
                                        f"call {row['tool']} again to start it anew")
        row = next(iter(lab.db.query("SELECT * FROM jobs WHERE id = ?", [job_id])))
    return row


def load(lab: Lab, job_id: int) -> Job:
    row = _row(lab, job_id)
    running = row["status"] == "running"
    return Job(job=row["id"], tool=row["tool"], status=row["status"], progress=row["progress"],
               total=row["total"], message=row["message"], result=ledger.loads(row["result"]),
               error=row["error"], created_at=row["created_at"], ended_at=row["ended_at"],
               next=f"job_wait(job={row['id']})" if running else None)


def _end(lab: Lab, job_id: int, status: JobStatus, result: dict | None = None, error: str | None = None) -> None:
    stamp = ledger.now()
    lab.db.execute("UPDATE jobs SET status = ?, result = ?, error = ?, updated_at = ?, ended_at = ? "
                   "WHERE id = ? AND status = 'running'",
                   [status, None if result is None else json.dumps(result, ensure_ascii=False), error,
                    stamp, stamp, job_id])
    lab.db.conn.commit()


def _recorder(lab: Lab, job_id: int) -> Progress:
    """The job's progress sink: every new message, and otherwise the latest count at most
    every PROGRESS_WRITE_S (a tight loop reporting counts must not flood the ledger)."""
    last_write, last_message = 0.0, None

    def record(done: float, total: float | None = None, message: str | None = None) -> None:
        nonlocal last_write, last_message
        now = time.monotonic()
        if message == last_message and now - last_write < PROGRESS_WRITE_S:
            return
        last_write, last_message = now, message
        lab.db.execute("UPDATE jobs SET progress = ?, total = ?, message = ?, updated_at = ? WHERE id = ?",
                       [done, total, message, ledger.now(), job_id])
        lab.db.conn.commit()

    return record


def _run(lab: Lab, job_id: int, name: str, arguments: dict, finished: threading.Event) -> None:
    try:
        result = invoke(lab, name, arguments, _recorder(lab, job_id))
        _end(lab, job_id, "succeeded", result=result)
    except LabError as exc:  # invoke turns every failure, bugs included, into a LabError
        _end(lab, job_id, "failed", error=str(exc))
    finally:  # whatever else stopped the thread, the job must not read as running forever
        _end(lab, job_id, "failed", error=f"{name} stopped without a result; call it again")
        finished.set()
        _finished.pop(job_id, None)


def _campaign_of(lab: Lab, arguments: dict) -> int | None:
    """The campaign a call works on, named directly or through its trial, so a campaign's
    jobs can be listed (a role resuming work finds the evaluation still running)."""
    campaign, trial = arguments.get("campaign"), arguments.get("trial")
    if isinstance(campaign, int) and campaign in LEDGER_INT:
        return campaign
    if isinstance(trial, int) and trial in LEDGER_INT:
        rows = list(lab.db.query("SELECT campaign_id FROM trials WHERE id = ?", [trial]))
        return rows[0]["campaign_id"] if rows else None
    return None


def start(lab: Lab, name: str, arguments: dict[str, Any] | None, settle_s: float = SETTLE_S) -> Job:
    """Start tool ``name`` as a job and return its handle, after at most ``settle_s``.

    The arguments are checked first, so a bad call fails here and starts nothing.
    """
    spec = find_tool(name)
    arguments = arguments or {}
    encoded = encode_arguments(name, arguments)
    parse_arguments(spec, arguments)
    stamp = ledger.now()
    job_id = lab.db["jobs"].insert({
        "tool": name, "arguments": encoded, "status": "running", "owner": _this_process(),
        "campaign_id": _campaign_of(lab, arguments), "created_at": stamp, "updated_at": stamp}).last_pk
    finished = _finished[job_id] = threading.Event()
    threading.Thread(target=_run, args=(lab, job_id, name, arguments, finished),
                     name=f"sotalab-job-{job_id}", daemon=True).start()
    finished.wait(settle_s)
    return load(lab, job_id)


@tool(read_only=True)
def job_wait(lab: Lab, args: JobWaitIn, progress: Progress) -> Job | JobPage:
    """A job's result after waiting up to timeout_s for it to end; without `job`, jobs.

    With `job`: follow a job started by a long tool (env_build, repo_clone, paper_fetch, trial_evaluate, audits, finalize): wait up to timeout_s (at most 30) for it to end, relaying its progress, and return its status, with the tool's result or error once it ended. Call it again while status is running; timeout_s=0 only reads the status. List filters given with `job` are refused.

    Without `job`: the jobs, newest first, filtered by status, tool or campaign, paged with `cursor`; it never waits, so a timeout_s other than the default is refused."""
    if args.job is None:
        if args.timeout_s != WAIT_S:
            raise InvalidInput("timeout_s waits for one job; without `job` job_wait lists jobs at once",
                               hint="give `job` to wait for it, or drop timeout_s to list")
        return _list(lab, args)
    refuse_list_arguments(args, "job", modes=("timeout_s",))
    deadline = time.monotonic() + args.timeout_s
    reported = None
    while True:
        job = load(lab, args.job)
        if job.progress is not None and (job.progress, job.total, job.message) != reported:
            reported = (job.progress, job.total, job.message)
            progress(job.progress, job.total, job.message)
        remaining = deadline - time.monotonic()
        if job.status != "running" or remaining <= 0:
            return job
        finished = _finished.get(args.job)
        if finished is not None:
            finished.wait(min(POLL_S, remaining))
        else:
            time.sleep(min(POLL_S, remaining))


def _list(lab: Lab, args: JobWaitIn) -> JobPage:
    rows, total, cursor = select_page(lab.db, "jobs", {"status": args.status, "tool": args.tool,
                                                       "campaign_id": args.campaign},
                                      "id DESC", args.limit, args.cursor,
                                      columns="id, tool, status, owner, campaign_id, message, error, "
                                              "created_at, ended_at")
    jobs = []
    for row in rows:
        if row["status"] == "running":
            row = _row(lab, row["id"])  # a job of a server that stopped reads as lost
        jobs.append(JobSummary(job=row["id"], tool=row["tool"], status=row["status"],
                               campaign_id=row["campaign_id"], message=row["message"], error=row["error"],
                               created_at=row["created_at"], ended_at=row["ended_at"]))
    return JobPage(jobs=jobs, total=total, next_cursor=cursor)
