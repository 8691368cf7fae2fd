"""Cluster runs in the ledger: submit the job, follow it, cancel it, reconcile it.

A cluster run stays ``queued`` (reason: what the cluster says it waits for) until its
job runs, then ``running``; its end is the supervisor's ``status.json``, recorded as
for a local run. A job the cluster holds pending past the run's pending timeout is
withdrawn (``pending_timeout``), since a cluster, Ray above all, keeps a job it can
never place pending forever. A job that ended without a status (withdrawn by hand,
node failure, the cluster's own limit) is ``lost``, with the cluster's word for it.

The cluster is asked at most once per ``POLL_INTERVAL_S`` per lab, in one call per
executor and settings, whatever the number of runs; ``status.json`` is checked on
every dispatch, so an ended run is seen at once. After a server restart the same
poll reconciles: nothing of a cluster run lives in the server's memory.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path

from .. import ledger
from ..errors import InvalidInput, LabError
from ..execution import CLUSTER_EXECUTORS, Execution, RaySettings, SlurmSettings, resolve
from ..home import Lab
from .cluster import ClusterView, JobResources, executor, job_env
from .records import end_without_start, read_status, record_end

POLL_INTERVAL_S = 1.0
CANCEL = "cancel"  # the file the supervisor watches (supervisor.CANCEL)
_last_poll: dict[str, float] = {}
_poll_lock = threading.Lock()


def settings_of(name: str, snapshot: dict) -> SlurmSettings | RaySettings:
    return SlurmSettings.model_validate(snapshot) if name == "slurm" else RaySettings.model_validate(snapshot)


def check_request(req, settings: Execution) -> int:
    """Validate a cluster run's request, copy the settings into it; its GPU count."""
    if isinstance(req.gpus, list):
        raise InvalidInput("a cluster run asks for a number of GPUs, not particular ones",
                           hint="pass gpus as a count; the cluster chooses the GPUs")
    req.cluster = getattr(settings, req.executor).model_dump()
    if req.gpus == "auto":
        return 1 if executor(req.executor).view(settings_of(req.executor, req.cluster)).gpus else 0
    return int(req.gpus or 0)


def submit(lab: Lab, run_id: int, run_dir: Path, req) -> None:
    """Hand a queued run (its spec written) to the cluster; it stays queued."""
    ex = executor(req.executor)
    settings = settings_of(req.executor, req.cluster)
    resources = JobResources.of({"gpus": req.gpus, "memory_gb": req.memory_gb, "cpus": req.cpus,
                                 "wall_s": req.wall_s, "grace_s": req.grace_s},
                                getattr(settings, "cpus_per_run", 1))
    job = ex.submit(run_id, run_dir, resources, settings, job_env())
    lab.db.execute("UPDATE runs SET cluster_job = ?, reason = ? WHERE id = ? AND status = 'queued'",
                   [job, f"submitted to {req.executor} as job {job}", run_id])


def advance(lab: Lab, *, force: bool = False) -> dict[str, list[int]]:
    """Bring every active cluster run up to date: ends from status.json at once, the
    cluster's view of the rest at most once per POLL_INTERVAL_S (``force``: now).
    Returns run ids by what happened: collected (ended with a status), lost (the job
    ended without one), reattached (the cluster still holds the job)."""
    report: dict[str, list[int]] = {"collected": [], "lost": [], "reattached": []}
    rows = lab.db.query("SELECT id, executor, cluster_job, status, run_dir, created_at, budget, reason, resources "
                        "FROM runs WHERE status IN ('queued', 'running') AND cluster_job IS NOT NULL")
    open_rows = []
    for row in rows:
        status = read_status(row["run_dir"])
        if status is not None:
            _record_end(lab, row, status)
            report["collected"].append(row["id"])
        else:
            open_rows.append(row)
    if not open_rows or not _poll_due(lab, force):
        return report
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in open_rows:
        snapshot = json.loads((Path(row["run_dir"]) / "request.json").read_text()).get("cluster", {})
        groups.setdefault((row["executor"], ledger.dumps(snapshot)), []).append(row)
    for (name, snapshot), members in groups.items():
        settings = settings_of(name, json.loads(snapshot))
        states = executor(name).states([r["cluster_job"] for r in members], settings)
        if states is None:
            continue  # the cluster did not answer: change nothing
        for row in members:
            report[_follow(lab, row, states.get(row["cluster_job"]), settings)].append(row["id"])
    return report


def _poll_due(lab: Lab, force: bool) -> bool:
    with _poll_lock:
        now = time.monotonic()
        if not force and now - _last_poll.get(str(lab.home), -1e9) < POLL_INTERVAL_S:
            return False
        _last_poll[str(lab.home)] = now
        return True


