"""Pure ASGI middleware: body-size caps and a 503 when the database is out of reach; the request
id's context (set by ``konfig.ops.middleware.Exchange``, which also has the last word on
errors)."""

from __future__ import annotations

from contextvars import ContextVar

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.db.outage import OutageLog, unavailable
from konfig.errors import error_body, error_response

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


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
                raise  # Exchange logs it and answers 500
            refused = error_response(
                refusal.status_code, refusal.code, refusal.message, refusal.details, refusal.headers
            )
            await refused(scope, receive, send)
