"""repo_clone against real git repositories made here, over file:// and local paths."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import SIMPLE_CAMPAIGN

from sotalab.tools import workspaces

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin:/usr/local/bin"}


def sh_git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_upstream(root: Path) -> Path:
    """A small research repo: model code, an evaluator, test labels; two commits, a tag."""
    repo = root / "upstream"
    (repo / "data").mkdir(parents=True)
    (repo / "eval.py").write_text("print('accuracy=0.5')\n")
    (repo / "model.py").write_text("LR = 0.1\n")
    (repo / "data" / "train.csv").write_text("x,y\n1,0\n")
    (repo / "data" / "test_labels.csv").write_text("y\n1\n")
    sh_git(repo, "init", "-q", "-b", "main")
    sh_git(repo, "add", ".")
    sh_git(repo, "commit", "-q", "-m", "v1")
    sh_git(repo, "tag", "v1")
    (repo / "model.py").write_text("LR = 0.2\n")
    sh_git(repo, "commit", "-q", "-am", "v2")
    return repo


@pytest.fixture
def upstream(tmp_path) -> Path:
    return make_upstream(tmp_path)


@pytest.fixture
def campaign(call) -> int:
    spec = dict(SIMPLE_CAMPAIGN, protected_paths=["eval.py", "data/**"], held_out_paths=["data/test_*"])
    return call("campaign_create", **spec)["id"]


def test_clone_pins_head_tags_baseline_and_records_commit(call, lab, upstream, campaign):
    info = call("repo_clone", campaign=campaign, url=f"file://{upstream}")
    head = sh_git(upstream, "rev-parse", "HEAD")
    assert info["commit"] == head
    assert call("campaign_get", campaign=campaign)["repo_commit"] == head
    repo = workspaces.campaign_repo(lab, campaign)
    assert sh_git(repo, "rev-parse", "sotalab/baseline") == info["baseline_commit"]
    assert (repo / "model.py").read_text() == "LR = 0.2\n"


def test_clone_local_path_at_a_tag(call, lab, upstream, campaign):
    info = call("repo_clone", campaign=campaign, url=str(upstream), ref="v1")
    assert info["commit"] == sh_git(upstream, "rev-parse", "v1^{commit}")
    assert (workspaces.campaign_repo(lab, campaign) / "model.py").read_text() == "LR = 0.1\n"


def test_shallow_clone_of_a_branch(call, lab, upstream, campaign):
    info = call("repo_clone", campaign=campaign, url=f"file://{upstream}", ref="main", shallow=True)
    repo = workspaces.campaign_repo(lab, campaign)
    assert info["commit"] == sh_git(upstream, "rev-parse", "main")
    assert sh_git(repo, "rev-parse", "--is-shallow-repository") == "true"


def test_held_out_files_leave_the_repo_and_every_trial(call, lab, upstream, campaign):
    info = call("repo_clone", campaign=campaign, url=str(upstream))
    assert info["held_out_files"] == ["data/test_labels.csv"]
    held = workspaces.held_out_dir(lab, campaign) / "data" / "test_labels.csv"
    assert held.read_text() == "y\n1\n"
    base = call("trial_create", campaign=campaign, kind="baseline")
    child = call("trial_create", campaign=campaign, kind="param", hypothesis="lower LR")
    for trial in (base, child):
        tree = Path(trial["worktree"])
        assert (tree / "eval.py").exists()
        assert not (tree / "data" / "test_labels.csv").exists()
    # Held-out files are not protected copies either: trials could never see them.
    assert info["protected_files"] == 2  # eval.py, data/train.csv


def test_baseline_created_before_clone_gets_its_worktree_at_clone(call, upstream, campaign):
    base = call("trial_create", campaign=campaign, kind="baseline")
    assert base["worktree"] is None
    call("repo_clone", campaign=campaign, url=str(upstream))
    trial = call("trial_get", trial=base["id"])
    assert trial["branch"] == f"trial/{base['id']}"
    assert (Path(trial["worktree"]) / "model.py").exists()


def test_second_clone_refused_unless_replaced_before_any_worktree(call, call_error, upstream, campaign):
    call("repo_clone", campaign=campaign, url=str(upstream))
    assert "already has a clone" in call_error("repo_clone", campaign=campaign, url=str(upstream))
    call("repo_clone", campaign=campaign, url=str(upstream), ref="v1", replace=True)
    call("trial_create", campaign=campaign, kind="baseline")
    assert "already has a clone" in call_error("repo_clone", campaign=campaign, url=str(upstream), replace=True)


@pytest.mark.parametrize("ref", ["--output=/tmp/sotalab-pwned", "-b", "--upload-pack=touch /tmp/sotalab-pwned"])
def test_option_like_refs_are_refused_and_do_no_harm(call_error, upstream, campaign, ref):
    message = call_error("repo_clone", campaign=campaign, url=str(upstream), ref=ref)
    assert "not a valid git ref" in message
    assert not Path("/tmp/sotalab-pwned").exists()


@pytest.mark.parametrize("url", ["--upload-pack=touch /tmp/sotalab-pwned", "ext::sh -c touch% /tmp/sotalab-pwned",
                                 "/no/such/repository"])
def test_bad_urls_are_refused(call_error, campaign, url):
    message = call_error("repo_clone", campaign=campaign, url=url)
    assert "repository" in message
    assert not Path("/tmp/sotalab-pwned").exists()


def test_unknown_ref_says_so_and_leaves_nothing_behind(call, call_error, upstream, campaign):
    assert "not in the repository" in call_error("repo_clone", campaign=campaign, url=str(upstream), ref="nope")
    assert call("repo_clone", campaign=campaign, url=str(upstream), ref="v1")["commit"]  # no replace needed


def test_plain_directory_is_imported_as_one_commit(call, lab, tmp_path, campaign):
    code = tmp_path / "unpacked"
    (code / "data").mkdir(parents=True)
    (code / "eval.py").write_text("print('accuracy=0.5')\n")
    (code / "data" / "test_labels.csv").write_text("y\n")
    info = call("repo_clone", campaign=campaign, url=str(code))
    repo = workspaces.campaign_repo(lab, campaign)
    assert sh_git(repo, "rev-parse", "HEAD~1") == info["commit"]  # import, then the held-out removal
    assert info["held_out_files"] == ["data/test_labels.csv"]
    tree = Path(call("trial_create", campaign=campaign, kind="baseline")["worktree"])
    assert (tree / "eval.py").exists() and not (tree / "data" / "test_labels.csv").exists()
    assert (code / "data" / "test_labels.csv").exists()  # the source directory is left as it was


def test_concurrent_trials_get_their_worktrees(call, lab, upstream, campaign):
    import threading

    from sotalab.tools.home import Lab
    from sotalab.tools.invoke import invoke

    call("repo_clone", campaign=campaign, url=str(upstream))
    call("trial_create", campaign=campaign, kind="baseline")
    made, errors = [], []

    def create():
        try:
            made.append(invoke(Lab.open(lab.home), "trial_create", {"campaign": campaign, "kind": "param"}))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({t["branch"] for t in made}) == 6
    assert all((Path(t["worktree"]) / "model.py").exists() for t in made)


def test_submodules_are_cloned(call, lab, tmp_path, campaign, monkeypatch):
    # git refuses file:// submodules by default (CVE-2022-39253); allow them for this
    # test's own git calls and the lab's, as a user with local submodules would.
    for key, value in {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.file.allow",
                       "GIT_CONFIG_VALUE_0": "always"}.items():
        monkeypatch.setenv(key, value)
        GIT_ENV[key] = value
    try:
        lib = tmp_path / "lib"
        lib.mkdir()
        (lib / "layers.py").write_text("DEPTH = 3\n")
        sh_git(lib, "init", "-q", "-b", "main")
        sh_git(lib, "add", ".")
        sh_git(lib, "commit", "-q", "-m", "lib")
        upstream = make_upstream(tmp_path)
        sh_git(upstream, "submodule", "add", "-q", f"file://{lib}", "third_party/lib")
        sh_git(upstream, "commit", "-q", "-m", "add lib")
        call("repo_clone", campaign=campaign, url=str(upstream))
        tree = Path(call("trial_create", campaign=campaign, kind="baseline")["worktree"])
        assert (workspaces.campaign_repo(lab, campaign) / "third_party" / "lib" / "layers.py").exists()
        assert (tree / "third_party" / "lib" / "layers.py").read_text() == "DEPTH = 3\n"
    finally:
        for key in ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"):
            GIT_ENV.pop(key, None)
