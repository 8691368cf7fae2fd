"""The audit tools: audit_trial, audit_get, campaign_finalize.

An audit gathers its evidence from a clean checkout of the trial's commit (never the
live worktree, which may have moved on), the ledger's evaluation runs, and, at depth
full, fresh evaluation runs over several seeds for both the trial and the baseline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from .. import campaigns, ledger, trials, workspaces
from ..evaluation import export, pipeline
from ..evaluation.seeds import draw as draw_seeds
from .. import protected as protected_files
from ..errors import BudgetExceeded, InvalidInput, LabError, NotFound
from ..home import Lab
from ..paging import DEFAULT_LIMIT, MAX_LIMIT, refuse_list_arguments, select_page
from ..registry import Progress, tool
from . import (budget, diff_rules, gain, gather, holdout, integrity, metrics_check, protected, reproduce, runner,
               runtime, significance)
from .result import AuditVerdict, CheckResult, Evidence, combine

MAX_FINALIZE_CALLS = 3
REASON_PREVIEW = 300


class AuditIn(BaseModel):
    trial: int = Field(..., description="not the baseline")
    depth: Literal["quick", "full"] = Field("quick", description="full: re-runs and significance too")
    seeds: int = Field(significance.DEFAULT_SEEDS, ge=2, le=20, description="full: drawn for each side")


class Audit(BaseModel):
    id: int
    trial: int
    campaign: int
    depth: str
    verdict: AuditVerdict = Field(description="valid, invalid (disqualified) or inconclusive (not shown)")
    reason: str = Field(description="one paragraph: which checks failed or warned, and why")
    checks: list[CheckResult] = Field(description="one entry per check, with its evidence (file, line, value)")
    commit: str | None = Field(None, description="the trial commit the audit examined")
    integrity: str | None = Field(None, description="the evaluator's integrity level: isolated or in_process")
    seeds: list[int] = Field(default_factory=list, description="full audits: the seeds the server drew at its start")
    label: str | None = Field(None, description="the trial's label after the audit")
    created_at: str


class AuditGetIn(BaseModel):
    audit: int | None = Field(None, description="omit to list")
    campaign: int | None = None
    trial: int | None = None
    verdict: AuditVerdict | None = None
    depth: Literal["quick", "full"] | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class AuditSummary(BaseModel):
    id: int
    trial: int
    depth: str
    verdict: str
    failed: list[str] = Field(description="checks that failed")
    reason: str = Field(description=f"first {REASON_PREVIEW} characters; audit_get has it all")
    created_at: str


class AuditPage(BaseModel):
    audits: list[AuditSummary]
    total: int
    next_cursor: str | None


class FinalizeIn(BaseModel):
    campaign: int
    seeds: int = Field(significance.DEFAULT_SEEDS, ge=1, le=20, description="for each side")


class HeldOutScores(BaseModel):
    trial: int
    scores: dict[str, float] = Field(description="held-out primary score per seed")
    mean: float | None = Field(description="mean over the seeds that scored (null: none did)")
    metrics: dict[str, float] = Field(description="mean of every metric over the seeds")
    failed_seeds: list[int] = Field(default_factory=list, description="held-out seeds whose runs failed")
    runs: list[int] = Field(default_factory=list, description="the held-out runs (sealed: their logs stay closed)")


class Finalization(BaseModel):
    id: int
    campaign: int
    metric: str
    audit: int = Field(description="the valid full audit that made the trial the claim")
    best: HeldOutScores
    baseline: HeldOutScores
    gain: float | None = Field(description="held-out mean gain over the baseline (positive is better; null when "
                                           "the claim failed on every held-out seed)")
    interval: list[float] | None = Field(description="95% bootstrap interval of the gain (needs 2+ seeds)")
    p_value: float | None
    integrity: str = Field("in_process", description="the evaluator's integrity level: isolated or in_process")
    anomaly: bool = Field(False, description="the held-out gain disagrees with the validation gain beyond their noise")
    agreement: dict = Field(default_factory=dict, description="the held-out vs validation gain check, with evidence")
    runtime: dict | None = Field(None, description="in_process: the runtime check over the claim's held-out runs "
                                                   "(code that acts only on the held-out split shows here)")
    calls_used: int
    calls_left: int
    created_at: str


# --- the audit ---------------------------------------------------------------------------

def _load_pair(lab: Lab, trial_id: int) -> tuple[campaigns.Campaign, trials.Trial, trials.Trial]:
    trial = trials.load(lab, trial_id)
    campaign = campaigns.load(lab, trial.campaign_id)
    if campaign.baseline_trial_id is None:
        raise LabError(f"campaign {campaign.id} has no baseline trial", hint="create and evaluate the baseline first")
    if trial.id == campaign.baseline_trial_id:
        raise InvalidInput(f"trial {trial.id} is the baseline: trials are audited against it",
                           hint="audit a trial that branches from the baseline")
    baseline = trials.load(lab, campaign.baseline_trial_id)
    for who, t in (("trial", trial), ("baseline", baseline)):
        if t.score is None or not t.commit_sha:
            raise LabError(f"{who} {t.id} has no evaluator-owned score yet",
                           hint=f"evaluate it first with trial_evaluate (trial={t.id})")
    return campaign, trial, baseline


def run_checks(lab: Lab, trial_id: int, depth: str, seeds: list[int],
               progress: Progress) -> tuple[str, list[CheckResult]]:
    """The checks of one audit, and the commit they audited. ``seeds``: the server-drawn
    seeds of a full audit (recorded with the audit before this runs)."""
    campaign, trial, baseline = _load_pair(lab, trial_id)
    objective = campaign.objective
    store = workspaces.protected_store(lab, campaign.id)
    total = 7.0
    checks: list[CheckResult] = []
    scratch = lab.path("evals")
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"audit-{trial.id}-") as tmp:
        progress(0, total, "exporting the trial's commit")
        checkout = export.export_commit(workspaces.require_repo(lab, campaign.id), trial.commit_sha,
                                        Path(tmp) / "trial", store=None).root
        checks.append(protected.check(protected_files.verify(checkout, store)))

        progress(1, total, "reading the diff against the baseline")
        diff = gather.diff_against_baseline(lab, campaign, trial.commit_sha)
        context = diff_rules.DiffContext.for_campaign(campaign, gather.evaluator_imports(store),
                                                      gather.local_modules(checkout))
        checks.append(diff_rules.check(diff, context,
                                       gather.changed_sources(checkout, diff)))

        progress(2, total, "matching the ledger with the evaluation runs")
        runs = gather.scoring_runs(trial, gather.evaluation_runs(lab, trial.id))
        primary_rule = next((m for m in campaign.evaluator.metrics if m.name == objective.metric), None)
        regex_rules = [m for m in campaign.evaluator.metrics if m.regex]
        trial_metrics = gather.ledger_seed_metrics(trial)
        checks.append(integrity.check(objective.metric, primary_rule.regex if primary_rule else None, trial.score,
                                      gather.seed_scores(trial), gather.run_records(runs, regex_rules),
                                      trial.commit_sha, trial_metrics,
                                      committed_after_scoring=gather.committed_after(lab, campaign, trial)))
        budget_usage = gather.usage(runs, checkout, trial_metrics)
        base_metrics = gather.ledger_seed_metrics(baseline)
        evidence_runs = gather.in_process_events(runs)
        last_run = gather.last_run_id(lab)
        failed: dict[str, dict[int, str]] = {}
        if depth == "quick":
            checks.append(gain.check(trial.score, baseline.score, objective.direction))
        if depth == "full":
            recorded = sorted(gather.seed_scores(trial))
            with_parent = trial.parent_id not in (None, baseline.id)
            progress(3, total, f"re-running the trial on its recorded seeds {recorded} and drawn seeds {seeds}; "
                               f"the baseline{' and the parent' if with_parent else ''} on the drawn seeds, together")
            work = {"trial": lambda report: runner.evaluate_seeds(lab, trial.id, [*recorded, *seeds], report),
                    "baseline": lambda report: runner.evaluate_seeds(lab, baseline.id, seeds, report)}
            if with_parent:
                work["parent"] = lambda report: runner.evaluate_seeds(lab, trial.parent_id, seeds, report)
            evaluated = runner.together(work, progress, 3, total)
            fresh, base = evaluated["trial"], evaluated["baseline"]
            checks.append(reproduce.check(gather.seed_scores(trial),
                                          {s: fresh.metrics[s][objective.metric] for s in recorded
                                           if objective.metric in fresh.metrics.get(s, {})},
                                          tolerance=objective.rerun_tolerance))
            trial_metrics = {s: fresh.metrics[s] for s in seeds if s in fresh.metrics}
            base_metrics = base.metrics
            failed = {"trial": {s: label for s, label in fresh.failed.items() if s in seeds},
                      "baseline": base.failed}
            evidence_runs += gather.in_process_events(gather.runs_after(lab, trial.id, runner.PURPOSE, last_run))
        if campaign.evaluator.integrity == "in_process":
            # What the trial's code did while it ran beside the evaluator, from the runtime hook.
            checks.append(runtime.check(evidence_runs, runtime.RuntimeContext.for_campaign(
                campaign, gather.tracked_files(checkout), gather.python_sources(checkout))))
        common = sorted(set(trial_metrics) & set(base_metrics))
        checks.append(metrics_check.check(gather.mean_metrics(trial_metrics, common),
                                          gather.mean_metrics(base_metrics, common), objective))
        checks.append(budget.check(campaign.budgets.model_dump(), budget_usage))
        if depth == "full":
            progress(6, total, "testing significance against the baseline's noise")
            paired = [s for s in common if objective.metric in trial_metrics[s] and objective.metric in base_metrics[s]]
            checks.append(_with_failed_seeds(
                significance.check([trial_metrics[s][objective.metric] for s in paired],
                                   [base_metrics[s][objective.metric] for s in paired],
                                   objective.direction, objective.min_effect), failed))
            if with_parent:
                checks.append(_gain_over_parent(lab, trial, trial_metrics, seeds, failed["trial"],
                                                evaluated["parent"]))
    progress(total, total, "audit done")
    return trial.commit_sha, checks


def _gain_over_parent(lab: Lab, trial: trials.Trial, trial_metrics: dict[int, dict], seeds: list[int],
                      trial_failed: dict[int, str], parent: runner.SeedMetrics) -> CheckResult:
    """A claim must beat its own parent, not only the baseline, by the minimum effect
    over the same drawn seeds: a child that adds nothing to a good parent is no claim."""
    campaign = campaigns.load(lab, trial.campaign_id)
    objective = campaign.objective
    paired = [s for s in seeds if objective.metric in trial_metrics.get(s, {})
              and objective.metric in parent.metrics.get(s, {})]
    result = significance.check([trial_metrics[s][objective.metric] for s in paired],
                                [parent.metrics[s][objective.metric] for s in paired],
                                objective.direction, objective.min_effect)
    result = _with_failed_seeds(result, {"trial": trial_failed, "parent": parent.failed})
    return result.model_copy(update={"name": "parent_gain",
                                     "summary": f"over its parent trial {trial.parent_id}: {result.summary}"})


def _with_failed_seeds(result: CheckResult, failed: dict[str, dict[int, str]]) -> CheckResult:
    """Significance over the seeds that ran, failed by any drawn seed that did not: a
    crash, timeout or missing metric counts against the trial, never dropped."""
    evidence = [Evidence(rule="seed-failed", value=float(seed),
                         detail=f"{who} seed {seed}: {label} (the audit's drawn seeds must all run)")
                for who, seeds in failed.items() for seed, label in sorted(seeds.items())]
    if not evidence:
        return result
    data = {**(result.data or {}), "failed_seeds": {who: {str(s): lab for s, lab in seeds.items()}
                                                   for who, seeds in failed.items()}}
    return result.model_copy(update={"verdict": "fail", "evidence": [*result.evidence, *evidence], "data": data,
                                     "summary": f"{len(evidence)} drawn seed(s) failed; {result.summary}"})


def _row_to_audit(lab: Lab, row: dict) -> Audit:
    label = lab.db.execute("SELECT label FROM trials WHERE id = ?", [row["trial_id"]]).fetchone()
    return Audit(id=row["id"], trial=row["trial_id"], campaign=row["campaign_id"], depth=row["depth"],
                 verdict=row["verdict"], reason=row["reason"],
                 checks=[CheckResult.model_validate(c) for c in ledger.loads(row["checks"], [])],
                 commit=row["commit_sha"], integrity=row.get("integrity"), seeds=ledger.loads(row.get("seeds"), []) or [],
                 label=label[0] if label else None, created_at=row["created_at"])


def load_audit(lab: Lab, audit_id: int) -> Audit:
    rows = list(lab.db.query("SELECT * FROM audits WHERE id = ?", [audit_id]))
    if not rows:
        raise NotFound(f"no audit with id {audit_id}", hint="list audits with audit_get")
    return _row_to_audit(lab, rows[0])


@tool(job=True)
def audit_trial(lab: Lab, args: AuditIn, progress: Progress) -> Audit:
    """Audit a trial's gain, quick or full; only a valid full audit makes a claim.

    ``quick``: static and ledger checks, seconds. ``full`` adds a clean re-run and
    significance over ``seeds`` seeds the server draws at random for trial and baseline
    each (it runs evaluations). The baseline is not audited: trials are audited against it.

    Audit a trial's gain and store the audit. Checks: protected files unchanged;
    the score is the server's own evaluation of this commit; the diff against the
    baseline breaks no red line (each finding names its rule, file and line); no
    secondary metric traded away; budgets kept. depth=full adds a re-run from a clean
    checkout and significance over several seeds against the baseline's noise (with
    the interval) - only a valid full audit makes a claim. invalid labels the trial
    disqualified."""
    trial = trials.load(lab, args.trial)
    campaign, _, _ = _load_pair(lab, trial.id)
    earlier = lab.db.execute("SELECT COUNT(*) FROM audits WHERE trial_id = ?", [trial.id]).fetchone()[0]
    seeds = draw_seeds(args.seeds, avoid=campaign.evaluator.seeds,
                       key=f"audit:{trial.id}:{earlier}") if args.depth == "full" else []
    # The drawn seeds are in the ledger before any run: the audit can always say what it ran.
    audit_id = lab.db["audits"].insert({
        "trial_id": trial.id, "campaign_id": trial.campaign_id, "depth": args.depth, "verdict": "inconclusive",
        "reason": "the audit did not finish", "checks": "[]", "commit_sha": trial.commit_sha,
        "integrity": campaign.evaluator.integrity, "seeds": ledger.dumps(seeds), "created_at": ledger.now()}).last_pk
    commit, checks = run_checks(lab, args.trial, args.depth, seeds, progress)
    verdict, reason = combine(checks, args.depth)
    stamp = ledger.now()
    with ledger.transaction(lab.db) as db:
        db.execute("UPDATE audits SET verdict = ?, reason = ?, checks = ?, commit_sha = ?, created_at = ? WHERE id = ?",
                   [verdict, reason, ledger.dumps([c.model_dump(mode="json") for c in checks]), commit, stamp,
                    audit_id])
        measured = next((c.data for c in checks if c.name == "significance" and "trial_mean" in (c.data or {})), None)
        if measured:  # the trial now ranks on this multi-seed mean, not its single evaluation
            db.execute("UPDATE trials SET audited_mean = ?, audited = ? WHERE id = ?",
                       [measured["trial_mean"], ledger.dumps({"audit": audit_id, "mean": measured["trial_mean"],
                                                               "interval": measured.get("interval"),
                                                               "seeds": measured.get("seeds")}), trial.id])
        if verdict == "invalid":
            db.execute("UPDATE trials SET label = 'disqualified', updated_at = ? WHERE id = ?", [stamp, trial.id])
    return load_audit(lab, audit_id)


@tool(read_only=True)
def audit_get(lab: Lab, args: AuditGetIn) -> Audit | AuditPage:
    """One audit with its evidence, or without `audit` the matching audits, paged.

    With `audit`: the stored audit's overall verdict and reason, and every check with its
    evidence. Without: a page of audit summaries matching the filters, followed with
    `cursor`; filters given together with `audit` are refused."""
    if args.audit is not None:
        refuse_list_arguments(args, "audit")
        return load_audit(lab, args.audit)
    rows, total, cursor = select_page(lab.db, "audits", {"campaign_id": args.campaign, "trial_id": args.trial,
                                                         "verdict": args.verdict, "depth": args.depth},
                                      "id DESC", args.limit, args.cursor)
    summaries = []
    for row in rows:
        checks = ledger.loads(row["checks"], [])
        summaries.append(AuditSummary(id=row["id"], trial=row["trial_id"], depth=row["depth"],
                                      verdict=row["verdict"],
                                      failed=[c["name"] for c in checks if c["verdict"] == "fail"],
                                      reason=row["reason"][:REASON_PREVIEW], created_at=row["created_at"]))
    return AuditPage(audits=summaries, total=total, next_cursor=cursor)


# --- finalize ----------------------------------------------------------------------------

def best_claim(lab: Lab, campaign) -> tuple[int, int] | None:
    """(trial id, audit id) of the best-scoring trial whose latest full audit is valid
    and examined the trial's current commit."""
    order = "DESC" if campaign.objective.direction == "max" else "ASC"
    row = lab.db.execute(
        f"""SELECT t.id, a.id FROM trials t
            JOIN audits a ON a.id = (SELECT MAX(id) FROM audits WHERE trial_id = t.id AND depth = 'full')
            WHERE t.campaign_id = ? AND t.score IS NOT NULL AND a.verdict = 'valid' AND a.commit_sha = t.commit_sha
            ORDER BY COALESCE(t.audited_mean, t.score) {order}, t.id LIMIT 1""", [campaign.id]).fetchone()
    return (row[0], row[1]) if row else None


