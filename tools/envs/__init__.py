"""Environments: a spec detected from the code plus overrides, built as a uv venv or a
Docker image, and identified by the hash of the resolved spec, so asking again for an
identical spec returns the existing environment at once.

Files: ``envs/<id>/build.log``, ``envs/<id>/requirements.txt``, and for venvs
``envs/<id>/venv``. Docker environments are images tagged ``sotalab-env:<id>``.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from .. import campaigns, ledger
from ..diagnose import classify
from ..errors import InvalidInput, LabError, NotFound
from ..home import Lab
from ..paging import DEFAULT_LIMIT, MAX_LIMIT, select_page
from ..registry import Progress, tool
from .imports import COMES_WITH, ImportScan, distribution_for, scan_imports
from .venv import build_environment, uv_binary
from ..repo_project import Project, own_project
from .spec import EnvSpec, Overrides, canonical_name, resolve

Backend = Literal["venv", "docker"]
LOG_TAIL_LINES = 40


class Environment(BaseModel):
    id: str = Field(description="content hash of the resolved spec")
    campaign_id: int | None
    backend: str
    status: str = Field(description="building, ready or failed")
    spec: EnvSpec
    location: str | None = Field(description="venv directory, or Docker image tag")
    log_path: str | None
    diagnostics: list[dict] | None = Field(description="error signatures found in a failed build's log")
    created_at: str
    started_at: str | None
    ended_at: str | None
    build_seconds: float | None


def _row_to_env(row: dict) -> Environment:
    data = dict(row)
    data["spec"] = ledger.loads(row["spec"])
    data["diagnostics"] = ledger.loads(row["diagnostics"])
    data["build_seconds"] = None
    if row["started_at"] and row["ended_at"]:
        delta = datetime.fromisoformat(row["ended_at"]) - datetime.fromisoformat(row["started_at"])
        data["build_seconds"] = round(delta.total_seconds(), 3)
    return Environment.model_validate(data)


def get_env(lab: Lab, env_id: str) -> Environment:
    """The environment ``env_id`` with its backend, status and location."""
    rows = list(lab.db.query("SELECT * FROM environments WHERE id = ?", [env_id]))
    if not rows:
        raise NotFound(f"no environment {env_id!r}", hint="list environments with env_get, or build one with env_build")
    return _row_to_env(rows[0])


def python_path(lab: Lab, env_id: str) -> Path:
    """The interpreter of a ready venv environment."""
    env = get_env(lab, env_id)
    if env.backend != "venv":
        raise InvalidInput(f"environment {env_id} is a {env.backend} environment, not a venv",
                           hint="run it with the docker executor, image " + (env.location or "?"))
    if env.status != "ready" or not env.location:
        raise LabError(f"environment {env_id} is {env.status}, not ready",
                       hint="see env_get and env_diagnose, then rebuild with env_build")
    return Path(env.location) / "bin" / "python"


def readable_paths(lab: Lab, env_id: str) -> list[Path]:
    """What a sandboxed run needs to read to use a venv environment: the venv and the
    installation of the interpreter it links to (``home`` in pyvenv.cfg)."""
    python = python_path(lab, env_id)
    venv = python.parent.parent
    paths = [venv]
    config = venv / "pyvenv.cfg"
    for line in config.read_text().splitlines() if config.exists() else []:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            home = Path(value.strip()).resolve()
            paths.append(home.parent if home.name == "bin" else home)
    return paths


def _ready(lab: Lab, env_id: str) -> Environment | None:
    """The environment if it is ready and its venv or image still exists."""
    try:
        env = get_env(lab, env_id)
    except NotFound:
        return None
    if env.status != "ready" or not env.location:
        return None
    if env.backend == "venv":
        return env if (Path(env.location) / "bin" / "python").exists() else None
    from .docker import image_exists

    return env if image_exists(env.location) else None


def log_tail(path: str | None, lines: int = LOG_TAIL_LINES) -> str:
    if not path or not Path(path).exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def build_env(lab: Lab, spec: EnvSpec, campaign_id: int | None, progress: Progress) -> tuple[Environment, bool]:
    """Build the environment for ``spec`` unless an identical one is ready.
    Returns (environment, reused). A failed build comes back with status 'failed'."""
    env_id = spec.env_id()
    ready = _ready(lab, env_id)
    if ready:
        return ready, True
    env_dir = lab.path("envs", env_id)
    env_dir.mkdir(parents=True, exist_ok=True)
    with open(env_dir / ".lock", "w") as lock:
        # One builder per spec; a waiter finds the environment ready when it gets the lock,
        # and a row still 'building' once we hold the lock is a build that died.
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = _ready(lab, env_id)
        if ready:
            return ready, True
        previous = lab.db.execute("SELECT created_at FROM environments WHERE id = ?", [env_id]).fetchone()
        log = env_dir / "build.log"
        log.write_text("")
        stamp = ledger.now()
        lab.db["environments"].upsert({
            "id": env_id, "campaign_id": campaign_id, "backend": spec.backend, "spec": ledger.dumps(spec.model_dump()),
            "status": "building", "location": None, "log_path": str(log), "diagnostics": None,
            "created_at": previous[0] if previous else stamp, "started_at": stamp, "ended_at": None,
        }, pk="id")
        progress(0, None, f"building {env_id} ({spec.backend}, {len(spec.requirements)} requirements)")
        try:
            if spec.backend == "venv":
                from .venv import build
            else:
                from .docker import build
            location = build(spec, env_dir, log, progress)
            lab.db["environments"].update(env_id, {"status": "ready", "location": location, "ended_at": ledger.now()})
        except LabError as exc:
            from ..diagnose import diagnose_env_failure

            with open(log, "a") as f:
                f.write(f"[sotalab] build failed: {exc.message}\n")
            lab.db["environments"].update(env_id, {"status": "failed", "ended_at": ledger.now()})
            diagnose_env_failure(lab, env_id)
    return get_env(lab, env_id), False


# --- tools -------------------------------------------------------------------------------

class EnvBuildIn(BaseModel):
    campaign: int | None = Field(None, description="sets its env")
    path: str | None = Field(None, description="or read this directory")
    detect: bool = Field(True, description="false: only the overrides count")
    backend: Backend = "venv"
    overrides: Overrides = Field(default_factory=Overrides)
    fixes: str | None = Field(None, description="the failed env it repairs")
    dry_run: bool = Field(False, description="only plan it")


class Detection(BaseModel):
    """What env_build read from the code, and what it thinks is missing."""

    sources: list[str] = Field(description="files the requirements were read from")
    requirements: int = Field(description="requirements in the built spec")
    imports: dict[str, list[str]] = Field(default_factory=dict, description="third-party modules the code imports "
                                          "(standard library and the repository's own modules excluded), with up "
                                          "to three files each")
    suggested_packages: list[str] = Field(default_factory=list, description="distributions for imports no "
                                          "requirement covers: pass them in overrides.packages")
    not_suggested: dict[str, str] = Field(default_factory=dict, description="imports no requirement names that "
                                          "need nothing: why (only the tests import it, the import is guarded, "
                                          "a requirement brings it, the built environment has it)")
    project: Project | None = Field(None, description="the repository as a package of its own (never installed)")
    fixes: list[str] = Field(default_factory=list, description="the same fixes env_diagnose gives a missing module")
    warnings: list[str] = Field(default_factory=list)


class EnvBuildOut(BaseModel):
    env: Environment
    reused: bool = Field(description="true when an identical spec was already built (no work done)")
    detection: Detection | None = Field(None, description="what detection found in the code (null: detect=false "
                                        "or no code given)")
    log_tail: str = Field(description="last lines of the build log (empty when reused)")


class EnvDetectOut(BaseModel):
    env_id: str = Field(description="the id env_build would give this spec")
    built: bool = Field(description="true when an environment with this id is ready (env_build would reuse it)")
    spec: EnvSpec
    detection: Detection | None = Field(description="what detection found in the code (null: detect=false or no code)")


class EnvGetIn(BaseModel):
    env: str | None = Field(None, description="omit to list")
    tail_lines: int = Field(LOG_TAIL_LINES, ge=0, le=400, description="of the build log")
    campaign: int | None = None
    backend: Backend | None = None
    status: Literal["building", "ready", "failed"] | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


ONE_ENV_ONLY = ("tail_lines",)
LIST_ONLY = ("campaign", "backend", "status", "limit", "cursor")


class EnvStatusOut(BaseModel):
    env: Environment
    log_tail: str


class EnvSummary(BaseModel):
    id: str
    campaign_id: int | None
    backend: str
    status: str
    location: str | None
    requirements: int
    ended_at: str | None


class EnvPage(BaseModel):
    envs: list[EnvSummary]
    total: int
    next_cursor: str | None


def _source_dir(lab: Lab, args: EnvBuildIn) -> Path | None:
    if not args.detect:
        return None
    if args.path:
        root = Path(args.path).expanduser().resolve()
        if not root.is_dir():
            raise InvalidInput(f"{args.path!r} is not a directory", hint="give the directory holding the code")
        return root
    if args.campaign is not None:
        from ..workspaces import require_repo

        return require_repo(lab, args.campaign)
    return None


def _not_needed(name: str, scan: ImportScan, have: set[str]) -> str | None:
    """Why an import no requirement names needs no package, or None when it does."""
    if name not in scan.outside_tests:
        return "only the tests import it"
    if name not in scan.needed:
        return "every import of it is guarded (optional)"
    bringers = COMES_WITH.get(canonical_name(distribution_for(name)), set()) & have
    if not bringers:
        return None
    return f"{', '.join(sorted(bringers))} {'brings' if len(bringers) == 1 else 'bring'} it"


def _importable(python: Path, names: list[str]) -> set[str]:
    """Which of ``names`` the environment's interpreter can import (found, not run)."""
    probe = "import importlib.util as u, sys\nfor n in sys.argv[1:]:\n    try:\n        " \
            "u.find_spec(n) and print(n)\n    except Exception:\n        pass\n"
    try:
        out = subprocess.run([str(python), "-I", "-c", probe, *names], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(out.stdout.split()) & set(names)


def _project_warning(project: Project) -> str | None:
    if project.import_root == "." and not project.scripts:
        return None  # its packages import from the repository root, where runs start
    parts = [f"the repository is itself a package ({project.name}); the lab never installs it, so that each "
             "trial runs its own code"]
    if project.import_root != ".":
        parts.append(f"its packages ({', '.join(project.packages)}) import only with {project.import_root}/ on "
                     f"sys.path (an evaluator that starts with sys.path.insert(0, '{project.import_root}'))")
    if project.scripts:
        calls = ", ".join(f"{name} -> {target}" for name, target in sorted(project.scripts.items())[:5])
        parts.append(f"its console scripts do not exist in the environment: call their functions instead ({calls})")
    parts.append(f"do not add {project.name} to overrides.packages: a released copy would run instead of the "
                 "trial's code (docs/real-repos.md, 'A repository that is a package')")
    return "; ".join(parts)


def detection_report(root: Path, spec: EnvSpec, python: Path | None = None) -> Detection:
    """What detection found in ``root`` and what the code imports that ``spec`` lacks;
    with ``python`` (a built environment's interpreter), imports it can already resolve
    are not suggested."""
    scan = scan_imports(root)
    imports = scan.imports
    have = {canonical_name(r) for r in spec.requirements}
    unnamed = {name: distribution_for(name) for name in imports
               if canonical_name(distribution_for(name)) not in have and canonical_name(name) not in have}
    not_suggested = {name: why for name in unnamed if (why := _not_needed(name, scan, have))}
    missing = {name: dist for name, dist in unnamed.items() if name not in not_suggested}
    if python is not None and missing:
        for name in _importable(python, sorted(missing)):
            not_suggested[name] = "the built environment has it (a requirement's dependency)"
            del missing[name]
    # Phrased by env_diagnose's own rule, so a suggestion reads like the fix for the crash it prevents.
    fixes = [fix for dist in sorted(set(missing.values()))
             for finding in classify(f"ModuleNotFoundError: No module named '{dist}'") for fix in finding.fixes]
    warnings = []
    if not spec.sources:
        warnings.append("no requirements file, pyproject.toml, setup.py/setup.cfg, environment.yml or README "
                        "pip line was found: only the overrides were installed")
    if spec.backend == "venv" and not _python_here(spec.python):
        warnings.append(f"Python {spec.python} is not installed on this machine: uv will try to download it "
                        "(a build without network fails); pin an installed version with overrides.python")
    cuda_by_default = {"torch", "torchvision", "torchaudio"} & {canonical_name(r) for r in spec.requirements}
    if cuda_by_default and not (spec.index_url or spec.extra_index_urls or spec.find_links):
        warnings.append(f"{', '.join(sorted(cuda_by_default))} from PyPI is a CUDA build (several GB); for a CPU "
                        "campaign give extra_index_urls (https://download.pytorch.org/whl/cpu) or find_links")
    companions = _companions_from_pypi(spec)
    if companions:
        warnings.append(f"torch comes from find_links, but {', '.join(companions)} would come from PyPI, built for "
                        "PyPI's CUDA torch: with a CPU torch it fails at import ('operator torchvision::nms does not "
                        f"exist'); put matching +cpu wheels of {', '.join(companions)} in find_links, add the CPU "
                        "index (extra_index_urls), take torch from PyPI too, or remove them (overrides.remove)")
    if missing:
        warnings.append(f"the code imports {', '.join(sorted(missing))}, which no requirement provides: "
                        f"add {', '.join(sorted(set(missing.values())))} with overrides.packages (a CPU-only "
                        "torch: overrides.extra_index_urls or find_links)")
    project = own_project(root)
    if project is not None and (message := _project_warning(project)):
        warnings.append(message)
    return Detection(sources=spec.sources, requirements=len(spec.requirements), imports=imports,
                     suggested_packages=sorted(set(missing.values())), fixes=fixes, warnings=warnings,
                     not_suggested=dict(sorted(not_suggested.items())), project=project)


def _companions_from_pypi(spec: EnvSpec) -> list[str]:
    """torchvision/torchaudio that would come from PyPI while torch comes from local
    wheels (find_links directories): the two builds do not fit together."""
    names = {canonical_name(r) for r in spec.requirements}
    local = [Path(link) for link in spec.find_links if link.startswith("/")]
    if "torch" not in names or not local or spec.index_url or spec.extra_index_urls:
        return []
    wheels = {w.name.split("-")[0].lower() for d in local if d.is_dir() for w in d.glob("*.whl")}
    return [c for c in ("torchvision", "torchaudio") if c in names and c not in wheels]


def _python_here(version: str) -> bool:
    """Whether uv finds an installed interpreter for ``version`` without downloading one."""
    try:
        found = subprocess.run([str(uv_binary()), "python", "find", "--no-project", version], capture_output=True,
                               timeout=30, env=build_environment())
    except (LabError, OSError, subprocess.TimeoutExpired):
        return True  # no uv to ask: the build itself will say so
    return found.returncode == 0


def _refuse_after_score(lab: Lab, campaign: campaigns.Campaign, env_id: str) -> None:
    """A campaign's environment is part of what its scores mean: once a trial is scored,
    building another for it would change the goalposts, like the objective's. The same
    spec again (a resumed session) changes nothing and is allowed."""
    if env_id != campaign.env_id and lab.db.execute("SELECT 1 FROM trials WHERE campaign_id = ? AND score IS NOT NULL LIMIT 1",
                      [campaign.id]).fetchone():
        raise LabError(f"campaign {campaign.id}'s environment {campaign.env_id} is frozen: a trial has been scored",
                       hint="scores would no longer be comparable; build without campaign (env_build campaign=null) "
                            "to try a spec, or create a new campaign with the new environment")


@tool(idempotent=True, open_world=True, job=True)
def env_build(lab: Lab, args: EnvBuildIn, progress: Progress) -> EnvBuildOut | EnvDetectOut:
    """Build or reuse a uv venv or Docker environment from the code (dry_run: plan it).

    Build (or reuse) an environment: detect the spec from the code (requirements*.txt,
    pyproject.toml, setup.cfg/setup.py, environment.yml pip section, README pip line),
    apply overrides (python version, packages, pins, package index URLs, find-links,
    system packages for docker), hash it, and build a uv venv or a Docker image. An
    identical spec is reused instantly. `detection` says which files were read, which
    third-party modules the code imports, and which of them no requirement provides
    (warnings name them; add them with overrides.packages). A campaign's environment is
    frozen once a trial is scored. A failed build returns status 'failed' with
    diagnostics; call env_diagnose for fixes (including fixes that worked before).

    ``campaign``: its clone gives the spec, and its env_id is set on success (``path``
    detects from another directory instead). ``detect=false``: only the overrides count.
    A docker build is FROM the cpu/cuda sandbox image. ``fixes`` names the failed
    environment this build is meant to repair (default: the campaign's last failed one),
    so its failure memories learn whether the change worked.

    `dry_run=true` builds nothing: the detected and overridden spec, its id (and
    whether it is built already), the files read, the third-party imports of the code,
    the packages they suggest, and warnings (nothing found, imports without a
    requirement, a CUDA torch about to come from PyPI). Use it first on a repository you
    have not seen; it answers in one call."""
    if args.dry_run:
        return _plan(lab, args)
    root = _source_dir(lab, args)
    spec = resolve(root, args.overrides, args.backend)
    if args.campaign is not None:
        _refuse_after_score(lab, campaigns.load(lab, args.campaign), spec.env_id())
    started = time.perf_counter()
    env, reused = build_env(lab, spec, args.campaign, progress)
    # After a venv build, detection asks the interpreter: an import a requirement's own
    # dependency provides is no longer suggested.
    python = Path(env.location) / "bin" / "python" if env.status == "ready" and env.backend == "venv" \
        and env.location else None
    detection = detection_report(root, spec, python) if root is not None else None
    if not reused:
        from ..diagnose import record_fix_outcome

        record_fix_outcome(lab, env, args.fixes, args.campaign)
    if env.status == "ready" and args.campaign is not None:
        campaigns.set_fields(lab, args.campaign, env_id=env.id)
    progress(1, 1, f"{env.id} {env.status} in {time.perf_counter() - started:.1f} s")
    return EnvBuildOut(env=env, reused=reused, detection=detection,
                       log_tail="" if reused else log_tail(env.log_path))


def _plan(lab: Lab, args: EnvBuildIn) -> EnvDetectOut:
    """env_build's dry run: what it would install, with warnings; nothing is built or recorded."""
    if args.fixes is not None:
        raise InvalidInput("a dry run builds nothing, so it repairs nothing: fixes does not apply",
                           hint="drop fixes, or drop dry_run to build")
    root = _source_dir(lab, args)
    spec = resolve(root, args.overrides, args.backend)
    return EnvDetectOut(env_id=spec.env_id(), built=_ready(lab, spec.env_id()) is not None, spec=spec,
                        detection=detection_report(root, spec) if root is not None else None)


@tool(read_only=True)
def env_get(lab: Lab, args: EnvGetIn) -> EnvStatusOut | EnvPage:
    """One environment with its build log's tail, or without `env` environments, paged.

    One environment: status, spec, location, build timings and the last `tail_lines` of
    its build log. Without `env`: environments, newest first, filtered by campaign,
    backend or status, paged with `cursor`."""
    if args.env is not None:
        extra = sorted(set(LIST_ONLY) & args.model_fields_set)
        if extra:
            raise InvalidInput(f"{', '.join(extra)} {'lists' if len(extra) == 1 else 'list'} environments; "
                               "with `env` the tool returns that one environment",
                               hint=f"drop {', '.join(extra)}, or drop `env` to list")
        env = get_env(lab, args.env)
        return EnvStatusOut(env=env, log_tail=log_tail(env.log_path, args.tail_lines) if args.tail_lines else "")
    if set(ONE_ENV_ONLY) & args.model_fields_set:
        raise InvalidInput("tail_lines is for one environment: give `env`", hint="drop tail_lines to list")
    rows, total, cursor = select_page(lab.db, "environments", {"campaign_id": args.campaign,
                                                               "backend": args.backend, "status": args.status},
                                      "created_at DESC, id", args.limit, args.cursor)
    envs = [EnvSummary(id=r["id"], campaign_id=r["campaign_id"], backend=r["backend"], status=r["status"],
                       location=r["location"], requirements=len(ledger.loads(r["spec"])["requirements"]),
                       ended_at=r["ended_at"]) for r in rows]
    return EnvPage(envs=envs, total=total, next_cursor=cursor)
