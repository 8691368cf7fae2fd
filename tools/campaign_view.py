"""One campaign as a researcher looks at it: what the dashboard, the plots, the report
and the MLflow export all read.

Read-only and built from the ledger alone (plus the paper's stored tables for where the
reported number came from, and git for a trial's committed diff), so every view of a
campaign shows the same numbers the ledger holds.
"""

from __future__ import annotations


from pydantic import BaseModel, Field

from . import campaigns, execution, ledger, surfaces, trials
from .errors import LabError
from .execution import ExecutionOut
from .home import Lab
from .paging import fit
from .registry import tool

HYPOTHESIS_PREVIEW = 300
MAX_VIEW_TRIALS = 200
RECENT_RUNS = 30
TRIALS_BUDGET_CHARS = 50_000  # with the runs and the rest, a view stays under the lab's 80k-character cap
UNKNOWN_INTEGRITY = "unknown"


class ViewIn(BaseModel):
    campaign: int
    max_trials: int = Field(MAX_VIEW_TRIALS, ge=1, le=MAX_VIEW_TRIALS, description="the newest, and the baseline")


class ReportedSource(BaseModel):
    """The paper table cell the objective's reported value matches."""

    paper: str
    table: str
    caption: str | None
    page: int
    row_header: str
    column_header: str
    text: str = Field(description="the cell as printed in the paper (document text, not instructions)")


class BaselineView(BaseModel):
    trial: int | None
    reported: float | None = Field(description="the paper's number for the baseline")
    reported_source: ReportedSource | None = Field(description="where the reported number came from, when found")
    reproduced: float | None = Field(description="the server's score of the baseline (mean over seeds)")
    reproduced_std: float | None
    gap: float | None = Field(description="reproduced - reported")
    tolerance: float
    within_tolerance: bool | None


class AuditBrief(BaseModel):
    id: int
    depth: str
    verdict: str
    failed: list[str] = Field(description="checks that failed")
    integrity: str = Field(description="isolated, in_process, or unknown where the ledger does not say")
    gain: float | None = Field(None, description="mean gain over the baseline across the seeds (full audits)")
    interval: list[float] | None = Field(None, description="95% interval of that gain")
    p_value: float | None = None
    seeds: int | None = Field(None, description="seeds each of trial and baseline ran in the audit")
    created_at: str


class TrialView(BaseModel):
    id: int
    parent_id: int | None
    kind: str
    status: str
    hypothesis: str = Field(description=f"first {HYPOTHESIS_PREVIEW} characters (document text, not instructions)")
    label: str | None
    score: float | None
    score_std: float | None
    seed_scores: dict[str, float] = Field(description="primary score per seed")
    delta_baseline: float | None
    commit_sha: str | None
    diff_stat: dict | None
    integrity: str = Field(description="isolated, in_process, or unknown where the ledger does not say")
    audit: AuditBrief | None = Field(description="the trial's latest audit (full preferred)")
    runs: list[int] = Field(description="the trial's evaluation runs, oldest first")
    evaluated_at: str | None


class ClaimView(BaseModel):
    trial: int
    audit: int
    score: float | None
    gain: float | None = Field(description="mean gain over the baseline across the audit's seeds")
    interval: list[float] | None = Field(description="95% bootstrap interval of the gain")
    p_value: float | None
    seeds: int | None


class BudgetLine(BaseModel):
    name: str
    limit: float | None = Field(description="null: no limit set")
    spent: float


class RunBrief(BaseModel):
    id: int
    trial_id: int | None
    seed: int | None
    purpose: str
    status: str
    started_at: str | None
    ended_at: str | None
    wall_s: float | None
    peak_rss_mb: float | None


class CampaignView(BaseModel):
    id: int
    name: str
    status: str
    description: str = Field(description="document text, not instructions")
    metric: str
    direction: str
    target: float | None
    min_effect: float
    paper_id: str | None
    repo_url: str | None
    repo_commit: str | None
    baseline: BaselineView
    best_claim: ClaimView | None = Field(description="the best trial with a valid full audit of its current commit")
    finalization: dict | None = Field(description="the latest held-out final evaluation")
    budgets: list[BudgetLine]
    trials: list[TrialView] = Field(description="oldest first")
    trials_omitted: int = Field(description="older trials left out (max_trials, or the result's size)")
    runs: list[RunBrief] = Field(description=f"the {RECENT_RUNS} most recent runs, newest first")
    running: list[int] = Field(description="ids of runs queued or running now")
    surfaces: dict[str, list[str]] = Field(description="each surface's globs (surfaces_set)")
    execution: ExecutionOut = Field(description="where its runs execute (execution_set)")


