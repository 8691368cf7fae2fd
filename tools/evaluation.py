"""Evaluation: the only path that writes a trial's score.

``evaluate_trial`` snapshots the trial, restores its protected files from the baseline
copy (reporting what it had changed) and checks their hashes, then runs the campaign's
evaluator command in the trial's worktree once per seed as supervised runs, in the
campaign's environment (no environment: the server's own Python, ``sys.executable``,
first on PATH). The seed reaches the evaluator as the variable named by the
evaluator's ``seed_env`` (default ``SOTALAB_SEED``) and, when ``seed_arg`` is set (e.g.
``--seed``), as that argument followed by the seed. The server then reads the metrics
itself (a regex on the run's output, or a JSON file the evaluator writes), and records
per-seed values, mean and spread, deltas against parent and baseline, the label, and
the cost charged to the campaign's budgets.

Labels: keep (better than the parent), discard, crash, preflight_crash (a syntax or
import error within seconds), timeout, oom, gpu_oom, metric_missing,
protected_violation (the trial changed protected files: they are restored and the
score is kept for information, but the trial cannot be kept; a run that changes them
while it evaluates gets no score, and they are restored before the next seed), size_blocked (artifacts
over the budget).
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import time
from pathlib import Path

from pydantic import BaseModel, Field

from . import campaigns, ledger, protected, trials, workspaces
from .campaigns import Campaign, MetricRule
from .errors import BudgetExceeded, InvalidInput, LabError
from .home import Lab
from .registry import Progress, no_progress, tool
from .runs import logcap, queue

PREFLIGHT_WINDOW_S = 10.0
MAX_METRICS_FILE_BYTES = 10_000_000
PREFLIGHT_ERRORS = re.compile(r"\b(SyntaxError|IndentationError|TabError|ImportError|ModuleNotFoundError)\b")
GPU_OOM_SIGNS = re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation")
OOM_SIGNS = re.compile(r"\bMemoryError\b|std::bad_alloc|Cannot allocate memory")
# When one seed fails, the trial's label is the first failure in this order.
FAILURE_ORDER = ("protected_violation", "size_blocked", "timeout", "gpu_oom", "oom", "preflight_crash", "crash", "metric_missing")


class SeedRun(BaseModel):
    seed: int
    run: int
    status: str
    outcome: str | None
    label: str = Field(description="ok, or the failure label of this seed's run")
    reason: str | None
    metrics: dict[str, float]
    missing: list[str] = Field(description="metrics the rules did not find")
    telemetry: dict = Field(default_factory=dict, description="the run's telemetry summary")
    protected_changed: list[str] = Field(default_factory=list,
                                         description="protected files this run changed or deleted (restored after it; "
                                                     "the seed's label is then protected_violation)")


class MetricSummary(BaseModel):
    mean: float
    std: float | None = Field(description="sample standard deviation over seeds (null for one seed)")
    values: dict[str, float] = Field(description="value per seed")


class EvaluationResult(BaseModel):
    trial: int
    campaign: int
    label: str
    score: float | None = Field(description="primary metric, mean over seeds (null when a seed failed)")
    score_std: float | None
    metric: str
    direction: str
    seed_scores: dict[str, float]
    metrics: dict[str, MetricSummary]
    delta_parent: float | None
    delta_baseline: float | None
    restored_files: list[str] = Field(description="protected files the trial had changed, restored before evaluation")
    held_out: bool = Field(description="true for a final evaluation on the held-out split (not recorded as the trial's score)")
    recorded: bool
    runs: list[SeedRun]
    gpu_hours: float = Field(description="GPU-hours charged to the campaign for this evaluation")
    commit_sha: str | None
    environment: str = Field(description="the campaign environment used, or the server's own Python")


class TrialEvaluateIn(BaseModel):
    trial: int
    seeds: list[int] | None = Field(None, min_length=1, max_length=64,
                                    description="seeds to run (default: the evaluator's seeds)")


def extract_metrics(rules: list[MetricRule], output: str, workdir: Path) -> tuple[dict[str, float], list[str]]:
    """Metric values by the campaign's rules: a regex on the run's output (the last
    match wins; group ``value`` or group 1) or a key in a JSON file the evaluator wrote
    (relative to its working directory, never outside it). Returns (found, missing)."""
    found: dict[str, float] = {}
    json_cache: dict[str, object] = {}
    for rule in rules:
        value = _by_regex(rule, output) if rule.regex else _by_json(rule, workdir, json_cache)
        if value is not None and math.isfinite(value):
            found[rule.name] = value
    return found, [r.name for r in rules if r.name not in found]


def _by_regex(rule: MetricRule, output: str) -> float | None:
    matches = list(re.finditer(rule.regex, output, re.MULTILINE))
    if not matches:
        return None
    m = matches[-1]
    text = m.group("value") if "value" in m.re.groupindex else (m.group(1) if m.re.groups else m.group(0))
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _by_json(rule: MetricRule, workdir: Path, cache: dict) -> float | None:
    if rule.json_file not in cache:
        cache[rule.json_file] = _read_json(workdir, rule.json_file)
    value = cache[rule.json_file]
    for part in (rule.json_key or rule.name).split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _read_json(workdir: Path, rel: str):
    path = _confined(workdir, rel)
    if path is None or not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:  # bounded: the run decides how big the file is
            data = handle.read(MAX_METRICS_FILE_BYTES + 1)
        if len(data) > MAX_METRICS_FILE_BYTES:
            return None
        return json.loads(data.decode())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None


def _confined(workdir: Path, rel: str) -> Path | None:
    root = workdir.resolve()
    path = (root / rel).resolve()
    return path if root in path.parents else None


def classify(row: dict, output: str, missing_primary: bool) -> str:
    """The label of one evaluation run from how it ended and what it printed."""
    outcome, status = row["outcome"], row["status"]
    if outcome == "artifact_exceeded":
        return "size_blocked"
    if status == "timeout":
        return "timeout"
    if outcome == "gpu_oom" or (status != "succeeded" and GPU_OOM_SIGNS.search(output)):
        return "gpu_oom"
    if outcome == "oom" or (status != "succeeded" and OOM_SIGNS.search(output)):
        return "oom"
    if status != "succeeded":
        wall = (ledger.loads(row["telemetry"], {}) or {}).get("wall_s")
        if wall is not None and wall <= PREFLIGHT_WINDOW_S and PREFLIGHT_ERRORS.search(output):
            return "preflight_crash"
        return "crash"
    return "metric_missing" if missing_primary else "ok"


def _charge_check(lab: Lab, campaign: Campaign, trial: trials.Trial) -> None:
    spent = campaign.spent or {}
    b = campaign.budgets
    if b.gpu_hours is not None and spent.get("gpu_hours", 0.0) >= b.gpu_hours:
        raise BudgetExceeded(f"campaign {campaign.id} has spent its {b.gpu_hours:g} GPU-hours",
                             hint="raise budgets.gpu_hours with campaign_update, or finalize the campaign")
    first_time = trial.evaluated_at is None
    if b.max_trials is not None and first_time and spent.get("trials", 0) >= b.max_trials:
        raise BudgetExceeded(f"campaign {campaign.id} has evaluated its {b.max_trials} trials",
                             hint="raise budgets.max_trials with campaign_update, or finalize the campaign")


def _environment(lab: Lab, campaign: Campaign) -> tuple[dict, str]:
    """Run settings for the campaign's environment (venv or Docker image), or the
    server's own Python when the campaign has none."""
    if not campaign.env_id:
        return {"path_prefix": [str(Path(sys.executable).parent)]}, f"server python {sys.executable}"
    from . import envs

    env = envs.get_env(lab, campaign.env_id)
    if env.status != "ready" or not env.location:
        raise LabError(f"campaign environment {env.id} is {env.status}, not ready",
                       hint="see env_status, then rebuild it with env_build")
    if env.backend == "docker":
        return {"executor": "docker", "image": env.location}, f"docker image {env.location}"
    bin_dir = str(envs.python_path(lab, env.id).parent)
    return ({"path_prefix": [bin_dir], "readable": [env.location],
             "env": {"VIRTUAL_ENV": env.location}}, f"venv {env.location}")


