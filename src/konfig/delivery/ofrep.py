"""OpenFeature's Remote Evaluation Protocol (OFREP) as a plain ASGI app, beside the read path.

``POST /ofrep/v1/evaluate/flags/{key}`` evaluates one flag, ``POST /ofrep/v1/evaluate/flags``
every flag of the namespace (``ETag`` / ``If-None-Match`` → 304), and ``GET /ofrep/v1/events``
is the server-sent-events stream the bulk answer's ``eventStreams`` points at: one
``refetchEvaluation`` message each time the namespace's flags change, woken by the read path's
change push. The bodies are the protocol's (``service/openapi.yaml`` of open-feature/protocol):
``{key, value, reason, variant, metadata}``, or ``{key, errorCode, errorDetails}`` with 400 or
404; 401, 403, 413, 422 and 429 keep Konfig's one error shape, whose status is what providers
read.

The caller is an API token (``Authorization: Bearer kfg_…`` or ``X-API-Key: kfg_…``) or a
user's access token; the namespace is ``X-Konfig-Namespace``, or the token's one scope when it
names exactly one namespace. Flags come from the read path's cache of resolved configs
(``Resolved.flags``: compiled once per state), so a flag inherits like any entry and a change
reaches every replica the way a change of config does.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import orjson
from starlette.types import Message, Receive, Scope, Send

from konfig.analytics.evaluations import Outcomes
from konfig.analytics.recorder import ALIVE, EVALUATION, EVALUATION_304
from konfig.db.outage import unavailable
from konfig.delivery.cache import Resolved
from konfig.delivery.handler import Caller, Client, ReadPath, client_of
from konfig.delivery.http import Waiting, error_reply, etag_matches
from konfig.delivery.stream import gone_hook
from konfig.errors import (
    Forbidden,
    KonfigError,
    PayloadTooLarge,
    Unauthenticated,
    ValidationFailed,
)
from konfig.flags.definition import FlagSet
from konfig.input_guard import bad_text, refuse_bad_parameters
from konfig.paths import OFREP_BULK_ROUTE, OFREP_EVENTS_ROUTE, OFREP_FLAG_ROUTE, OFREP_PREFIX
from konfig.tokens.scopes import Scope as TokenScope

if TYPE_CHECKING:
    from konfig.delivery.wiring import Delivery

log = logging.getLogger("konfig.flags")

BULK_PATH = OFREP_PREFIX + "evaluate/flags"
FLAG_PREFIX = BULK_PATH + "/"
EVENTS_PATH = OFREP_PREFIX + "events"
MAX_CONTEXT_BYTES = 64 * 1024
_NAMESPACE_HEADER = b"x-konfig-namespace"
_JSON = (b"content-type", b"application/json")
_PLAIN: list[tuple[bytes, bytes]] = [_JSON]  # a JSON answer whose length is added when sent
REMEMBERED_ANSWERS = 1024  # bulk answers kept per state of a namespace's flags
_CACHING = (b"cache-control", b"private, no-cache")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class BulkAnswer:
    """A bulk evaluation as sent, and the variants it counts."""

    etag: bytes
    body: bytes
    headers: list[tuple[bytes, bytes]]
    not_modified: list[tuple[bytes, bytes]]
    outcomes: Outcomes


class Refusal(Exception):
    """An OFREP error answer: its status and the protocol's body."""

    def __init__(self, status: int, code: str, detail: str, key: str | None = None) -> None:
        super().__init__(detail)
        body: dict[str, str] = {} if key is None else {"key": key}
        body.update(errorCode=code, errorDetails=detail)
        self.status = status
        self.body = orjson.dumps(body)


def takes(scope: Scope) -> bool:
    """Whether a request is OFREP's (the dispatcher's question)."""
    path: str = scope["path"]
    if scope["method"] == "POST":
        return path == BULK_PATH or (path.startswith(FLAG_PREFIX) and len(path) > len(FLAG_PREFIX))
    return scope["method"] in ("GET", "HEAD") and path == EVENTS_PATH