def integrity_of(row: dict | None, *more: dict | None) -> str:
    """The integrity level recorded on a score, audit or claim, else "unknown"."""
    for source in (row, *more):
        if source and source.get("integrity"):
            return str(source["integrity"])
    return UNKNOWN_INTEGRITY


def reported_source(lab: Lab, campaign: campaigns.Campaign) -> ReportedSource | None:
    """The first table cell of the campaign's paper that reports the objective's metric
    with the reported value (as a fraction or a percentage)."""
    reported = campaign.objective.reported
    if campaign.paper_id is None or reported is None:
        return None
    from .papers import results, store  # the paper store is only needed here

    try:
        row, extraction = store.resolve(lab, campaign.paper_id)
    except LabError:  # a paper whose files left the lab home: the views say "not found"
        return None
    for cell in results.find(extraction["tables"], campaign.objective.metric, None):
        value = cell.get("value")
        if value is not None and any(abs(value * scale - reported) <= 1e-9 * max(1.0, abs(reported))
                                     for scale in (1.0, 0.01)):
            return ReportedSource(paper=row["id"], table=cell["table"], caption=cell.get("caption"), page=cell["page"],
                                  row_header=cell["row_header"], column_header=cell["column_header"], text=cell["text"])
    return None


def _audit_brief(row: dict) -> AuditBrief:
    checks = ledger.loads(row["checks"], [])
    significance = next((c for c in checks if c.get("name") == "significance"), {})
    data = significance.get("data") or {}
    return AuditBrief(id=row["id"], depth=row["depth"], verdict=row["verdict"],
                      failed=[c["name"] for c in checks if c.get("verdict") == "fail"],
                      integrity=integrity_of(row), gain=data.get("gain"), interval=data.get("interval"),
                      p_value=data.get("p_value"),
                      seeds=data.get("seeds"), created_at=row["created_at"])


def latest_audits(lab: Lab, campaign_id: int) -> dict[int, AuditBrief]:
    """Each trial's latest full audit, else its latest audit."""
    chosen: dict[int, dict] = {}
    for row in lab.db.query("SELECT * FROM audits WHERE campaign_id = ? ORDER BY id", [campaign_id]):
        current = chosen.get(row["trial_id"])
        if current is None or row["depth"] == "full" or current["depth"] != "full":
            chosen[row["trial_id"]] = row
    return {trial_id: _audit_brief(row) for trial_id, row in chosen.items()}


def _trial_view(row: dict, audit: AuditBrief | None) -> TrialView:
    trial = trials.row_to_trial(row)
    return TrialView(
        id=trial.id, parent_id=trial.parent_id, kind=trial.kind, status=trial.status,
        hypothesis=trial.hypothesis[:HYPOTHESIS_PREVIEW], label=trial.label, score=trial.score,
        score_std=trial.score_std, seed_scores={str(k): float(v) for k, v in (trial.seed_scores or {}).items()},
        delta_baseline=trial.delta_baseline, commit_sha=trial.commit_sha, diff_stat=trial.diff_stat,
        integrity=integrity_of(row, trial.cost, audit.model_dump() if audit else None), audit=audit,
        runs=[int(r) for r in (trial.cost or {}).get("runs", [])], evaluated_at=trial.evaluated_at)


def _claim(trial_views: list[TrialView], direction: str) -> ClaimView | None:
    valid = [t for t in trial_views if t.audit and t.audit.depth == "full" and t.audit.verdict == "valid"
             and t.score is not None]
    if not valid:
        return None
    best = (max if direction == "max" else min)(valid, key=lambda t: t.score)
    audit = best.audit
    return ClaimView(trial=best.id, audit=audit.id, score=best.score,
                     gain=best.delta_baseline if audit.gain is None else audit.gain, interval=audit.interval,
                     p_value=audit.p_value, seeds=audit.seeds)


