"""Single-entry writes answered ahead of FastAPI's routing and dependency solving.

``POST /api/v1/namespaces/{id}/configs`` and ``PUT|PATCH|DELETE …/configs/{key}`` are what
pipelines and deploy tools send in bulk. Measured through ``konfig serve``, FastAPI's routing (its
tree of included routers) and dependency solving cost about three times what the write itself
costs once it goes through the group commit (``konfig.configs.writes``): roughly 0.9 ms of CPU a
request against 0.3 ms.

This middleware sits innermost among the app's own, so the request id, access log, metrics,
security headers, CORS and body cap still apply, and it answers only well-formed requests: a
namespace id that is a UUID, a valid key, a ``Content-Type: application/json`` body that parses
and that its schema accepts, headers within their limits. Anything else goes on to FastAPI's
route (``konfig.configs.router``), body and all, which answers it exactly as before: a 422 that
names the field, say. Those routes also document the endpoints in OpenAPI. What a write does is
the same either way: the same principal (``konfig.auth.deps.admit``), the same session rules
(``konfig.db.session.request_session``), the same service functions, the same answer.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.auth.deps import admit, bearer_token, count_request, known_principal
from konfig.auth.principal import Principal
from konfig.configs import service
from konfig.configs.schemas import KEY_PATTERN, ConfigCreate, ConfigPatch, ConfigReplace
from konfig.db.session import keep_trace, request_session
from konfig.errors import KonfigError, error_response
from konfig.input_guard import (
    bad_text,
    body_limit,
    decode_message,
    depth_refusal,
    load_json,
    nests_deeper,
)
from konfig.state import AppState, app_state

PREFIX = "/api/v1/namespaces/"
# The canonical form of a UUID only: any other spelling is FastAPI's to judge.
_UUID = r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
_ENTRY = re.compile(rf"/api/v1/namespaces/{_UUID}/configs/([^/]+)")
_ENTRIES = re.compile(rf"/api/v1/namespaces/{_UUID}/configs")
_KEY = re.compile(KEY_PATTERN)
_BODIES: dict[str, type[BaseModel]] = {
    "POST": ConfigCreate,
    "PUT": ConfigReplace,
    "PATCH": ConfigPatch,
}


@dataclass(frozen=True, slots=True)
class _Template:
    """What the access log and metrics name the route by (``RouteTemplates.of``)."""

    path_format: str


_ENTRY_ROUTE = _Template("/api/v1/namespaces/{namespace_id}/configs/{key}")
_ENTRIES_ROUTE = _Template("/api/v1/namespaces/{namespace_id}/configs")


@dataclass(frozen=True, slots=True)
class _Write:
    method: str
    namespace_id: uuid.UUID
    key: str | None  # None: a create (POST), whose key is in the body
    headers: dict[bytes, bytes]
    body: bytes  # unparsed until the caller is authenticated; empty for DELETE

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")


class WritePathFirst:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("POST", "PUT", "PATCH", "DELETE")
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        target = _target(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        namespace_id, key = target
        headers = dict(reversed(scope["headers"]))  # a repeated header: the first wins
        body = b""
        if scope["method"] != "DELETE":
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media_type != b"application/json":
                await self.app(scope, receive, send)
                return
            try:
                body = await _body(receive)
            except HTTPException as exc:  # the body cap (BodyLimitMiddleware)
                too_large = error_response(exc.status_code, "PAYLOAD_TOO_LARGE", str(exc.detail))
                await too_large(scope, receive, send)
                return
        scope["route"] = _ENTRY_ROUTE if key is not None else _ENTRIES_ROUTE
        write = _Write(scope["method"], namespace_id, key, headers, body)
        try:
            answered = await _apply(scope, write)
        except KonfigError as exc:
            refused = error_response(
                exc.status_code, exc.code, exc.message, exc.details, exc.headers
            )
            await refused(scope, receive, send)
            return
        if answered is None:  # FastAPI names what is wrong with the body
            await self.app(scope, _replay(body, receive), send)
            return
        await _answer(*answered)(scope, receive, send)


def _target(scope: Scope) -> tuple[uuid.UUID, str | None] | None:
    """The namespace and key a write names, when the path is one of these routes, well formed."""
    method, path = scope["method"], scope["path"]
    key: str | None = None
    found = _ENTRY.fullmatch(path) if method != "POST" else None
    if found is not None:
        key = found.group(2)
        if not _KEY.fullmatch(key):
            return None
    elif method == "POST":
        found = _ENTRIES.fullmatch(path)
    if found is None:
        return None
    return uuid.UUID(found.group(1)), key


def _parse(state: AppState, method: str, body: bytes) -> Any:
    """The body as its schema reads it, or None when it does not (FastAPI then says why).

    Its depth is measured before anything parses it, and its text checked after
    (``konfig.input_guard``). Parsed by the standard library, as FastAPI parses it: orjson would
    read an integer beyond 64 bits as a float, and store a value other than the one sent.
    """
    limit = body_limit(state.settings.max_json_depth)
    if nests_deeper(body, limit):
        raise depth_refusal(limit)
    try:
        document = load_json(body)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and NotJson among them
        return None
    refused = bad_text(document)
    if refused is not None:
        raise refused
    try:
        return _BODIES[method].model_validate(document)
    except ValidationError:
        return None


def _message(write: _Write) -> str | None:
    """``X-Konfig-Message`` as sent: UTF-8 (HTTP hands headers over as bytes)."""
    raw = write.headers.get(b"x-konfig-message")
    return None if raw is None else decode_message(raw)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The request's messages again, the body already read first."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _apply(scope: Scope, write: _Write) -> tuple[int, Any] | None:
    """The write's status and entry; None when its body is FastAPI's to judge. The caller is
    authenticated before its body is parsed."""
    state = app_state(scope["app"])
    token = bearer_token(write.header(b"authorization"))
    known = None if token is None else known_principal(state, token)
    if known is None:  # a token the caches do not know yet (or none): read it in a session
        async with request_session(state, write=True) as session:
            principal = await admit(state, scope, session, write.header(b"authorization"))
            return await _perform(state, session, principal, write)
    # The common case: no session at all, and the write joins the group commit.
    await count_request(state, scope, known)
    try:
        return await _perform(state, None, known, write)
    except KonfigError as exc:
        await keep_trace(state, exc)  # a denial's audit row
        raise


async def _perform(
    state: AppState, session: AsyncSession | None, principal: Principal, write: _Write
) -> tuple[int, Any] | None:
    writer = state.entry_writer
    message = _message(write)
    payload: Any = None
    if write.method != "DELETE":
        payload = _parse(state, write.method, write.body)
        if payload is None:
            return None
    if write.method == "DELETE":
        await service.delete(
            session,
            writer=writer,
            principal=principal,
            namespace_id=write.namespace_id,
            key=write.key or "",
            message=message,
            if_match=write.header(b"if-match"),
        )
        return 204, None
    if write.method == "POST":
        entry = await service.create(
            session,
            writer=writer,
            principal=principal,
            namespace_id=write.namespace_id,
            payload=payload,
            message=message,
            if_none_match=write.header(b"if-none-match"),
        )
        status = 201
    elif write.method == "PUT":
        entry, created = await service.replace_entry(
            session,
            writer=writer,
            principal=principal,
            namespace_id=write.namespace_id,
            key=write.key or "",
            payload=payload,
            message=message,
            if_match=write.header(b"if-match"),
            if_none_match=write.header(b"if-none-match"),
        )
        status = 201 if created else 200
    else:
        entry = await service.patch(
            session,
            writer=writer,
            principal=principal,
            namespace_id=write.namespace_id,
            key=write.key or "",
            payload=payload,
            message=message,
            if_match=write.header(b"if-match"),
        )
        status = 200
    return status, service.render(state.write_policy, entry, reveal=False)


def _answer(status: int, rendered: Any) -> Response:
    if rendered is None:
        return Response(status_code=status)
    body = rendered.__pydantic_serializer__.to_json(rendered)
    headers = {"ETag": service.etag(rendered.version)}
    return Response(body, status, headers=headers, media_type="application/json")
