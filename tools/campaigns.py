"""Campaigns: one research target each, with its objective, evaluator and budgets."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import ledger, overlay as overlays
from .errors import InvalidInput, LabError, NotFound
from .home import Lab
from .paging import DEFAULT_LIMIT, MAX_LIMIT, fit, next_cursor, offset_from, refuse_list_arguments, select_page
from .registry import shape_in, tool

Direction = Literal["max", "min"]
FINITE = ConfigDict(allow_inf_nan=False)  # NaN and Infinity are not JSON: hosts could not read them back
MAX_DEFINITION_CHARS = 40_000  # campaign_get must always fit one bounded result


class SecondaryMetric(BaseModel):
    model_config = FINITE
    direction: Direction = "max"
    tolerance: float = Field(0.0, ge=0, description="how much worse than the baseline it may get")


class Objective(BaseModel):
    model_config = FINITE
    metric: str = Field(..., min_length=1, max_length=100, description="primary metric name")
    direction: Direction = Field(..., description="max: higher is better; min: lower is better")
    reported: float | None = Field(None, description="value the paper reports for the baseline")
    target: float | None = Field(None, description="value the campaign aims for")
    reproduce_tolerance: float = Field(0.01, ge=0, description="how close the reproduced baseline must be to `reported`")
    rerun_tolerance: float = Field(0.01, ge=0, description="how far an audit's clean re-run may land from the recorded score")
    min_effect: float = Field(0.0, ge=0, description="smallest gain over the baseline that counts as an improvement")
    secondary: dict[str, SecondaryMetric] = Field(default_factory=dict,
                                                  description="other metrics that must not get worse")

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats score ``b`` in this objective's direction."""
        return a > b if self.direction == "max" else a < b


class MetricRule(BaseModel):
    """How the server reads one metric from an evaluation run."""

    name: str = Field(..., min_length=1, max_length=100)
    regex: str | None = Field(None, description="regex on the evaluator's output; group 1 (or the named group 'value') is the number")
    json_file: str | None = Field(None, description="JSON file the evaluator writes, relative to its working directory")
    json_key: str | None = Field(None, description="dotted key inside json_file; defaults to the metric name")

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.regex) == bool(self.json_file):
            raise ValueError(f"metric {self.name!r}: give exactly one of regex or json_file")
        if self.regex:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"metric {self.name!r}: regex does not compile: {exc}") from None
        return self


class Evaluator(BaseModel):
    """How the server scores a trial, at one of two integrity levels.

    ``isolated`` (``predict`` + ``score``): the trial's predict step never sees labels and
    writes predictions to ``$SOTALAB_OUTPUT_DIR``; the campaign's scorer, run from the
    baseline in its own sandbox, reads them (``$SOTALAB_PREDICTIONS``) with the labels
    (``$SOTALAB_LABELS``) and computes every metric. ``in_process`` (``command``): the
    paper's own script trains and scores in one process, under a runtime audit hook.
    """

    command: list[str] | None = Field(None, min_length=1, description="in_process level: argv of the paper's own "
                                      "evaluation script, run in a fresh export of the trial")
    predict: list[str] | None = Field(None, min_length=1, description="isolated level: argv of the trial's predict "
                                      "step (no labels mounted); writes predictions to $SOTALAB_OUTPUT_DIR")
    score: list[str] | None = Field(None, min_length=1, description="isolated level: argv of the protected scorer, run "
                                    "from the baseline with $SOTALAB_PREDICTIONS and $SOTALAB_LABELS")
    metrics: list[MetricRule] = Field(..., min_length=1)
    timeout_s: int = Field(600, ge=1, le=7 * 24 * 3600)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=64)
    seed_env: str = Field("SOTALAB_SEED", description="environment variable that carries the seed")
    seed_arg: str | None = Field(None, description="argument the seed is appended with, e.g. '--seed'")

    @model_validator(mode="after")
    def _one_level(self):
        if bool(self.predict) != bool(self.score):
            raise ValueError("an isolated evaluator needs both predict and score")
        if bool(self.command) == bool(self.predict):
            raise ValueError("give either command (in_process level) or predict and score (isolated level)")
        return self

    @property
    def scripts(self) -> list[str]:
        """The evaluator's own script files named in its commands (evaluator code, like protected files)."""
        return [a for a in [*(self.command or []), *(self.predict or []), *(self.score or [])]
                if re.search(r"\.(py|sh|R|jl|lua)$", a)]

    @property
    def integrity(self) -> str:
        """The integrity level every score of this evaluator is recorded with."""
        return "isolated" if self.predict else "in_process"


