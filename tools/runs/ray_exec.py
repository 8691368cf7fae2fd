"""The Ray executor: a run is one Ray job (Jobs API) whose entrypoint is the supervisor.

Ray is optional (``pip install 'sotalab[ray]'``) and imported only here, when a run or
a status call needs a Ray cluster. The job asks for the run's CPUs, GPUs and memory as
entrypoint resources, so Ray places the supervisor (and with it the run) on a worker
that has them. Ray keeps a job it cannot place ``PENDING`` forever: the queue's pending
timeout withdraws it (``stop_job``). The job's environment is ``cluster.JOB_ENV`` only.

A running job is stopped by the supervisor itself, woken by the run's ``cancel`` file,
so the run gets its TERM and grace as everywhere else; ``stop_job`` (which kills the
entrypoint after a few seconds) is for jobs that have not started.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from ..errors import LabError
from .cluster import ClusterView, JobResources, JobState, NodeView, entrypoint_text

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
PHASES = {"PENDING": "pending", "RUNNING": "running", "STOPPED": "ended", "SUCCEEDED": "ended", "FAILED": "ended"}
LOG_TAIL_BYTES = 20_000


def address(settings) -> str:
    return settings.address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS


@functools.lru_cache(maxsize=8)
def _client(url: str):
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise LabError("Ray is not installed on the server",
                       hint="pip install 'sotalab[ray]', or choose another executor with execution_set") from None
    try:
        return JobSubmissionClient(url)
    except Exception as exc:  # ConnectionError, or a version mismatch the client reports
        raise LabError(f"no Ray Jobs API answers at {url}: {str(exc).splitlines()[0][:200]}",
                       hint="start the head with `ray start --head` (dashboard included) or set the address "
                            "with execution_set ray={'address': 'http://head:8265'}") from None


def client(settings):
    url = address(settings)
    try:
        return _client(url)
    except LabError:
        _client.cache_clear()  # the head may come up later: ask again next time
        raise


def submission_id(run_dir: Path, run_id: int) -> str:
    """Unique across labs sharing one Ray cluster: the run id plus a tag of the lab home."""
    tag = hashlib.sha256(str(run_dir.parent.parent).encode()).hexdigest()[:8]
    return f"sotalab-{tag}-run-{run_id}"


class RayExecutor:
    name = "ray"

    def submit(self, run_id: int, run_dir: Path, resources: JobResources, settings, env: dict[str, str]) -> str:
        ray = client(settings)
        options = {"entrypoint_num_cpus": resources.cpus}
        if resources.gpus:
            options["entrypoint_num_gpus"] = resources.gpus
        if resources.memory_mb:
            options["entrypoint_memory"] = resources.memory_mb * 2**20
        try:
            return ray.submit_job(entrypoint=entrypoint_text(run_dir, settings.python),
                                  submission_id=submission_id(run_dir, run_id),
                                  runtime_env={"env_vars": env}, metadata={"sotalab_run": str(run_id)}, **options)
        except Exception as exc:
            raise LabError(f"Ray refused the job: {str(exc).splitlines()[0][:300]}",
                           hint="check the Ray address and that the cluster can give what the run asks") from None

    def states(self, job_ids: list[str], settings) -> dict[str, JobState] | None:
        if not job_ids:
            return {}
        try:
            jobs = {j.submission_id: j for j in client(settings).list_jobs()}
        except Exception:
            return None  # the head did not answer: tell nothing rather than something wrong
        found = {}
        for job in job_ids:
            details = jobs.get(job)
            if details is None:
                found[job] = JobState("ended", "the Ray cluster no longer knows the job")
                continue
            word = str(getattr(details.status, "value", details.status))
            message = (details.message or "").splitlines()[0][:200] if details.message else ""
            found[job] = JobState(PHASES.get(word, "unknown"), f"{word} ({message})" if message else word)
        return found

    def cancel(self, job_id: str, started: bool, settings) -> None:
        if not started:
            try:
                client(settings).stop_job(job_id)
            except Exception as exc:
                raise LabError(f"Ray did not stop job {job_id}: {str(exc).splitlines()[0][:200]}") from None

    def driver_log(self, job_id: str, settings) -> str:
        """The tail of what the job's entrypoint (the supervisor) printed, for diagnosis."""
        try:
            return client(settings).get_job_logs(job_id)[-LOG_TAIL_BYTES:]
        except Exception:
            return ""

    def view(self, settings) -> ClusterView:
        url = address(settings)
        try:
            from ray.util.state import list_nodes

            nodes = list_nodes(address=url, timeout=10)
            jobs = client(settings).list_jobs()
        except LabError as exc:
            return ClusterView(executor="ray", reachable=False, detail=str(exc))
        except Exception as exc:
            return ClusterView(executor="ray", reachable=False,
                               detail=f"the Ray head at {url} did not answer: {str(exc).splitlines()[0][:200]}")
        views = [NodeView(name=n.node_name or n.node_id, state=str(n.state), cpus=int(n.resources_total.get("CPU", 0)),
                          memory_mb=int(n.resources_total.get("memory", 0) / 2**20),
                          gpus=int(n.resources_total.get("GPU", 0))) for n in nodes]
        words = [str(getattr(j.status, "value", j.status)) for j in jobs]
        return ClusterView(executor="ray", reachable=True, detail=f"{len(views)} node(s) at {url}", nodes=views,
                           pending=words.count("PENDING"), running=words.count("RUNNING"))


RAY = RayExecutor()