def _held_out_scores(lab: Lab, trial_id: int, seeds: list[int], metric: str, claim: bool,
                     progress: Progress) -> HeldOutScores:
    """The trial's audited commit on the sealed held-out split: its predict step sees the
    held-out inputs only, and the scorer alone sees the held-out labels. A baseline that
    scores nothing is the evaluator's problem (an error); a claim that scores nothing is a
    result: code can tell the held-out split from validation, and a claim that fails only
    there must not leave finalize without an answer."""
    result = pipeline.evaluate(lab, trial_id, split="held_out", purpose="finalize", seeds=seeds, progress=progress)
    per_seed = {r.seed: r.metrics for r in result.runs if r.label == "ok"}
    scores = {str(s): float(m[metric]) for s, m in per_seed.items() if metric in m}
    if not scores and not claim:
        raise LabError(f"the held-out evaluation of trial {trial_id} produced no {metric} ({result.label})",
                       hint="the held-out runs are sealed; check the same trial on validation with trial_evaluate")
    return HeldOutScores(trial=trial_id, scores=scores, mean=sum(scores.values()) / len(scores) if scores else None,
                         metrics=gather.mean_metrics(per_seed) if per_seed else {},
                         failed_seeds=sorted({*result.failed_seeds, *(s for s in seeds if str(s) not in scores)}),
                         runs=[run for r in result.runs for run in r.run_ids])


