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

PURPOSE = "audit"
COMMIT_ENV = "SOTALAB_COMMIT"


def evaluate_directory(lab: Lab, campaign, trial, directory: Path, commit: str, seeds: list[int],
                       progress: Progress = no_progress) -> dict[int, dict[str, float]]:
    """Metrics per seed of the evaluator run in ``directory``; seeds whose run failed or
    printed no primary metric are left out. GPU time is charged to the campaign."""
    seed_runs, gpu_hours, _ = evaluation.run_seeds(
        lab, campaign, trial.id, directory, seeds, purpose=PURPOSE, extra_env={COMMIT_ENV: commit},
        stop_on_failure=False, progress=progress)
    evaluation._charge(lab, campaign, trial, gpu_hours)
    return {r.seed: r.metrics for r in seed_runs if r.label == "ok"}


def cached(lab: Lab, trial_id: int, commit: str) -> dict[int, dict[str, float]]:
    """Metrics per seed from earlier audit runs of this trial at this commit."""
    found: dict[int, dict[str, float]] = {}
    for row in lab.db.query("SELECT seed, env, metrics FROM runs WHERE trial_id = ? AND purpose = ? "
                            "AND status = 'succeeded' ORDER BY id", [trial_id, PURPOSE]):
        metrics = ledger.loads(row["metrics"], {}) or {}
        if ledger.loads(row["env"], {}).get(COMMIT_ENV) == commit and metrics and row["seed"] is not None:
            found[int(row["seed"])] = metrics
    return found
