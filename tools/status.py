"""What this lab holds and what this machine offers it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

from pydantic import BaseModel, Field

from . import execution, ledger
from .execution import ExecutionOut
from .home import Lab
from .registry import tool
from .runs import cluster_runs, gpus
from .runs.cluster import ClusterView
from .runs.gpus import Compute

COUNTED_TABLES = ("campaigns", "trials", "runs", "environments", "papers", "ideas", "notes", "audits", "journal")


class Capability(BaseModel):
    name: str
    available: bool
    detail: str = Field(description="version or what was found; when absent, why")


class LabStatusIn(BaseModel):
    pass


class LabStatus(BaseModel):
    home: str
    schema_version: int
    counts: dict[str, int]
    capabilities: list[Capability]
    local_sandbox: str = Field(description="how the local executor isolates runs: bubblewrap or process-group")
    clusters: list[ClusterView] = Field(default_factory=list, description="the Slurm or Ray clusters the lab or an "
                                        "active campaign runs on (execution_set): nodes, GPUs, queue")
    sandbox_layers: str = Field(description="the layers a local run gets here, e.g. 'userns+capdrop+seccomp+allowlist, "
                                            "cgroup1 memory/pids, disk polled', or 'process-group only, sampled memory'")
    sandbox_missing: list[str] = Field(description="layers this machine cannot give, with why; while any is missing, "
                                                   "local runs are refused unless weak mode is allowed")
    weak_sandbox_allowed: bool = Field(description="whether runs may go ahead without the missing layers "
                                                   "(sotalab serve --allow-weak-sandbox / SOTALAB_ALLOW_WEAK_SANDBOX=1)")
    compute: Compute = Field(description="each GPU's memory, utilisation and runs; the CPU slots")
    execution: ExecutionOut = Field(description="where the lab's runs execute (execution_set)")


def check_docker() -> Capability:
    try:
        import docker
    except ImportError:
        return Capability(name="docker", available=False, detail="docker-py is not installed")
    try:
        client = docker.from_env(timeout=3)
        version = client.version().get("Version", "?")
        client.close()
        return Capability(name="docker", available=True, detail=f"engine {version}")
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160]
        return Capability(name="docker", available=False, detail=f"no engine reachable: {reason}")


def check_bubblewrap() -> Capability:
    from .runs.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem:
        return Capability(name="bubblewrap", available=False, detail=problem)
    return Capability(name="bubblewrap", available=True,
                      detail=f"{shutil.which('bwrap')}: user namespace (uid 65534), no capabilities, seccomp, mount allowlist")


def check_nvml() -> Capability:
    try:
        import pynvml
    except ImportError:
        return Capability(name="nvml", available=False, detail="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return Capability(name="nvml", available=False, detail=f"NVML found no GPU: {exc}")
    try:
        count = pynvml.nvmlDeviceGetCount()
        names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    finally:
        pynvml.nvmlShutdown()
    if not count:
        return Capability(name="nvml", available=False, detail="NVML found no GPU")
    return Capability(name="nvml", available=True, detail=f"{count} GPU(s): {', '.join(map(str, names))}")


def check_uv() -> Capability:
    path = shutil.which("uv")
    if not path:
        return Capability(name="uv", available=False, detail="uv is not on PATH (pip install uv)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return Capability(name="uv", available=True, detail=version)


def check_ray() -> Capability:
    if importlib.util.find_spec("ray") is None:
        return Capability(name="ray", available=False, detail="ray is not installed (needed only for cluster runs)")
    return Capability(name="ray", available=True, detail="ray importable")


def capabilities() -> list[Capability]:
    return [check_docker(), check_bubblewrap(), check_nvml(), check_uv(), check_ray()]


@tool(read_only=True)
def lab_status(lab: Lab, args: LabStatusIn) -> LabStatus:
    """The lab, and what this machine offers: GPUs, Docker, sandbox layers, clusters.

    The lab home, ledger counts, what this machine offers (Docker engine,
    bubblewrap, NVML GPUs, uv, Ray), each with a one-line reason when absent, and the
    sandbox layers a local run gets here (and which are missing). `compute`: each GPU
    (name, memory used/total, utilisation, temperature, power, processes with the run
    ids they belong to) and the CPU slots, or plainly that NVML found no GPU.
    `execution`: where the lab's runs execute (a campaign's own: campaign_view)."""
    counts = {t: lab.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in COUNTED_TABLES}
    caps = capabilities()
    from .runs import sandbox

    bwrap = next(c for c in caps if c.name == "bubblewrap")
    layers = sandbox.layers_for("bwrap" if bwrap.available else "process-group")
    return LabStatus(home=str(lab.home), schema_version=ledger.schema_version(lab.db), counts=counts,
                     capabilities=caps, local_sandbox="bubblewrap" if bwrap.available else "process-group",
                     sandbox_layers=layers["describe"], sandbox_missing=layers["missing"],
                     weak_sandbox_allowed=sandbox.weak_allowed(), clusters=cluster_runs.views(lab),
                     compute=gpus.compute(lab), execution=execution.settings(lab, None))
