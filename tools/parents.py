"""Parent choice that follows the lineage: which trial a new trial should branch from.

``best`` takes the campaign's best kept trial. ``top_k_sample`` draws uniformly from
the k best kept trials, as ASI-Arch samples its parents: exploring from several good
nodes rather than always the single best, which several agents working one campaign
would otherwise all pile onto. Only trials the evaluator kept (label ``keep``) and
nobody disqualified are candidates.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, Field

from . import campaigns
from .home import Lab
from .registry import tool


class ParentPickIn(BaseModel):
    campaign: int
    strategy: Literal["best", "top_k_sample"] = Field("top_k_sample", description="top_k_sample: one of the k best")
    k: int = Field(5, ge=1, le=50)
    seed: int | None = None


class Candidate(BaseModel):
    trial: int
    score: float


class ParentPick(BaseModel):
    parent: int | None = Field(description="the trial to branch from (trial_create parent=); null: none kept yet")
    strategy: str
    candidates: list[Candidate] = Field(description="the pool it was drawn from, best first")


@tool(read_only=True)
def parent_pick(lab: Lab, args: ParentPickIn) -> ParentPick:
    """A parent for the next trial: the best kept trial, or a draw from the k best.

    Choose a parent for the next trial from the lineage: the best kept trial, or a
    uniform draw from the k best kept trials (ASI-Arch's best-of-top-k), so agents
    explore from several good nodes. Null when no trial has been kept yet."""
    campaign = campaigns.load(lab, args.campaign)
    order = "DESC" if campaign.objective.direction == "max" else "ASC"
    rows = lab.db.execute(f"""SELECT id, score FROM trials WHERE campaign_id = ? AND score IS NOT NULL
                              AND label = 'keep' ORDER BY score {order}, id LIMIT ?""",
                          [args.campaign, 1 if args.strategy == "best" else args.k]).fetchall()
    pool = [Candidate(trial=r[0], score=r[1]) for r in rows]
    parent = random.Random(args.seed).choice(pool).trial if pool else None
    return ParentPick(parent=parent, strategy=args.strategy, candidates=pool)
