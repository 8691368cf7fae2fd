"""Environments: spec detection from real files, real uv venv builds of small PyPI
packages, content-hash reuse, and diagnosis with failure memories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SIMPLE_CAMPAIGN, require
from test_repos import make_upstream, sh_git

from sotalab.tools import envs, ledger
from sotalab.tools.envs.spec import Overrides, detect, resolve
from sotalab.tools.envs.venv import uv_binary

NO_SUCH_PACKAGE = "sotalab-test-no-such-package-zz"


def have_uv() -> bool:
    try:
        uv_binary()
        return True
    except Exception:
        return False


# --- spec detection ------------------------------------------------------------------------

def test_detects_requirements_with_includes_and_skips_options(tmp_path):
    (tmp_path / "requirements.txt").write_text(
        "# comment\nnumpy>=1.26  # inline\n-r extra.txt\n-e .\n--index-url https://evil.example/simple\n"
        "./local_pkg\ngit+https://example.com/x.git\ntorch==2.3.0; sys_platform == 'linux'\n"
        "attrs==23.2.0 \\\n    --hash=sha256:0123\n")
    (tmp_path / "extra.txt").write_text("tqdm\n-r ../../etc/passwd\n")
    python, requirements, sources = detect(tmp_path)
    assert requirements == ["numpy>=1.26", "tqdm", "torch==2.3.0; sys_platform == 'linux'", "attrs==23.2.0"]
    assert sources == ["requirements.txt"] and python is None


def test_detects_pyproject_setup_cfg_setup_py_environment_yml(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["scipy>=1.11", "six"]\n')
    (tmp_path / "setup.cfg").write_text("[options]\ninstall_requires =\n    tomli\n    attrs>=23\n")
    (tmp_path / "setup.py").write_text("import os\nos.system('touch /tmp/sotalab-setup-ran')\n"
                                       "setup(name='x', install_requires=['requests<3'])\n")
    (tmp_path / "environment.yml").write_text(
        "name: x\ndependencies:\n  - python=3.10\n  - numpy\n  - pip:\n    - einops==0.8.0\n    - -e .\n")
    python, requirements, sources = detect(tmp_path)
    assert python == "3.10"
    assert requirements == ["scipy>=1.11", "six", "tomli", "attrs>=23", "requests<3", "einops==0.8.0"]
    assert sources == ["pyproject.toml", "setup.cfg", "setup.py", "environment.yml"]
    assert not Path("/tmp/sotalab-setup-ran").exists()  # setup.py is parsed, never run


def test_readme_pip_line_is_the_last_resort(tmp_path):
    (tmp_path / "README.md").write_text("# Model\n\n```\npip install -r requirements-dev.txt\n"
                                       "pip install -U torch torchvision==0.18 . && python train.py\n```\n")
    assert detect(tmp_path)[1] == ["torch", "torchvision==0.18"]
    (tmp_path / "requirements.txt").write_text("six\n")
    assert detect(tmp_path)[1] == ["six"]


def test_overrides_pin_remove_add_and_hash_is_order_independent(tmp_path):
    (tmp_path / "requirements.txt").write_text("Six>=1.0\ntomli\nnumpy\n")
    spec = resolve(tmp_path, Overrides(pins={"six": "1.16.0"}, remove=["numpy"], packages=["attrs"]), "venv")
    assert spec.requirements == ["attrs", "six==1.16.0", "tomli"]
    (tmp_path / "requirements.txt").write_text("numpy\ntomli\nSix>=1.0\n")
    again = resolve(tmp_path, Overrides(packages=["attrs"], remove=["numpy"], pins={"six": "1.16.0"}), "venv")
    assert again.env_id() == spec.env_id()
    assert resolve(tmp_path, Overrides(python="3.12"), "venv").env_id() != spec.env_id()


def test_option_like_requirements_and_bad_system_packages_are_refused(call_error):
    assert "not a package requirement" in call_error("env_build", overrides={"packages": ["--index-url=http://x"]})
    assert "not a package requirement" in call_error("env_build", overrides={"packages": ["/etc/passwd"]})
    assert "Debian package" in call_error("env_build", backend="docker",
                                          overrides={"system_packages": ["-o APT::Update::Pre-Invoke::=touch /tmp/x"]})
    assert "docker backend" in call_error("env_build", overrides={"system_packages": ["gcc"]})


# --- venv builds -----------------------------------------------------------------------------

@pytest.fixture
def campaign(call, tmp_path) -> int:
    upstream = make_upstream(tmp_path)
    (upstream / "requirements.txt").write_text("six\n")
    sh_git(upstream, "add", "requirements.txt")
    sh_git(upstream, "commit", "-q", "-m", "deps")
    cid = call("campaign_create", **SIMPLE_CAMPAIGN)["id"]
    call("repo_clone", campaign=cid, url=str(upstream))
    return cid


def test_venv_build_from_campaign_repo_then_instant_reuse(call, lab, campaign):
    require(have_uv(), "uv is not installed")
    seen = []
    first = envs.env_build(lab, envs.EnvBuildIn(campaign=campaign, overrides={"packages": ["tomli"]}),
                           lambda done, total=None, message=None: seen.append(message))
    assert first.env.status == "ready" and not first.reused
    assert first.env.spec.requirements == ["six", "tomli"]
    assert first.env.spec.sources == ["requirements.txt"]
    assert any(m and "six" in m for m in seen)  # progress carried the build's own lines
    python = envs.python_path(lab, first.env.id)
    out = subprocess.run([str(python), "-c", "import six, tomli; print(six.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip()
    assert call("campaign_get", campaign=campaign)["env_id"] == first.env.id
    readable = envs.readable_paths(lab, first.env.id)
    assert readable[0] == python.parent.parent
    assert any(python.resolve().is_relative_to(p) for p in readable[1:])  # the base interpreter

    again = call("env_build", campaign=campaign, overrides={"packages": ["tomli"]})
    assert again["reused"] is True and again["env"]["id"] == first.env.id
    assert call("env_list", campaign=campaign)["total"] == 1
    status = call("env_status", env=first.env.id)
    assert status["env"]["build_seconds"] is not None and "six" in status["log_tail"]


def test_package_builds_do_not_see_the_servers_secrets(call, lab, tmp_path, monkeypatch):
    """Building an sdist runs its setup.py on the server: it must get an allowlisted
    environment, like a run, not the server's tokens and keys."""
    require(have_uv(), "uv is not installed")
    monkeypatch.setenv("SOTALAB_TEST_SECRET_TOKEN", "hunter2")
    seen = tmp_path / "build-env.txt"
    pkg = tmp_path / "leaky"
    pkg.mkdir()
    (pkg / "setup.py").write_text(
        "import os\nfrom setuptools import setup\n"
        f"open({str(seen)!r}, 'a').write(repr(sorted(os.environ.items())))\n"
        "setup(name='leaky', version='0.1', py_modules=[])\n")
    built = call("env_build", detect=False, overrides={"packages": [f"leaky @ {pkg.as_uri()}"]})
    assert built["env"]["status"] == "ready", built["log_tail"]
    assert seen.exists() and "PATH" in seen.read_text()  # setup.py did run
    assert "hunter2" not in seen.read_text()


