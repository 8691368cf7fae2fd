"""Cursor paging shared by every list tool: the cursor is an opaque offset."""

from __future__ import annotations

from .errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PAGE_BUDGET_CHARS = 60_000  # one page stays under the lab's 80k-character result cap


def offset_from(cursor: str | None) -> int:
    if not cursor:
        return 0
    bogus = InvalidInput(f"cursor {cursor[:40]!r}{'…' if len(cursor) > 40 else ''} is not one this server gave out",
                         hint="pass back next_cursor from the previous page, or omit it")
    try:
        offset = int(cursor)
    except ValueError:
        raise bogus from None
    if not 0 <= offset < 2**63:  # a cursor this server gave out is a row offset SQLite can take
        raise bogus
    return offset


def next_cursor(offset: int, returned: int, total: int) -> str | None:
    return str(offset + returned) if offset + returned < total else None


def select_page(db, table: str, filters: dict, order_by: str, limit: int, cursor: str | None,
                columns: str = "*", conditions: tuple[str, ...] = ()) -> tuple[list[dict], int, str | None]:
    """One page of ``table``: rows matching every non-None ``filters`` value (column =
    value) and every raw SQL ``conditions`` entry; returns (rows, total, next_cursor).

    Column names, ``order_by`` and ``conditions`` come from code, never from callers.
    """
    clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
    params = [value for value in filters.values() if value is not None]
    clauses += conditions
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    total = db.execute(f"SELECT COUNT(*) FROM {table} {where}", params).fetchone()[0]
    offset = offset_from(cursor)
    rows = list(db.query(f"SELECT {columns} FROM {table} {where} ORDER BY {order_by} LIMIT ? OFFSET ?",
                         [*params, limit, offset]))
    return rows, total, next_cursor(offset, len(rows), total)


def refuse_list_arguments(args, one: str, modes: tuple[str, ...] = ()) -> None:
    """A tool that answers one item (by the id ``one``) or a page was given both: the list
    arguments would be silently ignored, so say so. ``args`` is the tool's input model;
    ``modes`` name arguments that go with ``one`` (trial_get's lineage)."""
    extra = sorted(k for k in args.model_fields_set - {one, *modes} if getattr(args, k) is not None)
    if extra:
        raise InvalidInput(f"{', '.join(extra)} {'is a list argument' if len(extra) == 1 else 'are list arguments'}; "
                           f"with `{one}` the tool returns that one {one}",
                           hint=f"drop {', '.join(extra)}, or drop `{one}` to list")


def fit(items: list, budget: int = PAGE_BUDGET_CHARS) -> list:
    """The longest prefix of ``items`` (pydantic models) whose JSON fits ``budget``
    characters, and never less than one item: for pages whose items can be large."""
    kept = []
    for item in items:
        budget -= len(item.model_dump_json())
        if kept and budget < 0:
            break
        kept.append(item)
    return kept
