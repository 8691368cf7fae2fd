"""trial_evaluate: the server runs the evaluator on a fresh export, reads the score, labels the trial.

Every failure label comes from a real run failing that way (gpu_oom: a run printing
PyTorch's real out-of-memory error, the stand-in for a GPU this machine lacks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SIMPLE_CAMPAIGN
from sotalab.tools import campaigns, trials
from sotalab.tools.evaluation import metrics, pipeline
from sotalab.tools.campaigns import MetricRule

EVAL_PY = """\
import json, os, sys
seed = int(os.environ["SOTALAB_SEED"])
if "--seed" in sys.argv:
    assert int(sys.argv[sys.argv.index("--seed") + 1]) == seed
import model
acc = model.score(seed)
print("epoch 1 accuracy=0.1000")  # progress; the last match is the result
held = os.environ.get("SOTALAB_HELD_OUT")
if held:
    acc = float(open(os.path.join(held, "test_bias.txt")).read())
with open("metrics.json", "w") as fh:
    json.dump({"f1": acc - 0.1, "nested": {"loss": 1 - acc}}, fh)
print(f"accuracy={acc:.4f}")
"""


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


@pytest.fixture
def upstream(tmp_path) -> Path:
    repo = tmp_path / "upstream"
    repo.mkdir()
    (repo / "eval.py").write_text(EVAL_PY)
    (repo / "model.py").write_text("def score(seed):\n    return 0.5 + seed * 0.01\n")
    (repo / "test_bias.txt").write_text("0.4242\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    return repo


def make_campaign(call, upstream, **evaluator_overrides) -> int:
    evaluator = {
        "command": ["python", "eval.py"],
        "metrics": [{"name": "accuracy", "regex": r"accuracy=([0-9.]+)"},
                    {"name": "f1", "json_file": "metrics.json"},
                    {"name": "loss", "json_file": "metrics.json", "json_key": "nested.loss"}],
        "timeout_s": 20, "seeds": [0],
    }
    evaluator.update(evaluator_overrides)
    spec = dict(SIMPLE_CAMPAIGN, evaluator=evaluator, protected_paths=["eval.py"], held_out_paths=["test_*"],
                budgets={"memory_gb": 0.25, "artifact_mb": 1})
    cid = call("campaign_create", **spec)["id"]
    call("repo_clone", campaign=cid, url=str(upstream))
    return cid


@pytest.fixture
def campaign(call, upstream) -> int:
    return make_campaign(call, upstream)


@pytest.fixture
def baseline(call, campaign) -> dict:
    trial = call("trial_create", campaign=campaign, kind="baseline")
    result = call("trial_evaluate", trial=trial["id"])
    assert result["label"] == "keep" and result["score"] == pytest.approx(0.5)
    return result


def child(call, lab, campaign, model_source: str) -> int:
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    (Path(trials.load(lab, tid).worktree) / "model.py").write_text(model_source)
    return tid


def test_regex_and_json_metrics_multiple_seeds_and_deltas(call, lab, upstream):
    cid = make_campaign(call, upstream, seeds=[0, 1, 2], seed_arg="--seed")
    base = call("trial_create", campaign=cid, kind="baseline")["id"]
    result = call("trial_evaluate", trial=base)
    assert result["seed_scores"] == {"0": 0.5, "1": 0.51, "2": 0.52}
    assert result["score"] == pytest.approx(0.51) and result["score_std"] == pytest.approx(0.01)
    assert result["metrics"]["f1"]["values"] == pytest.approx({"0": 0.4, "1": 0.41, "2": 0.42})
    assert result["metrics"]["loss"]["mean"] == pytest.approx(0.49)
    assert result["delta_baseline"] == 0.0 and result["delta_parent"] is None
    assert [r["seed"] for r in result["runs"]] == [0, 1, 2]
    stored = call("trial_get", trial=base)
    assert stored["score"] == pytest.approx(0.51) and stored["status"] == "evaluated" and stored["commit_sha"]
    assert stored["cost"]["runs"] == [run for r in result["runs"] for run in r["run_ids"]]
    assert stored["integrity"] == "in_process" and stored["evaluation"]["seeds"] == [0, 1, 2]
    assert stored["cost"]["telemetry"]["wall_s"] > 0
    assert call("campaign_get", campaign=cid)["spent"]["trials"] == 1

    better = child(call, lab, cid, "def score(seed):\n    return 0.6 + seed * 0.01\n")
    got = call("trial_evaluate", trial=better, seeds=[0, 1])
    assert got["label"] == "keep" and got["delta_parent"] == pytest.approx(0.095)
    assert got["keep"]["test"].startswith("noise") and got["keep"]["threshold"] > 0
    assert got["delta_baseline"] == pytest.approx(0.095)
    worse = child(call, lab, cid, "def score(seed):\n    return 0.3\n")
    assert call("trial_evaluate", trial=worse)["label"] == "discard"
    run = call("run_logs", run=got["runs"][0]["run_ids"][0], mode="metrics")
    assert run["metrics"] == pytest.approx({"accuracy": 0.6, "f1": 0.5, "loss": 0.4})


FAILURES = {
    "crash": "def score(seed):\n    import time; time.sleep(0.1)\n    raise RuntimeError('diverged')\n",
    "preflight_crash": "def score(seed)\n    return 1\n",
    "timeout": "import time\ndef score(seed):\n    time.sleep(60)\n",
    "oom": "def score(seed):\n    blob = bytearray(600 * 1024 * 1024)\n    import time; time.sleep(5)\n    return 1\n",
    "gpu_oom": ("import sys\ndef score(seed):\n    sys.stderr.write('torch.OutOfMemoryError: CUDA out of memory. "
                "Tried to allocate 20.00 GiB\\n')\n    sys.exit(1)\n"),
    "metric_missing": "import sys\ndef score(seed):\n    sys.exit(0)\n",
    "size_blocked": ("import os\ndef score(seed):\n    open(os.path.join(os.environ['SOTALAB_OUTPUT_DIR'], 'ckpt.bin'), 'wb')"
                     ".write(bytes(3 * 1024 * 1024))\n    return 0.9\n"),
}


@pytest.mark.parametrize("label", sorted(FAILURES))
def test_each_failure_label_from_a_real_failing_run(call, lab, campaign, baseline, label):
    if label == "timeout":
        campaigns.set_fields(lab, campaign, evaluator=dict(campaigns.load(lab, campaign).evaluator.model_dump(),
                                                           timeout_s=2))
    tid = child(call, lab, campaign, FAILURES[label])
    result = call("trial_evaluate", trial=tid)
    assert result["label"] == label, result["runs"]
    assert result["score"] is None
    stored = call("trial_get", trial=tid)
    assert stored["label"] == label and stored["status"] == "evaluated"


def test_protected_evaluator_changed_by_trial_is_restored_and_reported(call, lab, campaign, baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    tree = Path(trials.load(lab, tid).worktree)
    (tree / "eval.py").write_text("print('accuracy=0.9999')\n")
    result = call("trial_evaluate", trial=tid)
    assert result["restored_files"] == ["eval.py"]
    assert result["label"] == "protected_violation"
    assert result["score"] == pytest.approx(0.5)  # the real evaluator's score, not 0.9999


def test_protected_evaluator_changed_during_a_run_is_caught_before_the_next_seed(call, lab, campaign, baseline):
    # The trial's model, imported by the evaluator, rewrites the evaluator for later seeds.
    tid = child(call, lab, campaign, (
        "import pathlib\n"
        "p = pathlib.Path('eval.py')\n"
        "p.write_text(p.read_text().replace('acc = model.score(seed)', 'acc = 0.99'))\n"
        "def score(seed):\n    return 0.5\n"))
    result = call("trial_evaluate", trial=tid, seeds=[0, 1])
    assert result["label"] == "protected_violation" and result["score"] is None
    assert result["runs"][0]["protected_changed"] == ["eval.py"]
    assert 0.99 not in result["seed_scores"].values()
    assert (Path(trials.load(lab, tid).worktree) / "eval.py").read_text() == EVAL_PY


def test_held_out_evaluation_mounts_held_out_dir_and_records_nothing(call, lab, campaign, baseline):
    tid = baseline["trial"]
    result = pipeline.evaluate(lab, tid, split="held_out", purpose="finalize")
    assert result.split == "held_out" and not result.recorded
    assert result.score == pytest.approx(0.4242)
    assert call("trial_get", trial=tid)["score"] == pytest.approx(0.5)
    purpose = lab.db.execute("SELECT purpose FROM runs WHERE id = ?", [result.runs[0].run_ids[0]]).fetchone()[0]
    assert purpose == "finalize"


def test_budgets_are_charged_and_refused_when_spent(call, call_error, lab, campaign, baseline):
    spare = call("trial_create", campaign=campaign, kind="param")["id"]
    budgets = campaigns.load(lab, campaign).budgets.model_dump()
    campaigns.set_fields(lab, campaign, budgets={**budgets, "max_trials": 1})  # as created with that budget
    assert "evaluated its 1 trials" in call_error("trial_evaluate", trial=spare)
    campaigns.set_fields(lab, campaign, budgets={**budgets, "gpu_hours": 0.5}, spent={"trials": 1, "gpu_hours": 0.5})
    assert "GPU-hours" in call_error("trial_evaluate", trial=baseline["trial"])


def test_budgets_freeze_once_a_trial_is_scored(call, call_error, campaign, baseline):
    """Raising a budget after scoring would let a trial that broke it become a claim."""
    error = call_error("campaign_update", campaign=campaign, budgets={"max_params": 10**9})
    assert "budgets" in error and "new campaign" in error


def test_extract_metrics_rules(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"a": {"b": 2}, "flag": True, "s": "x"}))
    rules = [MetricRule(name="acc", regex=r"acc=(?P<value>[0-9.]+)"), MetricRule(name="b", json_file="m.json", json_key="a.b"),
             MetricRule(name="flag", json_file="m.json"), MetricRule(name="s", json_file="m.json"),
             MetricRule(name="esc", json_file="../outside.json"), MetricRule(name="nan", regex=r"nan=(\S+)")]
    (tmp_path.parent / "outside.json").write_text(json.dumps({"esc": 1}))
    found, missing = metrics.extract(rules, "acc=0.1\nacc=0.25\nnan=nan\n", tmp_path)
    assert found == {"acc": 0.25, "b": 2.0}
    assert missing == ["flag", "s", "esc", "nan"]


def test_a_second_evaluation_of_a_trial_being_evaluated_is_refused(call, call_error, lab, campaign, baseline):
    tid = child(call, lab, campaign, "def score(seed):\n    return 0.7\n")
    trials.set_fields(lab, tid, status="evaluating")  # as an evaluation under way leaves it
    assert "being evaluated already" in call_error("trial_evaluate", trial=tid)
    assert call("trial_get", trial=tid)["status"] == "evaluating"
    assert call("run_wait", trial=tid)["total"] == 0
    trials.set_fields(lab, tid, status="open")
    assert call("trial_evaluate", trial=tid)["label"] == "keep"


def test_huge_metrics_file_is_not_read_into_the_server(tmp_path):
    """A run can write a metrics file of any size into its worktree: the server reads a
    bounded prefix (here under a 1 GiB address-space limit, a 4 GiB sparse file)."""
    with open(tmp_path / "m.json", "wb") as f:
        f.truncate(4 * 1024 ** 3)
    probe = ("import resource, sys\n"
             "from pathlib import Path\n"
             "from sotalab.tools.evaluation import metrics\n"
             "from sotalab.tools.campaigns import MetricRule\n"
             "resource.setrlimit(resource.RLIMIT_AS, (1024 ** 3, 1024 ** 3))\n"
             "print(metrics.extract([MetricRule(name='a', json_file='m.json')], '', Path(sys.argv[1])))\n")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "({}, ['a'])"


def test_reconcile_reopens_a_trial_left_evaluating_by_a_dead_server(call, lab, campaign, baseline):
    from sotalab.tools.runs.reconcile import reconcile

    tid = call("trial_create", campaign=campaign, kind="param")["id"]
    trials.set_fields(lab, tid, status="evaluating")  # as a server killed mid-evaluation leaves it
    assert reconcile(lab)["reopened"] == [tid]
    assert call("trial_get", trial=tid)["status"] == "open"
    assert call("trial_evaluate", trial=tid)["label"] == "discard"  # equal to the parent: not better
