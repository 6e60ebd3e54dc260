"""Pure ASGI middleware for operations: the access log line with the request metrics."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.logs import get_logger
from konfig.metrics import Metrics
from konfig.ratelimit import READ_PATH_PREFIX, client_address

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
    duration; never headers, the query string or a body. The read path (``/api/v1/config/``) is
    only counted: a labelled histogram there would cost a fifth of its throughput.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = get_logger("konfig.access")
        self.routes = RouteTemplates()
        # Bound children by label values: skips prometheus_client's validation and lock.
        self._timed: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._counted: dict[int, Any] = {}

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
        if path.startswith(READ_PATH_PREFIX):
            counter = self._counted.get(status)
            if counter is None:
                counter = self._counted[status] = self.metrics.read_path_requests.labels(
                    str(status)
                )
            counter.inc()
        else:
            children = self._timed.get((method, route, status))
            if children is None:
                children = self._timed[(method, route, status)] = (
                    self.metrics.http_requests.labels(method, route, str(status)),
                    self.metrics.http_request_duration.labels(method, route),
                )
            children[0].inc()
            children[1].observe(seconds)
        state = scope.get("state", {})
        (self.log.error if status >= 500 else self.log.info)(
            "request",
            request_id=state.get("request_id"),
            tenant=state.get("tenant_id"),
            principal=state.get("actor"),
            method=method,
            route=route,
            path=path,
            status=status,
            duration_ms=round(seconds * 1000, 3),
            client=client_address(scope),
        )
