"""What the app's routes allow, answered the same way for every path.

Starlette matches routes one by one, so a path served by several routes (``GET`` by one,
``DELETE`` by another) answers an ``OPTIONS`` or a wrong method with the first route's methods
only. This middleware answers from every route of the path instead:

- ``OPTIONS`` (that is not a CORS preflight: ``CorsMiddleware`` sits outside and answers those)
  is a 204 whose ``Allow`` lists every method the path serves;
- a 405 carries that same ``Allow``;
- ``HEAD`` is served wherever ``GET`` is, as ``GET`` without the body;
- a body in a media type the operation does not read (by the OpenAPI document) is a 415.

The table of paths and methods is built from the routes on first use; the media types each
operation reads come from the OpenAPI document, built only when a body that is not JSON first
asks (the document costs more than all the rest of start-up's routing, and ``/health`` answers
at once on a fresh process without it). It wraps FastAPI's routes only: the read path
and the single-entry write path (``konfig.dispatch``) answer their own methods ahead of it;
they are in the table through their documented routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from konfig.errors import error_response

_BODY_METHODS = (b"POST", b"PUT", b"PATCH")
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(slots=True)
class _Path:
    pattern: re.Pattern[str]
    parameters: int  # fewer is more specific: /users/me before /users/{user_id}
    methods: set[str] = field(default_factory=set)
    media_types: dict[str, set[str]] = field(default_factory=dict)  # by method; from OpenAPI,
    # filled in by ``RouteTable.accepted``


class RouteTable:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._routes = 0  # how many routes the app had when the table was built
        self._paths: list[_Path] | None = None
        self._formats: dict[str, _Path] = {}
        self._fixed: dict[str, _Path] | None = None
        self._documented = False  # whether the media types are read from OpenAPI yet

    def _current(self) -> None:
        """Forget the table when routes were added since it was built (the UI's pages are
        included on their first request, ``konfig.web.routes.PagesOnFirstUse``)."""
        if len(self.app.routes) != self._routes:
            self._routes = len(self.app.routes)
            self._paths = self._fixed = None
            self._documented = False

    def _build(self) -> list[_Path]:
        by_path: dict[str, _Path] = {}
        for context in iter_route_contexts(self.app.routes):
            path, methods = context.path, context.methods
            if not path or not methods:
                continue
            pattern, path_format, parameters = compile_path(path)
            entry = by_path.setdefault(path_format, _Path(pattern, len(parameters)))
            entry.methods |= set(methods)
        self._formats = by_path
        return list(by_path.values())

    def accepted(self, path: str, method: str) -> set[str] | None:
        """The media types the operation at ``path`` reads a body in; None when it reads none
        (or no route has the path)."""
        self._current()
        if not self._documented:
            if self._paths is None:
                self._paths = self._build()
            documented: dict[str, Any] = self.app.openapi().get("paths", {})
            for path_format, entry in self._formats.items():
                for documented_method, operation in documented.get(path_format, {}).items():
                    content = operation.get("requestBody", {}).get("content")
                    if content:
                        entry.media_types[documented_method.upper()] = set(content)
            self._documented = True
        found = self.find(path)
        return None if found is None else found.media_types.get(method)

    def shadowed(self, path: str, method: str) -> _Path | None:
        """A fixed path (``/users/me``) that a route with a parameter (``/users/{user_id}``) also
        matches, asked for a method only that other route serves: it must answer 405 here."""
        fixed = self.warm()
        entry = fixed.get(path)
        return entry if entry is not None and method not in entry.methods else None

    def warm(self) -> dict[str, _Path]:
        """Build the table for the routes as they are now (else the next request does it);
        answers the fixed paths that a route with a parameter also matches."""
        self._current()
        if self._paths is None:
            self._paths = self._build()
        if self._fixed is None:
            self._fixed = self._fixed_paths()
        return self._fixed

    def _fixed_paths(self) -> dict[str, _Path]:
        fixed: dict[str, _Path] = {}
        for path_format, entry in self._formats.items():
            if entry.parameters == 0:
                found = self.find(path_format)
                if found is not None and any(
                    other.parameters and other.pattern.match(path_format)
                    for other in self._paths or []
                ):
                    fixed[path_format] = found
        return fixed

    def find(self, path: str) -> _Path | None:
        """The methods of the path's most specific routes together; None when no route has it."""
        self._current()
        if self._paths is None:
            self._paths = self._build()
        matching = [entry for entry in self._paths if entry.pattern.match(path)]
        if not matching:
            return None
        fewest = min(entry.parameters for entry in matching)
        found = _Path(matching[0].pattern, fewest)
        for entry in matching:
            if entry.parameters == fewest:
                found.methods |= entry.methods
                found.media_types |= entry.media_types
        return found


def allow(methods: set[str]) -> str:
    served = set(methods) | {"OPTIONS"}
    if "GET" in served:
        served.add("HEAD")
    return ", ".join(sorted(served, key=lambda m: (_ORDER.index(m) if m in _ORDER else 99, m)))


def _content_type(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return str(value.decode("latin-1").split(";")[0].strip().lower())
    return None


def _has_body(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return value.strip() not in (b"", b"0")
        if key == b"transfer-encoding":
            return True
    return False


class AllowedMethods:
    def __init__(self, app: ASGIApp, table: RouteTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        if method == "OPTIONS":
            await self._options(scope, receive, send)
            return
        if method == "HEAD":
            await self._head(scope, receive, send)
            return
        shadowed = self.table.shadowed(scope["path"], method)
        if shadowed is not None:
            refused = error_response(
                405,
                "METHOD_NOT_ALLOWED",
                "Method Not Allowed",
                headers={"Allow": allow(shadowed.methods)},
            )
            await refused(scope, receive, send)
            return
        if method.encode() in _BODY_METHODS:
            unsupported = self._unsupported(scope, method)
            if unsupported is not None:
                await unsupported(scope, receive, send)
                return
        await self.app(scope, receive, self._with_allow(scope, send))

    def _unsupported(self, scope: Scope, method: str) -> Response | None:
        """The 415 for a body the operation does not read: in another media type, or in none
        named (curl's ``-d`` without ``-H 'Content-Type: application/json'`` names a form)."""
        content_type = _content_type(scope)
        # JSON is read by every operation with a body: only look others up.
        if content_type == "application/json":
            return None
        if content_type is None and not _has_body(scope):
            return None
        accepted = self.table.accepted(scope["path"], method)
        if accepted is None or content_type in accepted:
            return None
        reads = ", ".join(sorted(accepted))
        sent = "a body with no Content-Type" if content_type is None else content_type
        return error_response(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"This operation reads {reads}, not {sent}: send the header Content-Type: "
            f"{sorted(accepted)[0]}",
            {"accepted": sorted(accepted)},
        )

    def _with_allow(self, scope: Scope, send: Send) -> Send:
        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                found = self.table.find(scope["path"])
                if found is not None:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"allow"]
                    message["headers"] = [*headers, (b"allow", allow(found.methods).encode())]
            await send(message)

        return send_with_allow

    async def _options(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.table.find(scope["path"])
        if found is None:  # no such route: the app's own 404
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"allow", allow(found.methods).encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.table.find(scope["path"])
        if found is None or "HEAD" in found.methods or "GET" not in found.methods:
            await self.app(scope, receive, self._with_allow(scope, send))
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
