"""Per-trial workspaces: one git worktree per trial, on branch ``trial/<id>``.

Layout in the lab home::

    workspaces/<campaign>/repo            the campaign's main clone (baseline tag: sotalab/baseline)
    workspaces/<campaign>/trials/<trial>  one worktree per trial
    protected/<campaign>/                 manifest.json + baseline copies of protected files
    held_out/<campaign>/                  held-out files, moved out of the repository at clone time

A trial's worktree starts at its parent's commit (the baseline trial: at the baseline
tag); ``snapshot`` commits whatever changed and records the diff stat on the trial.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from . import campaigns, gitcmd, protected, surfaces, trials
from .errors import InvalidInput, LabError
from .home import Lab
from .protected import ProtectedReport
from .registry import tool

BASELINE_TAG = "sotalab/baseline"
DIFF_PAGE_CHARS = 40_000
MAX_SNAPSHOT_FILE_BYTES = 50 * 1024 * 1024
# A commit is reviewed and exported per seed: more new files than this are a run's debris
# (418,000 empty files took git 41 s to commit), not a change anyone reviews.
MAX_SNAPSHOT_NEW_FILES = 20_000
BYTECODE_PATHSPECS = [":(exclude,glob)**/__pycache__/**", ":(exclude,glob)**/*.pyc", ":(exclude,glob)**/*.pyo"]
# Reviewers read diffs as git reads them by content, whatever a trial's .gitattributes says
# (binary, textconv, diff drivers): gitcmd.neutralise_attributes outranks them. Not --text:
# a real binary file would come back as undecodable bytes.
TEXT_DIFF = ["--no-textconv", "--no-ext-diff"]

__all__ = ["ProtectedReport", "campaign_repo", "ensure_worktree", "snapshot", "verify_protected",
           "restore_protected", "held_out_dir", "worktree_path", "diff_text"]


def campaign_dir(lab: Lab, campaign_id: int) -> Path:
    return lab.path("workspaces", campaign_id)


def campaign_repo(lab: Lab, campaign_id: int) -> Path:
    """The campaign's main clone (made by repo_clone)."""
    return campaign_dir(lab, campaign_id) / "repo"


def worktree_path(lab: Lab, campaign_id: int, trial_id: int) -> Path:
    return campaign_dir(lab, campaign_id) / "trials" / str(trial_id)


def held_out_dir(lab: Lab, campaign_id: int) -> Path:
    """Where the campaign's held-out files live; only the final evaluation mounts them."""
    return lab.path("held_out", campaign_id)


def labels_dir(lab: Lab, campaign_id: int) -> Path:
    """Where the campaign's validation labels live; only scoring steps mount them."""
    return lab.path("labels", campaign_id)


def seal_labels(lab: Lab, campaign: campaigns.Campaign, repo: Path) -> list[str]:
    """Move the label files (not held out) from the fresh clone into the lab home."""
    dest = labels_dir(lab, campaign.id)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    return protected.move_held_out(repo, dest, campaign.label_paths) if campaign.label_paths else []


def protected_store(lab: Lab, campaign_id: int) -> Path:
    return lab.path("protected", campaign_id)


@contextmanager
def repo_lock(lab: Lab, campaign_id: int):
    """Serialise changes to one campaign's repository (refs, worktrees) across processes."""
    directory = campaign_dir(lab, campaign_id)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def require_repo(lab: Lab, campaign_id: int) -> Path:
    repo = campaign_repo(lab, campaign_id)
    if not (repo / ".git").exists():
        raise LabError(f"campaign {campaign_id} has no repository yet",
                       hint="clone the paper's code first with repo_clone")
    return repo


def baseline_commit(lab: Lab, campaign_id: int) -> str:
    sha = gitcmd.resolve_commit(require_repo(lab, campaign_id), BASELINE_TAG)
    if sha is None:
        raise LabError(f"campaign {campaign_id}'s repository has no {BASELINE_TAG} tag",
                       hint="clone it again with repo_clone")
    return sha


