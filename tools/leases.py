"""Leases on ideas and trials, so several agents can work one campaign at once.

An agent claims an idea (or a trial) for a time-to-live; while the claim lives, no
other agent can claim it, and ``lease_take(kind="idea", campaign=...)`` hands each agent a
different open idea.
An agent renews its claim by taking the lease again, and gives it up with a zero-second
lease (ttl_s=0). A claim whose agent went away expires, and the next agent takes it over
(the result names whose claim it took). Leases are
cooperative: they coordinate agents that use them; the evaluation path still refuses
a second evaluation of a trial on its own.

Every claim is decided inside one ``BEGIN IMMEDIATE`` transaction, so two agents
asking at the same moment can never both get the same idea.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from . import ideas, ledger
from .errors import InvalidInput, LabError, NotFound
from .home import Lab
from .registry import tool

ClaimKind = Literal["idea", "trial"]
AGENT = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$",
              description="a stable name")
CLAIM_TTL = Field(600.0, ge=0, le=7 * 24 * 3600)
CLAIMABLE = {"idea": ("open", "running"), "trial": ("open",)}


class ClaimIn(BaseModel):
    kind: ClaimKind
    id: int | None = None
    campaign: int | None = Field(None, description="no id: its next free idea")
    agent: str = AGENT
    ttl_s: float = CLAIM_TTL


class Claim(BaseModel):
    kind: ClaimKind
    id: int
    campaign_id: int
    agent: str
    expires_at: str
    expires_in_s: float
    taken_over_from: str | None = Field(None, description="the agent whose expired claim this one replaced")


class ClaimReleased(BaseModel):
    kind: ClaimKind
    id: int
    released: bool = Field(description="false: this agent held no claim on it")


class IdeaNext(BaseModel):
    idea: ideas.Idea | None = Field(description="the highest-priority open idea no other agent holds, now claimed")
    claim: Claim | None
    reason: str


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _campaign_of(db, kind: str, item_id: int) -> tuple[int, str]:
    row = db.execute(f"SELECT campaign_id, status FROM {kind}s WHERE id = ?", [item_id]).fetchone()
    if row is None:
        raise NotFound(f"no {kind} with id {item_id}",
                       hint=f"list them with {'idea_list' if kind == 'idea' else 'trial_get (no trial)'}")
    return row[0], row[1]


def _take(db, kind: str, item_id: int, campaign_id: int, agent: str, ttl_s: float) -> Claim:
    """Inside a write transaction: claim the item or raise if another agent holds it."""
    now = time.time()
    held = db.execute("SELECT agent, expires_at FROM claims WHERE kind = ? AND item_id = ?", [kind, item_id]).fetchone()
    taken_over = None
    if held and held[0] != agent:
        if held[1] > now:
            raise LabError(f"{kind} {item_id} is claimed by agent {held[0]!r} for {held[1] - now:.0f} s more",
                           hint="pick another (lease_take with campaign and no id skips claimed ideas), "
                                "or wait for the claim to expire")
        taken_over = held[0]
    db.execute("INSERT INTO claims (kind, item_id, campaign_id, agent, expires_at, claimed_at) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, item_id) DO UPDATE SET agent = excluded.agent, "
               "expires_at = excluded.expires_at, claimed_at = excluded.claimed_at",
               [kind, item_id, campaign_id, agent, now + ttl_s, ledger.now()])
    return Claim(kind=kind, id=item_id, campaign_id=campaign_id, agent=agent, expires_at=_stamp(now + ttl_s),
                 expires_in_s=ttl_s, taken_over_from=taken_over)


def holder(lab: Lab, kind: str, item_id: int) -> str | None:
    """The agent holding a live claim on the item, or None."""
    row = lab.db.execute("SELECT agent FROM claims WHERE kind = ? AND item_id = ? AND expires_at > ?",
                         [kind, item_id, time.time()]).fetchone()
    return row[0] if row else None


@tool()
def lease_take(lab: Lab, args: ClaimIn) -> Claim | ClaimReleased | IdeaNext:
    """Claim an idea/trial, or a campaign's next free idea, for ttl_s seconds (0: give up).

    With kind and id: claim that idea or trial for ttl_s seconds, so no other agent works
    on it; claim again to renew. Refused while another agent's claim lives; an expired
    claim is taken over (taken_over_from names its agent). Answers a Claim.

    With kind="idea" and campaign (no id): claim the campaign's highest-priority open idea
    that no other agent holds (then oldest), for ttl_s seconds, and answer IdeaNext: the
    idea and its claim, or idea and claim null when every open idea is taken or done
    (reason says which). An idea this agent already holds is handed back to it (renewed).
    Mark it done with idea_set when its trial is evaluated, and it is never handed out
    again.

    ``agent`` is a stable name for this agent, e.g. 'optimizer-specialist-1'; ttl_s defaults
    to 600 seconds. ttl_s=0 (with an id) gives up this agent's claim (when done with the item, or giving
    up) and answers ClaimReleased: released is false when this agent held no claim on it;
    another agent's claim is never touched."""
    if args.campaign is not None:
        if args.id is not None:
            raise InvalidInput("give either id (claim that item) or campaign (claim its next free idea), not both",
                               hint="drop campaign to claim this id, or drop id to take the next idea")
        if args.kind != "idea":
            raise InvalidInput(f"campaign picks the next free idea; kind is {args.kind!r}",
                               hint="claim a trial by its id, or set kind='idea'")
        if args.ttl_s == 0:
            raise InvalidInput("ttl_s=0 gives up a claim, which needs the item's id, not a campaign",
                               hint="pass id with ttl_s=0, or a positive ttl_s with campaign")
        return _next_idea(lab, args.campaign, args.agent, args.ttl_s)
    if args.id is None:
        raise InvalidInput("lease_take needs an id (claim that idea or trial) or, for kind='idea', a campaign",
                           hint="pass id, or campaign to claim the campaign's next free idea")
    if args.ttl_s == 0:  # a zero-second lease: nothing to check, the item may be done by now
        cur = lab.db.execute("DELETE FROM claims WHERE kind = ? AND item_id = ? AND agent = ?",
                             [args.kind, args.id, args.agent])
        return ClaimReleased(kind=args.kind, id=args.id, released=cur.rowcount > 0)
    with ledger.transaction(lab.db) as db:
        campaign_id, status = _campaign_of(db, args.kind, args.id)
        if status not in CLAIMABLE[args.kind]:
            allowed = " or ".join(CLAIMABLE[args.kind])
            raise LabError(f"{args.kind} {args.id} is {status}; only {allowed} ones can be claimed",
                           hint="pick an open one" + (" (lease_take with campaign, no id, claims the next)"
                                                      if args.kind == "idea" else ""))
        return _take(db, args.kind, args.id, campaign_id, args.agent, args.ttl_s)


