"""repo_clone: bring a paper's code into a campaign and fix its baseline.

Baseline handling happens here, at clone time: the pinned commit is checked out on
branch ``sotalab/main``; the campaign's overlay (evaluator, scorer, data splits) is
written in; the protected files are hashed and copied into the lab home; the held-out
files are moved into the lab home; the changes are committed and the resulting commit
is tagged ``sotalab/baseline``. Every trial worktree starts from it.

The clone keeps none of the repository's own branches and tags as local refs (they
stay under ``refs/remotes/origin``): the lab's refs (``sotalab/main``,
``sotalab/baseline``, ``trial/<id>``) then cannot collide with an upstream branch or
tag named ``sotalab`` or ``trial``.

Provenance: the campaign keeps the code's upstream URL and commit, whatever local
mirror or directory it was cloned from (``upstream``, else the source's ``origin``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from . import campaigns, gitcmd, protected, workspaces
from .errors import InvalidInput, LabError
from .home import Lab
from .overlay import OverlayRecord, apply_overlay
from .registry import Progress, tool


class RepoCloneIn(BaseModel):
    campaign: int
    url: str = Field(..., min_length=1, max_length=2000,
                     description="git URL, local repository, or plain directory")
    ref: str | None = Field(None, max_length=250, description="default: the remote's HEAD")
    shallow: bool = False
    submodules: bool = True
    replace: bool = Field(False, description="discard the existing clone")
    upstream: str | None = Field(None, max_length=2000, description="public URL of a local mirror or copy")
    upstream_commit: str | None = Field(None, pattern=r"^[0-9a-f]{40}$", description="of a plain directory")


class RepoInfo(BaseModel):
    campaign: int
    path: str = Field(description="the campaign's main clone")
    url: str
    commit: str = Field(description="the pinned upstream commit (recorded as the campaign's repo_commit)")
    baseline_commit: str = Field(description="commit tagged sotalab/baseline: upstream minus held-out files")
    protected_files: int = Field(description="files hashed and copied as protected")
    held_out_files: list[str] = Field(description="files moved out of the repository (first 100)")
    held_out_count: int
    provenance: dict = Field(description="upstream_url, upstream_commit and cloned_from")
    overlay: OverlayRecord = Field(description="files and splits written at the baseline, with their hashes")
    ignored_imported: list[str] = Field(default_factory=list, description="files of a plain directory that its "
                                        ".gitignore lists, committed anyway (first 100): data brought with the code")


def _fetch_pinned(repo, ref: str, shallow: bool) -> str:
    """The commit sha for ``ref`` in a fresh clone, fetching it when it is not there yet."""
    for candidate in (ref, f"origin/{ref}"):
        sha = gitcmd.resolve_commit(repo, candidate)
        if sha:
            return sha
    fetch = ["fetch", "--quiet", *(["--depth", "1"] if shallow else []), "origin", "--end-of-options", ref]
    if gitcmd.git(repo, *fetch, check=False).returncode == 0:
        sha = gitcmd.resolve_commit(repo, "FETCH_HEAD")
        if sha:
            return sha
    raise InvalidInput(f"ref {ref!r} is not in the repository", hint="give an existing branch, tag or commit sha")


def _public_url(url: str | None) -> str | None:
    """``url`` without credentials (https://user:token@host/... -> https://host/...)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _origin_of(source: str) -> str | None:
    """The ``origin`` remote of a local git repository or mirror, when it is a URL."""
    path = Path(source.removeprefix("file://"))
    if not path.is_dir():
        return None
    origin = gitcmd.out(path, "config", "--get", "remote.origin.url", check=False)
    return origin if re.match(r"^(https?|ssh|git)://|^[\w.-]+@[\w.-]+:", origin) else None


def _drop_upstream_refs(repo: Path) -> None:
    """Delete the clone's local branches and tags (origin's stay as remote-tracking refs),
    so no upstream name can block the lab's own refs."""
    refs = gitcmd.out(repo, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags").split()
    if refs:
        gitcmd.git(repo, "update-ref", "--stdin", input="".join(f"delete {ref}\n" for ref in refs))


def _plain_directory(url: str) -> bool:
    """A local directory of code that is no git repository (neither a work tree nor a bare
    repository or mirror): it is imported as one commit."""
    path = Path(url)
    bare = (path / "HEAD").is_file() and (path / "objects").is_dir()
    return path.is_dir() and not (path / ".git").exists() and not bare


# Never data: environments, caches and bytecode a copied directory may hold.
NOT_DATA_DIRS = {".venv", "venv", "__pycache__", ".ipynb_checkpoints", "node_modules", ".mypy_cache", ".pytest_cache",
                 ".ruff_cache", ".tox", ".eggs"}


def _import_directory(source: Path, repo: Path) -> tuple[str, list[str]]:
    """Code that came as a plain directory (an unpacked archive, or a copy with the data
    the code would download): copy it, symlinks kept as links, into a new repository
    with one commit. The user handed over every file in it, so files its own .gitignore
    lists (``/data/``, ``input.txt``) are committed too, less environments, caches and
    bytecode. Returns the commit and those ignored files."""
    shutil.copytree(source, repo, symlinks=True)
    gitcmd.git(repo, "init", "--quiet")
    gitcmd.git(repo, "add", "--all")
    listed = gitcmd.out(repo, "ls-files", "--others", "--ignored", "--exclude-standard", "-z").split("\0")
    ignored = sorted(p for p in listed if p and not NOT_DATA_DIRS & set(p.split("/")[:-1])
                     and not p.endswith((".pyc", ".pyo")))
    for start in range(0, len(ignored), 500):
        gitcmd.git(repo, "add", "--force", "--", *(f":(literal){p}" for p in ignored[start:start + 500]))
    gitcmd.git(repo, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", f"sotalab: import {source.name}")
    return gitcmd.out(repo, "rev-parse", "HEAD"), ignored


def _clone_and_fix_baseline(lab: Lab, campaign: campaigns.Campaign, url: str, ref: str | None,
                            args: RepoCloneIn, repo: Path, progress: Progress):
    """Clone, pin, apply the overlay, record protected files, move held-out files, tag
    the baseline. Returns (pinned commit, baseline commit, protected manifest, held-out
    files, the overlay as applied, the ignored files a plain directory brought)."""
    progress(0, 4, f"cloning {url}")
    if _plain_directory(url):
        if ref:
            raise InvalidInput(f"{url} is a plain directory, not a git repository; it has no ref {ref!r}",
                               hint="omit ref to import the directory as it is")
        pinned, ignored = _import_directory(Path(url), repo)
    else:
        ignored = []
        clone = ["clone", "--quiet", "--no-checkout"]
        if args.shallow:
            clone += ["--depth", "1", "--no-single-branch"] if ref else ["--depth", "1"]
        gitcmd.git(None, *clone, "--", url, str(repo))
        progress(1, 4, "checking out the pinned commit")
        pinned = _fetch_pinned(repo, ref, args.shallow) if ref else gitcmd.out(repo, "rev-parse", "HEAD")
    gitcmd.git(repo, "checkout", "--quiet", "--detach", pinned)
    _drop_upstream_refs(repo)
    gitcmd.git(repo, "checkout", "--quiet", "-B", "sotalab/main", pinned)
    if args.submodules and (repo / ".gitmodules").exists():
        progress(2, 4, "cloning submodules")
        gitcmd.git(repo, "submodule", "update", "--init", "--recursive",
                   *(["--depth", "1"] if args.shallow else []))
    progress(3, 4, "applying the overlay, recording protected files and moving held-out files")
    held_dir = workspaces.held_out_dir(lab, campaign.id)
    if held_dir.exists():
        shutil.rmtree(held_dir)
    held_dir.mkdir(parents=True)
    applied = apply_overlay(lab, campaign.id, campaign.overlay, repo, held_dir)
    manifest = protected.record_baseline(repo, workspaces.protected_store(lab, campaign.id),
                                         campaign.protected_paths, campaign.sealed_paths)
    moved = protected.move_held_out(repo, held_dir, campaign.held_out_paths)
    # Validation labels leave the repository too: only the scorer (or, in_process, the
    # evaluation's fresh export) ever gets them back.
    moved += workspaces.seal_labels(lab, campaign, repo)
    # The repository's .gitignore must not keep the overlay out of the baseline (nanoGPT ignores input.txt).
    written = [e.path for e in applied.files] + [p for s in applied.splits for p in (s.source, s.validation)]
    written = [f":(literal){p}" for p in written if (repo / p).exists()]
    if written:
        gitcmd.git(repo, "add", "--force", "--", *written)
    gitcmd.git(repo, "add", "--all")
    if gitcmd.git(repo, "diff", "--cached", "--quiet", check=False).returncode != 0:
        gitcmd.git(repo, "commit", "--quiet", "--no-verify", "-m",
                   f"sotalab: campaign overlay ({len(applied.files)} files, {len(applied.applied)} splits); "
                   f"hold out {len(moved)} files from every trial")
    baseline = gitcmd.out(repo, "rev-parse", "HEAD")
    gitcmd.git(repo, "tag", "--force", workspaces.BASELINE_TAG, baseline)
    return pinned, baseline, manifest, sorted(set(moved) | set(protected.repo_files(held_dir))), applied, ignored


@tool(destructive=True, open_world=True, job=True)
def repo_clone(lab: Lab, args: RepoCloneIn, progress: Progress) -> RepoInfo:
    """Clone the paper's code into a campaign, pin a commit, and fix the baseline.

    Clone the paper's code into the campaign (an https, ssh or file:// URL, git@host:path,
    a local repository, or a plain directory of code), pin a commit (``ref``: a branch, tag
    or commit; default: the remote's HEAD; ``shallow`` fetches only that commit), and fix
    the baseline: write the campaign's overlay (evaluator, scorer,
    data splits), hash and copy the protected files, move the held-out files out of the
    repository, and tag the result sotalab/baseline. Every trial's worktree starts from
    that tag. The campaign keeps the upstream URL and commit as provenance: ``upstream``
    names the code's public URL when ``url`` is a local mirror or copy (default: the local
    source's origin remote), ``upstream_commit`` the commit a plain directory was taken
    from. ``replace`` discards an existing clone, only before any trial has a worktree."""
    campaign = campaigns.load(lab, args.campaign)
    url = gitcmd.check_url(args.url)
    ref = gitcmd.check_ref(args.ref) if args.ref else None
    repo = workspaces.campaign_repo(lab, campaign.id)
    with workspaces.repo_lock(lab, campaign.id):
        if repo.exists():
            has_worktrees = lab.db.execute(
                "SELECT COUNT(*) FROM trials WHERE campaign_id = ? AND worktree IS NOT NULL", [campaign.id]
            ).fetchone()[0]
            if not args.replace or has_worktrees:
                raise LabError(f"campaign {campaign.id} already has a clone at {repo}",
                               hint="trials branch from it; create a new campaign for different code"
                               if has_worktrees else "pass replace=true to discard it")
            shutil.rmtree(repo)
        try:
            pinned, baseline, manifest, moved, applied, ignored = _clone_and_fix_baseline(
                lab, campaign, url, ref, args, repo, progress)
        except BaseException:
            shutil.rmtree(repo, ignore_errors=True)  # a half-made clone must not block the next try
            raise
    provenance = {"upstream_url": _public_url(args.upstream or _origin_of(url) or args.url),
                  "upstream_commit": args.upstream_commit if _plain_directory(url) else pinned,
                  "cloned_from": _public_url(args.url)}
    # repo_url stays the source cloned from: a local one is hidden from runs (it holds the held-out files).
    campaigns.set_fields(lab, campaign.id, repo_url=args.url, repo_commit=pinned, provenance=provenance,
                         overlay=applied.model_dump())
    if campaign.baseline_trial_id is not None:
        workspaces.ensure_worktree(lab, campaign.baseline_trial_id)
    progress(4, 4, "done")
    return RepoInfo(campaign=campaign.id, path=str(repo), url=args.url, commit=pinned, baseline_commit=baseline,
                    protected_files=len(manifest), held_out_files=moved[:100], held_out_count=len(moved),
                    provenance=provenance, overlay=applied, ignored_imported=ignored[:100])