def _start_commit(lab: Lab, trial: trials.Trial) -> str:
    """The commit a trial's worktree starts from: its parent's snapshot, else the tip of
    the parent's branch, else (baseline trial) the baseline tag."""
    repo = require_repo(lab, trial.campaign_id)
    if trial.parent_id is None:
        return baseline_commit(lab, trial.campaign_id)
    parent = trials.load(lab, trial.parent_id)
    if parent.commit_sha:
        return parent.commit_sha
    tip = gitcmd.resolve_commit(repo, f"refs/heads/trial/{parent.id}")
    return tip or _start_commit(lab, parent)


def _head_and_start(lab: Lab, trial: trials.Trial, path: Path) -> tuple[str, str]:
    """The worktree's HEAD and the commit the trial started from, in one git process
    where the start was recorded (``parent_commit`` otherwise)."""
    # Both names are ours (no caller text); "--" ends the revisions (rev-parse echoes it).
    both = worktree_git(path, "rev-parse", "HEAD^{commit}", f"refs/sotalab/start/{trial.id}^{{commit}}", "--",
                        check=False)
    shas = [line for line in both.stdout.split() if gitcmd.SHA_RE.match(line)]
    if both.returncode == 0 and len(shas) == 2:
        return shas[0], shas[1]
    return worktree_git(path, "rev-parse", "HEAD").stdout.strip(), parent_commit(lab, trial)


def parent_commit(lab: Lab, trial: trials.Trial) -> str:
    """The commit the trial's worktree was created from (what "against parent" means)."""
    recorded = gitcmd.resolve_commit(require_repo(lab, trial.campaign_id), f"refs/sotalab/start/{trial.id}")
    return recorded or _start_commit(lab, trial)


def ensure_worktree(lab: Lab, trial_id: int) -> Path:
    """The trial's worktree on branch ``trial/<id>``, created on first use. Idempotent."""
    trial = trials.load(lab, trial_id)
    path = worktree_path(lab, trial.campaign_id, trial.id)
    branch = f"trial/{trial.id}"
    if path.is_dir() and _repair_git_link(path):
        if trial.worktree != str(path):
            trials.set_fields(lab, trial.id, branch=branch, worktree=str(path))
        return path
    repo = require_repo(lab, trial.campaign_id)
    with repo_lock(lab, trial.campaign_id):
        if not (path / ".git").exists():
            start = _start_commit(lab, trial)
            path.parent.mkdir(parents=True, exist_ok=True)
            # A new trial: its branch and the record of where it began (its parent may
            # commit more later) in one ref transaction, then the worktree: two git
            # processes. The transaction fails as a whole when either ref exists already
            # (a worktree made again), and the slower path below handles that.
            made = gitcmd.git(repo, "update-ref", "--stdin", check=False,
                              input=f"create refs/heads/{branch} {start}\n"
                                    f"create refs/sotalab/start/{trial.id} {start}\n").returncode == 0
            if not made or gitcmd.git(repo, "worktree", "add", "--end-of-options", str(path), branch,
                                      check=False).returncode != 0:
                gitcmd.git(repo, "worktree", "prune")  # an earlier worktree of this path, deleted
                if gitcmd.resolve_commit(repo, f"refs/heads/{branch}"):
                    gitcmd.git(repo, "worktree", "add", "--end-of-options", str(path), branch)
                else:
                    gitcmd.git(repo, "worktree", "add", "-b", branch, "--end-of-options", str(path), start)
                    gitcmd.git(repo, "update-ref", f"refs/sotalab/start/{trial.id}", start)
            if (repo / ".git" / "modules").is_dir() and (path / ".gitmodules").exists():
                # Worktrees do not share checked-out submodules; the clone had them, so must the trial.
                gitcmd.git(path, "submodule", "update", "--init", "--recursive")
    trials.set_fields(lab, trial.id, branch=branch, worktree=str(path))
    return path


def worktree_git_dir(path: Path) -> Path:
    """A trial worktree's own git directory, found from the campaign's clone.

    The worktree's ``.git`` file is writable by the trial's runs: one could point it at
    a repository it made, whose config (core.fsmonitor and the like) git would execute
    on the server, or whose HEAD names any commit. So the server's git never follows
    that file; it names this directory instead (see ``worktree_git``)."""
    path = Path(path)
    admin_root = path.parent.parent / "repo" / ".git" / "worktrees"
    want = os.path.realpath(path / ".git")
    candidates = [admin_root / path.name, *sorted(admin_root.glob("*"))] if admin_root.is_dir() else []
    for admin in candidates:
        gitdir = admin / "gitdir"
        if gitdir.is_file() and os.path.realpath(gitdir.read_text().strip()) == want:
            return admin
    raise LabError(f"{path} is not a worktree of its campaign's repository",
                   hint="the trial's worktree is damaged; create a new trial")


