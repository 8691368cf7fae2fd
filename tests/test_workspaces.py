"""Per-trial worktrees, snapshots, diffs, confined file access, protected files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SIMPLE_CAMPAIGN
from test_repos import make_upstream, sh_git

from sotalab.tools import trials, workspaces


@pytest.fixture
def campaign(call, tmp_path) -> int:
    spec = dict(SIMPLE_CAMPAIGN, protected_paths=["eval.py", "data/**"], held_out_paths=["data/test_*"])
    cid = call("campaign_create", **spec)["id"]
    call("repo_clone", campaign=cid, url=str(make_upstream(tmp_path)))
    return cid


@pytest.fixture
def baseline(call, campaign) -> dict:
    return call("trial_create", campaign=campaign, kind="baseline")


def test_trial_worktree_on_its_own_branch_from_the_baseline_tag(call, lab, campaign, baseline):
    tree = Path(baseline["worktree"])
    assert baseline["branch"] == f"trial/{baseline['id']}"
    assert sh_git(tree, "rev-parse", "--abbrev-ref", "HEAD") == baseline["branch"]
    assert sh_git(tree, "rev-parse", "HEAD") == workspaces.baseline_commit(lab, campaign)
    assert workspaces.ensure_worktree(lab, baseline["id"]) == tree  # idempotent


def test_child_starts_from_parent_snapshot_and_snapshot_records_diff(call, lab, campaign, baseline):
    parent = call("trial_create", campaign=campaign, kind="param", hypothesis="LR 0.3")
    call("workspace_write", trial=parent["id"], path="model.py", content="LR = 0.3\n")
    snap = call("trial_snapshot", trial=parent["id"])
    assert snap["diff_stat"]["files"] == ["model.py"]
    assert snap["diff_stat"]["insertions"] == 1 and snap["diff_stat"]["deletions"] == 1
    assert trials.load(lab, parent["id"]).commit_sha == snap["commit"]

    child = call("trial_create", campaign=campaign, kind="code", parent=parent["id"], hypothesis="new file")
    tree = Path(child["worktree"])
    assert (tree / "model.py").read_text() == "LR = 0.3\n"
    # Nothing changed yet: the snapshot is the parent's commit.
    assert call("trial_snapshot", trial=child["id"])["commit"] == snap["commit"]
    (tree / "extra.py").write_text("X = 1\n")
    second = call("trial_snapshot", trial=child["id"])
    assert second["commit"] != snap["commit"]
    assert second["diff_stat"]["files"] == ["extra.py"]
    # The parent's worktree is untouched by the child.
    assert not (Path(parent["worktree"]) / "extra.py").exists()


def test_diff_against_parent_and_baseline_includes_uncommitted_files(call, campaign, baseline):
    parent = call("trial_create", campaign=campaign, kind="param")
    call("workspace_write", trial=parent["id"], path="model.py", content="LR = 0.3\n")
    call("trial_snapshot", trial=parent["id"])
    child = call("trial_create", campaign=campaign, kind="code", parent=parent["id"])
    call("workspace_write", trial=child["id"], path="new.py", content="Y = 2\n")
    vs_parent = call("workspace_diff", trial=child["id"])["diff"]
    assert "+Y = 2" in vs_parent and "LR = 0.3" not in vs_parent
    assert call("workspace_diff", trial=parent["id"], committed=True)["protected"] is None  # the worktree's check only
    vs_base = call("workspace_diff", trial=child["id"], against="baseline")["diff"]
    assert "+Y = 2" in vs_base and "+LR = 0.3" in vs_base
    # The diff stages nothing: the trial's own index is as it was.
    assert sh_git(Path(child["worktree"]), "diff", "--cached", "--name-only") == ""


def test_diff_pages_by_characters(call, campaign, baseline):
    trial = call("trial_create", campaign=campaign, kind="code")
    call("workspace_write", trial=trial["id"], path="big.txt", content="line\n" * 2000)
    first = call("workspace_diff", trial=trial["id"], limit=1000)
    assert len(first["diff"]) == 1000 and first["total_chars"] > 10_000
    rest, cursor = first["diff"], first["next_cursor"]
    while cursor:
        page = call("workspace_diff", trial=trial["id"], limit=60_000, cursor=cursor)
        rest, cursor = rest + page["diff"], page["next_cursor"]
    assert len(rest) == first["total_chars"]


def test_list_read_write_and_patch(call, call_error, campaign, baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    names = [e["path"] for e in call("workspace_read", trial=tid)["entries"]]
    assert names == ["data", "eval.py", "model.py"]
    assert call("workspace_read", trial=tid, path="data") == {
        "trial": tid, "path": "data", "entries": [{"path": "data/train.csv", "type": "file", "size": 8}], "total": 1,
        "next_offset": None}
    deep = [e["path"] for e in call("workspace_read", trial=tid, path=".", recursive=True)["entries"]]
    assert "data/train.csv" in deep and not any(p.startswith(".git") for p in deep)
    first = call("workspace_read", trial=tid, limit=2)
    assert [e["path"] for e in first["entries"]] == ["data", "eval.py"] and first["next_offset"] == 2
    assert [e["path"] for e in call("workspace_read", trial=tid, offset=2)["entries"]] == ["model.py"]
    assert "is a file; recursive lists a directory" in call_error("workspace_read", trial=tid, path="model.py",
                                                                  recursive=True)
    assert "over 1000 entries" in call_error("workspace_read", trial=tid, limit=5000)
    assert call("workspace_read", trial=tid, path="model.py")["content"] == "LR = 0.2\n"
    call("workspace_write", trial=tid, path="pkg/new.py", content="A = 1\n")
    assert call("workspace_read", trial=tid, path="pkg/new.py", offset=4, limit=1)["content"] == "1"
    patch = ("--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-LR = 0.2\n+LR = 0.05\n")
    assert call("workspace_write", trial=tid, patch=patch)["files"] == ["model.py"]
    assert call("workspace_read", trial=tid, path="model.py")["content"] == "LR = 0.05\n"
    assert "cannot write" in call_error("workspace_write", trial=tid, path="model.py/inside.py", content="x")


def test_patch_that_does_not_apply_changes_nothing(call, call_error, campaign, baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    patch = ("--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-LR = 9\n+LR = 0.05\n"
             "--- a/eval.py\n+++ b/eval.py\n@@ -1 +1 @@\n-print('accuracy=0.5')\n+print('accuracy=1.0')\n")
    assert "does not apply" in call_error("workspace_write", trial=tid, patch=patch)
    assert call("workspace_read", trial=tid, path="eval.py")["content"] == "print('accuracy=0.5')\n"


def test_workspace_write_takes_a_file_or_a_patch(call, call_error, campaign, baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    patch = "--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-LR = 0.2\n+LR = 0.05\n"
    assert call("workspace_write", trial=tid, patch=patch) == {"trial": tid, "files": ["model.py"]}
    assert call("workspace_write", trial=tid, path="model.py", content="LR = 1\n") == {"trial": tid, "path": "model.py",
                                                                                       "bytes": 7}
    assert "two ways to write" in call_error("workspace_write", trial=tid, path="model.py", patch=patch)
    assert "two ways to write" in call_error("workspace_write", trial=tid, path="x.py", content="x", patch=patch)
    assert "content missing" in call_error("workspace_write", trial=tid, path="model.py")
    assert "path missing" in call_error("workspace_write", trial=tid, content="x")
    assert "path and content missing" in call_error("workspace_write", trial=tid)
    assert call("workspace_read", trial=tid, path="model.py")["content"] == "LR = 1\n"  # the refused calls wrote nothing


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", ".git/config", "a/../../x"])
def test_paths_outside_the_worktree_are_refused(call, call_error, campaign, baseline, path):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    assert call_error("workspace_read", trial=tid, path=path)
    assert call_error("workspace_write", trial=tid, path=path, content="pwned\n")
    assert "pwned" not in Path("/etc/passwd").read_text()


def test_symlink_to_root_cannot_be_followed(call, call_error, campaign, baseline, tmp_path):
    trial = call("trial_create", campaign=campaign, kind="code")
    tree = Path(trial["worktree"])
    os.symlink("/", tree / "root")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    os.symlink(outside, tree / "leak.txt")
    assert "outside" in call_error("workspace_read", trial=trial["id"], path="root/etc/passwd")
    assert "outside" in call_error("workspace_read", trial=trial["id"], path="leak.txt")
    assert "outside" in call_error("workspace_write", trial=trial["id"], path="leak.txt", content="x")
    assert "outside" in call_error("workspace_read", trial=trial["id"], path="root")
    assert outside.read_text() == "secret\n"
    patch = "--- a/root/tmp/sotalab-pwned\n+++ b/root/tmp/sotalab-pwned\n@@ -0,0 +1 @@\n+x\n"
    assert call_error("workspace_write", trial=trial["id"], patch=patch)
    escaping = "--- /dev/null\n+++ b/../../sotalab-pwned\n@@ -0,0 +1 @@\n+x\n"
    assert "leaves" in call_error("workspace_write", trial=trial["id"], patch=escaping)
    assert not Path("/tmp/sotalab-pwned").exists()


def test_evaluated_trial_is_frozen(call, call_error, lab, campaign, baseline):
    trials.set_fields(lab, baseline["id"], status="evaluated")
    assert "frozen" in call_error("workspace_write", trial=baseline["id"], path="model.py", content="x")


def test_protected_changes_are_reported_and_restored(call, lab, campaign, baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    assert call("workspace_diff", trial=tid)["protected"]["ok"] is True
    call("workspace_write", trial=tid, path="eval.py", content="print('accuracy=1.0')\n")
    call("workspace_write", trial=tid, path="data/extra.csv", content="1\n")
    os.remove(Path(trials.load(lab, tid).worktree) / "data" / "train.csv")
    shown = call("workspace_diff", trial=tid)
    assert shown["protected"] == {"ok": False, "changed": ["eval.py"], "added": ["data/extra.csv"],
                                  "deleted": ["data/train.csv"], "checked": 2}
    assert "+print('accuracy=1.0')" in shown["diff"]  # one call: the change and that it touches protected files
    restored = workspaces.restore_protected(lab, tid)
    assert restored == ["data/extra.csv", "data/train.csv", "eval.py"]
    assert workspaces.verify_protected(lab, tid).ok
    tree = Path(trials.load(lab, tid).worktree)
    assert (tree / "eval.py").read_text() == "print('accuracy=0.5')\n"


def test_an_export_reproduces_the_snapshot_and_nothing_sealed(call, lab, campaign, baseline, tmp_path):
    """Every scoring run executes an export of the committed snapshot: the later worktree
    edit, the held-out file and the git history holding it never come along."""
    from sotalab.tools import trials
    from sotalab.tools.evaluation import export

    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    call("workspace_write", trial=tid, path="model.py", content="LR = 0.7\n")
    sha = call("trial_snapshot", trial=tid)["commit"]
    call("workspace_write", trial=tid, path="model.py", content="LR = 99\n")  # not snapshotted
    assert trials.load(lab, tid).commit_sha == sha
    made = export.export_commit(workspaces.campaign_repo(lab, campaign), sha, tmp_path / "audit", store=None)
    assert (made.root / "model.py").read_text() == "LR = 0.7\n"
    assert not (made.root / "data" / "test_labels.csv").exists() and not (made.root / ".git").exists()


def test_snapshot_runs_no_repository_hooks(call, lab, campaign, baseline):
    hook = workspaces.campaign_repo(lab, campaign) / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\ntouch /tmp/sotalab-hook-ran\nexit 1\n")
    hook.chmod(0o755)
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    call("workspace_write", trial=tid, path="model.py", content="LR = 1\n")
    call("trial_snapshot", trial=tid)
    assert not Path("/tmp/sotalab-hook-ran").exists()
    assert subprocess.run(["git", "status", "--porcelain"], cwd=trials.load(lab, tid).worktree,
                          capture_output=True, text=True).stdout == ""


def test_snapshot_leaves_out_huge_new_files(call, campaign, baseline):
    trial = call("trial_create", campaign=campaign, kind="code")
    tree = Path(trial["worktree"])
    with open(tree / "checkpoint.pt", "wb") as f:
        f.truncate(workspaces.MAX_SNAPSHOT_FILE_BYTES + 1)  # sparse: costs no disk
    (tree / "small.py").write_text("Z = 3\n")
    snap = call("trial_snapshot", trial=trial["id"])
    assert snap["diff_stat"]["files"] == ["small.py"]
    assert snap["diff_stat"]["skipped_large_files"] == ["checkpoint.pt"]
    assert (tree / "checkpoint.pt").exists()
    (tree / "later.py").write_text("Y = 1\n")
    diff = call("workspace_diff", trial=trial["id"])["diff"]  # never hashes the checkpoint into git
    assert "later.py" in diff and "checkpoint.pt" not in diff


def test_protected_globs_changed_after_clone_are_rerecorded_from_the_baseline(call, call_error, lab, campaign,
                                                                               baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    call("workspace_write", trial=tid, path="model.py", content="LR = 5\n")
    assert call("workspace_diff", trial=tid)["protected"]["ok"] is True  # model.py is not protected yet
    call("campaign_update", campaign=campaign, protected_paths=["eval.py", "data/**", "model.py"])
    report = call("workspace_diff", trial=tid)["protected"]
    assert report["changed"] == ["model.py"] and report["checked"] == 3
    assert workspaces.restore_protected(lab, tid) == ["model.py"]
    assert call("workspace_read", trial=tid, path="model.py")["content"] == "LR = 0.2\n"
    call("campaign_update", campaign=campaign, held_out_paths=["data/train.csv"])
    assert "held-out paths changed" in call_error("workspace_diff", trial=tid)


def test_diff_against_parent_is_against_where_the_trial_began(call, campaign, baseline):
    parent = call("trial_create", campaign=campaign, kind="param")
    child = call("trial_create", campaign=campaign, kind="code", parent=parent["id"])
    call("workspace_write", trial=parent["id"], path="model.py", content="LR = 0.9\n")
    call("trial_snapshot", trial=parent["id"])  # the parent moves on after the child began
    call("workspace_write", trial=child["id"], path="c.py", content="C = 1\n")
    snap = call("trial_snapshot", trial=child["id"])
    assert snap["diff_stat"]["files"] == ["c.py"]
    assert "LR = 0.9" not in call("workspace_diff", trial=child["id"])["diff"]


def test_worktree_git_file_repointed_by_a_run_is_never_followed(call, lab, campaign, baseline, tmp_path):
    """A run can rewrite the worktree's .git file to point at a repository it made; the
    server's git must not pick up that repository's config (code execution on the
    server) or its HEAD (a forged commit)."""
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    tree = Path(trials.load(lab, tid).worktree)
    marker = tmp_path / "fsmonitor-ran"
    evil = tmp_path / "evil"  # e.g. in the run's output directory
    sh_git(tmp_path, "init", "-q", str(evil))
    sh_git(evil, "config", "core.fsmonitor", f"touch {marker}; false")
    (tree / ".git").write_text(f"gitdir: {evil / '.git'}\n")
    (tree / "model.py").write_text("LR = 3\n")
    snap = call("trial_snapshot", trial=tid)
    assert "model.py" in snap["diff_stat"]["files"]
    repo = workspaces.campaign_repo(lab, campaign)
    assert sh_git(repo, "rev-parse", f"trial/{tid}") == snap["commit"]
    assert "LR = 3" in call("workspace_diff", trial=tid)["diff"]
    patch = "--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-LR = 3\n+LR = 4\n"
    assert call("workspace_write", trial=tid, patch=patch)["files"] == ["model.py"]
    assert not marker.exists()
    # And the file points home again, for git run by hand in the worktree.
    subprocess.run(["git", "status", "--porcelain"], cwd=tree, check=True, capture_output=True)
    assert not marker.exists()
    assert sh_git(tree, "rev-parse", "--abbrev-ref", "HEAD") == f"trial/{tid}"
    (tree / ".git").unlink()
    assert call("workspace_read", trial=tid, path="model.py")["content"] == "LR = 4\n"
    assert sh_git(tree, "rev-parse", "--abbrev-ref", "HEAD") == f"trial/{tid}"


def test_symlink_into_git_metadata_is_refused(call, call_error, lab, campaign, baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    tree = Path(trials.load(lab, tid).worktree)
    before = (tree / ".git").read_text()
    os.symlink(".git", tree / "gitlink")
    assert ".git" in call_error("workspace_write", trial=tid, path="gitlink", content="gitdir: /tmp\n")
    assert (tree / ".git").read_text() == before


def test_restore_through_a_symlinked_directory_stays_in_the_worktree(call, lab, campaign, baseline, tmp_path):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    tree = Path(trials.load(lab, tid).worktree)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train.csv").write_text("mine\n")
    shutil.rmtree(tree / "data")
    os.symlink(outside, tree / "data")
    assert call("workspace_diff", trial=tid)["protected"]["changed"] == ["data/train.csv"]
    assert workspaces.restore_protected(lab, tid) == ["data/train.csv"]
    assert (outside / "train.csv").read_text() == "mine\n"
    assert not (tree / "data").is_symlink() and (tree / "data" / "train.csv").read_text() == "x,y\n1,0\n"
    assert workspaces.verify_protected(lab, tid).ok


def test_protected_file_replaced_by_a_directory_is_restored(call, lab, campaign, baseline):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    tree = Path(trials.load(lab, tid).worktree)
    (tree / "eval.py").unlink()
    (tree / "eval.py").mkdir()
    (tree / "eval.py" / "x").write_text("1\n")
    assert workspaces.restore_protected(lab, tid) == ["eval.py", "eval.py/x"]
    assert (tree / "eval.py").read_text() == "print('accuracy=0.5')\n"


def test_fifo_in_place_of_a_protected_file_is_changed_not_read(call, call_error, lab, campaign, baseline):
    # Opening a FIFO to hash it would block the server forever.
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    tree = Path(trials.load(lab, tid).worktree)
    (tree / "data" / "train.csv").unlink()
    os.mkfifo(tree / "data" / "train.csv")
    assert workspaces.verify_protected(lab, tid).changed == ["data/train.csv"]
    assert "data/train.csv" in call_error("workspace_diff", trial=tid)  # git cannot diff a FIFO: the tool says which
    assert workspaces.restore_protected(lab, tid) == ["data/train.csv"]
    assert (tree / "data" / "train.csv").read_text() == "x,y\n1,0\n"


@pytest.mark.parametrize("path", ["a" * 300, "d/" * 3000 + "f", "a\0b"])
def test_unusable_paths_are_refused_plainly(call, call_error, campaign, baseline, path):
    tid = call("trial_create", campaign=campaign, kind="code")["id"]
    for tool, extra in (("workspace_read", {}), ("workspace_write", {"content": "x"})):
        message = call_error(tool, trial=tid, path=path, **extra)
        assert "unexpectedly" not in message and ("too long" in message or "NUL" in message), message


