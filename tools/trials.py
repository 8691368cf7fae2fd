"""Trials: the nodes of a campaign's lineage tree.

Scores, metrics and labels are written only by the evaluation path; nothing here takes
a score from a caller.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from . import campaigns, ledger
from .errors import BudgetExceeded, InvalidInput, NotFound
from .home import Lab
from .paging import DEFAULT_LIMIT, MAX_LIMIT, refuse_list_arguments, select_page
from .registry import tool
from .runs.cost import side_run_cost

Kind = Literal["baseline", "param", "code", "algo", "leap"]
Label = Literal["keep", "discard", "crash", "preflight_crash", "timeout", "oom", "gpu_oom",
                "metric_missing", "protected_violation", "size_blocked", "disqualified"]


class TrialCreate(BaseModel):
    campaign: int
    kind: Kind = Field(..., description="baseline: once, first, no parent")
    hypothesis: str = Field("", max_length=4000)
    parent: int | None = Field(None, description="default: the baseline")
    idea: int | None = None


class Trial(BaseModel):
    id: int
    campaign_id: int
    parent_id: int | None
    idea_id: int | None
    kind: str
    hypothesis: str
    status: str = Field(description="open (editable), evaluating, evaluated")
    label: str | None
    depth: int
    branch: str | None
    worktree: str | None
    commit_sha: str | None
    diff_stat: dict | None
    score: float | None = Field(description="evaluator-owned primary score (mean over seeds)")
    score_std: float | None
    seed_scores: dict | None
    metrics: dict | None
    delta_parent: float | None
    delta_baseline: float | None
    cost: dict
    integrity: str | None = Field(None, description="isolated (labels never reach trial code) or in_process "
                                                    "(the paper's own script, audited with runtime evidence)")
    evaluation: dict | None = Field(None, description="how the score was judged: seeds, failed seeds, the keep "
                                                      "test used, and for the baseline whether it reproduced the paper")
    audited: dict | None = Field(None, description="the latest full audit's multi-seed measurement of this commit: "
                                                   "audit, mean, interval against the baseline, seeds (ranks the trial)")
    evaluated_at: str | None
    created_at: str
    updated_at: str


class TrialGetIn(BaseModel):
    trial: int | None = Field(None, description="omit to list")
    lineage: bool = False
    campaign: int | None = None
    ranked: bool = False
    claims_only: bool = Field(False, description="ranked: valid claims only")
    kind: Kind | None = None
    label: Label | None = None
    status: str | None = None
    parent: int | None = None
    scored: bool | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class TrialSummary(BaseModel):
    id: int
    parent_id: int | None
    kind: str
    label: str | None
    score: float | None
    integrity: str | None = Field(None, description="isolated or in_process: how the score was produced")
    hypothesis: str


class TrialPage(BaseModel):
    trials: list[TrialSummary]
    total: int
    next_cursor: str | None


MAX_ANCESTORS = 50
TREE_BUDGET_CHARS = 50_000  # with the ancestors, one lineage stays under the lab's 80k-character cap


LINEAGE_DEPTH = 3  # levels of descendants a lineage shows
LINEAGE_NODES = 200  # most descendants a lineage shows


class LineageNode(BaseModel):
    id: int
    kind: str
    label: str | None
    score: float | None
    hypothesis: str
    children: list["LineageNode"] = Field(default_factory=list)


class Lineage(BaseModel):
    trial: int
    ancestors: list[TrialSummary] = Field(description=f"the nearest {MAX_ANCESTORS} ancestors at most, "
                                                      "farthest first, ending with the trial's parent")
    ancestors_omitted: int = Field(0, description="farther ancestors left out (root included); call trial_get "
                                                  "(lineage=true) on the first ancestor listed to see them")
    tree: LineageNode = Field(description="the trial and its descendants")
    descendants: int = Field(description="descendants included in the tree")
    truncated: bool = Field(description=f"true when the tree was cut: descendants deeper than {LINEAGE_DEPTH} "
                                        f"levels, past {LINEAGE_NODES}, or past the result size are left out; "
                                        "call trial_get (lineage=true) on a listed descendant to see below it")


RANKED_LIMIT = 10  # ranked=true's page size when `limit` is not given
RANKED_REFUSES = ("label", "status", "parent", "scored", "cursor")  # list filters a ranking cannot honour


class LeaderboardEntry(BaseModel):
    rank: int = Field(description="1 = best; equal ranking values share a rank (older trial listed first)")
    trial: TrialSummary
    score_std: float | None
    delta_baseline: float | None
    audited_mean: float | None = Field(None, description="multi-seed mean from the latest full audit of this commit; "
                                                         "ranks the trial where present, else its score does")
    audited_interval: list[float] | None = Field(None, description="95% interval of the audited gain over the baseline")
    audited_seeds: int | None = None


class Leaderboard(BaseModel):
    campaign: int
    metric: str
    direction: str
    entries: list[LeaderboardEntry]


_JSON_FIELDS = ("diff_stat", "seed_scores", "metrics", "cost", "evaluation", "audited")
SUMMARY_COLUMNS = "id, parent_id, kind, label, score, integrity, substr(hypothesis, 1, 200) AS hypothesis"


def row_to_trial(row: dict) -> Trial:
    data = dict(row)
    for key in _JSON_FIELDS:
        data[key] = ledger.loads(data[key], None if key != "cost" else {})
    return Trial.model_validate(data)


def load(lab: Lab, trial_id: int) -> Trial:
    rows = list(lab.db.query("SELECT * FROM trials WHERE id = ?", [trial_id]))
    if not rows:
        raise NotFound(f"no trial with id {trial_id}", hint="list trials with trial_get")
    return row_to_trial(rows[0])


def set_fields(lab: Lab, trial_id: int, **fields) -> None:
    encoded = {k: ledger.dumps(v) if k in _JSON_FIELDS and v is not None else v for k, v in fields.items()}
    encoded["updated_at"] = ledger.now()
    lab.db["trials"].update(trial_id, encoded)


@tool()
def trial_create(lab: Lab, args: TrialCreate) -> Trial:
    """Open a trial (the baseline first, then one per change) with its own git worktree.

    Open a new trial in a campaign's lineage: the baseline first (kind=baseline, no
    parent), then one trial per change, branching from a parent (default: baseline);
    its hypothesis says what it changes and why that should help. The trial starts unscored; only trial_evaluate gives it a score. Once the campaign's
    code is cloned, the trial gets its own git worktree on branch trial/<id> at once."""
    campaign = campaigns.load(lab, args.campaign)
    if campaign.status != "active":
        raise InvalidInput(f"campaign {campaign.id} is {campaign.status}: it takes no new trials",
                           hint="set status=active with campaign_update to resume it")
    if args.kind == "baseline":
        if args.parent is not None:
            raise InvalidInput("a baseline trial has no parent")
        parent = None
    else:
        parent_id = args.parent if args.parent is not None else campaign.baseline_trial_id
        if parent_id is None:
            raise InvalidInput(f"campaign {campaign.id} has no baseline trial yet",
                               hint="create it first with kind=baseline")
        parent = load(lab, parent_id)
        if parent.campaign_id != campaign.id:
            raise InvalidInput(f"trial {parent.id} belongs to campaign {parent.campaign_id}, not {campaign.id}")
    if args.idea is not None:
        idea = lab.db.execute("SELECT campaign_id FROM ideas WHERE id = ?", [args.idea]).fetchone()
        if idea is None or idea[0] != campaign.id:
            raise NotFound(f"no idea {args.idea} in campaign {campaign.id}", hint="list ideas with idea_list")
    stamp = ledger.now()
    # The baseline and budget checks run inside the write transaction, so two callers
    # racing for the last trial (or for the baseline) cannot both win.
    with ledger.transaction(lab.db) as db:
        if args.kind == "baseline":
            existing = db.execute("SELECT baseline_trial_id FROM campaigns WHERE id = ?", [campaign.id]).fetchone()[0]
            if existing is not None:
                raise InvalidInput(f"campaign {campaign.id} already has baseline trial {existing}",
                                   hint="branch from it with kind=param|code|algo|leap")
        used = db.execute("SELECT COUNT(*) FROM trials WHERE campaign_id = ?", [campaign.id]).fetchone()[0]
        if campaign.budgets.max_trials is not None and used >= campaign.budgets.max_trials:
            raise BudgetExceeded(f"campaign {campaign.id} has used its {campaign.budgets.max_trials} trials",
                                 hint="raise budgets.max_trials with campaign_update, or finalize the campaign")
        trial_id = db.execute(
            """INSERT INTO trials (campaign_id, parent_id, idea_id, kind, hypothesis, depth, cost,
                                   created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, '{}', ?, ?)""",
            [campaign.id, parent.id if parent else None, args.idea, args.kind, args.hypothesis,
             parent.depth + 1 if parent else 0, stamp, stamp]).lastrowid
        if args.kind == "baseline":
            db.execute("UPDATE campaigns SET baseline_trial_id = ?, updated_at = ? WHERE id = ?",
                       [trial_id, stamp, campaign.id])
        if args.idea is not None:
            db.execute("UPDATE ideas SET status = 'running', trial_id = ?, updated_at = ? WHERE id = ?",
                       [trial_id, stamp, args.idea])
    if campaign.repo_commit:  # the code is cloned: give the trial its worktree now
        from .workspaces import ensure_worktree

        ensure_worktree(lab, trial_id)
    return load(lab, trial_id)


@tool(read_only=True)
def trial_get(lab: Lab, args: TrialGetIn) -> Trial | TrialPage | Lineage | Leaderboard:
    """One trial (or its lineage=true tree), or without `trial` trials filtered, or ranked=true best first.

    With `trial`: its hypothesis, lineage position, commit, evaluator-owned score and
    per-seed metrics, label, and cost (its evaluations', and its side runs' from run_start
    under cost.side_runs). Without: a page of trial summaries, oldest first, followed with
    `cursor`; filters given together with `trial` are refused.

    With `trial` and lineage=true: the trial's ancestors (root first; on a deep chain the
    nearest 50) and its descendants as a tree, bounded by depth (3 levels), count (200)
    and the result size; `truncated` says when the tree was cut.

    With `campaign` and ranked=true (no `trial`): the campaign's best trials in the
    objective's direction (a leaderboard), ranked on the multi-seed mean of their latest
    full audit where one measured them, else on their evaluator-owned score; unscored
    trials never rank. ``limit`` defaults to 10 here (50 for a plain list); ``kind``
    narrows the ranking; claims_only=true keeps only claims, trials whose latest full
    audit (audit_trial depth=full) is valid and was of their current commit. The ranking
    is one page, not paged: label, status, parent, scored and cursor are refused with it."""
    if args.lineage and args.trial is None:
        raise InvalidInput("lineage=true needs a trial: the tree around one trial",
                           hint="pass trial=<id>, or drop lineage to list trials")
    if args.ranked and args.trial is not None:
        raise InvalidInput("ranked=true ranks a campaign's trials; with `trial` the tool returns that one trial",
                           hint="drop `trial` and pass campaign=<id>, or drop ranked")
    if args.claims_only and not args.ranked:
        raise InvalidInput("claims_only=true filters the ranking: it goes with ranked=true",
                           hint="add ranked=true and campaign=<id>, or drop claims_only")
    if args.ranked:
        return ranking(lab, args)
    if args.trial is not None:
        refuse_list_arguments(args, "trial", modes=("lineage", "ranked", "claims_only"))
        if args.lineage:
            return lineage(lab, args.trial)
        trial = load(lab, args.trial)
        # Derived from the runs table each time it is shown, so it never drifts from the runs.
        trial.cost = {**trial.cost, "side_runs": side_run_cost(lab, trial.id)}
        return trial
    conditions = () if args.scored is None else ("score IS NOT NULL" if args.scored else "score IS NULL",)
    rows, total, cursor = select_page(
        lab.db, "trials", {"campaign_id": args.campaign, "kind": args.kind, "label": args.label,
                           "status": args.status, "parent_id": args.parent},
        "id", args.limit, args.cursor, columns=SUMMARY_COLUMNS, conditions=conditions)
    return TrialPage(trials=[TrialSummary.model_validate(r) for r in rows], total=total, next_cursor=cursor)


def lineage(lab: Lab, trial_id: int, max_depth: int = LINEAGE_DEPTH, max_nodes: int = LINEAGE_NODES) -> Lineage:
    """A trial's ancestors (the nearest MAX_ANCESTORS) and its descendants as a tree,
    bounded by ``max_depth`` levels, ``max_nodes`` descendants and the result size."""
    root = load(lab, trial_id)
    ancestors = list(lab.db.query(
        f"""WITH RECURSIVE up(id, n) AS (
                SELECT parent_id, 1 FROM trials WHERE id = ?
                UNION ALL SELECT t.parent_id, up.n + 1 FROM trials t JOIN up ON t.id = up.id
                WHERE t.parent_id IS NOT NULL AND up.n < ?)
            SELECT {SUMMARY_COLUMNS}, up.n FROM trials JOIN up USING (id) ORDER BY up.n DESC""",
        [root.id, MAX_ANCESTORS]))
    # One more row than allowed tells whether the tree was cut.
    below = list(lab.db.query(
        f"""WITH RECURSIVE down(id, level) AS (
                SELECT id, 0 FROM trials WHERE id = ?
                UNION ALL SELECT t.id, down.level + 1 FROM trials t JOIN down ON t.parent_id = down.id
                WHERE down.level < ?
                LIMIT ?)
            SELECT {SUMMARY_COLUMNS}, down.level FROM trials JOIN down USING (id) ORDER BY down.level, id""",
        [root.id, max_depth + 1, max_nodes + 2]))
    nodes: dict[int, LineageNode] = {}
    included = 0
    truncated = False
    budget = TREE_BUDGET_CHARS
    for row in below:
        node = LineageNode.model_validate(row)
        budget -= len(node.model_dump_json())
        if row["level"] > 0 and (row["level"] > max_depth or included >= max_nodes or budget < 0):
            truncated = True
            break  # rows come level by level: once one is cut, every later one would be too
        nodes[node.id] = node
        if row["level"] > 0:
            included += 1
            nodes[row["parent_id"]].children.append(node)
    return Lineage(trial=root.id,
                   ancestors=[TrialSummary.model_validate(a) for a in ancestors],
                   ancestors_omitted=max(0, root.depth - len(ancestors)),  # depth: set once, by trial_create
                   tree=nodes[root.id], descendants=included, truncated=truncated)


def ranking(lab: Lab, args: TrialGetIn) -> Leaderboard:
    """trial_get's ranked=true: the campaign's scored trials, best first (see trial_get)."""
    if args.campaign is None:
        raise InvalidInput("ranked=true needs a campaign: it ranks one campaign's trials",
                           hint="pass campaign=<id>")
    refused = [k for k in RANKED_REFUSES if getattr(args, k) is not None]
    if refused:
        raise InvalidInput(f"{', '.join(refused)} cannot go with ranked=true: the ranking is one page of the "
                           "campaign's scored trials, best first, narrowed only by kind and claims_only",
                           hint=f"drop {', '.join(refused)}, or drop ranked to list trials oldest first")
    limit = args.limit if "limit" in args.model_fields_set else RANKED_LIMIT
    campaign = campaigns.load(lab, args.campaign)
    order = "DESC" if campaign.objective.direction == "max" else "ASC"
    filters, params = ("AND kind = ?", [args.kind]) if args.kind else ("", [])
    if args.claims_only:
        filters += """ AND EXISTS (SELECT 1 FROM audits a WHERE a.id = (SELECT MAX(id) FROM audits
                       WHERE trial_id = trials.id AND depth = 'full')
                       AND a.verdict = 'valid' AND a.commit_sha = trials.commit_sha)"""
    rows = lab.db.query(
        f"""SELECT {SUMMARY_COLUMNS}, score_std, delta_baseline, audited, COALESCE(audited_mean, score) AS ranking
            FROM trials WHERE campaign_id = ? AND score IS NOT NULL {filters}
            ORDER BY ranking {order}, id LIMIT ?""",
        [campaign.id, *params, limit])
    entries: list[LeaderboardEntry] = []
    previous = None
    for i, r in enumerate(rows, start=1):
        tied = entries and previous == r["ranking"]  # equal values share a rank ("1, 1, 3")
        previous = r["ranking"]
        audited = ledger.loads(r["audited"], None) or {}
        entries.append(LeaderboardEntry(rank=entries[-1].rank if tied else i, trial=TrialSummary.model_validate(r),
                                        score_std=r["score_std"], delta_baseline=r["delta_baseline"],
                                        audited_mean=audited.get("mean"), audited_interval=audited.get("interval"),
                                        audited_seeds=audited.get("seeds")))
    return Leaderboard(campaign=campaign.id, metric=campaign.objective.metric,
                       direction=campaign.objective.direction, entries=entries)
