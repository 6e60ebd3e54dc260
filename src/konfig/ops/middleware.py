"""Pure ASGI middleware for operations: the access log line with the request metrics, and the
security headers on every answer."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.errors import error_response
from konfig.logs import RequestLog
from konfig.metrics import Metrics
from konfig.ratelimit import client_address

UNMATCHED_ROUTE = "<unmatched>"


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


class AccessMiddleware:
    """One log line and the request metrics per HTTP request.

    The line carries the request id, tenant and principal (stored in ``scope["state"]`` by the
    request-id middleware and the auth dependency), method, route template, path, status and
    duration; never headers, the query string or a body. Every answer, the fast paths' too
    (``konfig.dispatch``), is counted and timed alike.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = RequestLog("konfig.access")
        self.routes = RouteTemplates()
        # Bound children by label values: skips prometheus_client's validation and lock.
        self._timed: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        route = self.routes.of(scope)
        children = self._timed.get((method, route, status))
        if children is None:
            children = self._timed[(method, route, status)] = (
                self.metrics.http_requests.labels(method, route, str(status)),
                self.metrics.http_request_duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)
        state = scope.get("state", {})
        line = {
            "request_id": state.get("request_id"),
            "tenant": state.get("tenant_id"),
            "principal": state.get("actor"),
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": client_address(scope),
        }
        self.log.write("request", line, error=status >= 500)


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


class SecurityHeadersMiddleware:
    """Security headers on every answer, errors included. A response that sets its own
    Content-Security-Policy keeps it."""

    def __init__(
        self, app: ASGIApp, *, docs_paths: Iterable[str] = (), strict_transport: bool = False
    ) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if strict_transport:
            common.append((b"strict-transport-security", HSTS.encode()))
        self._default = (common, (b"content-security-policy", DEFAULT_POLICY.encode()))
        self._docs = (common, (b"content-security-policy", DOCS_POLICY.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        common, policy = self._docs if scope["path"] in self.docs_paths else self._default

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *common]
                for name, _ in headers:  # a plain loop: this runs for every answer
                    if name.lower() == b"content-security-policy":
                        break
                else:
                    headers.append(policy)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
