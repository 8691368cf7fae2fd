"""How a local run is isolated: bubblewrap where it works, else its own process group.

bubblewrap gives the run no network, a read-only view of the host, a private /tmp and
/run (no host sockets), the lab home hidden (ledger, protected copies, held-out data),
so are the usual credential files of the user's home and a campaign's local clone source,
write access only to its worktree and its run output directory, and only the GPU
device nodes it was given.
Both ways the environment is an allowlist: nothing from the server's environment
(tokens, keys) reaches the run unless it is named here or passed explicitly.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

# Variables copied from the server's environment; everything else is dropped.
ALLOWED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# GPU device nodes every CUDA process needs besides its own /dev/nvidiaN.
RUNTIME_DIRS = ("/run", "/var/run")
# Where credentials usually live in the server user's home: hidden from every local run,
# since the rest of the host stays readable (interpreters and venvs may live under home).
SECRET_HOME_PATHS = (".ssh", ".aws", ".azure", ".gnupg", ".docker", ".kube", ".config/gcloud", ".config/gh",
                     ".netrc", ".git-credentials", ".pypirc", ".npmrc")
NVIDIA_SHARED_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")


def secret_paths(home: str | os.PathLike | None = None) -> list[str]:
    """The credential files and folders under ``home`` (default: the user's) that exist."""
    base = Path(home) if home else Path.home()
    return [str((base / rel).resolve()) for rel in SECRET_HOME_PATHS if (base / rel).exists()]


def run_env(explicit: dict[str, str], *, run_id: int, output_dir: str, gpu_visible: str,
            path_prefix: list[str] = (), home: str = "/tmp") -> dict[str, str]:
    """The run's whole environment: the allowlist, then the lab's own variables, then
    what the caller passed explicitly (validated names)."""
    env = {k: os.environ[k] for k in ALLOWED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if path_prefix:
        env["PATH"] = os.pathsep.join([*path_prefix, env["PATH"]])
    env.update({
        "HOME": home,
        "PYTHONUNBUFFERED": "1",
        "SOTALAB_RUN_ID": str(run_id),
        "SOTALAB_OUTPUT_DIR": output_dir,
        "CUDA_VISIBLE_DEVICES": gpu_visible,
    })
    check_env_names(explicit)
    env.update({key: str(value) for key, value in explicit.items()})
    return env


def check_env_names(env: dict[str, str]) -> None:
    for key in env:
        if not ENV_NAME.match(key):
            raise ValueError(f"environment variable name {key!r} is not valid (letters, digits, '_')")


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot build the sandbox runs use here, or None when it can.

    The probe uses the same namespaces as a run (it needs user namespaces), so
    ``lab_status`` and the local executor never disagree."""
    path = shutil.which("bwrap")
    if not path:
        return "bwrap is not on PATH (apt-get install bubblewrap)"
    try:
        probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid",
                                "--proc", "/proc", "--", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    if probe.returncode != 0:
        return f"bwrap cannot create a sandbox here: {probe.stderr.strip()[:160]}"
    return None


def bwrap_works() -> bool:
    return bwrap_problem() is None


def gpu_device_nodes(gpu_ids: list[int]) -> list[str]:
    """The device nodes for the given GPU indices plus the shared control nodes."""
    nodes = [f"/dev/nvidia{i}" for i in gpu_ids]
    if gpu_ids:
        nodes += list(NVIDIA_SHARED_NODES) + sorted(glob.glob("/dev/nvidia-caps/*"))
    return [n for n in nodes if os.path.exists(n)]


def bwrap_argv(argv: list[str], *, cwd: str, writable: list[str], readable: list[str],
               hidden: list[str], gpu_ids: list[int]) -> list[str]:
    """The bubblewrap command line that runs ``argv`` sandboxed.

    Order matters: bwrap applies mounts left to right, so the hidden lab home is
    covered with an empty tmpfs first and the run's own directories bound back on top.
    """
    cmd = [shutil.which("bwrap") or "bwrap",
           "--die-with-parent",  # supervisor gone -> sandbox gone, never an unsupervised run
           "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--ro-bind", "/", "/",
           "--dev", "/dev",
           "--proc", "/proc",
           "--tmpfs", "/tmp"]
    # Host sockets (docker.sock, the user's D-Bus and agents) live under /run: a read-only
    # bind still lets a process connect to them, and the Docker socket is a way out.
    cmd += [arg for run_dir in RUNTIME_DIRS if os.path.isdir(run_dir) and not os.path.islink(run_dir)
            for arg in ("--tmpfs", run_dir)]
    for path in hidden:
        if _under(path, "/tmp") or not os.path.exists(path):
            continue
        cmd += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    for path in readable:
        cmd += ["--ro-bind", path, path]
    for path in writable:
        cmd += ["--bind", path, path]
    for node in gpu_device_nodes(gpu_ids):
        cmd += ["--dev-bind", node, node]
    cmd += ["--chdir", cwd, "--", *argv]
    return cmd


def _under(path: str, root: str) -> bool:
    return Path(path) == Path(root) or Path(root) in Path(path).parents
