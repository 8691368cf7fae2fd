"""Restart recovery: after a server (re)start, bring every active run up to date.

Still running (its supervisor is alive): reattach, i.e. keep tracking it. Ended while
the server was down: collect status, telemetry and exit code from the run directory.
Vanished (supervisor gone, no status): mark it lost, kill what it left, keep its log.
Cluster runs are asked of their cluster (Slurm, Ray) the same way: a job still held is
reattached, one that ended is collected from its status file or marked lost. Queued runs
are then dispatched as usual. A trial left ``evaluating`` by a server that
died mid-evaluation (no evaluation run of it still active) is reopened, so it can be
evaluated again.
"""

from __future__ import annotations

from .. import ledger
from ..home import Lab
from . import cluster_runs, queue


def reconcile(lab: Lab) -> dict[str, list[int]]:
    """Reconcile every run the ledger thinks is active; returns ids by what happened:
    reattached, collected, lost (runs) and reopened (trials)."""
    with queue._dispatch_lock(lab):
        report = queue.collect(lab)
        for outcome, ids in cluster_runs.advance(lab, force=True).items():  # jobs on Slurm or Ray
            report[outcome] += ids
    report["reopened"] = _reopen_interrupted_evaluations(lab)
    queue.dispatch(lab)
    return report


def _reopen_interrupted_evaluations(lab: Lab) -> list[int]:
    stuck = [r[0] for r in lab.db.execute(
        """SELECT id FROM trials t WHERE status = 'evaluating' AND NOT EXISTS (
               SELECT 1 FROM runs WHERE trial_id = t.id AND purpose = 'evaluation'
               AND status IN ('queued', 'running'))""").fetchall()]
    for trial_id in stuck:
        lab.db.execute("UPDATE trials SET status = 'open', updated_at = ? WHERE id = ? AND status = 'evaluating'",
                       [ledger.now(), trial_id])
    return stuck
