"""The docker backend: an environment is an image ``sotalab-env:<spec hash>`` built on a
sandbox image from ``sandbox_images/<cpu|cuda>/Dockerfile``.

The sandbox image is built once per (Dockerfile, BASE, uv) from a context holding the
Dockerfile and the host's uv binary, so the build needs no download. The environment
layer is installed by a build container that has uv's cache bind-mounted (the classic
builder that docker-py drives has no ``RUN --mount=type=cache``) and is then committed
with the sandbox user, PATH and working directory restored. The host's CA bundle is
mounted for the build only (an intercepting proxy's CA must be trusted); nothing from
the host is baked into the image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import data_path
from ..errors import LabError
from ..registry import Progress
from .spec import EnvSpec
from .venv import BUILD_TIMEOUT_S, BuildFailed, uv_binary

SANDBOX_IMAGES = data_path("sandbox_images")
DEFAULT_BASES = {"cpu": "sotalab-base:bookworm", "cuda": "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"}
BASE_ENV_VARS = {"cpu": "SOTALAB_SANDBOX_BASE", "cuda": "SOTALAB_SANDBOX_CUDA_BASE"}
ENV_REPOSITORY = "sotalab-env"
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
ENV_PATH = "/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Fixed text; the caller's values arrive only as positional arguments ("$@").
INSTALL_SCRIPT = r"""set -e
py="$1"; shift
if [ "$#" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "$@"
    rm -rf /var/lib/apt/lists/*
fi
if [ -f /run/sotalab/ca.crt ]; then export SSL_CERT_FILE=/run/sotalab/ca.crt; fi
export UV_CACHE_DIR=/run/sotalab/uv-cache UV_LINK_MODE=copy
if [ "$py" = system ]; then py="$(command -v python3)"; fi
uv venv --no-project --python "$py" /opt/env
if [ -s /run/sotalab/spec/requirements.txt ]; then
    uv pip install --python /opt/env/bin/python -r /run/sotalab/spec/requirements.txt
fi
chmod -R a+rX /opt/env
"""


def default_base(family: str) -> str:
    return os.environ.get(BASE_ENV_VARS[family]) or DEFAULT_BASES[family]


def client():
    """A docker-py client for a running engine, or a LabError saying how to get one."""
    import docker

    try:
        engine = docker.from_env(timeout=BUILD_TIMEOUT_S)
        engine.ping()
    except Exception as exc:  # docker-py raises several types for "no engine"
        raise LabError(f"no Docker engine is reachable ({type(exc).__name__})",
                       hint="start dockerd (or Docker Desktop), or use backend='venv'") from None
    return engine


def image_exists(tag: str) -> bool:
    import docker

    try:
        client().images.get(tag)
        return True
    except (docker.errors.ImageNotFound, LabError):
        return False


def _uv_cache_dir(envs_dir: Path) -> Path:
    """A uv cache for Docker builds only, never the user's own: the build container runs
    packages' build scripts as root with the cache mounted writable, and could plant code
    there that a later uv install on the host would pick up. As root it lives in the
    lab's envs directory; otherwise in the temp directory, so root-owned files never land
    in the user's lab home."""
    if os.getuid() != 0:
        return Path(tempfile.gettempdir()) / f"sotalab-docker-uv-cache-{os.getuid()}"
    return envs_dir / ".docker-uv-cache"


def _log_lines(chunks, log: Path, progress: Progress) -> None:
    """Write a docker output stream to the build log, reporting each line."""
    with open(log, "a") as out:
        count = 0
        for chunk in chunks:
            text = chunk.decode(errors="replace") if isinstance(chunk, bytes) else chunk
            out.write(text)
            out.flush()
            for line in text.splitlines():
                if line.strip():
                    count += 1
                    progress(count, None, line.strip()[:200])


def sandbox_image(engine, family: str, base: str, log: Path, progress: Progress) -> str:
    """The sandbox image for ``family`` FROM ``base``, built when missing."""
    dockerfile = SANDBOX_IMAGES / family / "Dockerfile"
    uv = uv_binary()
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout.strip()
    key = hashlib.sha256(dockerfile.read_bytes() + base.encode() + version.encode()).hexdigest()[:12]
    tag = f"sotalab-sandbox-{family}:{key}"
    if image_exists(tag):
        return tag
    with open(log, "a") as out:
        out.write(f"[sotalab] building sandbox image {tag} FROM {base}\n")
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(dockerfile, Path(context) / "Dockerfile")
        shutil.copy(uv, Path(context) / "uv")
        stream = engine.api.build(path=context, tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True,
                                  decode=True, timeout=BUILD_TIMEOUT_S)
        failed = None

        def lines():
            nonlocal failed
            for item in stream:
                if "error" in item:
                    failed = item["error"]
                    yield f"ERROR: {item['error']}\n"
                elif "stream" in item:
                    yield item["stream"]

        _log_lines(lines(), log, progress)
    if failed or not image_exists(tag):
        raise BuildFailed(f"the {family} sandbox image did not build FROM {base}: {(failed or '').strip()[:300]}",
                          hint="check that BASE exists (scripts/make_base_image.sh makes sotalab-base:bookworm)")
    return tag


def build(spec: EnvSpec, env_dir: Path, log: Path, progress: Progress) -> str:
    """Build the environment image; returns its tag. Engine errors become BuildFailed
    with the engine's message in the log, so env_diagnose can read them."""
    import docker
    import requests

    try:
        return _build(spec, env_dir, log, progress)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        message = " ".join(str(exc).split())[:500]
        with open(log, "a") as out:
            out.write(f"ERROR: {message}\n")
        raise BuildFailed(f"the Docker engine refused the build: {message}",
                          hint="see env_diagnose; check the base image and the engine") from None


def _build(spec: EnvSpec, env_dir: Path, log: Path, progress: Progress) -> str:
    engine = client()
    sandbox = sandbox_image(engine, spec.base, spec.docker_base or default_base(spec.base), log, progress)
    (env_dir / "requirements.txt").write_text(spec.requirements_text())
    cache = _uv_cache_dir(env_dir.parent)
    cache.mkdir(parents=True, exist_ok=True)
    from docker.types import Mount

    # Mounts, not volumes: docker-py's `volumes` also declares VOLUMEs, which commit would
    # carry into the image.
    mounts = [Mount("/run/sotalab/spec", str(env_dir), type="bind", read_only=True),
              Mount("/run/sotalab/uv-cache", str(cache), type="bind")]
    bundle = next((b for b in HOST_CA_BUNDLES if Path(b).is_file()), None)
    if bundle:
        mounts.append(Mount("/run/sotalab/ca.crt", bundle, type="bind", read_only=True))
    tag = f"{ENV_REPOSITORY}:{env_dir.name}"
    container = engine.containers.create(
        sandbox, command=["/bin/sh", "-c", INSTALL_SCRIPT, "sotalab-install", spec.python, *spec.system_packages],
        user="root", working_dir="/", mounts=mounts, labels={"sotalab.env": env_dir.name})
    try:
        container.start()
        _log_lines(container.logs(stream=True, follow=True), log, progress)
        code = container.wait(timeout=BUILD_TIMEOUT_S).get("StatusCode", -1)
        if code != 0:
            with open(log, "a") as out:
                out.write(f"[exit code {code}]\n")
            raise BuildFailed(f"installing the environment in {sandbox} failed with exit code {code}",
                              hint="see the log with env_get and the diagnosis with env_diagnose")
        container.commit(repository=ENV_REPOSITORY, tag=env_dir.name, changes=[
            "USER sandbox", f"ENV PATH={ENV_PATH}", "ENV VIRTUAL_ENV=/opt/env", "WORKDIR /work",
            'CMD ["/bin/bash"]'])
    finally:
        container.remove(force=True)
    return tag
