"""Telemetry: NVML for GPUs (lazily, only when a run has GPUs), psutil for CPU and memory.

A run's series is ``telemetry.jsonl`` in its run directory: a header object naming the
fields, then one compact JSON list per sample. NVML absent or failing: GPU fields say
``unavailable`` with the reason, and CPU telemetry goes on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SERIES = "telemetry.jsonl"
CPU_FIELDS = ["t", "cpu_pct", "rss_mb", "read_mb", "write_mb", "nproc"]
GPU_FIELDS = ["util", "mem_mb", "run_mem_mb", "power_w", "temp_c", "sm_mhz", "throttle"]
MB = 1024 * 1024

_nvml_state: dict = {}


def nvml():
    """The initialised pynvml module, or raise ``RuntimeError`` saying why there is none."""
    if "module" in _nvml_state:
        return _nvml_state["module"]
    if "error" in _nvml_state:
        raise RuntimeError(_nvml_state["error"])
    try:
        import pynvml

        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            raise RuntimeError("NVML found no GPU")
    except ImportError:
        _nvml_state["error"] = "nvidia-ml-py is not installed"
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        _nvml_state["error"] = f"NVML found no GPU: {exc}"
    else:
        _nvml_state["module"] = pynvml
        return pynvml
    raise RuntimeError(_nvml_state["error"])


def nvml_error() -> str | None:
    try:
        nvml()
    except RuntimeError as exc:
        return str(exc)
    return None


def _milliwatts_to_w(value):
    return None if value is None else value / 1000.0


@dataclass
class GpuProcess:
    pid: int
    used_mb: float


@dataclass
class GpuState:
    index: int
    uuid: str
    name: str
    memory_total_mb: float
    memory_used_mb: float
    utilization_pct: float
    temperature_c: float | None = None
    power_w: float | None = None
    processes: list[GpuProcess] = field(default_factory=list)


def _try(fn, *args, default=None):
    """``fn(*args)``, or ``default`` when NVML or psutil cannot say (unsupported field,
    process gone)."""
    try:
        return fn(*args)
    except Exception:
        return default


def gpu_states(indices: list[int] | None = None) -> list[GpuState]:
    """Every GPU's (or the given GPUs') current state. Raises RuntimeError without NVML."""
    nv = nvml()
    count = nv.nvmlDeviceGetCount()
    states = []
    for i in (range(count) if indices is None else indices):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        procs = _try(nv.nvmlDeviceGetComputeRunningProcesses, h, default=[]) or []
        states.append(GpuState(
            index=i,
            uuid=str(_try(nv.nvmlDeviceGetUUID, h, default=f"GPU-{i}")),
            name=str(_try(nv.nvmlDeviceGetName, h, default="?")),
            memory_total_mb=mem.total / MB,
            memory_used_mb=mem.used / MB,
            utilization_pct=float(getattr(_try(nv.nvmlDeviceGetUtilizationRates, h), "gpu", 0.0)),
            temperature_c=_try(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
            power_w=_milliwatts_to_w(_try(nv.nvmlDeviceGetPowerUsage, h)),
            processes=[GpuProcess(p.pid, (p.usedGpuMemory or 0) / MB) for p in procs],
        ))
    return states


@dataclass
class Summary:
    wall_s: float = 0.0
    samples: int = 0
    cpu_s: float = 0.0
    mean_cpu_pct: float = 0.0
    peak_rss_mb: float = 0.0
    gpu: str = "unavailable"  # "nvml", or "unavailable: <reason>", or "none requested"
    gpu_count: int = 0
    gpu_s: float = 0.0
    peak_gpu_memory_mb: float | None = None
    mean_gpu_util_pct: float | None = None
    energy_j: float | None = None

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class Sampler:
    """Samples a process tree (and its GPUs) and keeps the series and the summary."""

    def __init__(self, run_dir: Path, gpu_ids: list[int], interval_s: float):
        import os

        import psutil

        self.psutil = psutil
        self.gpu_ids = gpu_ids
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.summary = Summary(gpu_count=len(gpu_ids))
        # CPU % is of one core, clipped to the machine's cores: a process's first sample
        # carries CPU time it spent before it was first seen, which over a short interval
        # would read as more cores than the machine has.
        self.max_cpu_pct = 100.0 * (os.cpu_count() or 1)
        self._procs: dict[int, object] = {}
        self._cpu_seen: dict[int, float] = {}
        self._last_t = 0.0
        self._util_sum = 0.0
        self._handles = []
        if gpu_ids:
            try:
                nv = nvml()
                self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in gpu_ids]
                self.summary.gpu = "nvml"
                self.summary.peak_gpu_memory_mb = 0.0
                self.summary.energy_j = 0.0
            except RuntimeError as exc:
                self.summary.gpu = f"unavailable: {exc}"
        else:
            self.summary.gpu = "none requested"
        fields = CPU_FIELDS + [f"gpu{i}_{f}" for i in (gpu_ids if self._handles else []) for f in GPU_FIELDS]
        self.series = open(Path(run_dir) / SERIES, "a", buffering=1)
        self.series.write(json.dumps({"fields": fields, "interval_s": interval_s, "gpu": self.summary.gpu}) + "\n")

    def tree(self, root_pid: int, include_root: bool = True, pids: list[int] | None = None) -> list:
        """Live processes of the tree rooted at ``root_pid`` (psutil objects, cached so
        CPU deltas are per process), or of ``pids`` when the caller knows the run's
        processes (its cgroup lists them): finding a tree's descendants otherwise reads
        every process on the machine, at every sample."""
        ps = self.psutil
        if pids is not None:
            members = []
            for pid in pids:
                try:
                    members.append(self._procs.get(pid) or ps.Process(pid))
                except ps.Error:
                    continue  # ended since the list was read
        elif not root_pid:
            return []
        else:
            try:
                root = self._procs.get(root_pid) or ps.Process(root_pid)
                members = ([root] if include_root else []) + root.children(recursive=True)
            except ps.Error:
                return []
        live = []
        for p in members:
            cached = self._procs.get(p.pid)
            if cached is None or _try(cached.create_time) != _try(p.create_time):
                self._procs[p.pid] = cached = p
            live.append(cached)
        return live

    def sample(self, procs: list) -> dict:
        """One sample of ``procs``; returns what the budget checks need."""
        ps = self.psutil
        t = time.monotonic() - self.started
        dt = max(t - self._last_t, 1e-6)
        self._last_t = t
        rss = cpu_delta = read = write = 0.0
        pids = set()
        for p in procs:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    io = _try(p.io_counters)
            except ps.Error:
                continue
            pids.add(p.pid)
            spent = times.user + times.system + times.children_user + times.children_system
            cpu_delta += max(spent - self._cpu_seen.get(p.pid, 0.0), 0.0)
            self._cpu_seen[p.pid] = spent
            if io:
                read += io.read_bytes
                write += io.write_bytes
        cpu_pct = min(100.0 * cpu_delta / dt, self.max_cpu_pct)
        s = self.summary
        s.samples += 1
        s.wall_s = t
        s.cpu_s += cpu_delta
        s.mean_cpu_pct = min(100.0 * s.cpu_s / t, self.max_cpu_pct) if t > 0 else 0.0
        s.peak_rss_mb = max(s.peak_rss_mb, rss / MB)
        row = [round(t, 2), round(cpu_pct, 1), round(rss / MB, 1), round(read / MB, 1), round(write / MB, 1), len(pids)]
        run_gpu_mb = self._sample_gpus(pids, dt, row)
        self.series.write(json.dumps(row, separators=(",", ":")) + "\n")
        return {"rss_mb": rss / MB, "run_gpu_mb": run_gpu_mb, "nproc": len(pids)}

    def _sample_gpus(self, pids: set[int], dt: float, row: list) -> float | None:
        if not self._handles:
            return None
        nv = nvml()
        s = self.summary
        run_total = 0.0
        utils = []
        for h in self._handles:
            mem = _try(nv.nvmlDeviceGetMemoryInfo, h)
            util = float(getattr(_try(nv.nvmlDeviceGetUtilizationRates, h), "gpu", 0.0))
            power = _milliwatts_to_w(_try(nv.nvmlDeviceGetPowerUsage, h))
            procs = _try(nv.nvmlDeviceGetComputeRunningProcesses, h, default=[]) or []
            run_mb = sum((p.usedGpuMemory or 0) for p in procs if p.pid in pids) / MB
            run_total += run_mb
            utils.append(util)
            if power is not None:
                s.energy_j += power * dt
            row += [util, round(mem.used / MB, 1) if mem else None, round(run_mb, 1), power,
                    _try(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
                    _try(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                    _try(nv.nvmlDeviceGetCurrentClocksThrottleReasons, h)]
        s.peak_gpu_memory_mb = max(s.peak_gpu_memory_mb or 0.0, run_total)
        self._util_sum += sum(utils) / len(utils)
        s.mean_gpu_util_pct = self._util_sum / s.samples
        return run_total

    def finish(self) -> dict:
        self.summary.wall_s = time.monotonic() - self.started
        if self.summary.wall_s > 0:
            self.summary.mean_cpu_pct = min(100.0 * self.summary.cpu_s / self.summary.wall_s, self.max_cpu_pct)
        self.summary.gpu_s = self.summary.wall_s * len(self._handles or self.gpu_ids)
        self.series.close()
        return self.summary.as_dict()


def read_series(run_dir: Path, max_points: int = 200) -> dict:
    """The series, evenly thinned to at most ``max_points`` samples."""
    path = Path(run_dir) / SERIES
    if not path.exists():
        return {"fields": [], "points": [], "total_points": 0}
    lines = path.read_text().splitlines()
    header = json.loads(lines[0]) if lines else {"fields": []}
    rows = [json.loads(line) for line in lines[1:] if line.startswith("[")]
    step = max(1, -(-len(rows) // max_points))
    points = rows[::step]
    if rows and points[-1] is not rows[-1]:
        points.append(rows[-1])
    return {"fields": header.get("fields", []), "gpu": header.get("gpu"), "points": points,
            "total_points": len(rows)}


def latest_sample(run_dir: Path) -> dict | None:
    """The newest sample of a run's series as {field: value}, read from the file's end
    (the series of a long run is large); None before the first sample."""
    path = Path(run_dir) / SERIES
    try:
        with open(path, "rb") as fh:
            header = json.loads(fh.readline() or b"{}")
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(size - 4096, 0))
            lines = [line for line in fh.read().splitlines() if line.startswith(b"[")]
    except (OSError, ValueError):
        return None
    for line in reversed(lines):
        try:
            return dict(zip(header.get("fields", []), json.loads(line)))
        except ValueError:
            continue  # a line cut by the 4 KiB window or still being written
    return None
