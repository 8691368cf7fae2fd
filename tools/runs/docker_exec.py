"""The Docker executor: how a run's container is configured, started and stopped.

Containers get no network, no capabilities, no privilege escalation, pids, memory and
CPU limits, a read-only root with a tmpfs /tmp, a non-root user, and GPUs only by a
device request naming the ids the queue placed the run on.
"""

from __future__ import annotations

import hashlib
import os
import threading

from . import events

DEFAULT_IMAGE = "sotalab-base:bookworm"
DEFAULT_USER = "65534:65534"  # nobody: never root inside a run's container
PIDS_LIMIT = 1024
TMPFS_SIZE = 1 << 30


def container_name(run_id: int, home: str) -> str:
    """Unique per lab home, so two labs on one engine never collide."""
    return f"sotalab-run-{run_id}-{hashlib.sha256(home.encode()).hexdigest()[:8]}"


def container_kwargs(spec: dict) -> dict:
    """Arguments for ``client.containers.create`` from a run spec."""
    from docker.types import DeviceRequest, LogConfig

    dk = spec["docker"]
    env = dict(spec["env"])
    env.pop("PATH", None)  # the image's own PATH (an environment image puts its venv first)
    volumes = {p: {"bind": p, "mode": "ro" if events.is_channel(p) else "rw"} for p in spec["writable"]}
    volumes.update({p: {"bind": p, "mode": "ro"} for p in spec["readable"]})
    kwargs = dict(
        image=dk["image"],
        command=spec["argv"],
        name=dk["name"],
        labels={"sotalab.run": str(spec["run_id"]), "sotalab.home": spec["home"]},
        environment=env,
        working_dir=spec["cwd"],
        user=dk.get("user", DEFAULT_USER),
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        # /tmp's pages count toward the container's memory limit as well as its own size.
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.get('tmp_bytes') or TMPFS_SIZE},mode=1777"},
        pids_limit=spec.get("pids_max") or PIDS_LIMIT,
        nano_cpus=int(dk.get("cpus", os.cpu_count() or 1) * 1e9),
        volumes=volumes,
        init=True,  # a real PID 1: signals reach the run, zombies are reaped
        # Docker keeps its own copy of the output; cap it too (the run log is ours).
        log_config=LogConfig(type="json-file", config={"max-size": "8m", "max-file": "2"}),
        detach=True,
    )
    if spec.get("cpus"):
        kwargs["cpuset_cpus"] = ",".join(map(str, spec["cpus"]))
    if spec.get("memory_gb"):
        kwargs["mem_limit"] = kwargs["memswap_limit"] = int(spec["memory_gb"] * 1024**3)
    if spec["gpu_ids"]:
        ids = spec.get("gpu_uuids") or [str(i) for i in spec["gpu_ids"]]
        kwargs["device_requests"] = [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
    return kwargs


# The engine's API version, learned once by the launcher before it forks supervisors,
# so each supervisor's client skips the version round trip.
api_version: str | None = None


def learn_api_version() -> None:
    global api_version
    import docker

    client = docker.from_env(timeout=10)
    try:
        api_version = client.api._version
    finally:
        client.close()  # no pooled connection may be shared across fork


def client(timeout: int = 120):
    import docker

    return docker.from_env(timeout=timeout, version=api_version) if api_version else docker.from_env(timeout=timeout)


def make_writable_for(path: str) -> None:
    """Let the container's non-root user write a run's directories (a+rwX keeps the
    executable bits git tracks unchanged). An event channel stays write-only."""
    if events.is_channel(path):
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                mode = os.lstat(p).st_mode
                extra = 0o777 if os.path.isdir(p) or mode & 0o111 else 0o666
                os.chmod(p, mode | extra)
    os.chmod(path, os.stat(path).st_mode | 0o777)


class DockerChild:
    """A run's container, as the supervisor drives it."""

    def __init__(self, spec: dict, log):
        self.spec = spec
        self.log = log
        self.container = None
        self.exit_code: int | None = None
        self.oom_killed = False
        self.layers = spec.get("layers") or {"describe": "docker"}

    def start(self) -> None:
        from docker.models.containers import _create_container_args

        self.client = client()
        for path in self.spec["writable"]:
            make_writable_for(path)
        kwargs = container_kwargs(self.spec)
        kwargs.pop("detach")
        kwargs["version"] = self.client.api._version
        # The low-level create: the high-level one inspects the new container again.
        created = self.client.api.create_container(**_create_container_args(kwargs))
        self.container = self.client.containers.prepare_model({"Id": created["Id"]})
        # Attach before start, as `docker run` does: a log stream opened later can end
        # before Docker has delivered all output of a container that already exited.
        self._output = self.container.attach(stdout=True, stderr=True, stream=True, logs=True)
        self.container.start()
        self.pid = None  # the container's init, learned at the first telemetry sample
        read_end, self._exit_w = os.pipe()
        self.exit_fd = read_end
        self.output_fd = None  # the log pump thread writes the log itself
        self._pump = threading.Thread(target=self._pump_logs, daemon=True)
        self._pump.start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _pump_logs(self) -> None:
        for chunk in self._output:
            self.log.write(chunk)

    def _wait(self) -> None:
        try:
            self.exit_code = self.container.wait()["StatusCode"]
        finally:
            os.write(self._exit_w, b"x")

    def telemetry_root(self) -> tuple[int, bool]:
        if not self.pid:
            try:
                self.container.reload()
                self.pid = self.container.attrs["State"]["Pid"] or None
            except Exception:
                pass
        return self.pid or 0, True

    def terminate(self) -> None:
        self._kill("SIGTERM")

    def kill(self) -> None:
        self._kill("SIGKILL")

    def _kill(self, sig: str) -> None:
        import docker

        try:
            self.container.kill(signal=sig)
        except docker.errors.APIError:
            pass  # already stopped

    def finish(self) -> int | None:
        """After exit: drain the log, read the OOM flag, remove the container."""
        self._pump.join(timeout=10)
        try:
            self.container.reload()
            self.oom_killed = bool(self.container.attrs["State"].get("OOMKilled"))
            self.container.remove(force=True)
        except Exception:
            pass
        return self.exit_code


def remove_container(name: str) -> bool:
    """Kill and remove a leftover run container by name; whether one was found."""
    try:
        client(timeout=30).containers.get(name).remove(force=True)
        return True
    except Exception:
        return False

