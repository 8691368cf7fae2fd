"""What a hostile run tries from inside its sandbox (standard library only).

The tests run this file's source inside a sandboxed run, through ``run_start`` or as a
trial's code under ``trial_evaluate``, with a call appended, and read one line back:
``PROBE {json}``. Every field records what the attempt achieved; the tests assert that
nothing got through.
"""

import ctypes
import errno
import json  # noqa: F401 (the call the tests append prints with it)
import os
import socket

# At least 25 well-known credential files, relative to a home directory.
CREDENTIALS = (
    ".ssh/id_rsa", ".ssh/id_ed25519", ".ssh/config", ".aws/credentials", ".aws/config",
    ".azure/accessTokens.json", ".config/gcloud/application_default_credentials.json", ".config/gh/hosts.yml",
    ".docker/config.json", ".kube/config", ".netrc", ".git-credentials", ".pypirc", ".npmrc",
    ".cache/huggingface/token", ".huggingface/token", ".claude/.credentials.json", ".claude.json",
    ".cargo/credentials.toml", ".cargo/credentials", ".vault-token", ".config/rclone/rclone.conf", ".env",
    ".bash_history", ".zsh_history", ".python_history", ".gnupg/private-keys-v1.d/key.key",
    ".terraform.d/credentials.tfrc.json", ".codex/auth.json", ".config/wandb/settings", ".mlflow/credentials",
)
HOST_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                "/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket")
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
SYSCALLS = {"x86_64": {"keyctl": 250, "bpf": 321, "ptrace": 101, "perf_event_open": 298},
            "aarch64": {"keyctl": 219, "bpf": 280, "ptrace": 117, "perf_event_open": 241}}


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _call(fn, *args) -> str:
    """'ok' if the call succeeded, else the errno's name."""
    result = fn(*args)
    return "ok" if result == 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def readable(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False


def writable_dir(path: str) -> bool:
    try:
        target = os.path.join(path, ".sotalab-probe")
        with open(target, "w") as fh:
            fh.write("x")
        os.unlink(target)
        return True
    except OSError:
        return False


def connects(family, address) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(address)
        return True
    except OSError:
        return False


def cap_eff() -> str:
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:"):
            return line.split()[1]
    return "?"


def environ_texts() -> list[str]:
    """Every process environment this run can see (its own and its sandbox parents')."""
    texts = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                texts.append(open(f"/proc/{pid}/environ", "rb").read().decode("utf-8", "replace"))
            except OSError:
                pass
    return texts


def visible_commands() -> list[str]:
    """The command lines of every process this run can see (and so signal or trace)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                pass
    return found


def instant_allocation() -> str:
    """fallocate(2) reserves any number of disk blocks in one call, faster than a budget
    polled once a second can see: 'ok' if the kernel did it, else the errno's name."""
    import tempfile

    libc = _libc()
    with tempfile.NamedTemporaryFile(dir=".") as handle:
        return _call(libc.fallocate, handle.fileno(), 0, ctypes.c_long(0), ctypes.c_long(1 << 20))


def probe(home: str, secret: str, host_port: int, extra_paths: list) -> dict:
    libc = _libc()
    machine = os.uname().machine
    denied_syscalls = {name: ("ok" if libc.syscall(nr, 0, 0, 0, 0, 0) == 0 else
                              errno.errorcode.get(ctypes.get_errno(), "?"))
                       for name, nr in SYSCALLS.get(machine, {}).items()}
    return {
        "uid": os.getuid(),
        "cap_eff": cap_eff(),
        "mount_tmpfs": _call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
        "umount_proc": _call(libc.umount2, b"/proc", 0),
        "remount_root_rw": _call(libc.mount, b"none", b"/", None, MS_REMOUNT | MS_BIND, None),
        "remount_usr_rw": _call(libc.mount, b"none", b"/usr", None, MS_REMOUNT | MS_BIND, None),
        "unshare_user": _call(libc.unshare, CLONE_NEWUSER | CLONE_NEWNS),
        "syscalls": denied_syscalls,
        "host_sockets": [p for p in HOST_SOCKETS if os.path.exists(p) or connects(socket.AF_UNIX, p)],
        "interfaces": [name for _, name in socket.if_nameindex()],
        "host_port_reachable": connects(socket.AF_INET, ("127.0.0.1", host_port)),
        "readable_credentials": [rel for rel in CREDENTIALS if readable(os.path.join(home, rel))],
        "readable_home_file": readable(os.path.join(home, "notes.txt")),
        "readable_extra": [p for p in extra_paths if readable(p)],
        "writable_system": [d for d in ("/", "/usr", "/etc", "/bin", "/home", "/root", "/var") if writable_dir(d)],
        "secret_in_env": any(secret in v for v in os.environ.values()),
        "secret_in_proc": any(secret in text for text in environ_texts()),
        "env_names": sorted(os.environ),
        "visible_commands": visible_commands(),
        "instant_allocation": instant_allocation(),
    }
