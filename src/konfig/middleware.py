"""Pure ASGI middleware: request ids, body-size caps, and the last word on unhandled errors."""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.audit.context import AuditContext, audit_context
from konfig.db.outage import OutageLog, unavailable
from konfig.errors import error_body, error_response, internal_error

log = logging.getLogger("konfig.http")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _send_error(send: Send, status: int, code: str, message: str, request_id: str) -> None:
    """An error answer sent straight to ``send``, with the request id."""
    body = orjson.dumps(error_body(code, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID`` accepted or generated, echoed back) and turns
    an unhandled exception into a 500 ``INTERNAL`` in the one error shape, logged with that id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        if given is not None and _VALID_REQUEST_ID.match(given):
            request_id = given.decode()
        else:
            request_id = os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        client = scope.get("client")
        audit_token = audit_context.set(
            AuditContext(request_id=request_id, client=client[0] if client else "")
        )
        started = False
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id
            )
            if not started:
                await internal_error(request_id)(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            audit_context.reset(audit_token)


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        too_large = f"The request body is larger than the limit of {self.max_bytes} bytes"
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            request_id = scope.get("state", {}).get("request_id", "-")
            await _send_error(send, 413, "PAYLOAD_TOO_LARGE", too_large, request_id)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, counting_receive, send)


class DatabaseOutageMiddleware:
    """Answers 503 with ``Retry-After`` when a request fails because the database is out of
    reach (``konfig.db.outage``). It sits inside the access log and metrics, so that they count
    a 503, and outside the dispatcher (``konfig.dispatch``), so that it sees the single-entry
    writes and FastAPI's routes alike (the read path answers its own 503s)."""

    def __init__(self, app: ASGIApp, outages: OutageLog) -> None:
        self.app = app
        self.outages = outages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            refusal = None if started else unavailable(exc, self.outages)
            if refusal is None:
                raise  # RequestContextMiddleware logs it and answers 500
            refused = error_response(
                refusal.status_code, refusal.code, refusal.message, refusal.details, refusal.headers
            )
            await refused(scope, receive, send)
