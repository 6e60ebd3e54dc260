"""The read path as a plain ASGI app: ``GET /api/v1/config/{name}`` and ``…/{name}/events``.

``konfig.dispatch`` sends it its requests ahead of FastAPI's routing because it is what every
service calls all the time; the request id, access log, metrics, security headers and CORS wrap
it as they wrap every answer. A request with a cached API token for a cached namespace costs two
dict lookups (the token's hash, the namespace) and sends prebuilt bytes: no database, no
dependency injection, no threadpool, no serialisation.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from konfig.analytics.recorder import ALIVE, CONFIRMED, PUSHED_STATE, READ
from konfig.auth.deps import (
    NOT_AUTHENTICATED,
    authenticate,
    bearer_token,
    known_principal,
    name_in_access_log,
)
from konfig.auth.principal import Principal
from konfig.db.outage import unavailable
from konfig.delivery.cache import Resolved, Variant, Wake
from konfig.delivery.http import (
    DEFAULT_QUERY,
    Query,
    Waiting,
    error_reply,
    etag_matches,
    parse_query,
    settle,
)
from konfig.delivery.stream import SERVER_SEND, EventStream, connection_of, gone_hook
from konfig.errors import Forbidden, KonfigError, NotFound, Unauthenticated
from konfig.input_guard import refuse_bad_parameters
from konfig.namespaces.schemas import NAME_PATTERN
from konfig.paths import EVENTS_ROUTE, READ_PATH_PREFIX, READ_ROUTE
from konfig.tokens import codec
from konfig.tokens.cache import TokenRecord

if TYPE_CHECKING:
    from konfig.delivery.wiring import Delivery

log = logging.getLogger("konfig.delivery")

_NAME = re.compile(NAME_PATTERN)
_MAX_CALLERS = 10_000  # API tokens' callers kept (ReadPath.callers): past that, it starts again
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies not to buffer the stream
]


# Who a client is, for analytics: its X-Konfig-Instance (or address), and its X-Konfig-SDK.
Client = tuple[bytes | str, bytes | None]


def instance_of(scope: Scope, instance: bytes | None) -> bytes | str:
    """The instance as analytics count it: its id, or without one the client's address."""
    if instance is not None:
        return instance
    address = scope.get("client")
    return address[0] if address else ""


def client_of(scope: Scope, instance: bytes | None, sdk: bytes | None) -> Client:
    """The client as analytics count it: its instance, and its SDK."""
    return instance_of(scope, instance), sdk


def _headers(
    scope: Scope,
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None, bytes | None]:
    """The request's Authorization, If-None-Match, Last-Event-ID, X-Konfig-Instance and
    X-Konfig-SDK."""
    authorization = if_none_match = last_event_id = instance = sdk = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value
        elif key == b"if-none-match":
            if_none_match = value
        elif key == b"last-event-id":
            last_event_id = value
        elif key[0] == 120:  # b"x": one test for every other header, not two
            if key == b"x-konfig-instance":
                instance = value
            elif key == b"x-konfig-sdk":
                sdk = value
    return authorization, if_none_match, last_event_id, instance, sdk