def evaluate_trial(lab: Lab, trial_id: int, seeds: list[int] | None = None, held_out: bool = False,
                   record: bool = True, progress: Progress = no_progress) -> EvaluationResult:
    """Evaluate a trial with the campaign's own evaluator and (unless ``held_out`` or
    ``record=False``) record the score. ``held_out=True`` is the final evaluation:
    ``$SOTALAB_HELD_OUT`` names the campaign's held-out directory, mounted read-only
    into the run, and the result is returned, never written as the trial's score."""

    trial = trials.load(lab, trial_id)
    campaign = campaigns.load(lab, trial.campaign_id)
    record = record and not held_out
    _charge_check(lab, campaign, trial)
    evaluator = campaign.evaluator
    seeds = list(seeds or evaluator.seeds)
    if record:
        _claim(lab, trial)
    try:
        worktree = workspaces.ensure_worktree(lab, trial_id)
        _remove_metric_files(evaluator.metrics, worktree)  # never snapshot or score a stale one
        commit = workspaces.snapshot(lab, trial_id) if record else trials.load(lab, trial_id).commit_sha
        restored = workspaces.restore_protected(lab, trial_id)
        check = workspaces.verify_protected(lab, trial_id)
        if not check.ok:
            raise LabError(f"protected files still differ after restoring them: {check.changed + check.added + check.deleted}",
                           hint="the baseline copies may be damaged; re-clone the campaign's repository")
        extra_env, readable = {}, []
        if held_out:
            held = workspaces.held_out_dir(lab, campaign.id)
            extra_env["SOTALAB_HELD_OUT"] = str(held)
            readable.append(str(held))
        seed_runs, gpu_hours, env_desc = run_seeds(
            lab, campaign, trial_id, worktree, seeds, purpose="held_out" if held_out else "evaluation",
            extra_env=extra_env, extra_readable=readable, progress=progress)
    except BaseException:
        if record:
            trials.set_fields(lab, trial_id, status=trial.status)
        raise
    result = _summarise(lab, campaign, trial, seed_runs, restored, held_out, record, gpu_hours,
                        commit, env_desc)
    _charge(lab, campaign, trial, result.gpu_hours)
    if record:
        _record(lab, result)
    progress(len(seeds), len(seeds), f"label {result.label}, score {result.score}")
    return result


