"""A safe way to run git: argument lists only, no prompts, no hooks, no ext:: transport.

Every ref or URL that comes from a caller goes through ``check_ref``/``check_url``
first, and commands put ``--end-of-options`` (or ``--``) before it, so a value like
``--output=/tmp/x`` can never be read as an option.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .errors import InvalidInput, LabError

GIT_TIMEOUT_S = 600
# Hooks from a repository we did not write must never run; ext:: runs arbitrary commands.
SAFE_CONFIG = ["-c", "core.hooksPath=/dev/null", "-c", "protocol.ext.allow=never",
               "-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main"]
IDENTITY = {"GIT_AUTHOR_NAME": "sotalab", "GIT_AUTHOR_EMAIL": "sotalab@localhost",
            "GIT_COMMITTER_NAME": "sotalab", "GIT_COMMITTER_EMAIL": "sotalab@localhost"}
SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_URL_RE = re.compile(r"^(https?|ssh|git|file)://[^\s]+$|^[\w.-]+@[\w.-]+:[^\s]+$")


class GitError(LabError):
    """A git command that failed; the message carries git's own last lines."""


def git(cwd: Path | str | None, *args: str, input: str | None = None, check: bool = True,
        timeout: float = GIT_TIMEOUT_S, env: dict[str, str] | None = None,
        git_dir: Path | str | None = None) -> subprocess.CompletedProcess:
    """Run ``git <args>`` in ``cwd`` and return the completed process (text mode).
    ``git_dir``: use that git directory, with ``cwd`` as the work tree, instead of
    whatever ``.git`` in ``cwd`` points at."""
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/true", **IDENTITY, **(env or {})}
    full_env.pop("GIT_DIR", None)
    full_env.pop("GIT_WORK_TREE", None)
    try:
        location = [f"--git-dir={git_dir}", f"--work-tree={cwd}"] if git_dir else []
        proc = subprocess.run(["git", *SAFE_CONFIG, *location, *args], cwd=cwd, input=input, text=True,
                              capture_output=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {timeout:.0f} s",
                       hint="check the network or the repository size; try a shallow clone") from None
    if check and proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise GitError(f"git {args[0]} failed: {tail[:600]}")
    return proc


# $GIT_COMMON_DIR/info/attributes outranks every .gitattributes in a tree: "unspecified"
# here means a trial's own attributes can neither mark its code binary nor route its
# diff or its checkout through a driver; git goes by content, as a reviewer needs.
NEUTRAL_ATTRIBUTES = "* !diff !text !eol !filter !ident !working-tree-encoding !export-subst !export-ignore\n"


def neutralise_attributes(repo: Path | str) -> None:
    """Make in-tree .gitattributes of ``repo`` (and its worktrees) inert for diffs and checkouts."""
    info = Path(out(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")) / "info"
    target = info / "attributes"
    if target.is_file() and not target.is_symlink() and target.read_text() == NEUTRAL_ATTRIBUTES:
        return
    info.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    target.write_text(NEUTRAL_ATTRIBUTES)


def out(cwd: Path | str | None, *args: str, **kwargs) -> str:
    return git(cwd, *args, **kwargs).stdout.strip()


def check_ref(ref: str) -> str:
    """A branch, tag or commit name a caller gave: refuse anything git could read as an option."""
    if not ref or ref.startswith("-") or any(c in ref for c in "\0\n\r ") or len(ref) > 250:
        raise InvalidInput(f"ref {ref!r} is not a valid git ref",
                           hint="give a branch, tag or commit sha (no leading '-', no spaces)")
    return ref


def check_url(url: str) -> str:
    """A clone source: https/ssh/git/file URL, scp-like ``user@host:path``, or a local path."""
    if not url or url.startswith("-") or any(c in url for c in "\0\n\r"):
        raise InvalidInput(f"repository {url!r} is not a URL or path git can clone",
                           hint="give an https://, ssh://, file:// URL or a local path")
    if "::" in url.split("/")[0]:  # transport::address runs a remote helper (ext:: runs commands)
        raise InvalidInput(f"repository {url!r} uses a remote-helper transport, which is refused",
                           hint="give an https://, ssh://, file:// URL or a local path")
    if _URL_RE.match(url):
        return url
    path = Path(url).expanduser()
    if not path.exists():
        raise InvalidInput(f"repository {url!r} is neither a URL nor an existing path",
                           hint="give an https://, ssh://, file:// URL or a local path")
    return str(path.resolve())


def resolve_commit(repo: Path, ref: str) -> str | None:
    """The commit sha ``ref`` names in ``repo``, or None."""
    proc = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{check_ref(ref)}^{{commit}}",
               check=False)
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and SHA_RE.match(sha) else None
