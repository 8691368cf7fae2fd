"""Restart recovery: after a server (re)start, bring every active run up to date.

Still running (its supervisor is alive): reattach, i.e. keep tracking it. Ended while
the server was down: collect status, telemetry and exit code from the run directory.
Vanished (supervisor gone, no status): mark it lost, kill what it left, keep its log.
Queued runs are then dispatched as usual.
"""

from __future__ import annotations

from ..home import Lab
from . import queue


def reconcile(lab: Lab) -> dict[str, list[int]]:
    """Reconcile every run the ledger thinks is active; returns the run ids by what
    happened to them: reattached, collected, lost."""
    with queue._dispatch_lock(lab):
        report = queue.collect(lab)
    queue.dispatch(lab)
    return report
