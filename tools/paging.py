"""Cursor paging shared by every list tool: the cursor is an opaque offset."""

from __future__ import annotations

from .errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def offset_from(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(cursor)
    except ValueError:
        raise InvalidInput(f"cursor {cursor!r} is not one this server gave out",
                           hint="pass back next_cursor from the previous page, or omit it") from None
    if offset < 0:
        raise InvalidInput(f"cursor {cursor!r} is not one this server gave out")
    return offset


def next_cursor(offset: int, returned: int, total: int) -> str | None:
    return str(offset + returned) if offset + returned < total else None
