"""What the queue needs from a cluster executor (Slurm, Ray), in one place.

A cluster run is submitted as one job whose payload is sotalab's own supervisor
(``cluster_job``), so the sandbox, telemetry, log cap and budgets are the same as on
the local executor; the cluster only decides where and when. The queue keeps the run
``queued`` while the cluster holds the job pending, ``running`` once it runs, and takes
the end from the supervisor's ``status.json`` in the run directory (shared storage).
The cluster's own view of the job only says what happened to a job that ended without
one (cancelled before it started, node failure, the cluster's own time limit).
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

JobPhase = Literal["pending", "running", "ended", "unknown"]
# How long past the run's own wall time and grace the cluster's limit lies: the
# supervisor, not the cluster, must be the one that ends a run, so its status is written.
CLUSTER_LIMIT_MARGIN_S = 120.0
# Variables a cluster job (the supervisor) is given: the run builds its own allowlisted
# environment from these, and the server's tokens never reach a node.
JOB_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "CUDA_DEVICE_ORDER")


@dataclass
class JobState:
    phase: JobPhase
    detail: str = ""  # the cluster's word for it: "PENDING (Resources)", "NODE_FAIL", ...


class NodeView(BaseModel):
    name: str
    state: str
    cpus: int | None = None
    memory_mb: int | None = None
    gpus: int = 0


class ClusterView(BaseModel):
    """What lab_status shows of a cluster the lab is set to use."""

    executor: str
    reachable: bool
    detail: str = Field(description="node count and partition or address; when unreachable, why")
    nodes: list[NodeView] = Field(default_factory=list)
    pending: int = Field(0, description="jobs the cluster holds pending (all users')")
    running: int = 0

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)


@dataclass
class JobResources:
    """What a run asks of the cluster, from its request and budget."""

    cpus: int
    gpus: int
    memory_mb: int | None
    time_limit_s: float

    @classmethod
    def of(cls, request: dict, default_cpus: int) -> "JobResources":
        gpus = request.get("gpus") or 0
        memory_gb = request.get("memory_gb")
        return cls(cpus=request.get("cpus") or default_cpus, gpus=len(gpus) if isinstance(gpus, list) else int(gpus),
                   # the supervisor itself and its telemetry need a little besides the run
                   memory_mb=math.ceil(memory_gb * 1024 + 256) if memory_gb else None,
                   time_limit_s=request["wall_s"] + request["grace_s"] + CLUSTER_LIMIT_MARGIN_S)


class ClusterExecutor(Protocol):
    name: str

    def submit(self, run_id: int, run_dir: Path, resources: JobResources, settings, env: dict[str, str]) -> str:
        """Submit the run's job; its job id. Raises LabError with the cluster's words."""

    def states(self, job_ids: list[str], settings) -> dict[str, JobState] | None:
        """The phase of each job; None when the cluster could not be asked."""

    def cancel(self, job_id: str, started: bool, settings) -> None:
        """Stop a job: withdraw a pending one; wake the supervisor of a running one."""

    def driver_log(self, job_id: str, settings) -> str:
        """What the job's own output holds that the run directory lacks ('' if nothing)."""

    def view(self, settings) -> ClusterView:
        """Nodes, GPUs and queue, as far as the cluster tells."""


def executor(name: str) -> ClusterExecutor:
    if name == "slurm":
        from .slurm import SLURM

        return SLURM
    if name == "ray":
        from .ray_exec import RAY

        return RAY
    raise ValueError(f"{name!r} is not a cluster executor")


def job_env() -> dict[str, str]:
    return {k: os.environ[k] for k in JOB_ENV if k in os.environ}


def entrypoint(run_dir: Path, python: str | None) -> list[str]:
    """The job's command: sotalab's cluster entry, which runs the supervisor."""
    return [python or sys.executable, "-m", "sotalab.tools.runs.cluster_job", str(run_dir)]


def entrypoint_text(run_dir: Path, python: str | None) -> str:
    return shlex.join(entrypoint(run_dir, python))