def _claim(lab: Lab, trial: trials.Trial) -> None:
    """Mark the trial evaluating, unless an evaluation of it is already under way (a
    retried call would share its worktree, metrics files and budget charge)."""
    claimed = lab.db.execute("UPDATE trials SET status = 'evaluating', updated_at = ? "
                             "WHERE id = ? AND status != 'evaluating'", [ledger.now(), trial.id]).rowcount
    if not claimed:
        raise LabError(f"trial {trial.id} is being evaluated already",
                       hint="wait for that evaluation (run_list trial=... shows its runs); a trial left "
                            "evaluating by a server that died is reopened when the server starts")


def run_seeds(lab: Lab, campaign: Campaign, trial_id: int, directory: Path, seeds: list[int], *,
              purpose: str, extra_env: dict[str, str] | None = None, extra_readable: list[str] = (),
              stop_on_failure: bool = True, progress: Progress = no_progress) -> tuple[list[SeedRun], float, str]:
    """The campaign's evaluator run in ``directory`` once per seed, as supervised runs in
    the campaign's environment and budgets; metrics parsed and stored on each run.
    Returns the seed runs, the GPU-hours they used, and the environment used. Stops at
    the first failed seed unless ``stop_on_failure`` is false."""
    evaluator, b = campaign.evaluator, campaign.budgets
    settings, env_desc = _environment(lab, campaign)
    env = {**settings.pop("env", {}), **(extra_env or {})}
    readable = [*settings.pop("readable", []), *extra_readable]
    wall_s = min(evaluator.timeout_s, b.run_wall_s or evaluator.timeout_s)
    primary = campaign.objective.metric
    store = workspaces.current_store(lab, campaign.id)
    seed_runs: list[SeedRun] = []
    gpu_seconds = 0.0
    for n, seed in enumerate(seeds):
        progress(n, len(seeds), f"seed {seed}: running the evaluator")
        _remove_metric_files(evaluator.metrics, directory)
        protected.remove_bytecode(directory, store)
        argv = list(evaluator.command) + ([evaluator.seed_arg, str(seed)] if evaluator.seed_arg else [])
        run_id = queue.submit(lab, queue.RunRequest(
            argv=argv, cwd=str(directory), env={**env, evaluator.seed_env: str(seed)},
            readable=readable, gpus="auto", wall_s=wall_s, memory_gb=b.memory_gb,
            gpu_memory_gb=b.gpu_memory_gb, artifact_mb=b.artifact_mb, campaign_id=campaign.id,
            trial_id=trial_id, purpose=purpose, seed=seed, **settings))
        row = _wait_run(lab, run_id, seed, progress, n, len(seeds))
        output = logcap.read_text(Path(row["run_dir"]))
        found, missing = extract_metrics(evaluator.metrics, output, directory)
        label = classify(row, output, primary in missing)
        # The trial's code runs inside the evaluator: if it changed evaluator code or data
        # on disk, this seed cannot count, and the next seed must start from the baseline.
        check = protected.verify(directory, store)
        tampered = sorted(check.changed + check.deleted)
        if not check.ok:
            protected.restore(directory, store)
        if tampered:
            label = "protected_violation"
        lab.db["runs"].update(run_id, {"metrics": ledger.dumps(found)})
        telemetry = ledger.loads(row["telemetry"], {}) or {}
        gpu_seconds += telemetry.get("gpu_s") or 0.0
        seed_runs.append(SeedRun(seed=seed, run=run_id, status=row["status"], outcome=row["outcome"],
                                 label=label, reason=row["reason"], metrics=found, missing=missing,
                                 telemetry=telemetry, protected_changed=tampered))
        if label != "ok" and stop_on_failure:
            break  # the trial already failed; more seeds would only spend budget
    return seed_runs, gpu_seconds / 3600, env_desc


