"""Notes: analyses, failure memories and red lines, searchable by full text."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from . import campaigns, ledger, trials
from .errors import InvalidInput
from .home import Lab
from .paging import MAX_LIMIT, fit
from .registry import tool

NoteKind = Literal["analysis", "failure", "red_line", "decision", "general"]


class NoteAdd(BaseModel):
    title: str = Field(..., min_length=1, max_length=200)
    body: str = Field("", max_length=20_000)
    kind: NoteKind = "analysis"
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)
    campaign: int | None = None
    trial: int | None = None


class Note(BaseModel):
    id: int
    campaign_id: int | None
    trial_id: int | None
    kind: str
    title: str
    body: str
    tags: list[str]
    created_at: str


class NoteSearchIn(BaseModel):
    query: str = Field(..., min_length=1, max_length=500, description="all words must match")
    campaign: int | None = None
    kind: NoteKind | None = None
    limit: int = Field(10, ge=1, le=MAX_LIMIT)


class NoteHit(BaseModel):
    note: Note
    rank: float = Field(description="bm25 rank: lower is a better match")
    snippet: str


class NoteSearchResult(BaseModel):
    hits: list[NoteHit]
    omitted: int = Field(0, description="further matches (lower ranked) left out to keep the result bounded; "
                                        "narrow the query or filter by campaign or kind to reach them")


def _note(row: dict) -> Note:
    return Note.model_validate(dict(row) | {"tags": [t for t in row["tags"].split() if t]})


def fts_query(text: str) -> str:
    """Caller words as an FTS5 query that cannot inject operators: each word quoted."""
    words = re.findall(r"\w+", text)
    return " ".join(f'"{w}"' for w in words)


@tool()
def note_add(lab: Lab, args: NoteAdd) -> Note:
    """Record an analysis, failure, red line or decision on a campaign or trial.

    A note on a trial belongs to the trial's campaign."""
    campaign = args.campaign
    if campaign is not None:
        campaigns.load(lab, campaign)
    if args.trial is not None:
        trial = trials.load(lab, args.trial)
        if campaign is not None and trial.campaign_id != campaign:
            raise InvalidInput(f"trial {trial.id} belongs to campaign {trial.campaign_id}, not {campaign}",
                               hint="omit campaign: a note on a trial belongs to the trial's campaign")
        campaign = trial.campaign_id  # so a campaign-filtered note_search finds it
    row = {"campaign_id": campaign, "trial_id": args.trial, "kind": args.kind, "title": args.title,
           "body": args.body, "tags": " ".join(t.replace(" ", "_") for t in args.tags), "created_at": ledger.now()}
    note_id = lab.db["notes"].insert(row).last_pk
    return _note(next(lab.db.query("SELECT * FROM notes WHERE id = ?", [note_id])))


@tool(read_only=True)
def note_search(lab: Lab, args: NoteSearchIn) -> NoteSearchResult:
    """Full-text search over notes (title, body, tags), best first."""
    match = fts_query(args.query)
    if not match:
        return NoteSearchResult(hits=[])
    clauses, params = ["notes_fts MATCH ?"], [match]
    for column, value in (("notes.campaign_id", args.campaign), ("notes.kind", args.kind)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    rows = lab.db.query(
        f"""SELECT notes.*, bm25(notes_fts) AS rank,
                   snippet(notes_fts, 1, '[', ']', '…', 12) AS snippet
            FROM notes_fts JOIN notes ON notes.id = notes_fts.rowid
            WHERE {' AND '.join(clauses)} ORDER BY rank LIMIT ?""",
        [*params, args.limit])
    found = []
    for row in rows:
        row = dict(row)
        rank, snippet = row.pop("rank"), row.pop("snippet")
        found.append(NoteHit(note=_note(row), rank=rank, snippet=snippet))
    hits = fit(found)  # notes run to 20k characters each
    return NoteSearchResult(hits=hits, omitted=len(found) - len(hits))
