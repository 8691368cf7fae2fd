"""Shapes of real repositories that broke or confused the route in docs/real-repos.md,
each as a small generated repository (CI has no network and fetches nothing).

- A package with a src/ layout and a console script (as Bonartze/repro-benchmark): the
  lab never installs the repository, so the script does not exist and the package does
  not import from the repository root. Detection says so, a crash says why in the
  evaluation result, and env_diagnose never tells the user to install the repository's
  own module from PyPI (a released copy would run instead of every trial's code).
- A Hydra/Lightning template (as ashleve/lightning-hydra-template): `import hydra` is
  hydra-core, omegaconf comes with it, test-only and guarded imports are no requirement,
  and a CPU torch from local wheels does not fit a torchvision from PyPI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from sotalab.tools import envs
from sotalab.tools.diagnose import classify, in_run
from sotalab.tools.envs.spec import EnvSpec, Overrides, resolve
from sotalab.tools.repo_project import own_project

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin:/usr/local/bin"}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def commit(repo: Path) -> Path:
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "upstream"]):
        subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True)
    return repo


SRC_PACKAGE = {
    "pyproject.toml": '[project]\nname = "toy-bench"\nversion = "0.1"\ndependencies = []\n\n'
                      '[project.scripts]\ntoy-bench = "toy_bench.cli:main"\n\n'
                      '[tool.hatch.build.targets.wheel]\npackages = ["src/toy_bench"]\n',
    "src/toy_bench/__init__.py": "",
    "src/toy_bench/core.py": "WEIGHT = 0.5\n\n\ndef score(seed):\n    return 0.5 + WEIGHT / (2 + seed)\n",
    "src/toy_bench/cli.py": "import argparse\nfrom .core import score\n\n\ndef main(argv=None):\n"
                            "    args = argparse.ArgumentParser().parse_args(argv)\n"
                            "    print(f'accuracy={score(0):.4f}')\n    return 0\n",
    "tests/test_cli.py": "import pytest\nimport sh\n",
}
# What a user writes first (the README says: run `toy-bench`), and what docs/real-repos.md teaches.
NAIVE_SCRIPT = "import subprocess\nsubprocess.run(['toy-bench'], check=True)\n"
NAIVE_IMPORT = "from toy_bench.cli import main\nmain([])\n"
PRINTED_BY_THE_PACKAGE = "import sys\nsys.path.insert(0, 'src')\nfrom toy_bench.cli import main  # noqa: E402\n\nmain([])\n"
TAUGHT = ("import sys\nsys.path.insert(0, 'src')\nfrom toy_bench.core import score  # noqa: E402\n\n"
          "print(f'accuracy={score(0):.4f}')\n")


def test_detection_names_a_src_layout_package_and_its_console_scripts(tmp_path):
    root = write(tmp_path, SRC_PACKAGE)
    project = own_project(root)
    assert project.name == "toy-bench" and project.import_root == "src" and project.packages == ["toy_bench"]
    assert project.scripts == {"toy-bench": "toy_bench.cli:main"}
    report = envs.detection_report(root, resolve(root, Overrides(), "venv"))
    assert report.project == project
    warning = next(w for w in report.warnings if "is itself a package" in w)
    assert "sys.path.insert(0, 'src')" in warning and "toy-bench -> toy_bench.cli:main" in warning
    assert "do not add toy-bench to overrides.packages" in warning
    # tests/ imports pytest and sh: neither is needed to train or evaluate
    assert report.suggested_packages == []
    assert report.not_suggested == {"pytest": "only the tests import it", "sh": "only the tests import it"}


def test_a_setup_py_package_at_the_root_is_named_for_its_scripts_only(tmp_path):
    root = write(tmp_path, {
        "setup.py": "from setuptools import find_packages, setup\nsetup(name='src', packages=find_packages(),\n"
                    "      entry_points={'console_scripts': ['train_command = src.train:main']})\n",
        "src/__init__.py": "", "src/train.py": "def main():\n    pass\n"})
    project = own_project(root)
    assert (project.name, project.import_root, project.packages) == ("src", ".", ["src"])
    report = envs.detection_report(root, resolve(root, Overrides(), "venv"))
    warning = next(w for w in report.warnings if "is itself a package" in w)
    assert "train_command -> src.train:main" in warning and "sys.path" not in warning
    # plain scripts, no package metadata: nothing to say
    assert own_project(write(tmp_path / "plain", {"train.py": "print(1)\n"})) is None
    # metadata it cannot read as literals or tables is left out, never an error
    odd = own_project(write(tmp_path / "odd", {"pyproject.toml": '[project]\nname = "odd"\nscripts = "x"\n',
                                               "setup.py": "setup(entry_points=make_entry_points())\n"}))
    assert odd.name == "odd" and odd.scripts == {}


HYDRA_TEMPLATE = {
    "requirements.txt": "torch>=2.0.0\ntorchvision>=0.15.0\nlightning>=2.0.0\nhydra-core==1.3.2\nrootutils\nrich\n",
    "src/__init__.py": "",
    "src/train.py": "import hydra\nimport lightning as L\nimport rootutils\nfrom omegaconf import DictConfig\n"
                    "from lightning_utilities.core.rank_zero import rank_zero_only\n",
    "src/utils.py": "from importlib.util import find_spec\n\n\ndef close():\n    if find_spec('wandb'):\n"
                    "        import wandb\n        wandb.finish()\n\n\ntry:\n    import tensorboardX\n"
                    "except ImportError:\n    tensorboardX = None\n",
    "src/data.py": "from torchvision.datasets import MNIST\ntry:\n    import rich\nexcept ImportError as exc:\n"
                   "    raise SystemExit('pip install rich') from exc\n",
    "tests/helpers/run_if.py": "from packaging.version import Version\nimport pytest\n",
}


def test_hydra_is_hydra_core_and_what_a_requirement_brings_is_not_suggested(tmp_path):
    root = write(tmp_path, HYDRA_TEMPLATE)
    report = envs.detection_report(root, resolve(root, Overrides(), "venv"))
    # `hydra` on PyPI is an unrelated library: suggesting it would install the wrong thing
    assert "hydra" not in report.suggested_packages and report.suggested_packages == []
    assert report.not_suggested == {
        "lightning_utilities": "lightning brings it", "omegaconf": "hydra-core brings it",
        "packaging": "only the tests import it", "pytest": "only the tests import it",
        "tensorboardX": "every import of it is guarded (optional)",
        "wandb": "every import of it is guarded (optional)"}
    # a handler that raises again ("please install rich") guards nothing: rich is needed
    assert "rich" not in report.not_suggested
    report = envs.detection_report(root, resolve(root, Overrides(remove=["rootutils"]), "venv"))
    assert "rootutils" in report.suggested_packages


def test_generated_code_nested_deep_neither_breaks_detection_nor_hides_the_rest(tmp_path):
    """A parser's RecursionError used to end detection; such a file is skipped now, and a
    deep but parseable one is walked without recursion."""
    deep = ("import numpy\nX = " + " + ".join(["1"] * 1500) + "\n"
            + "".join("    " * i + "if X:\n" for i in range(60)) + "    " * 60 + "import scipy\n")
    root = write(tmp_path, {"requirements.txt": "numpy\nscipy\n", "deep.py": deep,
                            "table.py": "import yaml\nX = " + " + ".join(["1"] * 50000) + "\n",
                            "train.py": "try:\n    import wandb\nexcept ImportError:\n    wandb = None\n"})
    report = envs.detection_report(root, resolve(root, Overrides(), "venv"))
    assert set(report.imports) == {"numpy", "scipy", "wandb"} and report.suggested_packages == []


def test_an_import_a_built_environment_resolves_is_not_suggested(tmp_path):
    """After a build, detection asks the environment's interpreter (here this one)."""
    import sys

    root = write(tmp_path, {"requirements.txt": "pydantic\n", "train.py": "import pydantic_core\nimport nosuchmod\n"})
    spec = resolve(root, Overrides(), "venv")
    before = envs.detection_report(root, spec)
    assert before.suggested_packages == ["nosuchmod", "pydantic_core"]
    after = envs.detection_report(root, spec, Path(sys.executable))
    assert after.suggested_packages == ["nosuchmod"]
    assert after.not_suggested["pydantic_core"].startswith("the built environment has it")


