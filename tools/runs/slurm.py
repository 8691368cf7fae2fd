"""The Slurm executor: a run is one ``sbatch`` job whose payload is the supervisor.

Threat: the settings (partition, account, extra flags) come from tool callers, so
sbatch is called with an argv list, never a shell; flags are validated where they are
set (``execution.SlurmSettings``) and the flags that tie the job to its run
directory, script and environment cannot be overridden. sbatch itself runs with
``cluster.JOB_ENV`` and what the Slurm client needs (its config, munge, PATH, HOME),
never the server's tokens, and exports all of that (``--export=ALL``): an explicit
variable list makes Slurm load the user's login environment on the node first
(``--get-user-env``), about 3 s per job on the test cluster.

Resources: ``--cpus-per-task`` (the run's CPUs, else the settings' default),
``--gres=gpu:N`` for GPUs, ``--mem`` from the memory budget (plus room for the
supervisor), ``--time`` past the run's wall time and grace (the supervisor ends a run,
the cluster's limit is only the backstop). Status is read from ``squeue`` (which also
lists recently ended jobs), then ``sacct`` where accounting is on.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

from ..errors import LabError
from .cluster import ClusterView, JobResources, JobState, NodeView, entrypoint_text

COMMAND_TIMEOUT_S = 30.0
PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED",
           "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"}
RUNNING = {"RUNNING", "COMPLETING"}
SCRIPT = "job.sh"


def _slurm(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    if not shutil.which(argv[0]):
        raise LabError(f"{argv[0]} is not on the server's PATH",
                       hint="install the Slurm client tools (Debian: slurm-client) and set SLURM_CONF, "
                            "or choose another executor with execution_set")
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise LabError(f"{argv[0]} did not answer within {COMMAND_TIMEOUT_S:g} s",
                       hint="check that slurmctld is up (sinfo) and reachable from the server") from None


def sbatch_argv(run_id: int, run_dir: Path, resources: JobResources, settings) -> list[str]:
    argv = ["sbatch", "--parsable", f"--job-name=sotalab-run-{run_id}", f"--chdir={run_dir}",
            f"--output={run_dir}/cluster.log", "--nodes=1", "--ntasks=1",
            f"--cpus-per-task={resources.cpus}", f"--time={math.ceil(resources.time_limit_s / 60)}",
            "--export=ALL"]
    if resources.gpus:
        argv.append(f"--gres=gpu:{resources.gpus}")
    if resources.memory_mb:
        argv.append(f"--mem={resources.memory_mb}M")
    for name in ("partition", "account", "qos"):
        if getattr(settings, name):
            argv.append(f"--{name}={getattr(settings, name)}")
    argv.extend(settings.extra_flags)
    argv.append(str(run_dir / SCRIPT))
    return argv


class SlurmExecutor:
    name = "slurm"

    def submit(self, run_id: int, run_dir: Path, resources: JobResources, settings, env: dict[str, str]) -> str:
        script = run_dir / SCRIPT
        script.write_text(f"#!/bin/sh\n# sotalab run {run_id}: the supervisor is the payload\n"
                          f"exec {entrypoint_text(run_dir, settings.python)}\n")
        script.chmod(0o755)
        done = _slurm(sbatch_argv(run_id, run_dir, resources, settings), env={**_client_env(), **env})
        if done.returncode != 0:
            raise LabError(f"sbatch refused the job: {done.stderr.strip()[:500]}",
                           hint="check the partition, account, QoS and extra flags (lab_status, campaign_view), and that "
                                "the cluster can give what the run asks (CPUs, GPUs, memory, time)")
        return done.stdout.strip().split(";")[0]

    def states(self, job_ids: list[str], settings) -> dict[str, JobState] | None:
        if not job_ids:
            return {}
        try:
            done = _slurm(["squeue", "-h", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(job_ids)])
        except LabError:
            return None
        found: dict[str, JobState] = {}
        if done.returncode == 0:
            for line in done.stdout.splitlines():
                job, state, reason = (line.split("|") + ["", ""])[:3]
                found[job.strip()] = _state(state.strip(), reason.strip())
        elif "Invalid job id" not in done.stderr:
            return None  # the controller did not answer: tell nothing rather than something wrong
        for job in [j for j in job_ids if j not in found]:
            found[job] = self._forgotten(job)
        return found

    @staticmethod
    def _forgotten(job: str) -> JobState:
        """A job squeue no longer lists: ask accounting, if the cluster keeps it."""
        try:
            done = _slurm(["sacct", "-n", "-P", "-X", "-o", "State", "-j", job])
        except LabError:
            return JobState("unknown", "squeue no longer lists the job")
        state = done.stdout.split()[0] if done.returncode == 0 and done.stdout.split() else ""
        if not state:
            return JobState("ended", "the controller no longer knows the job (and accounting has no record)")
        return _state(state, "")

    def cancel(self, job_id: str, started: bool, settings) -> None:
        # A running job's supervisor is woken with TERM (its batch shell is the
        # supervisor) and stops the run with its own grace; a pending job is withdrawn.
        argv = ["scancel", "--batch", "--signal=TERM", job_id] if started else ["scancel", job_id]
        _slurm(argv)

    def driver_log(self, job_id: str, settings) -> str:
        return ""  # sbatch --output already writes the job's output to the run's cluster.log

    def view(self, settings) -> ClusterView:
        try:
            nodes = _slurm(["sinfo", "-h", "-N", "-o", "%N|%T|%c|%m|%G"]
                           + ([f"--partition={settings.partition}"] if settings.partition else []))
            queue = _slurm(["squeue", "-h", "-o", "%T"])
        except LabError as exc:
            return ClusterView(executor="slurm", reachable=False, detail=str(exc))
        if nodes.returncode != 0:
            return ClusterView(executor="slurm", reachable=False, detail=f"sinfo failed: {nodes.stderr.strip()[:300]}")
        seen: dict[str, NodeView] = {}
        for line in nodes.stdout.splitlines():
            name, state, cpus, memory, gres = (line.split("|") + [""] * 5)[:5]
            seen[name] = NodeView(name=name, state=state, cpus=_int(cpus), memory_mb=_int(memory),
                                  gpus=_gres_gpus(gres))
        states = queue.stdout.split() if queue.returncode == 0 else []
        where = f", partition {settings.partition}" if settings.partition else ""
        return ClusterView(executor="slurm", reachable=True, detail=f"{len(seen)} node(s){where}",
                           nodes=list(seen.values()), pending=states.count("PENDING"), running=states.count("RUNNING"))


def _client_env() -> dict[str, str]:
    """What sbatch itself needs from the server's environment (its config and auth)."""
    import os

    return {k: v for k, v in os.environ.items() if k.startswith(("SLURM_CONF", "MUNGE_")) or k in ("PATH", "HOME")}


def _state(state: str, reason: str) -> JobState:
    word = state.split()[0] if state else ""
    detail = f"{word} ({reason})" if reason and reason != "None" else word
    if word in PENDING:
        return JobState("pending", detail)
    if word in RUNNING:
        return JobState("running", detail)
    if word:
        return JobState("ended", detail)
    return JobState("unknown", "no state")


def _int(text: str) -> int | None:
    text = text.strip().rstrip("+")
    return int(text) if text.isdigit() else None


def _gres_gpus(gres: str) -> int:
    """GPUs in an sinfo GRES column such as 'gpu:a100:4(S:0-1),shard:8'."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total


SLURM = SlurmExecutor()
