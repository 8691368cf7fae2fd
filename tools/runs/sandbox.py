"""How a local run is isolated: bubblewrap, denying by default whatever uid the server has.

Layers, each named in the run's record (``Layers.describe``):

- ``userns``: a new user namespace in which the run is uid/gid 65534, with every
  capability dropped (``--cap-drop ALL``) and ``no_new_privs`` (bwrap sets it), in its
  own session (no TIOCSTI into the server's terminal) and pid, ipc, uts, network and
  cgroup namespaces; it dies with its supervisor. A server running as root is confined
  exactly as an ordinary user's: root outside means nothing without capabilities.
- ``seccomp``: the filter in ``seccomp.py`` (mount, nested namespaces, ptrace, keyring,
  bpf, module loading, ...).
- ``allowlist``: the run sees only the system directories a program needs (``/usr``
  and the ``/bin``, ``/lib*``, ``/sbin`` links into it, ``/etc``), read-only; its
  interpreter's prefix and environment and the paths it was given, read-only; its
  working directory, output directory and ``writable`` paths, writable; an empty
  tmpfs HOME and a size-limited private ``/tmp`` and ``/dev/shm``. Nothing else of the
  host exists inside: no home directories, other checkouts, lab homes, package caches
  or sockets. Files in the mounted system directories that an ordinary user could not
  read (``/etc/shadow``, private keys) are covered too, because a server running as root
  maps the run onto host uid 0, which still owns them.

The environment is an allowlist too: nothing from the server's environment (tokens,
keys, its PATH) reaches the run unless it is named here or passed explicitly.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cgroups, events, seccomp

# Variables copied from the server's environment; everything else is dropped.
ALLOWED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# What every program needs from the host, read-only. /opt is left out on purpose: it
# often holds package caches and vendor tools; an environment there is mounted by path.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# CPU topology for thread-count detection; read-only and holds nothing of the host's data.
SYSTEM_INFO_DIRS = ("/sys/devices/system/cpu",)
SANDBOX_UID = 65534  # nobody
SANDBOX_HOME = "/home/sandbox"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "TORCH_NUM_THREADS")
NVIDIA_SHARED_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
PRLIMIT = "/usr/bin/prlimit"
WEAK_ENV = "SOTALAB_ALLOW_WEAK_SANDBOX"


@dataclass
class Layers:
    """What isolates a run and what limits it, and what is missing for the full set."""

    isolation: list[str] = field(default_factory=list)  # userns, capdrop, seccomp, allowlist
    limits: list[str] = field(default_factory=list)  # e.g. "cgroup memory/pids", "rlimit pids"
    missing: list[str] = field(default_factory=list)  # isolation layers or a pids limit, with why

    def describe(self) -> str:
        parts = ["+".join(self.isolation) or "process-group only"]
        parts += self.limits
        return ", ".join(parts)


def weak_allowed() -> bool:
    return os.environ.get(WEAK_ENV, "") not in ("", "0", "false", "no")


def run_env(explicit: dict[str, str], *, run_id: int, output_dir: str, gpu_visible: str,
            path_prefix: list[str], threads: int, home: str) -> dict[str, str]:
    """The run's whole environment: the allowlist, then the lab's own variables, then
    what the caller passed explicitly (validated names)."""
    env = {k: os.environ[k] for k in ALLOWED_ENV if k in os.environ}
    env.update({thread_var: str(threads) for thread_var in THREAD_VARS})
    env.update({
        "PATH": os.pathsep.join([*path_prefix, SYSTEM_PATH]),
        "HOME": home,
        "TMPDIR": "/tmp",
        "PYTHONUNBUFFERED": "1",
        "SOTALAB_RUN_ID": str(run_id),
        "SOTALAB_OUTPUT_DIR": output_dir,
        "SOTALAB_CPUS": str(threads),
        "CUDA_VISIBLE_DEVICES": gpu_visible,
    })
    check_env_names(explicit)
    env.update({key: str(value) for key, value in explicit.items()})
    return env


def check_env_names(env: dict[str, str]) -> None:
    for key in env:
        if not ENV_NAME.match(key):
            raise ValueError(f"environment variable name {key!r} is not valid (letters, digits, '_')")


def interpreter_roots(path_prefix: list[str]) -> list[str]:
    """The directories a run needs read-only to use the interpreters on ``path_prefix``:
    for ``<venv>/bin`` the venv and the base interpreter's prefix (``home`` in its
    ``pyvenv.cfg``), for ``<prefix>/bin`` the prefix."""
    roots: list[str] = []
    for entry in path_prefix:
        bin_dir = Path(entry).resolve()
        prefix = bin_dir.parent if bin_dir.name == "bin" else bin_dir
        roots.append(str(prefix))
        cfg = prefix / "pyvenv.cfg"
        if cfg.is_file():
            for line in cfg.read_text(errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    home = Path(value.strip()).resolve()
                    roots.append(str(home.parent if home.name == "bin" else home))
    return list(dict.fromkeys(roots))


_unreadable_cache: dict[str, tuple[float, tuple[str, ...]]] = {}
UNREADABLE_TTL_S = 60.0  # walking /etc costs tens of ms on a busy machine; it changes rarely


def unreadable_system_entries() -> tuple[str, ...]:
    """Entries of the mounted system directories that an ordinary user may not read
    (``/etc/shadow``, ``/etc/ssl/private``, service keys): covered in every run, since
    a root server's run is host uid 0 and would otherwise read them as their owner.
    The queue passes them in the run's ``hidden`` list, so supervisors never walk /etc."""
    cached = _unreadable_cache.get("etc")
    if cached and time.monotonic() - cached[0] < UNREADABLE_TTL_S:
        return cached[1]
    found = []
    for top in ("/etc",):
        for root, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                path = os.path.join(root, name)
                try:
                    mode = os.lstat(path).st_mode
                except OSError:
                    continue
                if stat.S_ISLNK(mode):
                    continue
                needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
                if mode & needed != needed:
                    found.append(path)
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in found]
    _unreadable_cache["etc"] = (time.monotonic(), tuple(found))
    return tuple(found)


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot build the sandbox runs use here, or None when it can.

    The probe uses the same namespaces, uid mapping and seccomp filter as a run, so
    ``lab_status`` and the local executor never disagree."""
    path = shutil.which("bwrap")
    if not path:
        return "bwrap is not on PATH (apt-get install bubblewrap)"
    if not seccomp.supported():
        return f"no seccomp filter for this architecture ({os.uname().machine})"
    fd = seccomp.program_fd()
    try:
        probe = subprocess.run(bwrap_argv(["true"], cwd="/", writable=[], readable=[],
                                          hidden=list(unreadable_system_entries()), gpu_ids=[],
                                          seccomp_fd=fd, tmp_bytes=1 << 20),
                               capture_output=True, text=True, timeout=10, pass_fds=[fd])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    finally:
        os.close(fd)
    if probe.returncode != 0:
        return f"bwrap cannot create a sandbox here: {probe.stderr.strip()[:160]}"
    return None


def bwrap_works() -> bool:
    return bwrap_problem() is None


ISOLATION = ["userns", "capdrop", "seccomp", "allowlist"]
DOCKER_ISOLATION = ["container", "capdrop", "no-new-privileges", "seccomp", "read-only root", "uid 65534"]


@functools.lru_cache(maxsize=4)
def layers_for(kind: str) -> dict:
    """The layers a run of this kind (bwrap, process-group, docker) gets on this
    machine, as far as it can be known before the run: ``isolation``, ``limits``,
    ``missing`` (an isolation layer or the pids limit, with why: without them a run of
    untrusted code needs weak mode) and ``describe``, the one line a record shows."""
    layers = Layers()
    if kind == "docker":
        layers.isolation += DOCKER_ISOLATION
        layers.limits += ["cgroup memory/pids", "disk polled"]
    else:
        problem = bwrap_problem() if kind == "bwrap" else "the run was asked to use only its own process group"
        if problem:
            layers.missing += [f"{name}: {problem}" for name in ISOLATION]
        else:
            layers.isolation += ISOLATION
        cgroup = cgroups.available()
        if cgroup:
            layers.limits.append(f"cgroup{cgroup[1]} memory/pids")
        elif not problem and os.path.exists(PRLIMIT):
            layers.limits += ["rlimit pids", "sampled memory"]
        else:
            layers.missing.append("pids: no writable cgroup, and no user namespace in which an rlimit counts "
                                  "only the run's processes")
            layers.limits.append("sampled memory")
        layers.limits.append("disk polled")
    return dict(isolation=layers.isolation, limits=layers.limits, missing=layers.missing,
                describe=layers.describe())


def gpu_device_nodes(gpu_ids: list[int]) -> list[str]:
    """The device nodes for the given GPU indices plus the shared control nodes."""
    nodes = [f"/dev/nvidia{i}" for i in gpu_ids]
    if gpu_ids:
        nodes += list(NVIDIA_SHARED_NODES) + sorted(glob.glob("/dev/nvidia-caps/*"))
    return [n for n in nodes if os.path.exists(n)]


def bwrap_argv(argv: list[str], *, cwd: str, writable: list[str], readable: list[str], hidden: list[str],
               gpu_ids: list[int], seccomp_fd: int, tmp_bytes: int, pids_rlimit: int | None = None) -> list[str]:
    """The bubblewrap command line that runs ``argv`` sandboxed.

    Mounts are applied parents first (bwrap applies them left to right), so a path
    covered by ``hidden`` or a writable directory inside a read-only one lands on top.
    """
    cmd = [shutil.which("bwrap") or "bwrap",
           "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
           "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--cap-drop", "ALL", "--new-session",
           "--die-with-parent",  # supervisor gone -> sandbox gone, never an unsupervised run
           "--seccomp", str(seccomp_fd),
           "--proc", "/proc", "--dev", "/dev"]
    mounts: list[tuple[str, int, list[str]]] = []  # (destination, tie-break order, args)
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.append((path, 0, ["--symlink", os.readlink(path), path]))
        elif os.path.isdir(path):
            mounts.append((path, 0, ["--ro-bind", path, path]))
    mounts += [(p, 0, ["--ro-bind", p, p]) for p in SYSTEM_INFO_DIRS if os.path.isdir(p)]
    if gpu_ids:  # the driver finds its devices through sysfs
        mounts.append(("/sys", 0, ["--ro-bind", "/sys", "/sys"]))
    size = ["--size", str(tmp_bytes)]
    mounts += [("/tmp", 0, [*size, "--tmpfs", "/tmp"]), ("/dev/shm", 0, [*size, "--tmpfs", "/dev/shm"]),
               (SANDBOX_HOME, 0, ["--size", str(16 << 20), "--tmpfs", SANDBOX_HOME])]
    mounts += [(p, 1, ["--ro-bind", p, p]) for p in readable]
    roots = [dest for dest, _, _ in mounts]
    for path in hidden:
        if os.path.lexists(path) and any(_under(path, root) and path != root for root in roots):
            cover = ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
            mounts.append((path, 2, cover))
    mounts += [(p, 3, ["--ro-bind" if events.is_channel(p) else "--bind", p, p]) for p in writable]
    for _, _, args in sorted(mounts, key=lambda m: (len(Path(m[0]).parts), m[1])):
        cmd += args
    for node in gpu_device_nodes(gpu_ids):
        cmd += ["--dev-bind", node, node]
    # The root is bwrap's own tmpfs: writable, it would be memory outside every size limit.
    cmd += ["--remount-ro", "/"]
    if pids_rlimit:  # counted per user inside the new namespace: only the run's own processes
        argv = [PRLIMIT, f"--nproc={pids_rlimit}", "--", *argv]
    cmd += ["--chdir", cwd, "--", *argv]
    return cmd


def _under(path: str, root: str) -> bool:
    return Path(path) == Path(root) or Path(root) in Path(path).parents