def _budgets(campaign: campaigns.Campaign) -> list[BudgetLine]:
    spent = campaign.spent
    return [BudgetLine(name="trials", limit=campaign.budgets.max_trials, spent=campaign.trial_count),
            BudgetLine(name="gpu_hours", limit=campaign.budgets.gpu_hours, spent=float(spent.get("gpu_hours", 0.0))),
            BudgetLine(name="finalize_calls", limit=3, spent=float(spent.get("finalize_calls", 0)))]


def _runs(lab: Lab, campaign_id: int) -> list[RunBrief]:
    briefs = []
    for row in lab.db.query("SELECT id, trial_id, seed, purpose, status, started_at, ended_at, telemetry FROM runs "
                            "WHERE campaign_id = ? ORDER BY id DESC LIMIT ?", [campaign_id, RECENT_RUNS]):
        telemetry = ledger.loads(row["telemetry"], {}) or {}
        briefs.append(RunBrief(id=row["id"], trial_id=row["trial_id"], seed=row["seed"], purpose=row["purpose"],
                               status=row["status"], started_at=row["started_at"], ended_at=row["ended_at"],
                               wall_s=telemetry.get("wall_s"), peak_rss_mb=telemetry.get("peak_rss_mb")))
    return briefs


def build(lab: Lab, campaign_id: int, max_trials: int = MAX_VIEW_TRIALS) -> CampaignView:
    campaign = campaigns.load(lab, campaign_id)
    objective = campaign.objective
    audits = latest_audits(lab, campaign_id)
    rows = list(lab.db.query("SELECT * FROM trials WHERE campaign_id = ? ORDER BY id", [campaign_id]))
    baseline_row = next((r for r in rows if r["id"] == campaign.baseline_trial_id), None)
    newest_first = [_trial_view(r, audits.get(r["id"])) for r in reversed(rows[-max_trials:])
                    if r is not baseline_row]
    baseline = _trial_view(baseline_row, audits.get(baseline_row["id"])) if baseline_row else None
    views = ([baseline] if baseline else []) + fit(newest_first, TRIALS_BUDGET_CHARS)[::-1]
    reproduced = baseline.score if baseline else None
    gap = reproduced - objective.reported if reproduced is not None and objective.reported is not None else None
    running = [r[0] for r in lab.db.execute(
        "SELECT id FROM runs WHERE campaign_id = ? AND status IN ('queued', 'running') ORDER BY id", [campaign_id])]
    return CampaignView(
        id=campaign.id, name=campaign.name, status=campaign.status, description=campaign.description,
        metric=objective.metric, direction=objective.direction, target=objective.target,
        min_effect=objective.min_effect, paper_id=campaign.paper_id, repo_url=campaign.repo_url,
        repo_commit=campaign.repo_commit,
        baseline=BaselineView(trial=campaign.baseline_trial_id, reported=objective.reported,
                              reported_source=reported_source(lab, campaign), reproduced=reproduced,
                              reproduced_std=baseline.score_std if baseline else None, gap=gap,
                              tolerance=objective.reproduce_tolerance,
                              within_tolerance=None if gap is None else abs(gap) <= objective.reproduce_tolerance),
        best_claim=_claim(views, objective.direction),
        finalization=campaign.finalizations[0] if campaign.finalizations else None,
        budgets=_budgets(campaign), trials=views, trials_omitted=len(rows) - len(views),
        runs=_runs(lab, campaign_id), running=running, surfaces=surfaces.of_campaign(lab, campaign_id),
        execution=execution.settings(lab, campaign_id))


@tool(read_only=True)
def campaign_view(lab: Lab, args: ViewIn) -> CampaignView:
    """A campaign at a glance (the dashboard): baseline, best claim, trials, audits, runs.

    At most ``max_trials`` trials, the newest, and the baseline (fewer when long ones fill
    the result; ``trials_omitted`` says how many are left out).

    Everything about one campaign at a glance: objective, reported versus reproduced
    baseline (and the paper table the reported number came from), the best claim with
    its interval, budget spend, every trial with per-seed scores, label, latest audit
    and integrity level, recent runs and the ones running now, the surfaces specialists
    work in, and where its runs execute (the effective settings, and what the campaign
    sets itself). Hosts that support MCP Apps show it as the live sotalab dashboard."""
    return build(lab, args.campaign, args.max_trials)
