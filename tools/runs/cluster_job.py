"""The payload of a Slurm or Ray job: settle what only the node knows, then supervise.

    python -m sotalab.tools.runs.cluster_job <run_dir>

The server writes the run's ``spec.json`` before it submits the job, but two things
are known only on the node the cluster picked: whether bubblewrap can build a sandbox
there (``sandbox: auto``), and which GPUs the cluster gave the job (Slurm's
``SLURM_JOB_GPUS``, else ``CUDA_VISIBLE_DEVICES`` as Slurm and Ray set it). They are
written into the spec, and then the supervisor runs exactly as on the local executor.
The supervisor leaves the ledger alone here (``record_in_ledger: false``): the server
collects ``status.json`` from the shared run directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import sandbox, supervisor
from .logcap import write_json_atomic


def assigned_gpus(environ: dict[str, str]) -> list[int]:
    """GPU indices the cluster gave this job ([] for none)."""
    for name in ("SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = environ.get(name, "").strip()
        if value and value != "NoDevFiles":
            return [int(part) for part in value.split(",") if part.strip().isdigit()]
    return []


def settle(spec: dict, environ: dict[str, str]) -> dict:
    """The spec with the node's sandbox and GPUs filled in."""
    if spec["sandbox"] == "auto":
        spec["sandbox"] = "bwrap" if sandbox.bwrap_works() else "process-group"
    gpu_ids = assigned_gpus(environ) if spec.get("gpus_wanted") else []
    spec["gpu_ids"] = gpu_ids
    spec["gpu_uuids"] = []
    if gpu_ids:
        from .telemetry import gpu_states

        spec["gpu_uuids"] = [g.uuid for g in gpu_states(gpu_ids)]
    spec["env"]["CUDA_VISIBLE_DEVICES"] = ",".join(spec["gpu_uuids"] or [str(i) for i in gpu_ids])
    spec["node"] = os.uname().nodename
    return spec


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0]).resolve()
    spec = settle(json.loads((run_dir / supervisor.SPEC).read_text()), dict(os.environ))
    write_json_atomic(run_dir / supervisor.SPEC, spec, durable=False)
    return supervisor.main([str(run_dir)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
