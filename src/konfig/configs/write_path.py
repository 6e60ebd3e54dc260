"""Single-entry writes answered without FastAPI's routing and dependency solving.

``POST /api/v1/namespaces/{id}/configs`` and ``PUT|PATCH|DELETE …/configs/{key}`` are what
pipelines and deploy tools send in bulk. Measured through ``konfig serve``, FastAPI's routing (its
tree of included routers) and dependency solving cost about three times what the write itself
costs once it goes through the group commit (``konfig.configs.writes``): roughly 0.9 ms of CPU a
request against 0.3 ms.

``konfig.dispatch`` sends it the requests it ``takes``: a namespace id that is a UUID, a valid
key, a ``Content-Type: application/json`` body (none for DELETE); the request id, access log,
metrics, security headers, CORS and body cap wrap it as they wrap every answer. A body that does
not parse or that its schema refuses goes on to FastAPI's route (``konfig.configs.router``),
body and all, which names what is wrong with it: a 422 that names the field, say. Those routes
also document the endpoints in OpenAPI. What a write does and answers is the same either way:
the same principal (``konfig.auth.deps.admit``), the same session rules
(``konfig.db.session.request_session``), the same function per operation
(``konfig.configs.answers``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.audit.refusals import keep_trace
from konfig.auth.deps import admit, bearer_token, count_request, known_principal
from konfig.auth.principal import Principal
from konfig.configs import answers
from konfig.configs.answers import Written
from konfig.configs.schemas import KEY_PATTERN, ConfigCreate, ConfigPatch, ConfigReplace
from konfig.db.session import request_session
from konfig.errors import KonfigError, error_response
from konfig.input_guard import (
    bad_text,
    body_limit,
    decode_message,
    depth_refusal,
    load_json,
    nests_deeper,
)
from konfig.paths import API_PREFIX, ENTRIES_ROUTE, ENTRY_ROUTE
from konfig.state import AppState

PREFIX = f"{API_PREFIX}/namespaces/"
_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# The canonical form of a UUID only: any other spelling is FastAPI's to judge.
_UUID = r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
_ENTRY = re.compile(rf"{PREFIX}{_UUID}/configs/([^/]+)")
_ENTRIES = re.compile(rf"{PREFIX}{_UUID}/configs")
_KEY = re.compile(KEY_PATTERN)
_BODIES: dict[str, type[BaseModel]] = {
    "POST": ConfigCreate,
    "PUT": ConfigReplace,
    "PATCH": ConfigPatch,
}


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


class WritePath:
    """The write path's ASGI app; ``fallback`` (FastAPI) answers a body it does not read."""

    def __init__(self, state: AppState, fallback: ASGIApp) -> None:
        self.state = state
        self.fallback = fallback

    @staticmethod
    def takes(scope: Scope) -> bool:
        """A single-entry write, well formed as far as its path and media type tell."""
        if scope["method"] not in _WRITE_METHODS or not scope["path"].startswith(PREFIX):
            return False
        if _target(scope) is None:
            return False
        if scope["method"] == "DELETE":
            return True
        for name, value in scope["headers"]:
            if name == b"content-type":
                return bool(value.split(b";")[0].strip().lower() == b"application/json")
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = _target(scope) if self.takes(scope) else None
        if target is None:
            await self.fallback(scope, receive, send)
            return
        namespace_id, key = target
        headers = dict(reversed(scope["headers"]))  # a repeated header: the first wins
        body = b""
        if scope["method"] != "DELETE":
            try:
                body = await _body(receive)
            except HTTPException as exc:  # the body cap (BodyLimitMiddleware)
                too_large = error_response(exc.status_code, "PAYLOAD_TOO_LARGE", str(exc.detail))
                await too_large(scope, receive, send)
                return
        scope["route"] = ENTRY_ROUTE if key is not None else ENTRIES_ROUTE
        write = _Write(scope["method"], namespace_id, key, headers, body)
        try:
            written = await _apply(self.state, scope, write)
        except KonfigError as exc:
            refused = error_response(
                exc.status_code, exc.code, exc.message, exc.details, exc.headers
            )
            await refused(scope, receive, send)
            return
        if written is None:  # FastAPI names what is wrong with the body
            await self.fallback(scope, _replay(body, receive), send)
            return
        await written.response()(scope, receive, send)


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


async def _apply(state: AppState, scope: Scope, write: _Write) -> Written | None:
    """The write's answer; None when its body is FastAPI's to judge. The caller is
    authenticated before its body is parsed."""
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
) -> Written | None:
    writer, policy = state.entry_writer, state.write_policy
    message = _message(write)
    key = write.key or ""
    if write.method == "DELETE":
        return await answers.delete(
            session,
            writer=writer,
            principal=principal,
            namespace_id=write.namespace_id,
            key=key,
            message=message,
            if_match=write.header(b"if-match"),
        )
    payload = _parse(state, write.method, write.body)
    if payload is None:
        return None
    if write.method == "POST":
        return await answers.create(
            session,
            writer=writer,
            policy=policy,
            principal=principal,
            namespace_id=write.namespace_id,
            payload=payload,
            message=message,
            if_none_match=write.header(b"if-none-match"),
        )
    if write.method == "PUT":
        return await answers.replace(
            session,
            writer=writer,
            policy=policy,
            principal=principal,
            namespace_id=write.namespace_id,
            key=key,
            payload=payload,
            message=message,
            if_match=write.header(b"if-match"),
            if_none_match=write.header(b"if-none-match"),
        )
    return await answers.patch(
        session,
        writer=writer,
        policy=policy,
        principal=principal,
        namespace_id=write.namespace_id,
        key=key,
        payload=payload,
        message=message,
        if_match=write.header(b"if-match"),
    )