def _held_out_evidence(lab: Lab, campaign, trial_id: int, run_ids: list[int]) -> CheckResult:
    """The runtime check over a finalize's in_process runs: code that only acts when
    $SOTALAB_HELD_OUT is set never ran during the audit, so its evidence is read here."""
    trial = trials.load(lab, trial_id)
    runs = [r for r in gather.evaluation_runs(lab, trial_id, purpose="finalize") if r["id"] in run_ids]
    with tempfile.TemporaryDirectory(dir=lab.path("evals"), prefix=f"finalize-{trial_id}-") as tmp:
        checkout = export.export_commit(workspaces.require_repo(lab, campaign.id), trial.commit_sha,
                                        Path(tmp) / "trial", store=None).root
        context = runtime.RuntimeContext.for_campaign(campaign, gather.tracked_files(checkout),
                                                      gather.python_sources(checkout))
    return runtime.check(gather.in_process_events(runs), context)


def _validation_scores(lab: Lab, audit_id: int) -> tuple[list[float], list[float]]:
    """(trial, baseline) validation scores per seed from the claim's full audit."""
    for check in load_audit(lab, audit_id).checks:
        if check.name == "significance" and check.data:
            return list(check.data.get("trial_scores") or []), list(check.data.get("baseline_scores") or [])
    return [], []


