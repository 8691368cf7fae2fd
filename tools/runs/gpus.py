"""What this machine's GPUs and CPU slots hold now: each GPU's memory, utilisation and
processes (with the lab's runs they belong to), and the CPU slots in use. lab_status
shows it; without NVML it says why and lists no GPU."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .. import ledger
from ..home import Lab
from . import queue
from .telemetry import gpu_states, nvml_error


class GpuProcessInfo(BaseModel):
    pid: int
    used_mb: float
    run_id: int | None


class GpuInfo(BaseModel):
    index: int
    name: str
    uuid: str
    memory_used_mb: float
    memory_total_mb: float
    utilization_pct: float
    temperature_c: float | None
    power_w: float | None
    processes: list[GpuProcessInfo]
    runs: list[int] = Field(description="this lab's running runs placed on the GPU")


class Compute(BaseModel):
    gpus_available: bool
    detail: str = Field(description="how many GPUs NVML found, or why none")
    gpus: list[GpuInfo]
    cpu_slots: int
    cpu_slots_busy: int
    queued: int = Field(description="runs waiting for a slot or a GPU")


def compute(lab: Lab) -> Compute:
    """The GPUs and CPU slots now, after one dispatch (so ended runs free their slots)."""
    queue.dispatch(lab)
    running = list(lab.db.query("SELECT id, pid, supervisor_pid, resources FROM runs WHERE status = 'running' "
                                "AND cluster_job IS NULL"))
    cpu_busy = sum(1 for r in running if not ledger.loads(r["resources"], {}).get("gpu_ids"))
    queued = lab.db.execute("SELECT COUNT(*) FROM runs WHERE status = 'queued'").fetchone()[0]
    base = dict(cpu_slots=queue.cpu_slots(), cpu_slots_busy=cpu_busy, queued=queued)
    error = nvml_error()
    if error:
        return Compute(gpus_available=False, detail=error, gpus=[], **base)
    by_pid = _run_of_pid(running)
    gpus = []
    for g in gpu_states():
        gpus.append(GpuInfo(
            index=g.index, name=g.name, uuid=g.uuid, memory_used_mb=g.memory_used_mb,
            memory_total_mb=g.memory_total_mb, utilization_pct=g.utilization_pct,
            temperature_c=g.temperature_c, power_w=g.power_w,
            processes=[GpuProcessInfo(pid=p.pid, used_mb=p.used_mb, run_id=by_pid.get(p.pid)) for p in g.processes],
            runs=[r["id"] for r in running if g.index in (ledger.loads(r["resources"], {}).get("gpu_ids") or [])]))
    return Compute(gpus_available=True, detail=f"{len(gpus)} GPU(s) via NVML", gpus=gpus, **base)


def _run_of_pid(running: list[dict]) -> dict[int, int]:
    """Map every process of every running run to the run: the supervisor's descendants
    (local runs) or the container's process tree (Docker runs)."""
    import psutil

    owners = {}
    for r in running:
        for root in (r["supervisor_pid"], r["pid"]):
            if not root:
                continue
            try:
                procs = psutil.Process(root).children(recursive=True) + [psutil.Process(root)]
            except psutil.Error:
                continue
            owners.update({p.pid: r["id"] for p in procs})
    return owners