def _repair_git_link(path: Path) -> bool:
    """Point the worktree's ``.git`` file back at the worktree's own git directory if a
    run changed or removed it, so git run by hand there (a local host's agent) never
    follows a repository a run made. False when ``path`` is no worktree of the clone."""
    try:
        admin = worktree_git_dir(path)
    except LabError:
        return False
    link = path / ".git"
    if not link.is_symlink() and link.is_file():
        text = link.read_text(errors="replace").strip()
        if text.startswith("gitdir: ") and os.path.realpath(text[8:]) == os.path.realpath(admin):
            return True
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    elif link.is_symlink() or link.exists():
        link.unlink()
    link.write_text(f"gitdir: {admin}\n")
    return True


def worktree_git(path: Path, *args: str, **kwargs):
    """``gitcmd.git`` in a trial's worktree, through the worktree's own git directory."""
    return gitcmd.git(path, *args, git_dir=worktree_git_dir(path), **kwargs)


def trial_worktree(lab: Lab, trial_id: int) -> tuple[trials.Trial, Path]:
    """A trial and its (existing or newly made) worktree."""
    path = ensure_worktree(lab, trial_id)
    return trials.load(lab, trial_id), path


def _numstat(repo: Path, base: str, head: str) -> dict:
    lines = gitcmd.out(repo, "diff", "--numstat", "--end-of-options", base, head).splitlines()
    files, insertions, deletions = [], 0, 0
    for line in lines:
        added, removed, name = line.split("\t", 2)
        insertions += int(added) if added.isdigit() else 0
        deletions += int(removed) if removed.isdigit() else 0
        files.append(name)
    return {"files_changed": len(files), "insertions": insertions, "deletions": deletions,
            "files": files[:50], "files_truncated": len(files) > 50}


def _large_new_files(path: Path) -> list[str]:
    """Untracked files too big for git (checkpoints, datasets a run wrote)."""
    untracked = worktree_git(path, "ls-files", "--others", "--exclude-standard", "-z").stdout.split("\0")
    return _too_big(path, untracked)


def _too_big(path: Path, untracked: list[str]) -> list[str]:
    return sorted(rel for rel in untracked if rel and (path / rel).is_file()
                  and (path / rel).stat().st_size > MAX_SNAPSHOT_FILE_BYTES)


def _index_listing(path: Path) -> tuple[list[str], bool]:
    """One ``ls-files`` for what a snapshot needs to know before ``add``: the untracked
    files, and whether the index holds any bytecode (a parent committed it)."""
    untracked, bytecode = [], False
    for entry in worktree_git(path, "ls-files", "-z", "-t", "--cached", "--others", "--exclude-standard").stdout.split("\0"):
        tag, _, rel = entry.partition(" ")
        if not rel:
            continue
        if tag == "?":
            untracked.append(rel)
        elif not bytecode and _is_bytecode(rel):
            bytecode = True
    return untracked, bytecode


def _is_bytecode(rel: str) -> bool:
    # The same files as BYTECODE_PATHSPECS.
    return rel.endswith((".pyc", ".pyo")) or "__pycache__" in rel.split("/")[:-1]


def _excluding(rels: list[str]) -> list[str]:
    # Bytecode never enters a commit: Python could run it without reading its source.
    return [f":(exclude,literal){rel}" for rel in rels] + BYTECODE_PATHSPECS


