"""A repository nobody prepared for sotalab, from clone to a scored baseline and trial.

The snapshot (tests/data/makemore_bigram.tar.gz) has karpathy/makemore's layout, its
names.txt and its MIT license, with the bigram model in plain Python so CI needs no
PyTorch. Like makemore it has no evaluator, no validation split and no held-out split:
the campaign brings them through its overlay (an evaluator file from the server's disk
and a seeded split of names.txt), which is the way docs/real-repos.md teaches.
"""

from __future__ import annotations

import importlib.util
import subprocess
import tarfile
from pathlib import Path

import pytest

from sotalab.tools import workspaces

DATA = Path(__file__).resolve().parent / "data"
SPLIT = {"source": "names.txt", "validation": "splits/val.txt", "held_out": "splits/test.txt",
         "validation_fraction": 0.1, "held_out_fraction": 0.1, "seed": 0}
CAMPAIGN = {
    "name": "makemore-bigram",
    "description": "Lower makemore's bigram validation loss (nats per character).",
    "objective": {"metric": "val_loss", "direction": "min", "reported": 2.48, "reproduce_tolerance": 0.02,
                  "min_effect": 0.01},
    "evaluator": {"command": ["python", "sotalab/evaluate.py"],
                  "metrics": [{"name": "val_loss", "regex": r"val_loss=([0-9.]+)"}], "timeout_s": 120},
    "overlay": {"files": [{"path": "sotalab/evaluate.py", "source": str(DATA / "makemore_overlay" / "evaluate.py")}],
                "splits": [SPLIT]},
}
LOWER_SMOOTHING = """\
--- a/makemore.py
+++ b/makemore.py
@@ -10,7 +10,7 @@
 import math
 import random
 
-SMOOTHING = 25.0  # added to every bigram count
+SMOOTHING = 1.0  # added to every bigram count
 
 
 def load_words(path):
"""


@pytest.fixture
def makemore(tmp_path) -> Path:
    """The snapshot unpacked as a git repository, as a user's local mirror would be."""
    with tarfile.open(DATA / "makemore_bigram.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    repo = tmp_path / "makemore_bigram"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin:/usr/local/bin"}
    for args in (["init", "-q", "-b", "master"], ["add", "."], ["commit", "-q", "-m", "makemore, bigram edition"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo


def held_out_loss(repo: Path, held: Path) -> float:
    """The baseline model's loss on the held-out names, computed here from the clone."""
    spec = importlib.util.spec_from_file_location("makemore_baseline", repo / "makemore.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.train(module.load_words(repo / "names.txt"))
    return model.loss(module.load_words(held / "splits" / "test.txt"))


def names(path: Path) -> set[str]:
    return set(path.read_text().split())


def test_makemore_from_clone_to_a_scored_baseline_and_a_better_trial(call, call_error, lab, makemore):
    campaign = call("campaign_create", **CAMPAIGN)["id"]
    info = call("repo_clone", campaign=campaign, url=str(makemore), upstream="https://github.com/karpathy/makemore")
    assert info["provenance"]["upstream_url"] == "https://github.com/karpathy/makemore"
    assert info["overlay"]["applied"][0]["items"] == 29494  # makemore's 32033 names, 2539 repeats
    assert info["held_out_files"] == ["splits/test.txt"]

    repo, held = workspaces.campaign_repo(lab, campaign), workspaces.held_out_dir(lab, campaign)
    train, val, test = names(repo / "names.txt"), names(repo / "splits/val.txt"), names(held / "splits/test.txt")
    assert not (train & val or train & test or val & test)

    env = call("env_build", campaign=campaign)
    assert env["env"]["status"] == "ready"
    assert any("only the overrides" in w for w in env["detection"]["warnings"])  # nothing to install, and it says so
    assert env["detection"]["suggested_packages"] == []  # the code imports only the standard library

    baseline = call("trial_create", campaign=campaign, kind="baseline")["id"]
    scored = call("trial_evaluate", trial=baseline)
    assert scored["score"] == pytest.approx(2.48, abs=0.02), scored
    assert scored["reproduction"]["reproduced"] is True and scored["integrity"] == "in_process"
    assert "is frozen" in call_error("env_build", campaign=campaign, overrides={"packages": ["numpy"]})

    trial = call("trial_create", campaign=campaign, kind="param", hypothesis="smooth the bigram counts less")["id"]
    call("workspace_write", trial=trial, patch=LOWER_SMOOTHING)
    better = call("trial_evaluate", trial=trial)
    assert better["score"] < scored["score"] - 0.01 and better["label"] == "keep", (better, scored)

    audit = call("audit_trial", trial=trial, depth="full", seeds=2)
    assert audit["verdict"] == "valid", audit["reason"]
    final = call("campaign_finalize", campaign=campaign, seeds=1)
    assert final["best"]["trial"] == trial and final["gain"] > 0.01
    # Scored on the held-out names, which no trial worktree ever held.
    assert final["baseline"]["mean"] == pytest.approx(held_out_loss(repo, held), abs=1e-5)

    # The evaluator the overlay brought is protected: a trial that edits it is scored with the original.
    cheat = call("trial_create", campaign=campaign, kind="code", hypothesis="print a better loss")["id"]
    call("workspace_write", trial=cheat, path="sotalab/evaluate.py", content="print('val_loss=0.1')\n")
    assert call("workspace_diff", trial=cheat)["protected"]["changed"] == ["sotalab/evaluate.py"]
    assert call("trial_evaluate", trial=cheat)["score"] == pytest.approx(scored["score"], abs=1e-9)


def test_ideas_take_a_fractional_priority(call):
    """Ranking hypotheses between two others needs priorities like 1.5 (issue 16's small items)."""
    campaign = call("campaign_create", name="ideas", objective={"metric": "m", "direction": "max"},
                    evaluator={"command": ["true"], "metrics": [{"name": "m", "regex": "m=(.*)"}]})["id"]
    for title, priority in (("low", 1), ("between", 1.5), ("high", 2)):
        call("idea_set", campaign=campaign, title=title, type="PARAM", priority=priority)
    ideas = call("idea_list", campaign=campaign)["ideas"]
    assert [(i["title"], i["priority"]) for i in ideas] == [("high", 2), ("between", 1.5), ("low", 1)]
    moved = call("idea_set", idea=ideas[2]["id"], priority=1.75)
    assert moved["priority"] == 1.75


def test_a_sealed_validation_split_never_reaches_a_trial_but_still_scores(call, lab, makemore):
    """seal_validation: the validation names become a label path, so trial code cannot
    even read them; the in_process evaluation gets them back in its fresh export."""
    spec = dict(CAMPAIGN, name="makemore-sealed",
                overlay=dict(CAMPAIGN["overlay"], splits=[dict(SPLIT, seal_validation=True)]))
    campaign = call("campaign_create", **spec)
    assert "splits/val.txt" in campaign["label_paths"] and "splits/val.txt" not in campaign["protected_paths"]
    call("repo_clone", campaign=campaign["id"], url=str(makemore))
    baseline = call("trial_create", campaign=campaign["id"], kind="baseline")
    assert not Path(baseline["worktree"], "splits", "val.txt").exists()
    repo = workspaces.campaign_repo(lab, campaign["id"])
    tracked = subprocess.run(["git", "ls-tree", "-r", "--name-only", "sotalab/baseline"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout.split()
    assert "splits/val.txt" not in tracked and "names.txt" in tracked
    scored = call("trial_evaluate", trial=baseline["id"])
    assert scored["score"] == pytest.approx(2.48, abs=0.02), scored
