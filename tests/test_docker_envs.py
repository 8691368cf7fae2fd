"""Docker environments on a real engine: the sandbox images built FROM the registry-free
debootstrap base (scripts/make_base_image.sh), an environment image on top, a command
run in it as the non-root sandbox user."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO, require

from sotalab.tools.envs import docker as docker_backend

BASE = "sotalab-base:bookworm"
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def engine_running() -> bool:
    try:
        docker_backend.client()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def engine():
    require(engine_running(), "a running Docker engine (apt-get install docker.io; dockerd)")
    if not docker_backend.image_exists(BASE) and shutil.which("debootstrap") and os.geteuid() == 0:
        subprocess.run([str(REPO / "scripts" / "make_base_image.sh"), BASE], check=True, timeout=1800)
    require(docker_backend.image_exists(BASE), f"the base image {BASE} (scripts/make_base_image.sh makes it)")
    return docker_backend.client()


@pytest.fixture(autouse=True)
def base_env(monkeypatch):
    monkeypatch.setenv("SOTALAB_SANDBOX_BASE", BASE)


def run_in(engine, image: str, *argv: str) -> str:
    return engine.containers.run(image, list(argv), remove=True, network_mode="none").decode()


@pytest.mark.parametrize("family", ["cpu", "cuda"])
def test_sandbox_image_builds_from_the_debootstrap_base(engine, tmp_path, family):
    log = tmp_path / "build.log"
    tag = docker_backend.sandbox_image(engine, family, BASE, log, lambda *a, **k: None)
    if family == "cpu":  # rebuild from scratch once, so the Dockerfile itself is exercised
        engine.images.remove(tag, force=True)
        tag = docker_backend.sandbox_image(engine, family, BASE, log, lambda *a, **k: None)
        assert "Successfully built" in log.read_text()
    out = run_in(engine, tag, "sh", "-c", "id -un; uv --version; python3 -c 'import venv; print(\"venv-ok\")'; pwd")
    user, uv_version, venv_ok, cwd = out.split("\n")[:4]
    assert user == "sandbox" and uv_version.startswith("uv ") and venv_ok == "venv-ok" and cwd == "/work"
    assert engine.images.get(tag).attrs["Config"]["User"] == "sandbox"


def test_env_image_on_top_runs_a_command_and_is_reused(call, engine, tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    built = call("env_build", path=str(tmp_path), backend="docker", overrides={"packages": ["tomli"]})
    env = built["env"]
    assert env["status"] == "ready", built["log_tail"]
    assert env["location"] == f"sotalab-env:{env['id']}"
    out = run_in(engine, env["location"], "python", "-c",
                 "import os, six, sys, tomli; print(sys.executable, os.getuid() != 0, six.__name__)")
    assert out.split() == ["/opt/env/bin/python", "True", "six"]
    config = engine.images.get(env["location"]).attrs["Config"]
    assert config["User"] == "sandbox" and not config.get("Volumes")
    # The host's CA bundle was mounted for the build only; nothing of it is in the image.
    assert run_in(engine, env["location"], "sh", "-c", "test -s /run/sotalab/ca.crt && echo baked || echo clean") \
        .strip() == "clean"
    again = call("env_build", path=str(tmp_path), backend="docker", overrides={"packages": ["tomli"]})
    assert again["reused"] is True and again["env"]["id"] == env["id"]


def test_system_packages_are_installed_in_the_env_image(call, engine, tmp_path):
    built = call("env_build", backend="docker", detect=False,
                 overrides={"packages": ["six"], "system_packages": ["less"]})
    assert built["env"]["status"] == "ready", built["log_tail"]
    assert run_in(engine, built["env"]["location"], "sh", "-c", "command -v less").strip() == "/usr/bin/less"


def test_failed_docker_build_is_diagnosed(call, engine):
    bad = "sotalab-test-no-such-package-zz"
    built = call("env_build", backend="docker", detect=False, overrides={"packages": [bad]})
    assert built["env"]["status"] == "failed"
    assert built["env"]["diagnostics"][0]["signature"] == f"no_matching_distribution:{bad}"
    assert not docker_backend.image_exists(f"sotalab-env:{built['env']['id']}")
    assert not engine.containers.list(all=True, filters={"label": f"sotalab.env={built['env']['id']}"})


def test_missing_base_image_fails_the_build_with_a_diagnosis(call, engine):
    built = call("env_build", backend="docker", detect=False,
                 overrides={"packages": ["six"], "docker_base": "sotalab-test-no-such-base:none"})
    assert built["env"]["status"] == "failed"
    assert "sotalab-test-no-such-base" in built["log_tail"]
    assert built["env"]["diagnostics"][0]["signature"] == "image_pull_failed", built["log_tail"]
    assert "make_base_image.sh" in built["env"]["diagnostics"][0]["fixes"][0]


def test_docker_builds_never_share_the_users_uv_cache(lab):
    """The build container runs build scripts as root over a writable cache mount: it
    must not be the cache uv uses on the host."""
    own = subprocess.run([str(docker_backend.uv_binary()), "cache", "dir"], capture_output=True, text=True).stdout.strip()
    assert own and os.path.realpath(docker_backend._uv_cache_dir(lab.path("envs"))) != os.path.realpath(own)