class Budgets(BaseModel):
    model_config = FINITE
    run_wall_s: int | None = Field(None, ge=1)
    memory_gb: float | None = Field(None, gt=0)
    gpu_memory_gb: float | None = Field(None, gt=0)
    gpu_hours: float | None = Field(None, gt=0)
    max_trials: int | None = Field(None, ge=1)
    artifact_mb: float | None = Field(None, gt=0)
    max_params: int | None = Field(None, ge=1)


def _check_globs(paths: list[str]) -> list[str]:
    for p in paths:
        if p.startswith("/") or p.startswith("-") or ".." in p.split("/"):
            raise ValueError(f"path {p!r} must be relative to the repository, without '..' or a leading '-'")
    return paths


class CampaignCreate(BaseModel):
    name: str = Field(..., min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    description: str = Field("", max_length=4000)
    objective: Objective
    evaluator: Evaluator
    protected_paths: list[str] = Field(default_factory=list, description="evaluator code and data, hashed")
    held_out_paths: list[str] = Field(default_factory=list, description="test splits hidden from trials")
    label_paths: list[str] = Field(default_factory=list, description="labels only the scorer sees")
    data_paths: list[str] = Field(default_factory=list, description="where trials may add data files")
    budgets: Budgets = Field(default_factory=Budgets)
    repo_url: str | None = None
    overlay: overlays.Overlay | None = Field(None, description="files and splits the repo lacks")

    _globs = field_validator("protected_paths", "held_out_paths", "label_paths", "data_paths")(_check_globs)


class CampaignUpdate(BaseModel):
    campaign: int
    description: str | None = Field(None, max_length=4000)
    status: Literal["active", "paused", "done"] | None = None
    objective: Objective | None = Field(None, description="metric, direction and the fields to change",
                                        json_schema_extra=shape_in("campaign_create"))
    evaluator: Evaluator | None = Field(None, json_schema_extra=shape_in("campaign_create"))
    protected_paths: list[str] | None = None
    held_out_paths: list[str] | None = None
    label_paths: list[str] | None = None
    data_paths: list[str] | None = None
    budgets: Budgets | None = Field(None, description="only those given change; null clears one",
                                    json_schema_extra=shape_in("campaign_create"))

    _globs = field_validator("protected_paths", "held_out_paths", "label_paths", "data_paths")(
        lambda v: v if v is None else _check_globs(v))


class CampaignGetIn(BaseModel):
    campaign: int | None = Field(None, description="omit to list")
    status: Literal["active", "paused", "done"] | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class Campaign(BaseModel):
    id: int
    name: str
    description: str
    status: str
    objective: Objective
    evaluator: Evaluator
    protected_paths: list[str]
    held_out_paths: list[str]
    label_paths: list[str] = Field(default_factory=list)
    data_paths: list[str] = Field(default_factory=list)
    budgets: Budgets
    spent: dict = Field(description="what the campaign has used: trials, gpu_hours, finalize_calls")
    repo_url: str | None
    repo_commit: str | None
    provenance: dict = Field(default_factory=dict, description="upstream_url and upstream_commit of the code, "
                             "and the local path or mirror it was cloned from")
    overlay: overlays.OverlayRecord = Field(default_factory=overlays.OverlayRecord,
                                            description="files and splits the campaign brings, with their hashes")
    paper_id: str | None
    env_id: str | None
    baseline_trial_id: int | None
    trial_count: int
    finalizations: list[dict] = Field(default_factory=list,
                                      description="held-out final evaluations (campaign_finalize), newest first")
    created_at: str
    updated_at: str

    @property
    def sealed_paths(self) -> list[str]:
        """Globs of files no trial's worktree ever holds: held-out files and labels."""
        return [*self.held_out_paths, *self.label_paths]


class CampaignPage(BaseModel):
    campaigns: list[Campaign]
    total: int
    next_cursor: str | None


_JSON_FIELDS = ("objective", "evaluator", "protected_paths", "held_out_paths", "label_paths", "data_paths",
                "budgets", "spent", "overlay", "provenance")


def row_to_campaign(lab: Lab, row: dict) -> Campaign:
    data = dict(row)
    for key in _JSON_FIELDS:
        data[key] = ledger.loads(data[key], {})
    data["trial_count"] = lab.db.execute(
        "SELECT COUNT(*) FROM trials WHERE campaign_id = ?", [row["id"]]).fetchone()[0]
    data["finalizations"] = [
        {"id": f["id"], "trial_id": f["trial_id"], "created_at": f["created_at"]} | ledger.loads(f["result"], {})
        for f in lab.db.query("SELECT * FROM finalizations WHERE campaign_id = ? ORDER BY id DESC", [row["id"]])]
    return Campaign.model_validate(data)


def load(lab: Lab, campaign_id: int) -> Campaign:
    rows = list(lab.db.query("SELECT * FROM campaigns WHERE id = ?", [campaign_id]))
    if not rows:
        raise NotFound(f"no campaign with id {campaign_id}", hint="list campaigns with campaign_get")
    return row_to_campaign(lab, rows[0])


def check_definition_size(definition: dict) -> None:
    size = len(ledger.dumps(definition))
    if size > MAX_DEFINITION_CHARS:
        raise InvalidInput(f"the campaign definition is {size} characters; at most {MAX_DEFINITION_CHARS} are allowed",
                           hint="shorten the evaluator, metric rules or path lists (use globs)")


def set_fields(lab: Lab, campaign_id: int, **fields) -> None:
    """Write campaign columns (JSON-encoding the structured ones) and bump updated_at."""
    encoded = {k: ledger.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()}
    encoded["updated_at"] = ledger.now()
    lab.db["campaigns"].update(campaign_id, encoded)


@tool()
def campaign_create(lab: Lab, args: CampaignCreate) -> Campaign:
    """Create a campaign: objective, evaluator, path globs, budgets.

    Create a campaign: one research target with its objective (primary metric,
    direction, reported value, target), evaluator (argv, metric rules, timeout, seeds),
    path globs, and budgets. Returns the stored campaign.

    The evaluator is in_process (``command``: the paper's own script) or isolated
    (``predict`` + ``score``: the trial predicts without labels, the protected scorer
    scores). Path globs are repository-relative: ``protected_paths`` (evaluator code and
    data, hashed at the baseline), ``held_out_paths`` (test labels and splits hidden from
    ordinary trials), ``label_paths`` (validation and held-out targets, moved into the lab
    home at clone so only the scorer sees them) and ``data_paths`` (where a trial may add
    binary or non-source files as data without an audit finding). ``repo_url`` is where
    the paper's code lives (clone it with repo_clone). ``overlay`` holds the files
    (evaluator, scorer) and data splits the repository lacks, applied at the baseline as
    protected files."""
    if lab.db.execute("SELECT 1 FROM campaigns WHERE name = ?", [args.name]).fetchone():
        raise InvalidInput(f"a campaign named {args.name!r} already exists",
                           hint="pick another name, or find it with campaign_get")
    stamp = ledger.now()
    row = {
        "name": args.name,
        "description": args.description,
        "repo_url": args.repo_url,
        "created_at": stamp,
        "updated_at": stamp,
        "spent": ledger.dumps({}),
    }
    for key in ("objective", "evaluator", "budgets"):
        row[key] = ledger.dumps(getattr(args, key).model_dump())
    for key in ("protected_paths", "held_out_paths", "label_paths", "data_paths"):
        row[key] = ledger.dumps(getattr(args, key))
    if args.overlay:  # its paths are guarded like the repository's own evaluator and splits
        files = overlays.read(lab, args.overlay)
        guarded = overlays.guarded_paths([f[0] for f in files], args.overlay.splits,
                                         args.protected_paths, args.held_out_paths, args.label_paths)
        row["protected_paths"], row["held_out_paths"], row["label_paths"] = map(ledger.dumps, guarded)
    check_definition_size(row)
    campaign_id = lab.db["campaigns"].insert(row).last_pk
    if args.overlay:
        set_fields(lab, campaign_id, overlay=overlays.store(lab, campaign_id, args.overlay, files).model_dump())
    return load(lab, campaign_id)


@tool(read_only=True)
def campaign_get(lab: Lab, args: CampaignGetIn) -> Campaign | CampaignPage:
    """One campaign, or without `campaign` the campaigns, newest first, paged.

    With `campaign`: its objective, evaluator, budgets, spend and trial count. Without:
    a page of campaigns (filtered by `status`), followed with `cursor`; list arguments
    given together with `campaign` are refused."""
    if args.campaign is not None:
        refuse_list_arguments(args, "campaign")
        return load(lab, args.campaign)
    rows, total, _ = select_page(lab.db, "campaigns", {"status": args.status}, "id DESC", args.limit, args.cursor)
    page = fit([row_to_campaign(lab, r) for r in rows])  # a campaign runs to 40k characters
    return CampaignPage(campaigns=page, total=total,
                        next_cursor=next_cursor(offset_from(args.cursor), len(page), total))


# The goalposts: once any trial is scored, changing one would make scores, audits and
# claims incomparable (a raised budget would turn an over-budget trial into a claim).
FROZEN_AFTER_SCORE = ("evaluator", "protected_paths", "held_out_paths", "label_paths", "data_paths", "budgets")
OBJECTIVE_ALWAYS_EDITABLE = ("reported", "target")


@tool(idempotent=True)
def campaign_update(lab: Lab, args: CampaignUpdate) -> Campaign:
    """Change a campaign; its goalposts (how it is scored) only until a trial is scored.

    Change a campaign's description, status, the objective's reported value and target, or (until a trial has
    been scored) the goalposts: the rest of the objective, the evaluator, budgets and the protected, held-out,
    label and data paths."""
    campaign = load(lab, args.campaign)
    changes = args.model_dump(exclude={"campaign"}, exclude_none=True)
    # A partial objective or budgets must not wipe what it leaves out (secondary metrics, limits).
    for key in ("objective", "budgets"):
        if (given := getattr(args, key)) is not None:
            changes[key] = getattr(campaign, key).model_dump() | given.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to update", hint="pass at least one field to change")
    if {"protected_paths", "held_out_paths", "label_paths"} & changes.keys():  # the overlay's paths stay guarded
        changes["protected_paths"], changes["held_out_paths"], changes["label_paths"] = overlays.guarded_paths(
            [f.path for f in campaign.overlay.files], campaign.overlay.splits,
            changes.get("protected_paths", campaign.protected_paths),
            changes.get("held_out_paths", campaign.held_out_paths), changes.get("label_paths", campaign.label_paths))
    current = campaign.model_dump()
    frozen = [k for k in FROZEN_AFTER_SCORE if k in changes and changes[k] != current[k]]
    if "objective" in changes:  # the goalposts: what is measured and what counts as a gain
        old = campaign.objective.model_dump()
        frozen += [f"objective.{k}" for k in old if k not in OBJECTIVE_ALWAYS_EDITABLE
                   and changes["objective"][k] != old[k]]
    # Any score, not only the baseline's: a trial may be evaluated before the baseline is.
    if frozen and lab.db.execute("SELECT 1 FROM trials WHERE campaign_id = ? AND score IS NOT NULL LIMIT 1",
                                 [campaign.id]).fetchone():
        raise LabError(f"cannot change {', '.join(frozen)} after a trial has been scored",
                       hint="scores and audits would no longer be comparable; create a new campaign instead")
    check_definition_size(campaign.model_dump(include=set(_JSON_FIELDS) | {"description"}) | changes)
    set_fields(lab, args.campaign, **changes)
    return load(lab, args.campaign)
