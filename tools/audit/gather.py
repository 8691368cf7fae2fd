"""What the checks read, gathered from the ledger and the campaign's repository."""

from __future__ import annotations

import os
from pathlib import Path

from .. import gitcmd, ledger, workspaces
from ..campaigns import Campaign
from ..evaluation import steps
from ..trials import Trial
from .integrity import RunRecord

MAX_SOURCE_BYTES = 1_000_000
PARAM_METRICS = ("params", "n_params", "num_params", "param_count", "parameters")
SOURCE_SUFFIXES = (".py",)


def evaluation_runs(lab, trial_id: int, purpose: str = "evaluation") -> list[dict]:
    """The trial's evaluation runs, oldest first, JSON columns decoded."""
    rows = lab.db.query("SELECT * FROM runs WHERE trial_id = ? AND purpose = ? ORDER BY id", [trial_id, purpose])
    out = []
    for row in rows:
        row = dict(row)
        for key in ("metrics", "telemetry", "env", "resources"):
            row[key] = ledger.loads(row.get(key), {}) or {}
        out.append(row)
    return out


def scoring_runs(trial: Trial, runs: list[dict]) -> list[dict]:
    """The runs behind the trial's recorded score: those its cost lists (the evaluation
    path records them), else every evaluation run of the trial."""
    recorded = set((trial.cost or {}).get("runs", []))
    return [r for r in runs if r["id"] in recorded] if recorded else runs


def run_commit(run: dict) -> str | None:
    """The commit a run evaluated, where the run recorded it."""
    return (run.get("env") or {}).get(steps.COMMIT_ENV)


def committed_after(lab, campaign: Campaign, trial: Trial) -> bool:
    """Whether the trial's commit is newer than its last evaluation (git keeps seconds)."""
    from datetime import datetime

    if not trial.evaluated_at:
        return False
    repo = workspaces.require_repo(lab, campaign.id)
    committed = int(gitcmd.out(repo, "log", "-1", "--format=%ct", "--end-of-options", trial.commit_sha))
    return committed > int(datetime.fromisoformat(trial.evaluated_at).timestamp())


def run_output(run: dict) -> str:
    from ..runs import logcap

    run_dir = run.get("run_dir")
    if not run_dir or not Path(run_dir).exists():
        return ""
    try:
        return logcap.read_text(Path(run_dir))
    except OSError:
        return ""


def run_records(runs: list[dict], regex_rules: list) -> list[RunRecord]:
    """Runs as the integrity check sees them, with the regex metrics read again from
    each run's own log (JSON metric files are gone once the next run starts)."""
    from ..evaluation.metrics import extract

    records = []
    for r in runs:
        output = run_output(r)
        reparsed = extract(regex_rules, output, Path(r["cwd"]))[0] if regex_rules and output else {}
        records.append(RunRecord(id=r["id"], seed=r.get("seed"), status=r["status"], metrics=r["metrics"],
                                 output=output, commit=run_commit(r), reparsed=reparsed))
    return records


def seed_scores(trial: Trial) -> dict[int, float]:
    """The trial's per-seed primary scores as the ledger holds them."""
    raw = trial.seed_scores or {}
    return {int(k): float(v) for k, v in raw.items() if v is not None}


def ledger_seed_metrics(trial: Trial) -> dict[int, dict[str, float]]:
    """Metrics per seed as the ledger holds them for the trial."""
    per_seed: dict[int, dict[str, float]] = {}
    for name, summary in (trial.metrics or {}).items():
        for seed, value in ((summary or {}).get("values") or {}).items():
            per_seed.setdefault(int(seed), {})[name] = float(value)
    return per_seed


def mean_metrics(per_seed: dict[int, dict], seeds: list[int] | None = None) -> dict[str, float]:
    """Mean of every numeric metric over ``seeds`` (default: all seeds given)."""
    chosen = [per_seed[s] for s in (seeds if seeds is not None else per_seed) if s in per_seed]
    sums: dict[str, list[float]] = {}
    for metrics in chosen:
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sums.setdefault(name, []).append(float(value))
    return {name: sum(vals) / len(vals) for name, vals in sums.items()}


def tree_mb(root: Path) -> float:
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total / 1e6