def _count_finalize_call(lab: Lab, campaign_id: int) -> int:
    """Count one finalize call before anything runs (a failed or interrupted call still
    uses one), atomically, so concurrent calls cannot exceed the limit. Returns the
    number of calls used before this one."""
    with ledger.transaction(lab.db) as db:
        spent = ledger.loads(db.execute("SELECT spent FROM campaigns WHERE id = ?", [campaign_id]).fetchone()[0], {})
        used = int(spent.get("finalize_calls", 0))
        if used >= MAX_FINALIZE_CALLS:
            raise BudgetExceeded(f"campaign {campaign_id} has used its {MAX_FINALIZE_CALLS} finalize calls",
                                 hint="read earlier results with campaign_get; the held-out split is not for probing")
        db.execute("UPDATE campaigns SET spent = ?, updated_at = ? WHERE id = ?",
                   [ledger.dumps({**spent, "finalize_calls": used + 1}), ledger.now(), campaign_id])
    return used


@tool(job=True)
def campaign_finalize(lab: Lab, args: FinalizeIn, progress: Progress) -> Finalization:
    """Held-out final evaluation of the best claim against the baseline (3 per campaign).

    The held-out final evaluation: the best trial with a valid full audit and the
    baseline, each once per seed, with the held-out paths mounted - the only path that
    ever sees them. Limited to 3 calls per campaign (each counted before it runs and
    journaled); returns the held-out gain and its interval."""
    campaign = campaigns.load(lab, args.campaign)
    claim = best_claim(lab, campaign)
    if claim is None:
        raise LabError(f"campaign {campaign.id} has no trial with a valid full audit of its current commit",
                       hint="audit the best trials with audit_trial depth=full first")
    if campaign.baseline_trial_id is None:
        raise LabError(f"campaign {campaign.id} has no baseline trial", hint="create and evaluate the baseline first")
    best_id, audit_id = claim
    used = _count_finalize_call(lab, campaign.id)
    seeds = draw_seeds(args.seeds, key=f"finalize:{campaign.id}:{used}")
    metric = campaign.objective.metric
    progress(0, 2, f"held-out evaluations of trial {best_id} and the baseline {campaign.baseline_trial_id}, together")
    held_out = runner.together({
        "claim": lambda report: _held_out_scores(lab, best_id, seeds, metric, claim=True, progress=report),
        "baseline": lambda report: _held_out_scores(lab, campaign.baseline_trial_id, seeds, metric, claim=False,
                                                    progress=report)}, progress, 1, 2)
    best, base = held_out["claim"], held_out["baseline"]
    paired = [s for s in best.scores if s in base.scores]
    sig = significance.check([best.scores[s] for s in paired], [base.scores[s] for s in paired],
                             campaign.objective.direction, campaign.objective.min_effect) if paired else None
    sign = 1.0 if campaign.objective.direction == "max" else -1.0
    if best.failed_seeds:  # validation ran on every audited seed: failing here is the claim's own doing
        agreement = holdout.failed(best.failed_seeds, len(seeds))
    else:
        agreement = holdout.check(_validation_scores(lab, audit_id),
                                  ([best.scores[s] for s in paired], [base.scores[s] for s in paired]),
                                  campaign.objective.direction)
    evidence = _held_out_evidence(lab, campaign, best_id, best.runs) \
        if campaign.evaluator.integrity == "in_process" else None
    result = {"metric": metric, "audit": audit_id, "integrity": campaign.evaluator.integrity,
              "best": best.model_dump(), "baseline": base.model_dump(),
              "gain": sign * (best.mean - base.mean) if best.mean is not None else None,
              "interval": sig.data.get("interval") if sig else None, "p_value": sig.data.get("p_value") if sig else None,
              "anomaly": agreement.verdict == "fail" or (evidence is not None and evidence.verdict == "fail"),
              "agreement": agreement.model_dump(mode="json"),
              "runtime": evidence.model_dump(mode="json") if evidence else None}
    stamp = ledger.now()
    final_id = lab.db["finalizations"].insert({
        "campaign_id": campaign.id, "trial_id": best_id, "baseline_trial_id": campaign.baseline_trial_id,
        "audit_id": audit_id, "seeds": ledger.dumps(seeds), "result": ledger.dumps(result), "created_at": stamp,
    }).last_pk
    progress(2, 2, "finalized")
    return Finalization(id=final_id, campaign=campaign.id, calls_used=used + 1,
                        calls_left=MAX_FINALIZE_CALLS - used - 1, created_at=stamp, **result)
