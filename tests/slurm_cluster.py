"""A real one-node Slurm cluster on this machine, for the tests and the benchmark.

Debian's ``slurm-wlm`` and ``munge`` must be installed (``.ci/run`` installs them).
``ensure_cluster()`` reuses a cluster that already answers (``SLURM_CONF`` set and
``sinfo`` works); otherwise, as root, it writes a config for one node (this host,
its CPUs and memory as ``slurmd -C`` reports them; GRES only when NVML sees a GPU)
under a private directory, starts ``munged``, ``slurmctld`` and ``slurmd``, and
returns a handle whose ``stop()`` ends the daemons it started. Accounting is off
(no slurmdbd): the executor reads live jobs from ``squeue`` and falls back to
``scontrol``/``sacct`` only for what it can tell.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")


def missing() -> str | None:
    """Why no cluster can be started here, or None."""
    absent = [d for d in DAEMONS if not shutil.which(d)]
    if absent:
        return f"{', '.join(absent)} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0 and not os.environ.get("SLURM_CONF"):
        return "starting slurmctld/slurmd needs root (or point SLURM_CONF at a running cluster)"
    return None


@dataclass
class Cluster:
    conf: str
    root: Path | None = None
    pids: list[int] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": self.conf}

    def stop(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:  # slurmd can wait on a job step that never ends: it must not outlive the tests
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _answers(conf: str) -> bool:
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], env={**os.environ, "SLURM_CONF": conf},
                          capture_output=True, text=True, timeout=20)
    return done.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated") for s in done.stdout.split())


def _node_line(gres: str) -> str:
    hw = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    fields = dict(part.split("=", 1) for part in hw.split() if "=" in part)
    cpus = fields.get("CPUs", "1")
    memory = int(int(fields.get("RealMemory", "1024")) * 0.9)
    return f"NodeName={socket.gethostname().split('.')[0]} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory}{gres} State=UNKNOWN"


def _gpu_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


def ensure_cluster() -> Cluster:
    conf = os.environ.get("SLURM_CONF")
    if conf and _answers(conf):
        return Cluster(conf=conf)
    root = Path(tempfile.mkdtemp(prefix="sotalab-slurm-"))
    host = socket.gethostname().split(".")[0]
    gpus = _gpu_count()
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir()
    # Short timers so a test sees a cancelled or finished job promptly; KillWait longer
    # than a run's grace, so the supervisor (not Slurm) ends a cancelled run.
    (root / "slurm.conf").write_text(f"""\
ClusterName=sotalab-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
ReturnToService=2
MinJobAge=600
KillWait=30
SchedulerParameters=sched_interval=1,bf_interval=1
MessageTimeout=20
{"GresTypes=gpu" if gpus else ""}
{_node_line(gres)}
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
    if gpus:
        (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File=/dev/nvidia[0-{gpus - 1}]\n")
    cluster = Cluster(conf=str(root / "slurm.conf"), root=root)
    env = cluster.env()
    subprocess.run(["munged", "--force", f"--socket={root}/munge/munge.socket", f"--pid-file={root}/munge/munged.pid",
                    f"--log-file={root}/log/munged.log", f"--seed-file={root}/munge/seed"], check=True)
    cluster.pids.append(int((root / "munge" / "munged.pid").read_text()))
    for argv in (["slurmctld", "-D", "-i", "-f", cluster.conf], ["slurmd", "-D", "-f", cluster.conf, "-N", host]):
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(root / "log" / f"{argv[0]}.stderr", "wb"), start_new_session=True)
        cluster.pids.append(proc.pid)
        time.sleep(0.5)
    for _ in range(120):
        if _answers(cluster.conf):
            return cluster
        time.sleep(0.5)
    cluster.stop()
    logs = "\n".join(p.read_text()[-2000:] for p in (root / "log").iterdir())
    raise RuntimeError(f"the test Slurm cluster did not come up:\n{logs}")