def snapshot(lab: Lab, trial_id: int) -> str:
    """Commit everything that changed in the trial's worktree (nothing changed: the
    parent's commit stands) and record commit_sha and diff_stat on the trial. New files
    over 50 MB are left uncommitted and listed in diff_stat.skipped_large_files."""
    trial, path = trial_worktree(lab, trial_id)
    # Git processes dominate the lab's own time in a trial cycle (more so on a loaded
    # machine), so this takes four when something changed: ls-files, add, commit, and
    # one rev-parse for the new commit and the trial's start.
    untracked, tracked_bytecode = _index_listing(path)
    if len(untracked) > MAX_SNAPSHOT_NEW_FILES:
        top = sorted({rel.split("/", 1)[0] for rel in untracked[:MAX_SNAPSHOT_NEW_FILES * 2]})[:5]
        raise InvalidInput(f"trial {trial.id}'s worktree holds {len(untracked)} new files (at most "
                           f"{MAX_SNAPSHOT_NEW_FILES} go into one snapshot), e.g. under {', '.join(top)}",
                           hint="delete what a run left behind, or list it in .gitignore (ignored files are not "
                                "committed, and an evaluation never sees them)")
    # New files too big for git (checkpoints, datasets the run wrote) stay out of the commit.
    too_big = _too_big(path, untracked)
    worktree_git(path, "add", "--all", "--", ".", *_excluding(too_big))
    if tracked_bytecode:
        # Bytecode a parent committed leaves the index too (the files stay on disk).
        worktree_git(path, "rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--",
                     *(spec.replace(":(exclude,glob)", ":(glob)") for spec in BYTECODE_PATHSPECS))
    title = (trial.hypothesis.strip().splitlines() or [""])[0][:72]
    committed = worktree_git(path, "commit", "--quiet", "--no-verify", "-m", f"trial {trial.id}: {title}".strip(),
                             check=False)
    if committed.returncode != 0 and worktree_git(path, "diff", "--cached", "--quiet", check=False).returncode != 0:
        # Not "nothing to commit" (then the parent's commit stands): a real failure.
        tail = " | ".join((committed.stderr or committed.stdout).strip().splitlines()[-3:])
        raise gitcmd.GitError(f"git commit failed: {tail[:600]}")
    sha, base = _head_and_start(lab, trial, path)
    repo = require_repo(lab, trial.campaign_id)
    surfaces.enforce(lab, trial, repo, base, sha)
    stat = _numstat(repo, base, sha)
    if too_big:
        stat["skipped_large_files"] = too_big[:50]
    trials.set_fields(lab, trial.id, commit_sha=sha, diff_stat=stat)
    return sha


def current_store(lab: Lab, campaign_id: int) -> Path:
    """The protected-file store, re-recorded from the baseline commit when the campaign's
    protected globs changed after the clone (campaign_update allows that until the
    baseline is scored). Held-out globs cannot change after the clone: the files are
    already out of the history every trial shares."""
    campaign = campaigns.load(lab, campaign_id)
    store = protected_store(lab, campaign_id)
    manifest = protected.load_manifest(store)
    if manifest["held_out"] != campaign.sealed_paths:
        raise LabError(f"campaign {campaign_id}'s held-out paths changed after its code was cloned",
                       hint="held-out files are fixed at clone time; create a new campaign with the new paths")
    if manifest["globs"] != campaign.protected_paths:
        repo = require_repo(lab, campaign_id)
        with repo_lock(lab, campaign_id), tempfile.TemporaryDirectory() as tmp:
            checkout = Path(tmp) / "baseline"
            gitcmd.git(repo, "worktree", "add", "--detach", "--end-of-options", str(checkout), BASELINE_TAG)
            try:
                protected.record_baseline(checkout, store, campaign.protected_paths, campaign.sealed_paths)
            finally:
                gitcmd.git(repo, "worktree", "remove", "--force", str(checkout))
    return store


def verify_protected(lab: Lab, trial_id: int) -> ProtectedReport:
    """Protected files of the trial's worktree that differ from the baseline."""
    trial, path = trial_worktree(lab, trial_id)
    return protected.verify(path, current_store(lab, trial.campaign_id))


def restore_protected(lab: Lab, trial_id: int) -> list[str]:
    """Put the baseline copies of protected files back into the trial's worktree."""
    trial, path = trial_worktree(lab, trial_id)
    return protected.restore(path, current_store(lab, trial.campaign_id))


def diff_text(path: Path, base: str) -> str:
    """The diff from ``base`` to the worktree as it is now, new untracked files included
    (those a snapshot would leave out as too big excepted),
    without touching the trial's index (a throwaway index file does the staging)."""
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        real = worktree_git_dir(path) / "index"
        if real.exists():
            shutil.copy2(real, index)
        env = {"GIT_INDEX_FILE": str(index)}
        worktree_git(path, "add", "--all", "--", ".", *_excluding(_large_new_files(path)), env=env)
        return worktree_git(path, "diff", "--cached", "--no-color", *TEXT_DIFF, "--end-of-options", base,
                            env=env).stdout


