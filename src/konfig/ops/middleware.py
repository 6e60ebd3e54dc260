"""Pure ASGI middleware for operations: the frame of every answer (``Exchange``: request id,
security headers, the last word on errors, access line and metrics), and CORS."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.audit.context import AuditContext, audit_context
from konfig.errors import error_response, internal_error
from konfig.logs import RequestLog
from konfig.metrics import Metrics
from konfig.middleware import request_id_var
from konfig.ops.wire import Wire
from konfig.ratelimit import client_address

UNMATCHED_ROUTE = "<unmatched>"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")

log = logging.getLogger("konfig.http")


class RouteTemplates:
    """The full template of the route a request matched (``/api/v1/users/{user_id}``).

    FastAPI (0.137 and later) keeps included routers as a tree, and ``scope["route"]`` holds the
    route with its own, unprefixed path; ``iter_route_contexts`` walks the tree with the full
    paths. Learnt once per route, so the lookup per request is one dict access.
    """

    def __init__(self) -> None:
        self._templates: dict[int, str] = {}

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        template = self._templates.get(id(route))
        if template is None:
            self._learn(scope.get("app"))
            template = self._templates.setdefault(
                id(route), getattr(route, "path_format", None) or UNMATCHED_ROUTE
            )
        return template

    def _learn(self, app: Any) -> None:
        try:
            from fastapi.routing import iter_route_contexts
        except ImportError:  # older FastAPI flattens routes: their own paths are complete
            return
        for context in iter_route_contexts(getattr(app, "routes", [])):
            if context.path_format:
                self._templates[id(context.original_route)] = context.path_format


# Swagger UI and ReDoc run an inline bootstrap script, style elements from script, draw
# data: images, and ReDoc searches in a blob: worker. Everything else loads from this origin.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DEFAULT_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HSTS = "max-age=63072000; includeSubDomains"


class Exchange:
    """What every HTTP answer passes through, whichever branch answers it (``konfig.dispatch``):
    its request id, its security headers, the last word on errors, one access line and one
    metrics observation.

    One wrapper, not four: the read path answers in about ten microseconds, and each layer of
    ASGI wrapping (a coroutine frame, a ``send`` closure) costs one or two of them.

    - The request id is ``X-Request-ID`` when the client sent a valid one, else generated; it is
      echoed back, kept in ``scope["state"]`` and in the context logs and the audit read.
    - The security headers go on every answer, the 500s included; an answer that sets its own
      Content-Security-Policy keeps it, and the API docs get the policy their pages need.
    - An unhandled exception is logged with the request id and answered as a 500 ``INTERNAL``
      in the one error shape (when nothing was sent yet).
    - The access line carries the request id, tenant and principal (stored in
      ``scope["state"]`` by whoever admitted the caller), method, route template, path, status
      and duration; never headers, the query string or a body.
    - Under uvicorn's httptools protocol, an answer's start is held until its body comes: a
      whole answer is then written to the connection at once (``konfig.ops.wire``); any other
      goes on through the server's ``send`` as it came.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        docs_paths: Iterable[str] = (),
        strict_transport: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.docs_paths = frozenset(docs_paths)
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if strict_transport:
            common.append((b"strict-transport-security", HSTS.encode()))
        self._common = common
        self._default_policy = (b"content-security-policy", DEFAULT_POLICY.encode())
        self._docs_policy = (b"content-security-policy", DOCS_POLICY.encode())
        self.log = RequestLog("konfig.access")
        self.routes = RouteTemplates()
        self.wire = Wire()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id
        id_token = request_id_var.set(request_id)
        client = scope.get("client")
        audit_token = audit_context.set(
            AuditContext(
                request_id=request_id,
                client=client[0] if client else "",
                headers=scope["headers"],
            )
        )
        policy = self._docs_policy if scope["path"] in self.docs_paths else self._default_policy
        status = 0  # nothing sent yet
        cycle = self.wire.cycle_of(send)
        held: Message | None = None  # the start, when held for its body (``cycle``)

        async def send_framed(message: Message) -> None:
            nonlocal status, held
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ())]
                for name, _ in headers:  # a plain loop: this runs for every answer
                    if name == b"content-security-policy":  # ASGI names are lower case
                        break
                else:
                    headers.append(policy)
                headers += self._common
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
                if cycle is not None:
                    held = message
                    return
            elif held is not None:
                start, held = held, None
                if not message.get("more_body", False) and self.wire.answer(
                    cycle, start["status"], start["headers"], message.get("body", b"")
                ):
                    return
                await send(start)
            await send(message)

        try:
            await self.app(scope, receive, send_framed)
            if held is not None:  # a start with no body after it: the server's to judge
                start, held = held, None
                await send(start)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id
            )
            if held is not None:  # never sent: the error's 500 goes instead
                held, status = None, 0
            if not status:
                await internal_error(request_id)(scope, receive, send_framed)
        finally:
            request_id_var.reset(id_token)
            audit_context.reset(audit_token)
            self._record(scope, request_id, status or 500, time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        method: str = scope["method"]
        route = self.routes.of(scope)
        self.metrics.requests.observe(method, route, status, seconds)
        state = scope["state"]
        line = {
            "request_id": request_id,
            "tenant": state.get("tenant_id"),
            "principal": state.get("actor"),
            "method": method,
            "route": route,
            "path": scope["path"],
            "status": status,
            # Milliseconds to three places: round(seconds * 1000, 3) goes through a decimal
            # string and costs five times this.
            "duration_ms": round(seconds * 1_000_000) / 1000,
            "client": client_address(scope),
        }
        self.log.write("request", line, error=status >= 500)


def _request_id(scope: Scope) -> str:
    """``X-Request-ID`` as sent when it is a valid one, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _VALID_REQUEST_ID.match(value):
                return bytes(value).decode()
            break
    return f"{_PROCESS_ID}{next(_SEQUENCE):016x}"


# Request ids need to be unique, not secret: a random 64-bit prefix per process and a counter
# (32 hex digits in all) cost a fifth of reading 16 random bytes from the kernel per request.
_PROCESS_ID = os.urandom(8).hex()
_SEQUENCE = itertools.count(1)


def _new_process_id() -> None:  # a forked worker must not repeat its parent's ids
    global _PROCESS_ID
    _PROCESS_ID = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_process_id)


class CorsMiddleware(CORSMiddleware):
    """Starlette's CORS allow-list, with a refused preflight in the one error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        headers = {
            name: value
            for name, value in answer.headers.items()
            if name not in ("content-type", "content-length")
        }
        message = bytes(answer.body).decode() or "CORS preflight refused"
        return error_response(answer.status_code, "BAD_REQUEST", message, headers=headers)
