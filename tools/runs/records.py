"""A run's row in the ledger: read it, and write how it ended.

Shared by the local queue and the cluster executors, so a run's end is recorded the
same way whoever started it. ``status.json`` is the supervisor's final word; the
ledger takes it once (a second recording is a no-op).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import ledger
from ..errors import NotFound
from ..home import Lab

TERMINAL = ("succeeded", "failed", "timeout", "cancelled", "lost")


def get_row(lab: Lab, run_id: int) -> dict:
    rows = list(lab.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise NotFound(f"no run with id {run_id}", hint="list runs with run_wait")
    return rows[0]


def read_status(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / "status.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def started(run_dir: str | Path) -> dict:
    try:
        return json.loads((Path(run_dir) / "started.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def record_end(lab: Lab, run_id: int, status: dict) -> bool:
    """Write a supervisor's final status into the ledger; False if already recorded.
    A cluster run may still be ``queued`` here: its job can start and end between
    two polls of the cluster."""
    pid = started(lab.path("runs", run_id)).get("pid")
    cur = lab.db.execute(
        """UPDATE runs SET status = ?, outcome = ?, reason = ?, exit_code = ?, ended_at = ?,
               started_at = COALESCE(started_at, ?), telemetry = ?, pid = COALESCE(pid, ?)
           WHERE id = ? AND status IN ('queued', 'running')""",
        [status["status"], status["outcome"], status["reason"], status["exit_code"], status["ended_at"],
         status.get("started_at"), ledger.dumps(status.get("telemetry") or {}), pid, run_id])
    return cur.rowcount > 0


def end_without_start(lab: Lab, run_id: int, status: str, outcome: str, reason: str) -> bool:
    """End a run that never started (cancelled or failed while queued)."""
    cur = lab.db.execute(
        "UPDATE runs SET status = ?, outcome = ?, reason = ?, ended_at = ? WHERE id = ? AND status = 'queued'",
        [status, outcome, reason, ledger.now(), run_id])
    return cur.rowcount > 0