class Ofrep:
    """The OFREP endpoints' ASGI app; ``konfig.dispatch`` sends it what ``takes`` accepts."""

    def __init__(self, delivery: Delivery, read_path: ReadPath) -> None:
        self.delivery = delivery
        self.read_path = read_path
        self.cache = delivery.cache
        self.counts = read_path.analytics.evaluations  # per flag, variant and caller
        self.max_body = min(MAX_CONTEXT_BYTES, delivery.settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == EVENTS_PATH:
            scope["route"] = OFREP_EVENTS_ROUTE
            await self._answer(scope, receive, send, None, events=True)
            return
        key = None if path == BULK_PATH else path[len(FLAG_PREFIX) :]
        scope["route"] = OFREP_BULK_ROUTE if key is None else OFREP_FLAG_ROUTE
        await self._answer(scope, receive, send, key, events=False)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, key: str | None, *, events: bool
    ) -> None:
        authorization = api_key = namespace = if_none_match = instance = sdk = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name[0] == 120:  # b"x": one test for every other header, not four
                if name == _NAMESPACE_HEADER:
                    namespace = value
                elif name == b"x-api-key":
                    api_key = value
                elif name == b"x-konfig-instance":
                    instance = value
                elif name == b"x-konfig-sdk":
                    sdk = value
            elif name == b"if-none-match":
                if_none_match = value
        if authorization is None and api_key is not None:
            authorization = b"Bearer " + api_key.strip()
        status, headers, body = 200, _PLAIN, b""
        try:
            caller = await self._identify(scope, authorization, key)
            raw = b"" if events else await _read_body(receive, self.max_body)
            try:
                name = _namespace(caller, namespace, scope["query_string"])
            except ValidationFailed:
                _context(raw, key)  # a bad body is named before a missing namespace
                raise
            if not caller.may_read(name):
                raise Forbidden(f"this token may not read namespace {name}")
            await self.read_path.admit_request(scope, caller)
            client = client_of(scope, instance, sdk)
            if events:
                await self._stream(receive, send, caller, authorization, name, scope, client)
                return
            resolved = await self._resolved(caller, name, scope["query_string"])
            flags = resolved.flags()
            if key is None:
                status, headers, body = self._bulk(caller, resolved, flags, raw, if_none_match)
            else:
                body = self._single(caller, name, flags, key, _context(raw, key))
            analytics = self.read_path.analytics
            if analytics.enabled:
                kind = EVALUATION_304 if status == 304 else EVALUATION
                # Recorder.record inlined for its common case, as the read path does it (an
                # instance seen since the last flush evaluates again).
                entry = analytics.entries.get((caller.actor, name, client[0]))
                if entry is not None:
                    entry[1] = resolved  # RESOLVED
                    entry[2] = analytics.now  # SEEN
                    entry[kind] += 1
                else:
                    analytics.record(
                        caller.tenant_id, caller.actor, name, client[0], sdk, resolved, kind
                    )
        except Refusal as exc:
            status, body = exc.status, exc.body
        except KonfigError as exc:
            status, headers, body = error_reply(exc)
        except Exception as exc:
            refusal: KonfigError | None = unavailable(exc, self.delivery.state.outages)
            if refusal is None:
                log.exception("OFREP evaluation failed")
                request_id = scope.get("state", {}).get("request_id", "-")
                refusal = KonfigError(f"Internal error (request {request_id})")
            status, headers, body = error_reply(refusal)
        if headers is _PLAIN:
            headers = [_JSON, (b"content-length", str(len(body)).encode())]
        # A copy: remembered answers' headers are shared, and CORS adds to the list it is sent.
        await send({"type": "http.response.start", "status": status, "headers": [*headers]})
        await send({"type": "http.response.body", "body": body})

    async def _identify(self, scope: Scope, authorization: bytes | None, key: str | None) -> Caller:
        """Who calls (401 when that cannot be told), once the request's parameters are text."""
        if authorization is None:
            raise Unauthenticated(
                "Not authenticated: send 'Authorization: Bearer <token>' or 'X-API-Key: <token>'"
            )
        caller = await self.read_path.identify(authorization)
        query: bytes = scope["query_string"]
        if query or (key is not None and (not key.isascii() or "\x00" in key)):
            path = {"key": key} if key is not None else {}
            refuse_bad_parameters(parse_qsl(query.decode("latin-1")), path)
        return caller

    async def _resolved(self, caller: Caller, name: str, query: bytes) -> Resolved:
        """The namespace's state; fresh from the database when a change event named a state of
        its flags this replica has not heard of yet (``flagConfigEtag``)."""
        resolved = self.cache.get(caller.tenant_id, name) or await self.read_path.resolve(
            caller, name
        )
        caller.admit(name, resolved)  # 403 when it draws on a namespace the caller may not read
        if query:
            told = dict(parse_qsl(query.decode("latin-1"))).get("flagConfigEtag")
            if told and told.strip('"') != resolved.flags().digest:
                resolved = await self.read_path.resolve(caller, name, fresh=True)
                caller.admit(name, resolved)
        return resolved

    def _single(
        self, caller: Caller, name: str, flags: FlagSet, key: str, context: dict[str, Any]
    ) -> bytes:
        flag = flags.flags.get(key)
        if flag is None:
            raise Refusal(404, "FLAG_NOT_FOUND", f"flag {key} was not found in {name}", key)
        outcome = flag.evaluate(context)
        if outcome.error is not None:
            raise Refusal(400, outcome.error, outcome.detail, key)
        self.counts.count(caller.tenant_id, name, key, outcome.variant, caller.actor)
        return flag.answer(outcome)

    def _bulk(
        self,
        caller: Caller,
        resolved: Resolved,
        flags: FlagSet,
        raw: bytes,
        if_none_match: bytes | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Every flag for the request's context; the ETag names the flags' state and the
        context. The answer is remembered with the state, by request body: a client-side
        provider polls with the same context again and again."""
        answer: BulkAnswer | None = flags.answers.get(raw) if flags.remembers else None
        if answer is None:
            answer = self._evaluate_all(resolved, flags, _context(raw, None))
            if flags.remembers:
                if len(flags.answers) >= REMEMBERED_ANSWERS:
                    flags.answers.clear()
                flags.answers[raw] = answer
        if if_none_match is not None and etag_matches(if_none_match, answer.etag):
            return 304, answer.not_modified, b""
        name = resolved.resolution.name
        self.counts.count_answer(caller.tenant_id, name, caller.actor, answer.outcomes)
        return 200, answer.headers, answer.body

    def _evaluate_all(
        self, resolved: Resolved, flags: FlagSet, context: dict[str, Any]
    ) -> BulkAnswer:
        seen = hashlib.blake2b(orjson.dumps(context, option=orjson.OPT_SORT_KEYS), digest_size=8)
        etag = f'"{flags.digest}.{seen.hexdigest()}"'.encode()
        name = resolved.resolution.name
        answers = []
        outcomes = []
        for key, flag in flags.flags.items():
            outcome = flag.evaluate(context)
            if outcome.error is None:
                answers.append(flag.answer(outcome))
                outcomes.append((key, outcome.variant or ""))
            else:
                failure = {"key": key, "errorCode": outcome.error, "errorDetails": outcome.detail}
                answers.append(orjson.dumps(failure))
        stream = f"{EVENTS_PATH}?namespace={quote(name, safe='/')}"
        rest = orjson.dumps(
            {
                "eventStreams": [{"type": "sse", "endpoint": {"requestUri": stream}}],
                "metadata": {"namespace": name, "revision": resolved.resolution.revision},
            }
        )
        body = b'{"flags":[' + b",".join(answers) + b"]," + rest[1:]
        headers = [_JSON, (b"etag", etag), _CACHING, (b"content-length", str(len(body)).encode())]
        return BulkAnswer(etag, body, headers, [(b"etag", etag), _CACHING], tuple(outcomes))

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        caller: Caller,
        authorization: bytes | None,
        name: str,
        scope: Scope,
        client: Client,
    ) -> None:
        """Server-sent events: ``refetchEvaluation`` whenever the namespace's flags change (and
        at once when ``Last-Event-ID`` names a state they have left), a comment as heartbeat."""
        last = None
        for header, value in scope["headers"]:
            if header == b"last-event-id":
                last = value.decode("latin-1").strip()
        resolved = await self._resolved(caller, name, b"")
        await send({"type": "http.response.start", "status": 200, "headers": [*_SSE_HEADERS]})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
        read_path = self.read_path
        waiting = Waiting(receive, gone_hook(scope))
        read_path.register(caller, waiting)
        read_path.streams.add(waiting)
        last = last or resolved.flags().digest
        analytics = read_path.analytics
        who, sdk = client
        if analytics.enabled:  # connected: the evaluations it fetches are counted as they come
            analytics.record(caller.tenant_id, caller.actor, name, who, sdk, resolved, ALIVE)
        try:
            while True:
                digest = resolved.flags().digest
                if digest != last:
                    await send(
                        {"type": "http.response.body", "body": _event(digest), "more_body": True}
                    )
                    last = digest
                why = await read_path.wait(resolved, waiting, None)
                if why in ("gone", "shutdown"):
                    break
                if why in ("heartbeat", "revoked"):
                    caller = await read_path.authenticate(authorization, name)
                if why == "heartbeat":
                    await send(
                        {"type": "http.response.body", "body": b": ping\n\n", "more_body": True}
                    )
                    if analytics.enabled:
                        analytics.record(
                            caller.tenant_id, caller.actor, name, who, sdk, resolved, ALIVE
                        )
                found = self.cache.get(caller.tenant_id, name) or await self.cache.resolve(
                    caller.tenant_id, name
                )
                if found is None:
                    break  # the namespace was deleted: nothing more will change
                resolved = found
        except KonfigError as exc:  # the answer has started: the error travels as an event
            data = orjson.dumps({"code": exc.code, "message": exc.message})
            body = b"event: error\ndata: " + data + b"\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            read_path.unregister(caller, waiting)
        await send({"type": "http.response.body", "body": b""})


def _event(digest: str) -> bytes:
    data = orjson.dumps(
        {"type": "refetchEvaluation", "etag": digest, "lastModified": int(time.time())}
    )
    return b"id: " + digest.encode() + b"\nevent: message\ndata: " + data + b"\n\n"


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the common case: the body in one message
        if len(body) > limit:
            raise PayloadTooLarge(f"an evaluation request is at most {limit} bytes")
        return body
    return await _read_chunks(receive, limit, message)


async def _read_chunks(receive: Receive, limit: int, message: Message) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"an evaluation request is at most {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
        message = await receive()
    return b"".join(chunks)


def _context(body: bytes, key: str | None) -> dict[str, Any]:
    """The request's evaluation context: 400 ``PARSE_ERROR`` or ``INVALID_CONTEXT`` else."""
    if not body or body.isspace():
        return {}
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, "PARSE_ERROR", f"the body is not JSON: {exc}", key) from None
    if not isinstance(request, dict):
        raise Refusal(400, "PARSE_ERROR", 'the body is a JSON object: {"context": {…}}', key)
    # A NUL (JSON can only escape it; orjson refuses lone surrogates): 422 naming where.
    refused = bad_text(request) if b"\\u0000" in body else None
    if refused is not None:
        raise refused
    context = request.get("context", {})
    if not isinstance(context, dict):
        raise Refusal(400, "INVALID_CONTEXT", "context must be an object", key)
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise Refusal(400, "INVALID_CONTEXT", "targetingKey must be a string", key)
    return context


def _namespace(caller: Caller, header: bytes | None, query: bytes) -> str:
    """The namespace named by ``X-Konfig-Namespace``, the query, or the token's one scope."""
    if header is not None:
        return header.decode("latin-1").strip()
    return _query_namespace(query) or _single_namespace(caller)


def _query_namespace(query: bytes) -> str | None:
    if not query:
        return None
    return dict(parse_qsl(query.decode("latin-1"))).get("namespace")


def _single_namespace(caller: Caller) -> str:
    """The namespace a token's scopes name, when they name exactly one."""
    principal = caller.record.principal if caller.record is not None else None
    only = _scoped(principal.scopes) if principal is not None else None
    if only is None:
        raise ValidationFailed(
            "name the namespace whose flags to evaluate with the X-Konfig-Namespace header "
            "(only a token scoped to exactly one namespace may leave it out)",
            {"field": "X-Konfig-Namespace"},
        )
    return only


@functools.lru_cache(maxsize=4096)
def _scoped(scopes: tuple[TokenScope, ...]) -> str | None:
    names = {s.pattern for s in scopes if "read" in s.permissions}
    if len(names) == 1:
        (only,) = names
        if not any(c in only for c in "*?"):
            return only
    return None