def test_a_cpu_torch_from_local_wheels_warns_about_torchvision_from_pypi(tmp_path):
    root = write(tmp_path / "repo", HYDRA_TEMPLATE)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    spec = resolve(root, Overrides(pins={"torch": "2.13.0"}, find_links=[str(wheels)]), "venv")
    warning = next(w for w in envs.detection_report(root, spec).warnings if "would come from PyPI" in w)
    assert warning.startswith("torch comes from find_links, but torchvision would come from PyPI")
    (wheels / "torchvision-0.28.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert not any("would come from PyPI" in w for w in envs.detection_report(root, spec).warnings)
    both = EnvSpec(**{**spec.model_dump(), "extra_index_urls": ["https://download.pytorch.org/whl/cpu"]})
    assert not any("would come from PyPI" in w for w in envs.detection_report(root, both).warnings)


def test_diagnosis_of_a_torchvision_built_for_another_torch():
    [finding] = classify("  File \"torchvision/_meta_registrations.py\", line 163\n"
                         "RuntimeError: operator torchvision::nms does not exist\n")
    assert finding.signature == "torch_build_mismatch:torchvision"
    assert any("find_links" in fix for fix in finding.fixes)


def test_diagnosis_of_a_checkpoint_written_for_torch_before_2_6():
    [finding] = classify("_pickle.UnpicklingError: Weights only load failed. This file can still be loaded\n")
    assert finding.signature == "torch_weights_only"
    assert any("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1" in fix for fix in finding.fixes)


def test_a_build_that_tried_to_download_python_is_named_for_the_python():
    """environment.yaml asked for 3.10, which this machine lacks: uv's download failing is
    the symptom, the interpreter the cause."""
    log = ("error: Failed to install requested Python\n  cause: Failed to download `https://github.com/astral-sh/"
           "python-build-standalone/releases/download/20261009/cpython-3.10.22%2B20261009-x86_64-unknown-linux-gnu"
           "-install_only_stripped.tar.gz`\n  cause: dns error\n")
    first = classify(log)[0]
    assert first.signature == "python_unavailable:3.10" and first.fixes[0] == "pick an installed Python (overrides.python)"


def test_run_diagnosis_never_offers_the_repositorys_own_module_as_a_package(tmp_path):
    repo = write(tmp_path, SRC_PACKAGE)
    log = ("Traceback (most recent call last):\nModuleNotFoundError: No module named 'toy_bench'\n"
           "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>\n")
    module, network = in_run(classify(log), repo)
    assert module.signature == "missing_module:toy_bench" and "src/toy_bench" in module.detail
    assert "sys.path.insert(0, 'src')" in module.fixes[0] and "do not add 'toy_bench'" in module.fixes[1]
    assert not any(fix.startswith("add the package") for fix in module.fixes)
    assert network.signature == "network_unreachable" and "overlay" in network.fixes[0]
    # a module the repository does not have is still a package to add
    [other] = in_run(classify("ModuleNotFoundError: No module named 'sklearn'\n"), repo)
    assert other.fixes == ["add the package 'scikit-learn' (env_build overrides.packages)"]


def test_a_src_package_campaign_crashes_with_its_reason_then_scores_as_the_docs_teach(call, tmp_path):
    """The route as a user takes it: the README's console script first, then a bare import,
    then the package's own main (which prints the metric itself), then the evaluator
    docs/real-repos.md teaches. Each failure says why in the result."""
    upstream = commit(write(tmp_path / "toy-bench", SRC_PACKAGE))
    evaluators = write(tmp_path / "evaluators", {"naive_script.py": NAIVE_SCRIPT, "naive_import.py": NAIVE_IMPORT,
                                                 "printed.py": PRINTED_BY_THE_PACKAGE, "taught.py": TAUGHT})
    results = {}
    for name in ("naive_script", "naive_import", "printed", "taught"):
        campaign = call("campaign_create", name=f"toy-{name}",
                        objective={"metric": "accuracy", "direction": "max"},
                        evaluator={"command": ["python", "sotalab/evaluate.py"], "timeout_s": 60,
                                   "metrics": [{"name": "accuracy", "regex": r"accuracy=([0-9.]+)"}]},
                        overlay={"files": [{"path": "sotalab/evaluate.py",
                                            "source": str(evaluators / f"{name}.py")}]})["id"]
        call("repo_clone", campaign=campaign, url=str(upstream), upstream="https://example.org/toy-bench")
        baseline = call("trial_create", campaign=campaign, kind="baseline")["id"]
        results[name] = call("trial_evaluate", trial=baseline)
    script, bare = results["naive_script"]["runs"][0], results["naive_import"]["runs"][0]
    assert results["naive_script"]["label"] == "crash" and script["reason"] == "exited 1"
    assert script["error"] == "FileNotFoundError: [Errno 2] No such file or directory: 'toy-bench'"
    [missing] = call("env_diagnose", run=script["run_ids"][0])["findings"]
    assert missing["signature"] == "missing_file:toy-bench" and "console script" in missing["detail"]
    assert missing["fixes"][0] == ("call it from the evaluator: from toy_bench.cli import main "
                                   "(after sys.path.insert(0, 'src'))")
    assert bare["error"] == "ModuleNotFoundError: No module named 'toy_bench'"
    diagnosis = call("env_diagnose", run=bare["run_ids"][0])["findings"][0]
    assert "sys.path.insert(0, 'src')" in diagnosis["fixes"][0]
    # the package's own print is trial code: it does not count, and the result says so
    printed = results["printed"]["runs"][0]
    assert printed["label"] == "metric_missing" and printed["disowned"] == ["accuracy"] and printed["error"] is None
    assert results["taught"]["label"] == "keep" and results["taught"]["score"] == 0.75
    assert results["taught"]["runs"][0]["error"] is None


def test_data_too_large_for_the_overlay_comes_in_a_plain_directory_despite_gitignore(call, call_error, tmp_path):
    """A template that downloads MNIST into data/ (which its .gitignore lists): the real
    files are over the overlay's 2 MiB, so the user hands over a copy of the repository
    with the data in place. Every file of it reaches the baseline, less a virtualenv."""
    big = tmp_path / "train-images-idx3-ubyte"
    big.write_bytes(b"\0" * (3 << 20))
    refusal = call_error("campaign_create", name="too-big", objective={"metric": "acc", "direction": "max"},
                         evaluator={"command": ["python", "e.py"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]},
                         overlay={"files": [{"path": "data/MNIST/raw/train-images-idx3-ubyte", "source": str(big)}]})
    assert "over 2 MiB" in refusal and "plain directory" in refusal
    copy = write(tmp_path / "template", {**HYDRA_TEMPLATE, ".gitignore": "/data/\n/logs/\n.venv/\n",
                                          ".venv/lib/site.py": "", "logs/old.log": "x\n"})
    (copy / "data" / "MNIST" / "raw").mkdir(parents=True)
    (copy / "data" / "MNIST" / "raw" / big.name).write_bytes(big.read_bytes())
    campaign = call("campaign_create", name="template", objective={"metric": "acc", "direction": "max"},
                    evaluator={"command": ["python", "e.py"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]},
                    protected_paths=["data/**"])["id"]
    info = call("repo_clone", campaign=campaign, url=str(copy), upstream="https://example.org/template",
                upstream_commit="b" * 40)
    assert info["ignored_imported"] == ["data/MNIST/raw/train-images-idx3-ubyte", "logs/old.log"]
    assert info["protected_files"] == 1 and info["provenance"]["upstream_commit"] == "b" * 40
    trial = call("trial_create", campaign=campaign, kind="baseline")["id"]
    listed = call("workspace_read", trial=trial, path="data/MNIST/raw")
    assert [e["path"] for e in listed["entries"]] == ["data/MNIST/raw/train-images-idx3-ubyte"]


def test_the_training_parts_labels_are_not_evaluation_data():
    """MNIST's files as an overlay brings them: the runtime check took any protected file
    named 'labels' for evaluation data, so a template reading its training labels failed
    the audit. The test part's labels still are evaluation data."""
    from sotalab.tools.audit.runtime import RuntimeContext

    ctx = RuntimeContext(protected_globs=["data/**"])
    assert not ctx.is_eval_data("data/MNIST/raw/train-labels-idx1-ubyte")
    assert not ctx.is_eval_data("data/labels/training_targets.npy")
    assert ctx.is_eval_data("data/MNIST/raw/t10k-labels-idx1-ubyte")
    assert ctx.is_eval_data("data/labels.csv") and ctx.is_eval_data("data/val/train_labels.npy")
    assert ctx.is_eval_data("data/test_train_labels.npy")  # a split's name wins over 'train'
    assert not ctx.is_eval_data("data/train.npz") and not ctx.is_eval_data("src/labels.py")