def test_deleted_venv_is_rebuilt_not_reused(call, lab, campaign):
    require(have_uv(), "uv is not installed")
    built = call("env_build", campaign=campaign)
    shutil.rmtree(built["env"]["location"])
    again = call("env_build", campaign=campaign)
    assert again["reused"] is False and again["env"]["status"] == "ready"
    assert envs.python_path(lab, built["env"]["id"]).exists()


def test_unknown_env_and_wrong_backend(call_error, lab):
    assert "no environment" in call_error("env_status", env="venv-0000")
    with pytest.raises(Exception, match="no environment"):
        envs.python_path(lab, "venv-0000")


# --- diagnosis and failure memories --------------------------------------------------------

def test_failed_build_is_diagnosed_and_the_fix_that_worked_is_offered_next_time(call, lab, campaign):
    require(have_uv(), "uv is not installed")
    failed = call("env_build", campaign=campaign, overrides={"packages": [NO_SUCH_PACKAGE]})
    assert failed["env"]["status"] == "failed"
    signature = f"no_matching_distribution:{NO_SUCH_PACKAGE}"
    assert failed["env"]["diagnostics"][0]["signature"] == signature
    assert NO_SUCH_PACKAGE in failed["log_tail"]
    assert call("campaign_get", campaign=campaign)["env_id"] is None  # a failed env is not the campaign's

    diagnosis = call("env_diagnose", env=failed["env"]["id"])
    finding = diagnosis["findings"][0]
    assert finding["signature"] == signature and finding["known_fixes"] == []
    assert any(NO_SUCH_PACKAGE in line for line in finding["evidence"])
    assert any("remove" in fix for fix in finding["fixes"])

    # The repair: the same spec without the bad package. env_build links it to the failure.
    fixed = call("env_build", campaign=campaign, overrides={"packages": []})
    assert fixed["env"]["status"] == "ready"
    memory = lab.db["failure_memories"].get(finding["memory_id"])
    assert memory["worked"] == 1 and f"-{NO_SUCH_PACKAGE}" in memory["fix"]

    # Another campaign meets the same failure: retrieve before repair.
    other = call("campaign_create", **dict(SIMPLE_CAMPAIGN, name="other"))["id"]
    log = f"error: Because {NO_SUCH_PACKAGE} was not found in the package registry and you require it\n"
    again = call("env_diagnose", log=log)["findings"][0]
    assert again["signature"] == signature
    assert again["known_fixes"][0]["worked"] is True and again["known_fixes"][0]["campaign_id"] == campaign
    assert other != campaign


