"""A local run's supervisor process, end to end.

    python -m sotalab.tools.runs.supervise <run_dir>

``supervisor.supervise`` runs the run and writes its final ``status.json``; then this
records the end in the ledger and dispatches the queue, so a finished run frees its slot
even when no server is running. The status file is on disk before the ledger is
touched, so a failure here loses nothing: ``reconcile`` reads the file. Cluster jobs run
``supervisor`` alone (the server collects their status), and nothing below the queue
imports it, which keeps the import graph free of cycles (queue -> launcher_client;
launcher -> supervise -> queue, supervisor).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..home import Lab
from . import queue, supervisor
from .records import record_end


def main(argv: list[str]) -> int:
    spec, status = supervisor.supervise(Path(argv[0]).resolve())
    # The queue dispatches with the server's slot count, not this machine's default.
    os.environ["SOTALAB_CPU_SLOTS"] = str(spec["cpu_slots"])
    lab = Lab.open(spec["home"])
    record_end(lab, spec["run_id"], status)
    queue.dispatch(lab)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