def _follow(lab: Lab, row: dict, state, settings) -> str:
    """Act on what the cluster says of one run's job; what happened (advance's report)."""
    name, job = row["executor"], row["cluster_job"]
    if state is None or state.phase == "unknown":
        return "reattached"
    if state.phase == "pending":
        if row["status"] != "queued":
            return
        waited = time.time() - datetime.fromisoformat(row["created_at"]).timestamp()
        limit = ledger.loads(row["budget"], {}).get("pending_timeout_s", 3600)
        if waited > limit:
            # The cancel file first: should the cluster start the job anyway (Ray may
            # leave a stopped pending job pending, ray-project/ray#58353), its
            # supervisor finds it and never starts the run.
            (Path(row["run_dir"]) / CANCEL).touch()
            executor(name).cancel(job, False, settings)
            end_without_start(lab, row["id"], "failed", "pending_timeout",
                              f"{name} held job {job} {state.detail} for {waited:.0f} s, over the pending timeout of "
                              f"{limit:g} s; ask for fewer resources, another partition, or raise pending_timeout_s")
            return "collected"
        if row["reason"] != f"{name} job {job}: {state.detail}":
            lab.db.execute("UPDATE runs SET reason = ? WHERE id = ? AND status = 'queued'",
                           [f"{name} job {job}: {state.detail}", row["id"]])
        return "reattached"
    if state.phase == "running":
        if row["status"] == "queued":
            lab.db.execute("UPDATE runs SET status = 'running', reason = NULL, started_at = ?, resources = ? "
                           "WHERE id = ? AND status = 'queued'", [ledger.now(), _placement(row), row["id"]])
        return "reattached"
    # Ended. The supervisor writes its status before it exits, so a status now is the end.
    status = read_status(row["run_dir"])
    if status is not None:
        _record_end(lab, row, status)
        return "collected"
    driver_log = executor(name).driver_log(job, settings)
    if driver_log:
        (Path(row["run_dir"]) / "cluster.log").write_text(driver_log)
    lab.db.execute("UPDATE runs SET status = 'lost', outcome = 'lost', reason = ?, ended_at = ? "
                   "WHERE id = ? AND status IN ('queued', 'running')",
                   [f"{name} job {job} ended ({state.detail}) without the supervisor's final status; "
                    f"its log and {name}'s own output (cluster.log) are kept", ledger.now(), row["id"]])
    return "lost"


def _placement(row: dict, status: dict | None = None) -> str:
    """The run's resources with what the node settled: sandbox, node name, GPUs, and
    (from the final status) the layers that held."""
    try:
        spec = json.loads((Path(row["run_dir"]) / "spec.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        spec = {}
    resources = ledger.loads(row["resources"], {})
    resources.update(sandbox=spec.get("sandbox"), node=spec.get("node"), gpu_ids=spec.get("gpu_ids") or [])
    if status and status.get("layers"):
        resources["layers"] = status["layers"]
    return ledger.dumps(resources)


def _record_end(lab: Lab, row: dict, status: dict) -> None:
    if record_end(lab, row["id"], status):
        lab.db.execute("UPDATE runs SET resources = ? WHERE id = ?", [_placement(row, status), row["id"]])


def cancel(lab: Lab, row: dict) -> str:
    """Stop a cluster run: withdraw a pending job, or have the supervisor on the node
    stop a running one (TERM, grace, KILL), as on the local executor."""
    run_dir = Path(row["run_dir"])
    if row["status"] not in ("queued", "running"):
        return f"already {row['status']}"
    (run_dir / CANCEL).touch()  # a supervisor starting now reads it and never starts the run
    name, job = row["executor"], row["cluster_job"]
    settings = settings_of(name, json.loads((run_dir / "request.json").read_text()).get("cluster", {}))
    try:
        executor(name).cancel(job, row["status"] == "running", settings)
    except LabError:
        if row["status"] == "running":
            raise
    if row["status"] == "queued" and end_without_start(lab, row["id"], "cancelled", "cancelled",
                                                       f"cancelled before it started ({name} job {job} withdrawn)"):
        return "cancelled before it started"
    return "stop requested: the supervisor on the node stops the run (TERM now, KILL after the grace period)"


def views(lab: Lab) -> list[ClusterView]:
    """What each cluster this lab is set to use tells about its nodes, GPUs and queue."""
    wanted: dict[tuple[str, str], Execution] = {}
    ids = [None] + [r[0] for r in lab.db.execute("SELECT id FROM campaigns WHERE status = 'active'").fetchall()]
    for campaign_id in ids:
        settings = resolve(lab, campaign_id)
        if settings.executor in CLUSTER_EXECUTORS:
            own = getattr(settings, settings.executor)
            wanted.setdefault((settings.executor, ledger.dumps(own.model_dump())), own)
    result = []
    for (name, _), own in wanted.items():
        try:
            result.append(executor(name).view(own))
        except LabError as exc:
            result.append(ClusterView(executor=name, reachable=False, detail=str(exc)))
    return result
