"""The read path's HTTP details: query parameters, ETag matching, error answers, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive

from konfig.delivery.cache import Wake
from konfig.delivery.render import FORMATS, named_etags
from konfig.errors import KonfigError, ValidationFailed, error_body

MAX_WAIT = 60
Stop = Callable[[], object]  # stops watching for the client's leaving
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
    settle it from outside (the client leaving, its token revoked, a heartbeat).

    The client's leaving is heard from the server's connection when it tells (``gone_hook``:
    ``Connection.when_gone`` under uvicorn's httptools), else by a task reading ``receive``."""

    __slots__ = ("beat", "gone", "revoked", "stop_watching", "target")

    def __init__(
        self, receive: Receive, gone_hook: Callable[[Callable[[], None]], Stop | None] | None = None
    ) -> None:
        self.gone = False
        self.revoked = False
        self.target: asyncio.Future[Wake] | None = None
        # Sends the heartbeat without waking the waiting task, when it can (True).
        self.beat: Callable[[], bool] | None = None
        stop = None if gone_hook is None else gone_hook(self._left)
        if stop is None:
            stop = asyncio.ensure_future(self._watch(receive)).cancel
        self.stop_watching: Stop = stop

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.settle("gone")

    def _left(self) -> None:
        self.settle("gone")

    def heartbeat(self) -> None:
        """The heartbeat: sent by ``beat`` while the task waits, else by the task, woken."""
        target, beat = self.target, self.beat
        if target is None or target.done() or beat is None or not beat():
            self.settle("heartbeat")

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
        self.stop_watching()