def _query(scope: Scope, name: str, *, events: bool) -> Query:
    """The request's query; a 422 for a bad parameter or a bad namespace name. A plain read
    (no query, a plain name) has nothing to look at."""
    raw_query = scope["query_string"]
    if not raw_query and name.isascii() and "\x00" not in name:
        return DEFAULT_QUERY
    refuse_bad_parameters(parse_qsl(raw_query.decode("latin-1")), {"name": name})
    return parse_query(raw_query, events=events) if raw_query else DEFAULT_QUERY


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: uuid.UUID
    token_id: uuid.UUID | None  # API tokens: woken when the token is revoked
    actor: str  # as Principal.actor names it
    record: TokenRecord | None = None  # API tokens: their scopes, remembered per namespace
    user: Principal | None = None  # people: their role
    tenant: str = ""  # the tenant's id as the access log writes it (str of a UUID: 1 us)

    def may_read(self, namespace: str) -> bool:
        if self.record is not None:
            return self.record.may_read(namespace)
        return self.user is not None and self.user.allows(namespace, "read")

    def may_reveal(self, namespace: str) -> bool:
        if self.record is not None:
            return self.record.may_reveal(namespace)
        return self.user is not None and self.user.allows(namespace, "secrets")

    def admit(self, name: str, resolved: Resolved) -> bool:
        """May the caller receive ``resolved``? A resolved read draws only on namespaces the
        caller may read (403 naming the first it may not); returns whether secrets are shown:
        with the ``secrets`` permission on every namespace a secret comes from.

        A namespace's path ancestors count as part of it (``payments`` holds the defaults of
        ``payments/production``, and no one can make a namespace another's ancestor), so a layer
        is admitted when the caller may read it or a layer beneath it; an include, which an
        admin can point anywhere, must be readable itself."""
        resolution = resolved.resolution
        if resolution.inherits_only and self.may_read(name):  # the common case, cheaply
            if not resolution.secret_layers or self.may_reveal(name):
                return True
        layers = [layer.name for layer in resolution.layers]
        readable = [layer for layer in layers if self.may_read(layer)]
        for layer in layers:
            if not _covered(layer, readable):
                raise Forbidden(
                    f"this token may not read namespace {layer}, which {name} inherits "
                    "from: a resolved config draws only on namespaces the token may read",
                    {"namespace": layer},
                )
        revealable = [layer for layer in layers if self.may_reveal(layer)]
        return all(_covered(layer, revealable) for layer in resolution.secret_layers)


def _covered(layer: str, allowed: list[str]) -> bool:
    """Is ``layer`` one of ``allowed``, or a path ancestor of one of them?"""
    prefix = layer + "/"
    return any(name == layer or name.startswith(prefix) for name in allowed)