def test_run_log_diagnosis_and_recorded_fix(call, lab, campaign):
    run_dir = lab.path("runs", 1)
    run_dir.mkdir(parents=True)
    (run_dir / "output.head").write_text("Traceback (most recent call last):\n  File \"train.py\", line 1\n"
                                         "ModuleNotFoundError: No module named 'sklearn'\n")
    stamp = ledger.now()
    lab.db["runs"].insert({"id": 1, "campaign_id": campaign, "argv": "[]", "cwd": "/", "executor": "local",
                           "status": "failed", "run_dir": str(run_dir), "created_at": stamp})
    finding = call("env_diagnose", run=1)["findings"][0]
    assert finding["signature"] == "missing_module:sklearn"
    assert "scikit-learn" in finding["fixes"][0]
    # Diagnosing again updates the same memory instead of piling up copies.
    assert call("env_diagnose", run=1)["findings"][0]["memory_id"] == finding["memory_id"]
    call("env_fix_record", memory=finding["memory_id"], fix="added scikit-learn", worked=True)
    later = call("env_diagnose", log="ModuleNotFoundError: No module named 'sklearn.metrics'")["findings"][0]
    assert later["known_fixes"][0] == later["known_fixes"][0] | {"fix": "added scikit-learn", "worked": True}


@pytest.mark.parametrize("line, signature", [
    ("ERROR: No matching distribution found for torch==9.9", "no_matching_distribution:torch"),
    ("  cause: Because you require six<1 and six>2, we can conclude that your requirements are unsatisfiable.",
     "version_conflict:six"),
    ("src/x.c:1:10: fatal error: Python.h: No such file or directory", "missing_header:Python.h"),
    ("error: command 'gcc' failed: No such file or directory", "missing_compiler:gcc"),
    ("RuntimeError: CUDA error: no kernel image is available for execution on the device", "cuda_mismatch"),
    ("ImportError: libcudart.so.11.0: cannot open shared object file", "cuda_mismatch:libcudart.so.11.0"),
    ("  Caused by: dns error: failed to lookup address information", "network_unreachable"),
    ("OSError: [Errno 28] No space left on device", "disk_full"),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "out_of_memory:gpu"),
    ("MemoryError", "out_of_memory:cpu"),
    ("  x No interpreter found for Python 3.8 in managed installations", "python_unavailable:3.8"),
])
def test_signatures(call, line, signature):
    findings = call("env_diagnose", log=f"some output\n{line}\nmore\n")["findings"]
    assert [f["signature"] for f in findings] == [signature]
    assert findings[0]["evidence"] == [f"L2: {line.strip()}"]


def test_clean_log_has_no_findings(call):
    assert call("env_diagnose", log="all good\n")["findings"] == []