def usage(runs: list[dict], checkout: Path | None, metrics: dict[int, dict]) -> dict[str, float | None]:
    """What the trial used, in the units of ``budget.LIMITS``."""
    walls, rss, gpu = [], [], []
    for run in runs:
        if run["status"] != "succeeded":
            continue
        tel = run["telemetry"].get("summary", run["telemetry"])
        if tel.get("wall_s") is not None:
            walls.append(float(tel["wall_s"]))
        if tel.get("peak_rss_mb") is not None:
            rss.append(float(tel["peak_rss_mb"]) / 1024)
        if tel.get("peak_gpu_memory_mb") is not None:
            gpu.append(float(tel["peak_gpu_memory_mb"]) / 1024)
    params = [float(m[name]) for m in metrics.values() for name in PARAM_METRICS
              if isinstance(m.get(name), (int, float))]
    return {"wall_s": max(walls) if walls else None,
            "peak_rss_gb": max(rss) if rss else None,
            "peak_gpu_memory_gb": max(gpu) if gpu else None,
            "artifact_mb": tree_mb(checkout) if checkout else None,
            "params": max(params) if params else None}


def diff_against_baseline(lab, campaign: Campaign, commit: str) -> str:
    """The trial's diff as git reads it by content: the trial's own .gitattributes
    cannot mark its code binary or pass it through a text conversion."""
    repo = workspaces.require_repo(lab, campaign.id)
    base = workspaces.baseline_commit(lab, campaign.id)
    gitcmd.neutralise_attributes(repo)
    return gitcmd.git(repo, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames",
                      "--end-of-options", base, commit).stdout


def last_run_id(lab) -> int:
    return lab.db.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]


def runs_after(lab, trial_id: int, purpose: str, after_id: int) -> list[dict]:
    """The trial's runs of ``purpose`` started after run ``after_id`` (an audit's own)."""
    return [r for r in evaluation_runs(lab, trial_id, purpose) if r["id"] > after_id]


def in_process_events(runs: list[dict]) -> list:
    """The runtime records of the in_process runs among ``runs``."""
    from ..evaluation.steps import STEP_ENV
    from .runtime import RunEvents, read_events

    return [RunEvents(run=r["id"], seed=r.get("seed"), records=read_events(Path(r["run_dir"])))
            for r in runs if (r.get("env") or {}).get(STEP_ENV) == "in_process" and r.get("run_dir")]


def tracked_files(checkout: Path) -> dict[str, str]:
    """Every file of an export (the commit's files, protected ones restored): path -> sha256."""
    import hashlib

    found = {}
    for path in checkout.rglob("*"):
        if path.is_file() and not path.is_symlink() and ".git" not in path.relative_to(checkout).parts:
            found[path.relative_to(checkout).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def python_sources(checkout: Path) -> dict[str, str]:
    """The text of an export's Python files (the runtime check reads the line behind a record)."""
    return {p.relative_to(checkout).as_posix(): p.read_text(errors="replace") for p in checkout.rglob("*.py")
            if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_SOURCE_BYTES}


def evaluator_imports(store: Path) -> frozenset[str]:
    """Top-level modules the baseline's protected Python files import (a trial file of
    the same name would be imported in their place)."""
    from ..protected import FILES, load_manifest
    from .diff_rules import top_level_imports

    names: set[str] = set()
    for rel in load_manifest(store)["files"]:
        path = store / FILES / rel
        if rel.endswith(".py") and path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_SOURCE_BYTES:
            names |= top_level_imports(path.read_text(errors="replace"))
    return frozenset(names)


def local_modules(checkout: Path) -> frozenset[str]:
    """The repository's own top-level Python modules and packages."""
    names = {p.stem for p in checkout.glob("*.py")} | {p.parent.name for p in checkout.glob("*/__init__.py")}
    return frozenset(n for n in names if n.isidentifier())


def changed_sources(checkout: Path, diff_text: str) -> dict[str, str]:
    """Full text of the changed source files at the trial's commit (imports live outside hunks)."""
    from . import diffparse

    sources = {}
    for fd in diffparse.parse(diff_text):
        path = checkout / fd.path
        if fd.path.endswith(SOURCE_SUFFIXES) and path.is_file() and not path.is_symlink() \
                and path.stat().st_size <= MAX_SOURCE_BYTES:
            sources[fd.path] = path.read_text(errors="replace")
    return sources
