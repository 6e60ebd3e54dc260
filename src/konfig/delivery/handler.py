"""The read path as a plain ASGI app: ``GET /api/v1/config/{name}`` and ``…/{name}/events``.

It sits in front of FastAPI's routing (see ``konfig.delivery.wiring``) because it is what every
service calls all the time. A request with a cached API token for a cached namespace costs two
dict lookups (the token's hash, the namespace) and sends prebuilt bytes: no database, no
dependency injection, no threadpool, no serialisation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from konfig.auth.deps import authenticate
from konfig.db.session import open_session
from konfig.delivery.cache import Resolved, Variant, Wake
from konfig.delivery.render import FORMATS
from konfig.errors import (
    Forbidden,
    KonfigError,
    NotFound,
    Unauthenticated,
    ValidationFailed,
    error_body,
)
from konfig.middleware import request_id_var
from konfig.namespaces.schemas import NAME_PATTERN
from konfig.tokens import codec

if TYPE_CHECKING:
    from konfig.delivery.wiring import Delivery

log = logging.getLogger("konfig.delivery")

MAX_WAIT = 60
PREFIX = "/api/v1/config/"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_NAME = re.compile(NAME_PATTERN)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies not to buffer the stream
]


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
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate in (etag, b"*"):
            return True
    return False


def error_reply(exc: KonfigError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps(error_body(exc.code, exc.message, exc.details))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()),
    ]
    return exc.status_code, headers, body


def _settle(waiter: asyncio.Future[Wake], why: Wake) -> None:
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
            _settle(self.target, why)

    def arm(self, waiter: asyncio.Future[Wake]) -> None:
        self.target = waiter
        if self.gone:
            _settle(waiter, "gone")
        elif self.revoked:
            self.revoked = False
            _settle(waiter, "revoked")

    def stop(self) -> None:
        self.target = None
        self.task.cancel()


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: uuid.UUID
    token_id: uuid.UUID | None  # API tokens: woken when the token is revoked


class ReadPath:
    """The read path's ASGI app. As ``__call__`` it answers ``/api/v1/config/…`` on its own,
    ahead of FastAPI (see ``ReadPathFirst``), so it also gives each answer its request id and
    turns an unexpected error into the one error shape; behind FastAPI's documented routes,
    ``serve`` leaves that to the app's middleware."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.cache = delivery.cache
        self.tokens = delivery.tokens
        self.streams: set[Waiting] = set()  # open event streams, for heartbeats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name: str = scope["path"][len(PREFIX) :]
        events = name.endswith("/events")
        if events:
            name = name[: -len("/events")]
        given = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given = value
                break
        request_id = (
            given if given and _VALID_REQUEST_ID.match(given) else os.urandom(16).hex().encode()
        )
        context = request_id_var.set(request_id.decode())
        try:
            await self.serve(scope, receive, send, name, events=events, request_id=request_id)
        finally:
            request_id_var.reset(context)

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        *,
        events: bool,
        request_id: bytes | None = None,
    ) -> None:
        """Answer for the namespace ``name``; ``request_id``: add it to the answer's headers."""
        head = scope["method"] == "HEAD"
        authorization = if_none_match = last_event_id = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"if-none-match":
                if_none_match = value
            elif key == b"last-event-id":
                last_event_id = value
        extra = [(b"x-request-id", request_id)] if request_id is not None else []
        status, headers, body = 200, _SSE_HEADERS, b""
        try:
            caller = await self._authenticate(authorization, name)
            raw_query = scope["query_string"]
            query = parse_query(raw_query, events=events) if raw_query else DEFAULT_QUERY
            if events:
                last = last_event_id.decode("latin-1").strip().strip('"') if last_event_id else None
                await self._stream(receive, send, caller, authorization, name, last, extra, head)
                return
            resolved = self.cache.get(caller.tenant_id, name) or await self._resolve(caller, name)
            variant = resolved.variant(query.variant)
            if if_none_match is not None and etag_matches(if_none_match, variant.etag):
                changed = None
                if query.wait > 0:
                    changed = await self._long_poll(
                        receive, caller, authorization, name, query, if_none_match
                    )
                if changed is None:
                    status, headers = 304, variant.not_modified_headers
                else:
                    headers, body = changed.headers, changed.body
            else:
                headers, body = variant.headers, variant.body
        except KonfigError as exc:
            status, headers, body = error_reply(exc)
        except Exception:
            log.exception("the read path failed for %s", name)
            message = f"Internal error (request {(request_id or b'-').decode()})"
            status, headers, body = error_reply(KonfigError(message))
        if extra:
            headers = headers + extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _authenticate(self, authorization: bytes | None, name: str) -> Caller:
        """Who calls, if they may read ``name``: 401 or 403 otherwise."""
        if authorization is None:
            raise Unauthenticated("Not authenticated: send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Not authenticated: send 'Authorization: Bearer <token>'")
        if token.startswith(codec.PREFIX):
            record = self.tokens.lookup(token)
            if record is None:
                record = await self.tokens.fetch(self.delivery.sessionmaker, token)
            principal = self.tokens.admit(record)
            if not record.may_read(name):
                raise Forbidden(f"this token may not read namespace {name}")
            return Caller(principal.tenant_id, principal.id)
        session = await open_session(self.delivery.sessionmaker, write=False)
        try:
            principal = await authenticate(self.delivery.state, session, token)
        finally:
            await session.close()
        if not principal.allows(name, "read"):
            raise Forbidden(f"this token may not read namespace {name}")
        return Caller(principal.tenant_id, principal.id if principal.kind == "token" else None)

    async def _resolve(self, caller: Caller, name: str) -> Resolved:
        resolved = None
        if _NAME.fullmatch(name) and len(name) <= 255:
            resolved = await self.cache.resolve(caller.tenant_id, name)
        if resolved is None:
            raise NotFound(f"no namespace named {name}")
        return resolved

    async def _wait(self, resolved: Resolved, waiting: Waiting, seconds: float | None) -> Wake:
        """Wait for a change of ``resolved``, the caller's token being revoked, the client going
        away, shutdown, a heartbeat, or (when given) ``seconds``."""
        waiter = self.cache.watch(resolved)
        waiting.arm(waiter)
        timer = None
        if seconds is not None:
            timer = asyncio.get_running_loop().call_later(seconds, _settle, waiter, "timeout")
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self.cache.unwatch(resolved, waiter)

    def _register(self, caller: Caller, waiting: Waiting) -> None:
        if caller.token_id is not None:
            self.tokens.watch(caller.token_id, waiting)

    def _unregister(self, caller: Caller, waiting: Waiting) -> None:
        waiting.stop()
        if caller.token_id is not None:
            self.tokens.unwatch(caller.token_id, waiting)
        self.streams.discard(waiting)

    def beat(self) -> None:
        """Wake every idle event stream for its heartbeat (one timer for all of them)."""
        for waiting in list(self.streams):
            waiting.settle("heartbeat")

    async def _long_poll(
        self,
        receive: Receive,
        caller: Caller,
        authorization: bytes | None,
        name: str,
        query: Query,
        if_none_match: bytes,
    ) -> Variant | None:
        """The new rendering as soon as it differs from ``If-None-Match``; None at the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + query.wait
        waiting = Waiting(receive)
        self._register(caller, waiting)
        try:
            while True:
                resolved = self.cache.get(caller.tenant_id, name) or await self._resolve(
                    caller, name
                )
                variant = resolved.variant(query.variant)
                if not etag_matches(if_none_match, variant.etag):
                    return variant
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                why = await self._wait(resolved, waiting, remaining)
                if why == "revoked":
                    caller = await self._authenticate(authorization, name)  # 401/403 now
                elif why not in ("changed", "heartbeat"):
                    return None  # timeout, shutdown, or nobody left to answer
        finally:
            self._unregister(caller, waiting)

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        caller: Caller,
        authorization: bytes | None,
        name: str,
        last_event_id: str | None,
        extra: list[tuple[bytes, bytes]],
        head: bool,
    ) -> None:
        """Server-sent events: the current state unless ``Last-Event-ID`` names it, then one
        event per change, a comment as heartbeat; ends cleanly when the server shuts down, and
        with an error event when the token stops being valid."""
        resolved = await self._resolve(caller, name)
        headers = _SSE_HEADERS + extra
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
        waiting = Waiting(receive)
        self._register(caller, waiting)
        self.streams.add(waiting)
        try:
            await self._events(send, caller, authorization, name, resolved, last_event_id, waiting)
        except Exception as exc:
            # The answer has started: the error can only travel as an event.
            if isinstance(exc, KonfigError):
                code, message = exc.code, exc.message
            else:
                log.exception("event stream for %s failed", name)
                code, message = "INTERNAL", "the event stream failed: reconnect"
            data = orjson.dumps({"code": code, "message": message})
            body = b"event: error\ndata: " + data + b"\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self._unregister(caller, waiting)
        await send({"type": "http.response.body", "body": b""})

    async def _events(
        self,
        send: Send,
        caller: Caller,
        authorization: bytes | None,
        name: str,
        resolved: Resolved | None,
        last: str | None,
        waiting: Waiting,
    ) -> None:
        while resolved is not None and not self.cache.closing:
            if resolved.etag != last:
                event = resolved.event()
                await send({"type": "http.response.body", "body": event, "more_body": True})
                last = resolved.etag
            why = await self._wait(resolved, waiting, None)
            if why == "gone":
                return
            if why == "shutdown":
                break
            if why in ("heartbeat", "revoked"):
                # Still allowed? (A revoked or expired token ends the stream with an error.)
                caller = await self._authenticate(authorization, name)
            if why == "heartbeat":
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
            resolved = self.cache.get(caller.tenant_id, name) or await self.cache.resolve(
                caller.tenant_id, name
            )
        if resolved is None:
            body = b"event: deleted\ndata: " + orjson.dumps({"namespace": name}) + b"\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