class ReadPath:
    """The read path's ASGI app: ``konfig.dispatch`` sends it ``GET|HEAD /api/v1/config/…``;
    FastAPI's documented routes (``konfig.delivery.router``) call ``serve`` the same way."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.cache = delivery.cache
        self.tokens = delivery.tokens
        self.counts = delivery.state.metrics.delivery
        self.analytics = delivery.analytics
        self.streams: set[Waiting] = set()  # open event streams, for heartbeats
        self.waiting = 0  # long polls and event streams waiting for a change right now
        # API tokens' callers by the Authorization header that named them: a token that calls
        # again is found without parsing the header, hashing the token or making its caller.
        # Each is used only while it is its token's record in the token cache (which drops or
        # replaces a record when the token changes), so it knows no more than that cache.
        self.callers: dict[bytes, tuple[TokenRecord, Caller]] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: an idle event stream holds its frames for hours.
        name: str = scope["path"][len(READ_PATH_PREFIX) :]
        events = name.endswith("/events")
        if events:
            name = name[: -len("/events")]
        scope["route"] = EVENTS_ROUTE if events else READ_ROUTE
        # Only a stream writes to the server's connection itself: a read leaves the scope be.
        server_send = scope.get(SERVER_SEND) if events else None
        return self.serve(scope, receive, send, name, events=events, server_send=server_send)

    def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        *,
        events: bool,
        server_send: Send | None = None,
    ) -> Awaitable[None]:
        """Answer for the namespace ``name`` (its event stream when ``events``); an event
        stream's changes are written straight to its connection when ``server_send``, the
        server's own, allows (``konfig.delivery.stream``)."""
        if events:
            return self._stream(scope, receive, send, name, server_send)
        return self._read(scope, receive, send, name)

    async def _read(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """A read: the config, a 304, or a long poll's answer."""
        head = scope["method"] == "HEAD"
        authorization, if_none_match, _, instance, sdk = _headers(scope)
        status, body = 200, b""
        headers: list[tuple[bytes, bytes]]
        try:
            caller = await self.authenticate(authorization, name)
            await self.admit_request(scope, caller)
            query = _query(scope, name, events=False)
            resolved = self.cache.get(caller.tenant_id, name)
            if resolved is None:
                resolved = await self.resolve(caller, name)
            else:
                self.counts.cache_hits += 1
            resolved, reveal = await self._admitted(caller, name, resolved, if_none_match, query)
            variant = resolved.variant(query.variant, reveal)
            self.counts.reads += 1
            kind = READ
            if if_none_match is not None and etag_matches(if_none_match, variant.etag):
                changed = None
                if query.wait > 0:
                    changed = await self._long_poll(
                        scope, receive, caller, authorization, name, query, if_none_match
                    )
                if changed is None:
                    status, headers, kind = 304, variant.not_modified_headers, CONFIRMED
                else:
                    variant, resolved = changed
                    headers, body, kind = variant.headers, variant.body, PUSHED_STATE
            else:
                headers, body = variant.headers, variant.body
                if resolved.reveals(reveal) and not head:
                    self.count_reveal(caller, name, resolved)
            analytics = self.analytics
            if analytics.enabled:
                who = instance_of(scope, instance)
                # Recorder.record inlined for its common case (an instance seen since the last
                # flush reads or confirms again): the read path's hottest lines.
                entry = analytics.entries.get((caller.actor, name, who))
                if entry is not None and kind != PUSHED_STATE:
                    entry[1] = resolved  # RESOLVED
                    entry[2] = analytics.now  # SEEN
                    entry[kind] += 1
                else:
                    analytics.record(caller.tenant_id, caller.actor, name, who, sdk, resolved, kind)
        except Exception as exc:
            status, headers, body = self._refusal(scope, name, exc)
        # A copy: the variants' headers are prebuilt, and CORS adds to the list it is sent.
        await send({"type": "http.response.start", "status": status, "headers": [*headers]})
        await send({"type": "http.response.body", "body": b"" if head else body})

    def _refusal(
        self, scope: Scope, name: str, exc: Exception
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The answer to a request that failed before its answer started (call it in the
        ``except``: an unexpected error is logged with its traceback)."""
        if isinstance(exc, KonfigError):
            return error_reply(exc)
        refusal: KonfigError | None = unavailable(exc, self.delivery.state.outages)
        if refusal is None:
            log.exception("the read path failed for %s", name)
            request_id = scope.get("state", {}).get("request_id", "-")
            refusal = KonfigError(f"Internal error (request {request_id})")
        return error_reply(refusal)

    async def admit_request(self, scope: Scope, caller: Caller) -> None:
        """Name the caller for the access log; count the request against the read budget."""
        name_in_access_log(scope, caller.actor, caller.tenant)
        await self.delivery.state.rate_limits.check_principal(actor=caller.actor, read=True)

    async def authenticate(self, authorization: bytes | None, name: str) -> Caller:
        """Who calls, if they may read ``name``: 401 or 403 otherwise."""
        caller = await self.identify(authorization)
        if not caller.may_read(name):
            raise Forbidden(f"this token may not read namespace {name}")
        return caller

    async def identify(self, authorization: bytes | None) -> Caller:
        """Who calls: an API token or a user's login; 401 when neither is valid."""
        if authorization is not None:
            known = self.callers.get(authorization)
            if known is not None:
                kept, caller = known
                if (
                    self.tokens.records.get(kept.token_hash) is kept
                    and kept.fresh_until >= time.monotonic()
                ):
                    self.tokens.admit(kept)  # expired: 401; counts the use
                    return caller
        token = bearer_token(authorization.decode("latin-1") if authorization else None)
        if token is None:
            raise Unauthenticated(NOT_AUTHENTICATED)
        if token.startswith(codec.PREFIX):
            record = self.tokens.lookup(token)
            if record is None:
                record = await self.tokens.fetch(self.delivery.sessionmaker, token)
            principal = self.tokens.admit(record)
            tenant = principal.tenant_id
            caller = Caller(tenant, principal.id, record.actor, record=record, tenant=str(tenant))
            if authorization is not None:
                if len(self.callers) >= _MAX_CALLERS:
                    self.callers.clear()
                self.callers[authorization] = (record, caller)
            return caller
        user = known_principal(self.delivery.state, token)
        if user is None:  # a login this process has not checked yet
            session = self.delivery.sessionmaker()
            try:
                user = await authenticate(self.delivery.state, session, token)
            finally:
                await session.close()
        return Caller(user.tenant_id, None, user.actor, user=user, tenant=str(user.tenant_id))

    async def resolve(self, caller: Caller, name: str, *, fresh: bool = False) -> Resolved:
        """The namespace's resolved config, cached (``fresh``: as the database has it now)."""
        resolved = None
        if _NAME.fullmatch(name) and len(name) <= 255:
            load = self.cache.reload if fresh else self.cache.resolve
            resolved = await load(caller.tenant_id, name)
        if resolved is None:
            raise NotFound(f"no namespace named {name}")
        return resolved

    async def _admitted(
        self, caller: Caller, name: str, resolved: Resolved, held: bytes | None, query: Query
    ) -> tuple[Resolved, bool]:
        """The state to answer with (``resolved``, or the database's when the client ``held``
        one this process never had; see ``_not_behind``), once the caller is admitted to it, and
        whether its secrets are shown."""
        reveal = caller.admit(name, resolved)
        if held is None:
            return resolved, reveal
        fresh = await self._not_behind(caller, name, resolved, held, query, reveal)
        return fresh, reveal if fresh is resolved else caller.admit(name, fresh)

    async def _not_behind(
        self,
        caller: Caller,
        name: str,
        resolved: Resolved,
        held: bytes,
        query: Query,
        reveal: bool,
    ) -> Resolved:
        """``resolved``, or the database's state if the client ``held`` a state this process has
        never had: another replica may have sent it before this one heard of the change, and
        a client must never be sent a state older than one it has seen."""
        if etag_matches(held, resolved.variant(query.variant, reveal).etag) or self.cache.knows(
            caller.tenant_id, name, held
        ):
            return resolved
        return await self.resolve(caller, name, fresh=True)

    def count_reveal(self, caller: Caller, name: str, resolved: Resolved) -> None:
        """An answer showed secrets: counted for the audit log, written in aggregate."""
        self.delivery.reveals.count(
            caller.tenant_id, caller.actor, name, resolved.resolution.secrets
        )

    async def wait(self, resolved: Resolved, waiting: Waiting, seconds: float | None) -> Wake:
        """Wait for a change of ``resolved``, the caller's token being revoked, the client going
        away, shutdown, a heartbeat, or (when given) ``seconds``."""
        waiter = self.cache.watch(resolved)
        waiting.arm(waiter)
        timer = None
        if seconds is not None:
            timer = asyncio.get_running_loop().call_later(seconds, settle, waiter, "timeout")
        self.waiting += 1
        try:
            return await waiter
        finally:
            self.waiting -= 1
            if timer is not None:
                timer.cancel()
            self.cache.unwatch(resolved, waiter)

    def register(self, caller: Caller, waiting: Waiting) -> None:
        if caller.token_id is not None:
            self.tokens.watch(caller.token_id, waiting)

    def unregister(self, caller: Caller, waiting: Waiting) -> None:
        waiting.stop()
        if caller.token_id is not None:
            self.tokens.unwatch(caller.token_id, waiting)
        self.streams.discard(waiting)

    def beat(self) -> None:
        """Every idle event stream's heartbeat (one timer for all of them): written straight
        to the connections that can take it, the others' tasks woken to send it."""
        for waiting in list(self.streams):
            waiting.heartbeat()

    async def _long_poll(
        self,
        scope: Scope,
        receive: Receive,
        caller: Caller,
        authorization: bytes | None,
        name: str,
        query: Query,
        if_none_match: bytes,
    ) -> tuple[Variant, Resolved] | None:
        """The new rendering (and the state it renders) as soon as it differs from
        ``If-None-Match``; None at the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + query.wait
        waiting = Waiting(receive, gone_hook(scope))
        self.register(caller, waiting)
        try:
            while True:
                resolved = self.cache.get(caller.tenant_id, name) or await self.resolve(
                    caller, name
                )
                resolved, reveal = await self._admitted(
                    caller, name, resolved, if_none_match, query
                )
                variant = resolved.variant(query.variant, reveal)
                if not etag_matches(if_none_match, variant.etag):
                    if resolved.reveals(reveal):
                        self.count_reveal(caller, name, resolved)
                    return variant, resolved
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                why = await self.wait(resolved, waiting, remaining)
                if why == "revoked":
                    caller = await self.authenticate(authorization, name)  # 401/403 now
                elif why not in ("changed", "heartbeat"):
                    return None  # timeout, shutdown, or nobody left to answer
        finally:
            self.unregister(caller, waiting)

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, name: str, server_send: Send | None
    ) -> None:
        """Server-sent events: the current state unless ``Last-Event-ID`` names it, then one
        event per change, a comment as heartbeat; ends cleanly when the server shuts down, and
        with an error event when the token stops being valid."""
        head = scope["method"] == "HEAD"
        authorization, _, last_event_id, instance, sdk = _headers(scope)
        last = last_event_id.decode("latin-1").strip().strip('"') if last_event_id else None
        try:
            caller = await self.authenticate(authorization, name)
            await self.admit_request(scope, caller)
            _query(scope, name, events=True)  # checked: a 422 for a bad parameter or name
            held = None if last is None else f'"{last}"'.encode("latin-1")
            resolved, _ = await self._admitted(
                caller, name, await self.resolve(caller, name), held, DEFAULT_QUERY
            )
        except Exception as exc:
            status, headers, body = self._refusal(scope, name, exc)
            await send({"type": "http.response.start", "status": status, "headers": [*headers]})
            await send({"type": "http.response.body", "body": b"" if head else body})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [*_SSE_HEADERS]})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
        connection = None if server_send is None else connection_of(server_send)
        client = client_of(scope, instance, sdk)
        stream = EventStream(self, caller, name, resolved, last, client, connection)
        waiting = Waiting(receive, None if connection is None else connection.when_gone)
        if connection is not None:
            waiting.beat = stream.beat
        self.register(caller, waiting)
        self.streams.add(waiting)
        try:
            await self._events(send, stream, authorization, waiting)
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
            self.unregister(stream.caller, waiting)
        await send({"type": "http.response.body", "body": b""})

    async def _events(
        self, send: Send, stream: EventStream, authorization: bytes | None, waiting: Waiting
    ) -> None:
        """The stream's loop: send the state it has not sent, wait (changes the stream can
        write itself are sent meanwhile, without waking this task), and again."""
        analytics = self.analytics
        cache = self.cache
        name = stream.name
        who, sdk = stream.client
        resolved: Resolved | None = stream.resolved
        kind = READ  # the state a stream starts with; then each change it pushes
        while resolved is not None and not cache.closing:
            caller = stream.caller
            reveal = caller.admit(name, resolved)  # an include added since: 403 as an event
            _, etag = resolved.shown(reveal)
            sent = etag != stream.last
            if sent:
                event = resolved.event(reveal)
                await send({"type": "http.response.body", "body": event, "more_body": True})
                self.counts.events_asgi += 1
                stream.last = etag
                if resolved.reveals(reveal):
                    self.count_reveal(caller, name, resolved)
            if analytics.enabled and (sent or kind == READ):  # READ: Last-Event-ID was current
                record = kind if sent else CONFIRMED
                analytics.record(caller.tenant_id, caller.actor, name, who, sdk, resolved, record)
            kind = PUSHED_STATE
            stream.resolved = resolved
            # ``wait``, inline (one coroutine fewer held by every idle stream); changes the
            # stream can write itself are sent meanwhile (``EventStream.follow``), and it holds
            # the state it watches at the end.
            waiter = cache.watch(resolved, stream)
            waiting.arm(waiter)
            self.waiting += 1
            try:
                why = await waiter
            finally:
                self.waiting -= 1
                cache.unwatch(stream.resolved, waiter, stream)
            if why == "gone":
                return
            if why == "shutdown":
                break
            if why in ("heartbeat", "revoked"):
                # Still allowed? (A revoked or expired token ends the stream with an error.)
                caller = stream.caller = await self.authenticate(authorization, name)
            if why == "heartbeat":
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                if analytics.enabled:  # still connected, still holding its state
                    analytics.record(
                        caller.tenant_id, caller.actor, name, who, sdk, stream.resolved, ALIVE
                    )
            resolved = cache.get(caller.tenant_id, name) or await cache.resolve(
                caller.tenant_id, name
            )
        if resolved is None:
            body = b"event: deleted\ndata: " + orjson.dumps({"namespace": name}) + b"\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
