"""Surfaces: the named parts of a campaign's code a specialist agent may change.

A campaign declares surfaces (``optimizer: ["train/optim.py", "configs/opt/**"]``,
``data: ["data/**"]``). A trial may declare one; from then on its own diff (against
its parent) must stay inside that surface's globs. It is checked when the trial is
snapshotted, which every evaluation does first, so a trial whose diff leaves its
surface is never scored: the error names the files outside and what to do.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from . import campaigns, gitcmd, ledger, trials
from .errors import InvalidInput, LabError
from .home import Lab
from .protected import matches
from .registry import tool

SURFACE_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"
MAX_SHOWN = 20


class SurfacesSetIn(BaseModel):
    campaign: int | None = None
    surfaces: dict[str, list[str]] | None = Field(None, max_length=20, description="e.g. {'optim': ['train/optim.py']}")
    trial: int | None = None
    surface: str | None = Field(None, description="null: any")

    @field_validator("surfaces")
    @classmethod
    def _check(cls, surfaces):
        import re

        for name, globs in (surfaces or {}).items():
            if not re.match(SURFACE_NAME, name):
                raise ValueError(f"surface name {name[:60]!r}: lower-case letters, digits, '_' and '-', at most 40")
            if not 1 <= len(globs) <= 50:
                raise ValueError(f"surface {name!r} needs 1 to 50 globs")
            campaigns._check_globs(globs)
        return surfaces


class Surfaces(BaseModel):
    campaign: int
    surfaces: dict[str, list[str]]


class TrialSurface(BaseModel):
    trial: int
    surface: str | None
    globs: list[str]


def of_campaign(lab: Lab, campaign_id: int) -> dict[str, list[str]]:
    row = lab.db.execute("SELECT surfaces FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    if row is None:
        campaigns.load(lab, campaign_id)  # NotFound with its hint
    return ledger.loads(row[0], {})


def declared(lab: Lab, trial_id: int) -> str | None:
    row = lab.db.execute("SELECT surface FROM trials WHERE id = ?", [trial_id]).fetchone()
    return row[0] if row else None


def outside(globs: list[str], changed: list[str]) -> list[str]:
    """Changed paths no glob of the surface covers."""
    return [path for path in changed if not matches(path, globs)]


def enforce(lab: Lab, trial: trials.Trial, repo: Path, base: str, head: str) -> None:
    """Refuse a snapshot whose diff from ``base`` to ``head`` leaves the trial's surface."""
    name = declared(lab, trial.id)
    if not name:
        return
    globs = of_campaign(lab, trial.campaign_id).get(name)
    if globs is None:
        raise LabError(f"trial {trial.id} declares surface {name!r}, which campaign {trial.campaign_id} no longer has",
                       hint="declare one of its surfaces with surfaces_set(trial, surface) (campaign_view lists them)")
    # Both sides of a rename count: moving a file out of the surface changes the old path too.
    changed = [p for p in gitcmd.out(repo, "diff", "--name-only", "--no-renames", "-z", "--end-of-options",
                                     base, head).split("\0") if p]
    stray = outside(globs, changed)
    if stray:
        shown = ", ".join(stray[:MAX_SHOWN]) + (f" and {len(stray) - MAX_SHOWN} more" if len(stray) > MAX_SHOWN else "")
        raise LabError(f"surface_violation: trial {trial.id} declares surface {name!r} ({', '.join(globs)}) but "
                       f"changes {len(stray)} file(s) outside it: {shown}",
                       hint="undo those changes in the worktree (workspace_write), or make them in a trial "
                            "of the surface that owns them")


@tool(idempotent=True)
def surfaces_set(lab: Lab, args: SurfacesSetIn) -> Surfaces | TrialSurface:
    """Declare a campaign's surfaces, or the surface an open trial works on.

    With campaign and surfaces: declare the campaign's surfaces, named sets of paths a
    specialist may change (optimizer, architecture, data pipeline...): name -> globs of
    repository-relative paths ('**' spans directories), e.g. {'optimizer':
    ['train/optim.py']}. Replaces the
    campaign's surfaces; trials that declare a surface must then keep their diff inside
    it. Answers Surfaces.

    With trial and surface: declare the surface an open trial works on (null: none, it
    may change anything): its diff against its parent must then stay inside that
    surface, checked at every snapshot and evaluation. Answers TrialSurface."""
    campaign_mode = [k for k in ("campaign", "surfaces") if getattr(args, k) is not None]
    trial_mode = [k for k in ("trial", "surface") if getattr(args, k) is not None]
    if campaign_mode and trial_mode:
        raise InvalidInput(f"{', '.join(campaign_mode)} and {', '.join(trial_mode)} are two modes: "
                           "a campaign's surfaces, or one trial's surface",
                           hint="call surfaces_set(campaign, surfaces) and surfaces_set(trial, surface) separately")
    if trial_mode:
        if args.trial is None or "surface" not in args.model_fields_set:
            raise InvalidInput("a trial's surface needs both trial and surface (a surface name, or null for any)",
                               hint="pass trial=<id> and surface=<name> (campaign_view lists the surfaces)")
        return _trial_surface(lab, args.trial, args.surface)
    if args.campaign is None or args.surfaces is None:
        raise InvalidInput("surfaces_set needs campaign and surfaces, or trial and surface",
                           hint="surfaces_set(campaign=C, surfaces={'model': ['model.py']}) declares a campaign's; "
                                "surfaces_set(trial=T, surface='model') a trial's")
    campaigns.load(lab, args.campaign)
    lab.db.execute("UPDATE campaigns SET surfaces = ?, updated_at = ? WHERE id = ?",
                   [ledger.dumps(args.surfaces), ledger.now(), args.campaign])
    return Surfaces(campaign=args.campaign, surfaces=args.surfaces)


def _trial_surface(lab: Lab, trial_id: int, surface: str | None) -> TrialSurface:
    trial = trials.load(lab, trial_id)
    if trial.status != "open":
        raise LabError(f"trial {trial.id} is {trial.status}; its surface is fixed",
                       hint="declare the surface when the trial is created, before it is evaluated")
    globs: list[str] = []
    if surface is not None:
        known = of_campaign(lab, trial.campaign_id)
        if surface not in known:
            raise InvalidInput(f"campaign {trial.campaign_id} has no surface {surface!r}",
                               hint=f"use one of {sorted(known)} or declare it with surfaces_set" if known
                               else "declare the campaign's surfaces with surfaces_set(campaign, surfaces) first")
        globs = known[surface]
    lab.db.execute("UPDATE trials SET surface = ?, updated_at = ? WHERE id = ? AND status = 'open'",
                   [surface, ledger.now(), trial.id])
    return TrialSurface(trial=trial.id, surface=surface, globs=globs)
