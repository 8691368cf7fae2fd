"""The only writer of a trial's score, label and spend.

Everything else in evaluation computes; this module commits the result to the ledger,
in one place, so "only the server's evaluation path writes scores" is checkable by
reading one file.
"""

from __future__ import annotations

from .. import ledger, trials
from ..campaigns import Campaign
from ..errors import BudgetExceeded, LabError
from ..home import Lab
from ..runs.cost import campaign_side_gpu_hours


def check_budget(lab: Lab, campaign: Campaign, trial: trials.Trial) -> None:
    """Refuse an evaluation the campaign can no longer pay for (side runs' GPU time counts)."""
    spent, budgets = campaign.spent or {}, campaign.budgets
    used = spent.get("gpu_hours", 0.0) + campaign_side_gpu_hours(lab, campaign.id) if budgets.gpu_hours else 0.0
    if budgets.gpu_hours is not None and used >= budgets.gpu_hours:
        raise BudgetExceeded(f"campaign {campaign.id} has spent its {budgets.gpu_hours:g} GPU-hours",
                             hint="budgets are frozen once a trial is scored: finalize the campaign, or start "
                                  "a new campaign with a larger budget")
    if budgets.max_trials is not None and trial.evaluated_at is None and spent.get("trials", 0) >= budgets.max_trials:
        raise BudgetExceeded(f"campaign {campaign.id} has evaluated its {budgets.max_trials} trials",
                             hint="budgets are frozen once a trial is scored: finalize the campaign, or start "
                                  "a new campaign with a larger budget")


def claim(lab: Lab, trial: trials.Trial) -> None:
    """Mark the trial evaluating, unless an evaluation of it is already under way (a
    retried call would share its budget charge and its record)."""
    claimed = lab.db.execute("UPDATE trials SET status = 'evaluating', updated_at = ? "
                             "WHERE id = ? AND status != 'evaluating'", [ledger.now(), trial.id]).rowcount
    if not claimed:
        raise LabError(f"trial {trial.id} is being evaluated already",
                       hint="wait for that evaluation (run_wait trial=... shows its runs); a trial left "
                            "evaluating by a server that died is reopened when the server starts")


def release(lab: Lab, trial: trials.Trial) -> None:
    """Give a claimed trial back its status after an evaluation that did not finish."""
    trials.set_fields(lab, trial.id, status=trial.status)


def charge(lab: Lab, campaign_id: int, trial: trials.Trial, gpu_hours: float, counts_as_trial: bool) -> None:
    """Add an evaluation's GPU-hours (and, the first time a trial is scored, one trial)
    to the campaign's spend."""
    with ledger.transaction(lab.db) as db:  # read-modify-write: two evaluations may finish at once
        current = ledger.loads(db.execute("SELECT spent FROM campaigns WHERE id = ?", [campaign_id]).fetchone()[0], {})
        current["gpu_hours"] = round(current.get("gpu_hours", 0.0) + gpu_hours, 6)
        if counts_as_trial and trial.evaluated_at is None:
            current["trials"] = current.get("trials", 0) + 1
        db.execute("UPDATE campaigns SET spent = ?, updated_at = ? WHERE id = ?",
                   [ledger.dumps(current), ledger.now(), campaign_id])


def score(lab: Lab, trial: trials.Trial, result) -> None:
    """Write an evaluation's score, label, metrics, integrity level and cost on the trial."""
    cost = dict(trial.cost or {})
    cost["gpu_hours"] = round(cost.get("gpu_hours", 0.0) + result.gpu_hours, 6)
    cost["runs"] = [*cost.get("runs", []), *[run for r in result.runs for run in r.run_ids]][-200:]
    cost["telemetry"] = telemetry_totals([r.telemetry for r in result.runs])
    trials.set_fields(
        lab, trial.id, status="evaluated", label=result.label, score=result.score, score_std=result.score_std,
        seed_scores=result.seed_scores, metrics={k: v.model_dump() for k, v in result.metrics.items()},
        delta_parent=result.delta_parent, delta_baseline=result.delta_baseline, cost=cost,
        integrity=result.integrity, evaluated_at=ledger.now(), audited_mean=None, audited=None,
        evaluation={"seeds": result.seeds, "failed_seeds": result.failed_seeds,
                    "keep": result.keep.model_dump() if result.keep else None,
                    "reproduction": result.reproduction.model_dump() if result.reproduction else None,
                    "commit": result.commit_sha, "environment": result.environment})


def telemetry_totals(summaries: list[dict]) -> dict:
    """The trial's view of its evaluation runs: peaks are maxima, time and energy add up."""
    def values(key):
        return [t[key] for t in summaries if isinstance(t.get(key), (int, float))]

    totals = {key: round(max(values(key)), 3) for key in ("peak_rss_mb", "peak_gpu_memory_mb") if values(key)}
    totals.update({key: round(sum(values(key)), 3) for key in ("wall_s", "cpu_s", "gpu_s", "energy_j") if values(key)})
    utils = values("mean_gpu_util_pct")
    if utils:
        totals["mean_gpu_util_pct"] = round(sum(utils) / len(utils), 3)
    return totals
