"""Campaign overlays, data splits, provenance and ref names on repositories nobody
prepared for sotalab (real git repositories made here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import SIMPLE_CAMPAIGN

from sotalab.tools import protected, workspaces
from sotalab.tools.overlay import store_dir

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin:/usr/local/bin"}
EVALUATOR = "import sys\nprint('accuracy=0.5')\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def names(count: int) -> str:
    """A data file of names with every tenth one repeated, as real name lists have."""
    rows = [f"name{i:04d}" for i in range(count)]
    return "".join(f"{r}\n" for r in rows + rows[::10])


@pytest.fixture
def upstream(tmp_path) -> Path:
    """A repository with training code and data and nothing sotalab needs."""
    repo = tmp_path / "makemore-like"
    (repo / "images").mkdir(parents=True)
    (repo / "train.py").write_text("print('training')\n")
    (repo / "names.txt").write_text(names(200))
    for i in range(30):
        (repo / "images" / f"{i}.bin").write_bytes(bytes([i % 25]) * 10)  # 25 distinct contents
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "upstream")
    return repo


def make_campaign(call, **overlay) -> int:
    spec = dict(SIMPLE_CAMPAIGN, evaluator=dict(SIMPLE_CAMPAIGN["evaluator"], command=["python", "sotalab_eval.py"]))
    overlay.setdefault("files", [{"path": "sotalab_eval.py", "content": EVALUATOR}])
    return call("campaign_create", **spec, overlay=overlay)["id"]


NAMES_SPLIT = {"source": "names.txt", "validation": "splits/val.txt", "held_out": "splits/test.txt",
               "validation_fraction": 0.1, "held_out_fraction": 0.1, "seed": 7}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_overlay_files_and_split_become_the_protected_baseline(call, lab, upstream, tmp_path):
    scorer = tmp_path / "outside" / "score.py"
    scorer.parent.mkdir()
    scorer.write_text("print('score')\n")
    campaign = make_campaign(call, files=[{"path": "sotalab_eval.py", "content": EVALUATOR},
                                          {"path": "scoring/score.py", "source": str(scorer)}],
                             splits=[NAMES_SPLIT])
    info = call("repo_clone", campaign=campaign, url=str(upstream))
    repo = workspaces.campaign_repo(lab, campaign)
    held = workspaces.held_out_dir(lab, campaign)

    # Files: in the baseline commit, hashed in the campaign record and in the protected manifest.
    record = call("campaign_get", campaign=campaign)["overlay"]
    by_path = {f["path"]: f for f in record["files"]}
    assert by_path["scoring/score.py"]["origin"] == str(scorer)
    assert by_path["sotalab_eval.py"]["origin"] == "inline"
    manifest = protected.load_manifest(workspaces.protected_store(lab, campaign))["files"]
    for rel in ("sotalab_eval.py", "scoring/score.py", "splits/val.txt", "names.txt"):
        assert rel in manifest
    assert manifest["sotalab_eval.py"] == by_path["sotalab_eval.py"]["sha256"]
    assert git(repo, "show", "sotalab/baseline:sotalab_eval.py") == EVALUATOR.strip()

    # Split: seeded, no item in two parts, held-out only in the lab home.
    train, val, test = lines(repo / "names.txt"), lines(repo / "splits/val.txt"), lines(held / "splits/test.txt")
    assert not (set(train) & set(val)) and not (set(train) & set(test)) and not (set(val) & set(test))
    assert set(train) | set(val) | set(test) == {f"name{i:04d}" for i in range(200)}
    assert len(val) == len(set(val)) == 20 and len(test) == 20
    assert not (repo / "splits/test.txt").exists()
    assert "splits/test.txt" in info["held_out_files"]
    applied = record["applied"][0]
    assert (applied["items"], applied["duplicates"], applied["train"]) == (200, 20, 160)
    assert applied["sha256"]["splits/test.txt"] == protected.file_digest(held / "splits/test.txt")

    # A trial sees the validation part, never the held-out one; an edited overlay file is caught.
    call("trial_create", campaign=campaign, kind="baseline")
    trial = call("trial_create", campaign=campaign, kind="code", hypothesis="edit the evaluator")
    tree = Path(trial["worktree"])
    assert lines(tree / "splits/val.txt") == val and not (tree / "splits/test.txt").exists()
    assert "name" not in git(tree, "log", "--all", "--format=%s", "--", "splits/test.txt")
    (tree / "sotalab_eval.py").write_text("print('accuracy=1.0')\n")
    assert call("workspace_diff", trial=trial["id"])["protected"]["changed"] == ["sotalab_eval.py"]


def test_the_same_seed_gives_the_same_split_and_another_seed_another(call, lab, upstream):
    parts = []
    for seed in (7, 7, 8):
        campaign = make_campaign(call, splits=[dict(NAMES_SPLIT, seed=seed)]) if not parts else \
            call("campaign_create", **dict(SIMPLE_CAMPAIGN, name=f"c{len(parts)}"),
                 overlay={"splits": [dict(NAMES_SPLIT, seed=seed)]})["id"]
        call("repo_clone", campaign=campaign, url=str(upstream))
        parts.append(lines(workspaces.campaign_repo(lab, campaign) / "splits/val.txt"))
    assert parts[0] == parts[1] and parts[0] != parts[2]


def test_directory_split_moves_files_and_never_keeps_a_copy_of_an_evaluated_one(call, lab, upstream):
    campaign = make_campaign(call, splits=[{"source": "images", "validation": "val_images", "held_out": "test_images",
                                            "validation_fraction": 0.2, "held_out_fraction": 0.2}])
    call("repo_clone", campaign=campaign, url=str(upstream))
    repo, held = workspaces.campaign_repo(lab, campaign), workspaces.held_out_dir(lab, campaign)

    def contents(root: Path) -> set[bytes]:
        return {p.read_bytes() for p in root.iterdir()}

    train, val, test = contents(repo / "images"), contents(repo / "val_images"), contents(held / "test_images")
    assert len(val) == 5 and len(test) == 5 and len(train) == 15
    assert not (train & val or train & test or val & test)
    assert not (repo / "test_images").exists()


def test_jsonl_split_by_key_keeps_one_key_in_one_part(call, lab, tmp_path):
    repo = tmp_path / "qa"
    repo.mkdir()
    rows = [{"id": i % 50, "text": f"variant {i}"} for i in range(150)]  # each id three times
    (repo / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "data")
    campaign = make_campaign(call, splits=[{"source": "data.jsonl", "validation": "val.jsonl",
                                            "held_out": "test.jsonl", "key": "id"}])
    call("repo_clone", campaign=campaign, url=str(repo))
    ids = {name: {json.loads(line)["id"] for line in lines(root / name)}
           for root, name in ((workspaces.campaign_repo(lab, campaign), "data.jsonl"),
                              (workspaces.campaign_repo(lab, campaign), "val.jsonl"),
                              (workspaces.held_out_dir(lab, campaign), "test.jsonl"))}
    assert len(ids["val.jsonl"]) == 5 and len(ids["test.jsonl"]) == 5
    assert not (ids["data.jsonl"] & ids["val.jsonl"] or ids["data.jsonl"] & ids["test.jsonl"])


def test_protected_paths_updated_later_still_cover_the_overlay(call, upstream):
    campaign = make_campaign(call, splits=[NAMES_SPLIT])
    updated = call("campaign_update", campaign=campaign, protected_paths=["train.py"], held_out_paths=[])
    assert {"train.py", "sotalab_eval.py", "names.txt", "splits/val.txt"} <= set(updated["protected_paths"])
    assert updated["held_out_paths"] == ["splits/test.txt"]


def test_hostile_overlays_are_refused_before_anything_is_stored(call, call_error, lab, tmp_path):
    secret = lab.path("held_out", "1", "labels.csv")
    secret.parent.mkdir(parents=True)
    secret.write_text("y\n1\n")
    link = tmp_path / "link.py"
    link.symlink_to(secret)
    spec = dict(SIMPLE_CAMPAIGN)
    for files, expect in (
            ([{"path": "ev.py", "source": str(secret)}], "lab keeps private"),
            ([{"path": "ev.py", "source": str(link)}], "symlink"),
            ([{"path": "../ev.py", "content": "x"}], "relative to the repository"),
            ([{"path": ".git/hooks/post-checkout", "content": "x"}], ".git"),
            ([{"path": "-ev.py", "content": "x"}], "leading '-'"),
            ([{"path": "ev.py", "content": "x", "source": str(tmp_path)}], "exactly one of"),
            ([{"path": "ev.py", "source": "relative/ev.py"}], "absolute path"),
            ([{"path": "ev.py", "content": "a"}, {"path": "ev.py", "content": "b"}], "one path twice"),
            ([{"path": "env.txt", "source": "/proc/self/environ"}], "/proc"),
            ([{"path": "passwd", "source": "/etc/passwd"}], "/etc")):
        assert expect in call_error("campaign_create", **spec, overlay={"files": files})
    bad_split = dict(NAMES_SPLIT, validation_fraction=0.6, held_out_fraction=0.5)
    assert "some data for training" in call_error("campaign_create", **spec, overlay={"splits": [bad_split]})
    inside = dict(NAMES_SPLIT, source="images", validation="images/val")
    assert "none inside another" in call_error("campaign_create", **spec, overlay={"splits": [inside]})
    many = tmp_path / "many"
    many.mkdir()
    for i in range(101):
        (many / f"{i}.py").write_text("x\n")
    assert "over 100 files" in call_error("campaign_create", **spec, overlay={"files": [{"path": "m", "source": str(many)}]})
    assert call("campaign_get")["total"] == 0
    assert not store_dir(lab, 1).exists()


def test_split_of_a_missing_file_or_over_a_symlink_fails_the_clone_cleanly(call, call_error, lab, tmp_path):
    repo = tmp_path / "linky"
    repo.mkdir()
    (repo / "names.txt").write_text(names(50))
    (repo / "out").symlink_to(tmp_path)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "x")
    missing = make_campaign(call, splits=[dict(NAMES_SPLIT, source="nope.txt")])
    assert "no data file or directory 'nope.txt'" in call_error("repo_clone", campaign=missing, url=str(repo))
    assert not workspaces.campaign_repo(lab, missing).exists()
    escaping = call("campaign_create", **dict(SIMPLE_CAMPAIGN, name="esc"),
                    overlay={"files": [{"path": "out/planted.py", "content": "x"}]})["id"]
    assert "symlink" in call_error("repo_clone", campaign=escaping, url=str(repo))
    assert not (tmp_path / "planted.py").exists()


def test_a_tampered_overlay_store_is_refused_at_the_baseline(call, call_error, lab, upstream):
    campaign = make_campaign(call)
    (store_dir(lab, campaign) / "sotalab_eval.py").write_text("print('accuracy=1.0')\n")
    assert "no longer matches its recorded hash" in call_error("repo_clone", campaign=campaign, url=str(upstream))


def test_upstream_branches_and_tags_named_like_the_labs_refs_do_not_break_the_clone(call, lab, upstream):
    git(upstream, "branch", "sotalab")
    git(upstream, "branch", "trial")
    git(upstream, "tag", "sotalab")
    git(upstream, "checkout", "-q", "sotalab")  # the default branch of the clone
    campaign = make_campaign(call)
    info = call("repo_clone", campaign=campaign, url=f"file://{upstream}")
    repo = workspaces.campaign_repo(lab, campaign)
    assert git(repo, "rev-parse", "sotalab/baseline") == info["baseline_commit"]
    assert git(repo, "rev-parse", "origin/sotalab") == info["commit"]  # upstream's refs stay readable
    trial = call("trial_create", campaign=campaign, kind="baseline")
    assert Path(trial["worktree"], "sotalab_eval.py").is_file()


def test_provenance_names_the_upstream_whatever_mirror_the_code_came_from(call, lab, upstream, tmp_path):
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(upstream), str(mirror))
    git(mirror, "remote", "set-url", "origin", "https://user:s3cret@github.com/karpathy/makemore.git")
    campaign = make_campaign(call)
    info = call("repo_clone", campaign=campaign, url=str(mirror))
    head = git(upstream, "rev-parse", "HEAD")
    expected = {"upstream_url": "https://github.com/karpathy/makemore.git", "upstream_commit": head,
                "cloned_from": str(mirror)}
    assert info["provenance"] == expected
    assert call("campaign_get", campaign=campaign)["provenance"] == expected

    copy = tmp_path / "unpacked"
    copy.mkdir()
    (copy / "train.py").write_text("print(1)\n")
    other = call("campaign_create", **dict(SIMPLE_CAMPAIGN, name="unpacked"))["id"]
    info = call("repo_clone", campaign=other, url=str(copy), upstream="https://github.com/x/y", upstream_commit=head)
    assert info["provenance"]["upstream_url"] == "https://github.com/x/y"
    assert info["provenance"]["upstream_commit"] == head and info["commit"] != head


def test_overlay_files_the_repository_ignores_still_reach_the_baseline(call, lab, upstream):
    """nanoGPT's .gitignore lists input.txt, the very file its recipe needs and the overlay brings."""
    (upstream / ".gitignore").write_text("input.txt\n*.bin\nsplits/\n")
    git(upstream, "add", ".gitignore")
    git(upstream, "commit", "-q", "-m", "ignore data")
    campaign = make_campaign(call, files=[{"path": "sotalab_eval.py", "content": EVALUATOR},
                                          {"path": "data/input.txt", "content": "to be or not to be\n"}],
                             splits=[NAMES_SPLIT])
    call("repo_clone", campaign=campaign, url=str(upstream))
    repo = workspaces.campaign_repo(lab, campaign)
    tracked = git(repo, "ls-tree", "-r", "--name-only", "sotalab/baseline").split()
    assert {"data/input.txt", "splits/val.txt", "sotalab_eval.py"} <= set(tracked)
    assert "splits/test.txt" not in tracked
