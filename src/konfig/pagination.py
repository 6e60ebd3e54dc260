"""Cursor pagination: ``limit`` (clamped) and an opaque ``cursor``.

Lists answer ``{items, next_cursor}``. A cursor holds the position of the last row of the page
before it. ``paginate`` reads it back with one of the position readers here (``by_text``,
``by_time``, ``by_number``: a cursor the server never gave out is a 422), fetches one row more
than the limit to learn whether another page follows, and writes the cursor to that page.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Generic, Protocol, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel

from konfig.errors import ValidationFailed

MAX_LIMIT = 200
_LARGEST_NUMBER = 2**31 - 1  # the integer columns a list is ordered by (version, revision)
_NOT_A_CURSOR = "cursor: not a cursor this server gave out"

T = TypeVar("T")
Row = TypeVar("Row")
Position = TypeVar("Position")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


LimitQuery = Annotated[int, Query(ge=1, description=f"Page size, at most {MAX_LIMIT}")]
CursorQuery = Annotated[str | None, Query(description="The next_cursor of the previous page")]


def clamp(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))


async def paginate(
    cursor: str | None,
    limit: int,
    *,
    read: Callable[[list[Any]], Position],
    fetch: Callable[[Position | None, int], Awaitable[list[Row]]],
    position: Callable[[Row], list[Any]],
) -> tuple[list[Row], str | None]:
    """One page of a list and the cursor to the next one (None: this is the last).

    ``read`` turns the position a cursor holds back into what ``fetch(after, count)`` takes:
    it answers up to ``count`` rows past ``after`` (None: from the start) in the list's order.
    ``position`` says where a row stands, for the cursor of the page after it.
    """
    rows = await fetch(_start(cursor, read), limit + 1)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode(position(rows[-1]))


def _start(cursor: str | None, read: Callable[[list[Any]], Position]) -> Position | None:
    """Where a page starts: the position ``cursor`` holds, or None without a cursor."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        held = orjson.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(held, list):
            raise TypeError(held)
        return read(held)
    except (ValueError, TypeError) as exc:  # a bad base64, JSON or position alike
        raise ValidationFailed(_NOT_A_CURSOR) from exc


def cursor_at(position: list[Any]) -> str:
    """The cursor of the page that starts past ``position`` (a list whose rows are numbered
    without gaps, such as revisions, can so link to any page, the one before included)."""
    return _encode(position)


def _encode(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


class Timed(Protocol):
    """A row of a list ordered by creation time, ties broken by id."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


def by_text(position: list[Any]) -> str:
    """The position in a list ordered by one text column (a name, a key)."""
    (text,) = position
    if not isinstance(text, str):
        raise TypeError(text)
    return text


def by_number(position: list[Any]) -> int:
    """The position in a list ordered by a version or revision number."""
    (number,) = position
    if type(number) is not int or not 0 <= number <= _LARGEST_NUMBER:
        raise ValueError(number)
    return number


def by_time(position: list[Any]) -> tuple[datetime, uuid.UUID]:
    """The position in a list ordered by creation time, then id (see ``time_of``)."""
    at, row_id = position
    if not isinstance(at, str) or not isinstance(row_id, str):
        raise TypeError(position)
    return datetime.fromisoformat(at), uuid.UUID(row_id)


def time_of(row: Timed) -> list[Any]:
    """Where a row stands in a list ordered by creation time, then id."""
    return [row.created_at.isoformat(), str(row.id)]