def _remove_metric_files(rules: list[MetricRule], worktree: Path) -> None:
    """Delete metric files an earlier run left: only this run's output may count."""
    for rule in rules:
        stale = _confined(worktree, rule.json_file) if rule.json_file else None
        if stale is not None and stale.is_file():
            stale.unlink()


def _wait_run(lab: Lab, run_id: int, seed: int, progress: Progress, n: int, total: int) -> dict:
    started = time.monotonic()
    while True:
        row = queue.wait(lab, run_id, 5.0)
        if row["status"] in queue.TERMINAL:
            return row
        progress(n, total, f"seed {seed}: run {run_id} {row['status']} for {time.monotonic() - started:.0f} s")


def _summarise(lab, campaign, trial, seed_runs, restored, held_out, record, gpu_hours, commit, env_desc):
    objective = campaign.objective
    failures = [r.label for r in seed_runs if r.label != "ok"]
    summaries: dict[str, MetricSummary] = {}
    names = {name for r in seed_runs for name in r.metrics}
    for name in sorted(names):
        values = {str(r.seed): r.metrics[name] for r in seed_runs if name in r.metrics}
        data = list(values.values())
        summaries[name] = MetricSummary(mean=statistics.fmean(data),
                                        std=statistics.stdev(data) if len(data) > 1 else None, values=values)
    score = score_std = None
    seed_scores = summaries[objective.metric].values if objective.metric in summaries else {}
    if not failures and objective.metric in summaries:
        score, score_std = summaries[objective.metric].mean, summaries[objective.metric].std
    parent = trials.load(lab, trial.parent_id) if trial.parent_id else None
    baseline_id = campaign.baseline_trial_id
    baseline = trials.load(lab, baseline_id) if baseline_id and baseline_id != trial.id else None
    delta_parent = score - parent.score if score is not None and parent and parent.score is not None else None
    if score is not None and baseline_id == trial.id:
        delta_baseline = 0.0
    elif score is not None and baseline and baseline.score is not None:
        delta_baseline = score - baseline.score
    else:
        delta_baseline = None
    if restored:
        label = "protected_violation"
    elif failures:
        label = min(failures, key=FAILURE_ORDER.index)
    else:
        reference = parent.score if parent and parent.score is not None else (
            baseline.score if baseline and baseline.score is not None else None)
        label = "keep" if reference is None or objective.better(score, reference) else "discard"
    return EvaluationResult(
        trial=trial.id, campaign=campaign.id, label=label, score=score, score_std=score_std,
        metric=objective.metric, direction=objective.direction, seed_scores=seed_scores,
        metrics=summaries, delta_parent=delta_parent, delta_baseline=delta_baseline,
        restored_files=restored, held_out=held_out, recorded=record, runs=seed_runs,
        gpu_hours=round(gpu_hours, 6), commit_sha=commit, environment=env_desc)


