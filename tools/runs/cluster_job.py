"""The payload of a Slurm or Ray job: settle what only the node knows, then supervise.

    python -m sotalab.tools.runs.cluster_job <run_dir>

The server writes the run's ``spec.json`` before it submits the job, but two things
are known only on the node the cluster picked: whether bubblewrap can build a sandbox
there (``sandbox: auto``), and which GPUs the cluster gave the job (Slurm's
``SLURM_JOB_GPUS``, else ``CUDA_VISIBLE_DEVICES`` as Slurm and Ray set it). They are
written into the spec, and then the supervisor runs exactly as on the local executor.
The supervisor leaves the ledger alone here (``record_in_ledger: false``): the server
collects ``status.json`` from the shared run directory.

A node whose sandbox would lack a layer (no working bubblewrap, no pids limit) refuses
the run, as the local executor does, unless the server allowed the weaker sandbox
(``sotalab serve --allow-weak-sandbox`` / ``SOTALAB_ALLOW_WEAK_SANDBOX=1``, carried in
the spec as ``weak_sandbox_allowed``): the run ends ``failed`` (``start_failed``)
with what is missing on which node, and never starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import sandbox, supervisor
from .logcap import CappedLog, write_json_atomic


def assigned_gpus(environ: dict[str, str]) -> list[int]:
    """GPU indices the cluster gave this job ([] for none)."""
    for name in ("SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = environ.get(name, "").strip()
        if value and value != "NoDevFiles":
            return [int(part) for part in value.split(",") if part.strip().isdigit()]
    return []


def settle(spec: dict, environ: dict[str, str]) -> dict:
    """The spec with the node's sandbox and GPUs filled in."""
    spec["sandbox_requested"] = spec["sandbox"]
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


def refusal(spec: dict) -> str | None:
    """Why this node must not start the run (a settled spec), or None: the same rule as
    the local executor's (queue._check_sandbox_strength). A request for the process
    group alone is itself the explicit choice (library callers only)."""
    if spec.get("sandbox_requested") == "process-group" or spec.get("weak_sandbox_allowed"):
        return None
    node = spec.get("node") or os.uname().nodename
    if spec.get("sandbox_requested") == "bwrap" and not sandbox.bwrap_works():
        return f"bubblewrap was asked for but cannot build a sandbox on node {node}: {sandbox.bwrap_problem()}"
    missing = sandbox.layers_for("bwrap")["missing"]  # what the full sandbox lacks here, and why
    if not missing:
        return None
    return (f"node {node} cannot sandbox the run fully: " + "; ".join(missing) + ". Install bubblewrap on the "
            f"cluster's nodes (lab_status lists what a sandbox needs), or allow the weaker sandbox explicitly on "
            f"the server: `sotalab serve --allow-weak-sandbox` or {sandbox.WEAK_ENV}=1 (docs/runs.md says what it "
            f"gives up)")


def refuse(run_dir: Path, spec: dict, reason: str) -> None:
    """End the run before it starts: the status the server collects, and the reason in its log."""
    log = CappedLog(run_dir, spec["log_cap_bytes"])
    log.write(f"sotalab: {reason}\n".encode())
    log.close()
    now = supervisor.stamp()
    write_json_atomic(run_dir / supervisor.STATUS, {
        "status": "failed", "outcome": "start_failed", "reason": reason, "exit_code": None,
        "started_at": now, "ended_at": now, "telemetry": {}, "layers": sandbox.layers_for(spec["sandbox"]),
        "log_bytes": log.total, "log_dropped": 0})


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0]).resolve()
    spec = settle(json.loads((run_dir / supervisor.SPEC).read_text()), dict(os.environ))
    write_json_atomic(run_dir / supervisor.SPEC, spec, durable=False)
    reason = refusal(spec)
    if reason:
        print(f"sotalab: {reason}", file=sys.stderr)
        refuse(run_dir, spec, reason)
        return 1
    return supervisor.main([str(run_dir)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