def _next_idea(lab: Lab, campaign: int, agent: str, ttl_s: float) -> IdeaNext:
    """Claim the campaign's highest-priority open idea no other agent holds, in one write
    transaction so two agents asking at once never get the same idea."""
    with ledger.transaction(lab.db) as db:
        if db.execute("SELECT 1 FROM campaigns WHERE id = ?", [campaign]).fetchone() is None:
            raise NotFound(f"no campaign with id {campaign}", hint="list campaigns with campaign_get")
        row = db.execute(
            """SELECT i.id FROM ideas i LEFT JOIN claims c ON c.kind = 'idea' AND c.item_id = i.id
               WHERE i.campaign_id = ? AND i.status = 'open'
                 AND (c.agent IS NULL OR c.agent = ? OR c.expires_at <= ?)
               ORDER BY i.priority DESC, i.id LIMIT 1""", [campaign, agent, time.time()]).fetchone()
        if row is None:
            open_ideas = db.execute("SELECT COUNT(*) FROM ideas WHERE campaign_id = ? AND status = 'open'",
                                    [campaign]).fetchone()[0]
            return IdeaNext(idea=None, claim=None,
                            reason=f"no open idea is free: all {open_ideas} open ones are claimed by other agents"
                            if open_ideas else "the campaign has no open idea left (idea_set adds one)")
        taken = _take(db, "idea", row[0], campaign, agent, ttl_s)
    return IdeaNext(idea=ideas.load(lab, row[0]), claim=taken, reason="claimed")
