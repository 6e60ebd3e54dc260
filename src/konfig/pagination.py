"""Cursor pagination: ``limit`` (clamped) and an opaque ``cursor``.

Lists answer ``{items, next_cursor}``.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel

from konfig.errors import ValidationFailed

MAX_LIMIT = 200


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ValidationFailed("cursor: not a cursor this server gave out") from exc
    if not isinstance(position, list):
        raise ValidationFailed("cursor: not a cursor this server gave out")
    return position


LimitQuery = Annotated[int, Query(ge=1, description=f"Page size, at most {MAX_LIMIT}")]
CursorQuery = Annotated[str | None, Query(description="The next_cursor of the previous page")]


def clamp(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))
