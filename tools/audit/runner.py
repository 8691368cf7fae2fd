"""Audit runs: the campaign's evaluator in a clean checkout of a commit.

The same supervised runs, environment, budgets and metric rules as ``evaluation``,
but in a directory the audit owns (a fresh checkout of the audited commit, its
protected files restored) and recorded with purpose ``audit``, tagged with the commit
so later audits reuse them. Never writes a trial's score.
"""

from __future__ import annotations

from pathlib import Path

from .. import evaluation, ledger
from ..home import Lab
from ..registry import Progress, no_progress
from ..runs import logcap, queue

PURPOSE = "audit"
COMMIT_ENV = "SOTALAB_COMMIT"


def evaluate_directory(lab: Lab, campaign, trial, directory: Path, commit: str, seeds: list[int],
                       progress: Progress = no_progress) -> dict[int, dict[str, float]]:
    """Metrics per seed of the evaluator run in ``directory``; seeds whose run failed or
    printed no primary metric are left out."""
    evaluator, budgets = campaign.evaluator, campaign.budgets
    settings, _ = evaluation._environment(lab, campaign)
    extra_env = dict(settings.pop("env", {}))
    readable = list(settings.pop("readable", []))
    wall_s = min(evaluator.timeout_s, budgets.run_wall_s or evaluator.timeout_s)
    results: dict[int, dict[str, float]] = {}
    gpu_seconds = 0.0
    for n, seed in enumerate(seeds):
        evaluation._remove_metric_files(evaluator.metrics, directory)
        argv = list(evaluator.command) + ([evaluator.seed_arg, str(seed)] if evaluator.seed_arg else [])
        run_id = queue.submit(lab, queue.RunRequest(
            argv=argv, cwd=str(directory), env={**extra_env, evaluator.seed_env: str(seed), COMMIT_ENV: commit},
            readable=readable, gpus="auto", wall_s=wall_s, memory_gb=budgets.memory_gb,
            gpu_memory_gb=budgets.gpu_memory_gb, artifact_mb=budgets.artifact_mb, campaign_id=campaign.id,
            trial_id=trial.id, purpose=PURPOSE, seed=seed, **settings))
        row = evaluation._wait_run(lab, run_id, seed, progress, n, len(seeds))
        found, _ = evaluation.extract_metrics(evaluator.metrics, logcap.read_text(Path(row["run_dir"])), directory)
        lab.db["runs"].update(run_id, {"metrics": ledger.dumps(found)})
        gpu_seconds += (ledger.loads(row["telemetry"], {}) or {}).get("gpu_s", 0.0) or 0.0
        if row["status"] == "succeeded" and campaign.objective.metric in found:
            results[seed] = found
    evaluation._charge(lab, campaign, trial, gpu_seconds / 3600)
    return results


def cached(lab: Lab, trial_id: int, commit: str) -> dict[int, dict[str, float]]:
    """Metrics per seed from earlier audit runs of this trial at this commit."""
    found: dict[int, dict[str, float]] = {}
    for row in lab.db.query("SELECT seed, env, metrics FROM runs WHERE trial_id = ? AND purpose = ? "
                            "AND status = 'succeeded' ORDER BY id", [trial_id, PURPOSE]):
        metrics = ledger.loads(row["metrics"], {}) or {}
        if ledger.loads(row["env"], {}).get(COMMIT_ENV) == commit and metrics and row["seed"] is not None:
            found[int(row["seed"])] = metrics
    return found
