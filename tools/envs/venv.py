"""The venv backend: ``uv venv`` + ``uv pip install``, sharing uv's cache (hard links).

uv's cache is the user's (``$UV_CACHE_DIR`` or uv's default), so packages downloaded
once are linked, not copied or fetched again, into every later environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import LabError
from ..registry import Progress
from .spec import EnvSpec

BUILD_TIMEOUT_S = 3600


class BuildFailed(LabError):
    """A build step exited non-zero; its output is in the build log."""


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def uv_binary() -> Path:
    """The uv executable itself (not a version-manager shim, so it can be copied into
    an image): $SOTALAB_UV, uv on PATH, or the one next to this Python."""
    candidates = [os.environ.get("SOTALAB_UV"), shutil.which("uv"),
                  Path(sys.prefix) / "bin" / "uv", Path(sys.base_prefix) / "bin" / "uv",
                  Path.home() / ".local" / "bin" / "uv", Path.home() / ".cargo" / "bin" / "uv"]
    for candidate in candidates:
        if candidate and _is_elf(Path(candidate)):
            return Path(candidate).resolve()
    raise LabError("uv is not installed", hint="install it with `pip install uv` or set SOTALAB_UV to its path")


def run_logged(argv: list[str], log: Path, progress: Progress, env: dict | None = None,
               timeout: float = BUILD_TIMEOUT_S) -> None:
    """Run one build step, appending its output to ``log`` and reporting each line."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, errors="replace")
        lines = 0
        try:
            for line in proc.stdout:
                out.write(line)
                lines += 1
                progress(lines, None, line.strip()[:200])
            code = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
        if code != 0:
            out.write(f"[exit code {code}]\n")
            raise BuildFailed(f"{Path(argv[0]).name} {argv[1]} failed with exit code {code}",
                              hint="see the log with env_get and the diagnosis with env_diagnose")


# What uv needs from the server's environment to find its cache, interpreters, index and
# network; everything else (tokens, keys) stays out: building an sdist runs its setup.py.
BUILD_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
                             "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "SOURCE_DATE_EPOCH",
                             "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"})


def build_environment() -> dict[str, str]:
    """The allowlisted environment for build steps: the names above, uv's own UV_*
    settings (cache, index), and proxy settings."""
    return {k: v for k, v in os.environ.items()
            if k in BUILD_ENV_NAMES or k.startswith("UV_") or k.upper().endswith("_PROXY")}


def build(spec: EnvSpec, env_dir: Path, log: Path, progress: Progress) -> str:
    """Build the venv in ``env_dir/venv``; returns its path."""
    uv = str(uv_binary())
    venv = env_dir / "venv"
    if venv.exists():
        shutil.rmtree(venv)  # a half-built venv from a failed or killed build
    requirements = env_dir / "requirements.txt"
    requirements.write_text(spec.requirements_text())
    env = {**build_environment(), "VIRTUAL_ENV": str(venv)}
    run_logged([uv, "venv", "--no-project", "--python", spec.python, str(venv)], log, progress, env)
    if spec.requirements:
        run_logged([uv, "pip", "install", "--python", str(venv / "bin" / "python"), "-r", str(requirements)],
                   log, progress, env)
    return str(venv)
