"""Ideas: the campaign's queue of hypotheses, typed PARAM/CODE/ALGO/LEAP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from . import campaigns, ledger
from .errors import InvalidInput, NotFound
from .home import Lab
from .paging import DEFAULT_LIMIT, MAX_LIMIT, fit, next_cursor, offset_from, select_page
from .registry import tool

IdeaType = Literal["PARAM", "CODE", "ALGO", "LEAP"]
Risk = Literal["low", "medium", "high"]
IdeaStatus = Literal["open", "running", "done", "dropped"]


class IdeaSet(BaseModel):
    idea: int | None = Field(None, description="omit for a new one")
    campaign: int | None = None
    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    type: IdeaType | None = Field(None, description="ALGO: method; LEAP: bold jump")
    risk: Risk | None = None
    model_config = campaigns.FINITE  # NaN and Infinity cannot be ranked or sent back as JSON
    priority: float | None = Field(None, ge=-100, le=100, description="higher runs first")
    status: IdeaStatus | None = None


class IdeaListIn(BaseModel):
    campaign: int
    status: IdeaStatus | None = None
    type: IdeaType | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class Idea(BaseModel):
    id: int
    campaign_id: int
    title: str
    description: str
    type: IdeaType
    risk: Risk
    priority: float
    status: IdeaStatus
    trial_id: int | None
    created_at: str
    updated_at: str


class IdeaPage(BaseModel):
    ideas: list[Idea]
    total: int
    next_cursor: str | None


def load(lab: Lab, idea_id: int) -> Idea:
    rows = list(lab.db.query("SELECT * FROM ideas WHERE id = ?", [idea_id]))
    if not rows:
        raise NotFound(f"no idea with id {idea_id}", hint="list ideas with idea_list")
    return Idea.model_validate(rows[0])


@tool()
def idea_set(lab: Lab, args: IdeaSet) -> Idea:
    """Queue an idea, or with `idea` change one's text, type, risk, priority or status.

    Without `idea`: a new open idea in `campaign`, which needs `title` and `type`; risk
    defaults to medium, priority to 0 (higher runs first), description to empty.

    With `idea`: the fields given change (status: open, running, done or dropped); the
    rest stay. An idea keeps its campaign. Returns the idea as stored."""
    if args.idea is None:
        return _add(lab, args)
    if args.campaign is not None:
        raise InvalidInput("campaign is for a new idea; an idea keeps its campaign",
                           hint=f"drop campaign to change idea {args.idea}, or drop idea to queue a new one")
    load(lab, args.idea)
    changes = args.model_dump(exclude={"idea", "campaign"}, exclude_none=True)
    if not changes:
        raise InvalidInput("nothing to update", hint="pass at least one field to change")
    lab.db["ideas"].update(args.idea, changes | {"updated_at": ledger.now()})
    return load(lab, args.idea)


def _add(lab: Lab, args: IdeaSet) -> Idea:
    if args.status is not None:
        raise InvalidInput("a new idea starts open; status changes an existing idea",
                           hint="drop status, or pass idea=N to set that idea's status")
    missing = [k for k in ("campaign", "title", "type") if getattr(args, k) is None]
    if missing:
        raise InvalidInput(f"a new idea needs campaign, title and type; missing {', '.join(missing)}",
                           hint="pass " + ", ".join(missing) + ", or pass idea=N to change an existing idea")
    campaigns.load(lab, args.campaign)
    stamp = ledger.now()
    row = {"campaign_id": args.campaign, "title": args.title, "description": args.description or "",
           "type": args.type, "risk": args.risk or "medium",
           "priority": 0 if args.priority is None else args.priority,
           "status": "open", "created_at": stamp, "updated_at": stamp}
    return load(lab, lab.db["ideas"].insert(row).last_pk)


@tool(read_only=True)
def idea_list(lab: Lab, args: IdeaListIn) -> IdeaPage:
    """A campaign's ideas, highest priority first, paged."""
    campaigns.load(lab, args.campaign)
    rows, total, _ = select_page(lab.db, "ideas", {"campaign_id": args.campaign, "status": args.status,
                                                   "type": args.type},
                                 "priority DESC, id", args.limit, args.cursor)
    ideas = fit([Idea.model_validate(r) for r in rows])  # descriptions run to 4,000 characters
    return IdeaPage(ideas=ideas, total=total, next_cursor=next_cursor(offset_from(args.cursor), len(ideas), total))