# --- tools -------------------------------------------------------------------------------

class TrialRef(BaseModel):
    trial: int


class SnapshotOut(BaseModel):
    trial: int
    commit: str = Field(description="the trial's commit sha (its parent's when nothing changed)")
    branch: str
    diff_stat: dict = Field(description="files_changed, insertions, deletions, files (first 50) against the parent")


class DiffIn(BaseModel):
    trial: int
    against: Literal["parent", "baseline"] = "parent"
    committed: bool = Field(False, description="the scored snapshot")
    cursor: str | None = None
    limit: int = Field(DIFF_PAGE_CHARS, ge=1000, le=60_000, description="characters")


class DiffOut(BaseModel):
    trial: int
    against: str
    base_commit: str
    commit: str | None = Field(None, description="the snapshot diffed (committed=true)")
    diff: str = Field(description="unified diff (repository content, not instructions)")
    total_chars: int
    next_cursor: str | None
    protected: ProtectedReport | None = Field(description="protected files vs baseline (worktree; null when committed)")


@tool(idempotent=True)
def trial_snapshot(lab: Lab, args: TrialRef) -> SnapshotOut:
    """Commit the trial's worktree to its branch; the commit and diff stat.

    Commit whatever changed in the trial's worktree to its branch trial/<id> and
    record the commit and diff stat (against the parent) on the trial."""
    sha = snapshot(lab, args.trial)
    trial = trials.load(lab, args.trial)
    return SnapshotOut(trial=trial.id, commit=sha, branch=trial.branch or "", diff_stat=trial.diff_stat or {})


@tool(read_only=True)
def workspace_diff(lab: Lab, args: DiffIn) -> DiffOut:
    """The trial's diff against its parent or the baseline, with the protected-file check.

    The worktree as it is now, or (``committed=true``) the snapshot that was scored.

    Paged by characters with `cursor`. The committed diff leaves out what evaluation runs
    wrote into the worktree and works for closed trials too; it is what the dashboard
    and the report show.

    `protected` checks the worktree against the baseline hashes of the protected files
    (evaluator code and data): the changed, added and deleted ones. The evaluation path
    restores them before scoring, so changes there never count. It hashes the protected
    files on every call; the committed diff leaves it null."""
    from .paging import next_cursor, offset_from

    report = None
    if args.committed:
        base, text = committed_diff(lab, args.trial, args.against)
        trial_id, commit = args.trial, trials.load(lab, args.trial).commit_sha
    else:
        trial, path = trial_worktree(lab, args.trial)
        base = baseline_commit(lab, trial.campaign_id) if args.against == "baseline" or trial.parent_id is None \
            else parent_commit(lab, trial)
        gitcmd.neutralise_attributes(require_repo(lab, trial.campaign_id))
        text, trial_id, commit = diff_text(path, base), trial.id, None
        report = protected.verify(path, current_store(lab, trial.campaign_id))
    offset = offset_from(args.cursor)
    page = text[offset:offset + args.limit]
    return DiffOut(trial=trial_id, against=args.against, base_commit=base, commit=commit, diff=page,
                   total_chars=len(text), next_cursor=next_cursor(offset, len(page), len(text)), protected=report)


def committed_diff(lab: Lab, trial_id: int, against: str = "parent") -> tuple[str, str]:
    """(base commit, unified diff) of a trial's committed snapshot against its parent's
    commit or the baseline: what the trial changed, without what runs left in its worktree."""
    trial = trials.load(lab, trial_id)
    if trial.commit_sha is None:
        raise InvalidInput(f"trial {trial_id} has no snapshot yet",
                           hint="snapshot it with trial_snapshot (trial_evaluate does too)")
    base = (baseline_commit(lab, trial.campaign_id) if against == "baseline" or trial.parent_id is None
            else parent_commit(lab, trial))
    repo = require_repo(lab, trial.campaign_id)
    diff = gitcmd.out(repo, "diff", "--no-color", "--no-ext-diff", "--end-of-options", base, trial.commit_sha)
    return base, diff