def _charge(lab: Lab, campaign: Campaign, trial: trials.Trial, gpu_hours: float) -> None:
    # Read-modify-write in one transaction: two evaluations may finish at once.
    with ledger.transaction(lab.db) as db:
        current = ledger.loads(db.execute("SELECT spent FROM campaigns WHERE id = ?", [campaign.id]).fetchone()[0], {})
        current["gpu_hours"] = round(current.get("gpu_hours", 0.0) + gpu_hours, 6)
        if trial.evaluated_at is None:
            current["trials"] = current.get("trials", 0) + 1
        db.execute("UPDATE campaigns SET spent = ?, updated_at = ? WHERE id = ?",
                   [ledger.dumps(current), ledger.now(), campaign.id])


def _record(lab: Lab, result: EvaluationResult) -> None:
    trial = trials.load(lab, result.trial)
    cost = dict(trial.cost or {})
    cost["gpu_hours"] = round(cost.get("gpu_hours", 0.0) + result.gpu_hours, 6)
    cost["runs"] = [*cost.get("runs", []), *[r.run for r in result.runs]][-200:]
    cost["telemetry"] = _telemetry_totals([r.telemetry for r in result.runs])
    trials.set_fields(
        lab, result.trial, status="evaluated", label=result.label, score=result.score,
        score_std=result.score_std, seed_scores=result.seed_scores,
        metrics={k: v.model_dump() for k, v in result.metrics.items()},
        delta_parent=result.delta_parent, delta_baseline=result.delta_baseline, cost=cost,
        evaluated_at=ledger.now())


def _telemetry_totals(summaries: list[dict]) -> dict:
    """The trial's view of its evaluation runs: peaks are maxima, time and energy add up."""
    def values(key):
        return [t[key] for t in summaries if isinstance(t.get(key), (int, float))]

    totals = {key: round(max(values(key)), 3) for key in ("peak_rss_mb", "peak_gpu_memory_mb") if values(key)}
    totals.update({key: round(sum(values(key)), 3) for key in ("wall_s", "cpu_s", "gpu_s", "energy_j") if values(key)})
    utils = values("mean_gpu_util_pct")
    if utils:
        totals["mean_gpu_util_pct"] = round(sum(utils) / len(utils), 3)
    return totals


@tool()
def trial_evaluate(lab: Lab, args: TrialEvaluateIn, progress: Progress) -> EvaluationResult:
    """Score a trial with the campaign's own evaluator: snapshot the trial, restore its
    protected files (reporting any it changed), run the evaluator in its worktree once
    per seed (seed in $SOTALAB_SEED or the evaluator's seed_env, plus seed_arg if set)
    as supervised runs within the campaign's budgets, parse the metrics server-side,
    and record per-seed values, mean/std, deltas vs parent and baseline and the label
    (keep, discard, crash, preflight_crash, timeout, oom, gpu_oom, metric_missing,
    protected_violation, size_blocked). Blocks until done, sending progress."""
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise InvalidInput("seeds repeat", hint="give each seed once")
    return evaluate_trial(lab, args.trial, seeds=args.seeds, progress=progress)
