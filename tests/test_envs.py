"""Environments: spec detection from real files, real uv venv builds of small PyPI
packages, content-hash reuse, and diagnosis with failure memories."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SIMPLE_CAMPAIGN, require
from test_repos import make_upstream, sh_git

from sotalab.tools import envs, ledger, workspaces
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
    listed = call("env_get", campaign=campaign)
    assert listed["total"] == 1 and listed["envs"][0]["id"] == first.env.id
    status = call("env_get", env=first.env.id)
    assert status["env"]["build_seconds"] is not None and "six" in status["log_tail"]
    assert len(call("env_get", env=first.env.id, tail_lines=1)["log_tail"].splitlines()) == 1


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
    assert "no environment" in call_error("env_get", env="venv-0000")
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
    recorded = call("env_diagnose", memory=finding["memory_id"], fix="added scikit-learn", worked=True)
    assert recorded == {"memory": finding["memory_id"], "signature": "missing_module:sklearn",
                        "fix": "added scikit-learn", "worked": True}
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


def test_diagnose_takes_exactly_one_mode(call, call_error, lab):
    """env_diagnose diagnoses one of env, run or log, or records memory+fix+worked; nothing in between."""
    [finding] = call("env_diagnose", log="ModuleNotFoundError: No module named 'cv2'\n")["findings"]
    assert finding["memory_id"] is None  # a log given as text is not remembered
    memory = lab.db["failure_memories"].insert({"signature": "missing_module:cv2", "detail": "", "evidence": "[]",
                                                "fix": "", "created_at": "t", "updated_at": "t"}).last_pk
    recorded = call("env_diagnose", memory=memory, fix="added opencv-python-headless", worked=False)
    assert recorded == {"memory": memory, "signature": "missing_module:cv2", "fix": "added opencv-python-headless",
                        "worked": False}
    known = call("env_diagnose", log="ModuleNotFoundError: No module named 'cv2'\n")["findings"][0]["known_fixes"]
    assert known[0] == known[0] | {"memory_id": memory, "fix": "added opencv-python-headless", "worked": False}
    assert "exactly one of env, run or log" in call_error("env_diagnose")
    assert "exactly one of env, run or log (got run, log)" in call_error("env_diagnose", run=1, log="x")
    message = call_error("env_diagnose", log="x", memory=memory, fix="y", worked=True)
    assert "give one or the other" in message and "memory, fix and worked" in message
    message = call_error("env_diagnose", memory=memory, fix="y")
    assert "missing worked" in message
    assert "missing memory, fix" in call_error("env_diagnose", worked=True)
    assert "no failure memory 999" in call_error("env_diagnose", memory=999, fix="y", worked=True)
    assert lab.db["failure_memories"].get(memory)["fix"] == "added opencv-python-headless"


# --- what detection says, index options, the frozen environment -------------------------------

def makemore_like(root: Path) -> Path:
    """makemore's shape: no requirements file, a README that only names PyTorch, code that
    imports torch, tensorboard (through torch.utils) and its own helper module."""
    (root / "pkg").mkdir(parents=True)
    (root / "README.md").write_text("# makemore\nPyTorch is the only requirement.\n")
    (root / "makemore.py").write_text(
        "import os, sys, argparse\nimport torch\nimport torch.nn as nn\nfrom torch.utils.tensorboard import SummaryWriter\n"
        "import helpers\nfrom pkg import tools\nfrom . import sibling\n")
    (root / "helpers.py").write_text("import numpy as np\nimport cv2\nimport sklearn.metrics\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "tools.py").write_text("import yaml\nfrom PIL import Image\n")
    (root / "broken.py").write_text("print 'python 2'\n")
    return root


def test_detection_says_what_it_found_and_suggests_what_the_code_imports(call, tmp_path):
    require(have_uv(), "uv is not installed")
    out = call("env_build", path=str(makemore_like(tmp_path / "repo")), overrides={"packages": ["numpy"]})
    detection = out["detection"]
    assert detection["sources"] == [] and detection["requirements"] == 1
    assert set(detection["imports"]) == {"torch", "torch.utils.tensorboard", "numpy", "cv2", "sklearn", "yaml", "PIL"}
    assert detection["imports"]["torch"] == ["makemore.py"]
    assert detection["suggested_packages"] == ["opencv-python-headless", "pillow", "pyyaml", "scikit-learn", "tensorboard",
                                               "torch"]
    assert any("found" in w and "only the overrides" in w for w in detection["warnings"])
    assert any("tensorboard" in w and "overrides.packages" in w for w in detection["warnings"])
    assert "add the package 'tensorboard' (env_build overrides.packages)" in detection["fixes"]


def test_detection_with_requirements_warns_about_nothing(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "requirements.txt").write_text("scikit-learn\nnumpy\n")
    (root / "train.py").write_text("import numpy\nfrom sklearn import svm\n")
    report = envs.detection_report(root, resolve(root, Overrides(), "venv"))
    assert report.sources == ["requirements.txt"] and report.warnings == [] and report.suggested_packages == []


def test_index_options_reach_the_requirements_file_and_change_the_id(tmp_path):
    plain = resolve(None, Overrides(packages=["torch==2.13.0"]), "venv")
    cpu = resolve(None, Overrides(packages=["torch==2.13.0"], extra_index_urls=["https://download.pytorch.org/whl/cpu"],
                                  find_links=["/opt/wheels"]), "venv")
    assert plain.env_id() != cpu.env_id()
    assert cpu.requirements_text() == ("--extra-index-url https://download.pytorch.org/whl/cpu\n"
                                       "--find-links /opt/wheels\ntorch==2.13.0\n")
    assert plain.requirements_text() == "torch==2.13.0\n"


@pytest.mark.parametrize("overrides, expect", [
    ({"index_url": "--trusted-host evil"}, "not an http(s):// or file:// URL"),
    ({"extra_index_urls": ["https://x.example/simple --trusted-host evil"]}, "not an http(s)://"),
    ({"find_links": ["relative/wheels"]}, "absolute path"),
])
def test_index_options_that_would_smuggle_pip_options_are_refused(call_error, overrides, expect):
    assert expect in call_error("env_build", detect=False, overrides=overrides)


def test_a_local_find_links_directory_is_refused_for_docker(call_error):
    message = call_error("env_build", detect=False, backend="docker", overrides={"find_links": ["/opt/wheels"]})
    assert "not visible to a Docker build" in message


def test_venv_installs_a_wheel_from_a_local_find_links_directory(call, lab, tmp_path):
    """The offline way to a CPU torch here (a wheel on disk); shown with a wheel made here."""
    require(have_uv(), "uv is not installed")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "sotalab_probe_pkg", "1.0", "VALUE = 42\n")
    out = call("env_build", detect=False, overrides={"packages": ["sotalab-probe-pkg==1.0"],
                                                     "find_links": [str(wheels)]})
    assert out["env"]["status"] == "ready", out["log_tail"]
    python = envs.python_path(lab, out["env"]["id"])
    assert subprocess.run([str(python), "-c", "import sotalab_probe_pkg as m; print(m.VALUE)"],
                          capture_output=True, text=True, check=True).stdout.strip() == "42"


def make_wheel(directory: Path, name: str, version: str, code: str) -> Path:
    """A pure-Python wheel written by hand (a wheel is a zip with three metadata files)."""
    import base64
    import hashlib
    import zipfile

    dist_info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": code,
             f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n",
             f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: sotalab-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def test_a_campaigns_environment_is_frozen_once_a_trial_is_scored(call, call_error, lab, campaign):
    require(have_uv(), "uv is not installed")
    first = call("env_build", campaign=campaign)
    baseline = call("trial_create", campaign=campaign, kind="baseline")
    # The score as the evaluation path records it; the real path is in test_real_repos.
    lab.db["trials"].update(baseline["id"], {"score": 0.5})
    message = call_error("env_build", campaign=campaign, overrides={"packages": ["tomli"]})
    assert "is frozen: a trial has been scored" in message and "campaign=null" in message
    assert call("campaign_get", campaign=campaign)["env_id"] == first["env"]["id"]
    again = call("env_build", campaign=campaign)  # the same spec (a resumed session) changes nothing
    assert again["reused"] and again["env"]["id"] == first["env"]["id"]
    trying = call("env_build", path=str(workspaces.campaign_repo(lab, campaign)), overrides={"packages": ["tomli"]})
    assert trying["env"]["status"] == "ready"  # trying a spec outside the campaign stays possible


def test_env_build_dry_run_reports_before_anything_is_built(call, call_error, lab, tmp_path):
    """nanoGPT's README line names torch: building it blindly downloads a CUDA torch of
    several GB. env_build's dry run says so and builds nothing."""
    root = tmp_path / "nanogpt"
    root.mkdir()
    (root / "README.md").write_text("## install\n\n```\npip install torch numpy transformers tiktoken\n```\n")
    (root / "train.py").write_text("import torch\nimport numpy as np\nimport wandb\n")
    seen = call("env_build", dry_run=True, path=str(root))
    assert seen["built"] is False and seen["spec"]["requirements"] == ["numpy", "tiktoken", "torch", "transformers"]
    assert seen["detection"]["sources"] == ["README.md"] and seen["detection"]["suggested_packages"] == ["wandb"]
    assert any("CUDA build" in w for w in seen["detection"]["warnings"])
    assert list(lab.path("envs").iterdir()) == []
    cpu = call("env_build", dry_run=True, path=str(root), overrides={"pins": {"torch": "2.13.0"}, "find_links": ["/opt/wheels"],
                                                        "remove": ["transformers", "tiktoken"]})
    assert not any("CUDA build" in w for w in cpu["detection"]["warnings"]) and cpu["env_id"] != seen["env_id"]
    assert "fixes does not apply" in call_error("env_build", dry_run=True, path=str(root), fixes="venv-0000")
    assert list(lab.path("envs").iterdir()) == [] and lab.db["environments"].count == 0


def test_env_get_refuses_list_filters_with_one_env(call, call_error):
    assert call("env_get") == {"envs": [], "total": 0, "next_cursor": None}
    message = call_error("env_get", env="venv-0000", campaign=1, limit=5)
    assert "campaign, limit list environments" in message and "drop `env` to list" in message
    assert "tail_lines is for one environment" in call_error("env_get", tail_lines=5)


def test_a_python_version_this_machine_lacks_is_named_before_the_build(call, tmp_path):
    """An environment.yml asking for a Python that is not installed made uv try a download
    (DeepNets-Playground asks for 3.13)."""
    require(have_uv(), "uv is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "environment.yml").write_text("dependencies:\n  - python=3.9\n  - pip:\n    - six\n")
    seen = call("env_build", dry_run=True, path=str(root), overrides={"python": "3.2"})
    assert any("Python 3.2 is not installed" in w for w in seen["detection"]["warnings"])
    here = call("env_build", dry_run=True, path=str(root), overrides={"python": f"{sys.version_info.major}.{sys.version_info.minor}"})
    assert not any("is not installed" in w for w in here["detection"]["warnings"])
