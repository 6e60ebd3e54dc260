"""The read path's HTTP details: query parameters, ETag matching, error answers, waiting."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive

from konfig.delivery.cache import Wake
from konfig.delivery.render import FORMATS, named_etags
from konfig.errors import KonfigError, ValidationFailed, error_body

MAX_WAIT = 60
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Query:
    variant: str = "json"  # a format, or "explain"
    wait: float = 0.0


DEFAULT_QUERY = Query()


def parse_query(raw: bytes, *, events: bool) -> Query:
    fmt, explain, wait = "json", False, 0.0
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name == "format":
            if value not in FORMATS:
                raise ValidationFailed(
                    f"format: must be one of {', '.join(FORMATS)}", {"field": "format"}
                )
            fmt = value
        elif name == "explain":
            if value.lower() not in _TRUE | _FALSE:
                raise ValidationFailed("explain: must be true or false", {"field": "explain"})
            explain = value.lower() in _TRUE
        elif name == "wait":
            try:
                wait = float(value)
            except ValueError:
                wait = -1
            if not 0 <= wait <= MAX_WAIT:
                raise ValidationFailed(
                    f"wait: must be a number of seconds from 0 to {MAX_WAIT}", {"field": "wait"}
                )
    if explain and fmt != "json":
        raise ValidationFailed("explain: only with format=json", {"field": "explain"})
    if events and (fmt != "json" or explain):
        raise ValidationFailed("format: the event stream sends JSON only", {"field": "format"})
    return Query("explain" if explain else fmt, wait)


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    if if_none_match == etag:
        return True
    return any(candidate in (etag, b"*") for candidate in named_etags(if_none_match))


def error_reply(exc: KonfigError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps(error_body(exc.code, exc.message, exc.details))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()),
    ]
    return exc.status_code, headers, body


def settle(waiter: asyncio.Future[Wake], why: Wake) -> None:
    if not waiter.done():
        waiter.set_result(why)


class Waiting:
    """A long poll's or stream's waiting: the future it waits on at the moment, and what may
    settle it from outside (the client leaving, its token revoked, a heartbeat)."""

    __slots__ = ("gone", "revoked", "target", "task")

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self.revoked = False
        self.target: asyncio.Future[Wake] | None = None
        self.task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.settle("gone")

    def settle(self, why: Wake) -> None:
        if why == "gone":
            self.gone = True
        elif why == "revoked":
            self.revoked = True
        if self.target is not None:
            settle(self.target, why)

    def arm(self, waiter: asyncio.Future[Wake]) -> None:
        self.target = waiter
        if self.gone:
            settle(waiter, "gone")
        elif self.revoked:
            self.revoked = False
            settle(waiter, "revoked")

    def stop(self) -> None:
        self.target = None
        self.task.cancel()
