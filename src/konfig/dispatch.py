"""Where every request goes: the app ``create_app`` returns, the outermost ASGI app.

Every HTTP request passes, outermost first, through the same pure-ASGI wrappers (``wrappers``
in ``konfig.app``: security headers, request id and the last word on errors, access log and
metrics, CORS), then one of four places answers it:

====================================================  =========================================
request                                               answered by
====================================================  =========================================
``GET|HEAD /api/v1/config/{name}`` and ``…/events``   the read path (``konfig.delivery.handler``)
``POST /ofrep/v1/evaluate/flags[/{key}]``,          OFREP (``konfig.delivery.ofrep``): feature
``GET /ofrep/v1/events``                              flags evaluated, their change stream
``POST /api/v1/namespaces/{id}/configs``,             the write path (``konfig.configs.
``PUT|PATCH|DELETE …/configs/{key}``, JSON bodies     write_path``), which hands FastAPI a body
                                                      it cannot read
anything else                                         FastAPI: its routes, the docs, the UI
====================================================  =========================================

The two fast paths skip FastAPI's routing and dependency solving, which cost several times
what they do themselves; FastAPI's routes document them in OpenAPI and answer alike (the parity
tests turn ``fast_paths`` off). The write path and FastAPI sit behind ``guards`` as well (the
body cap, a 503 when the database is out of reach), which the read path does not need: it reads
no body and answers its own 503s. Lifespan events go to FastAPI's lifespan. An API path ending
in '/' is answered as the path without it, by whichever branch takes that one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from konfig.configs.write_path import WritePath
from konfig.delivery import ofrep
from konfig.delivery.handler import ReadPath
from konfig.delivery.ofrep import Ofrep
from konfig.delivery.stream import SERVER_SEND
from konfig.logs import flush_access_lines
from konfig.paths import API_PREFIX, READ_PATH_PREFIX
from konfig.state import AppState, app_state

Wrapper = Callable[[ASGIApp], ASGIApp]
_READS = ("GET", "HEAD")


class Dispatcher:
    """The app: ``state`` is what its parts share (``konfig.state``), ``api`` the FastAPI app."""

    def __init__(
        self,
        api: FastAPI,
        *,
        read_path: ReadPath,
        ofrep: Ofrep,
        write_path: WritePath,
        wrappers: Sequence[Wrapper],
        guards: Sequence[Wrapper],
    ) -> None:
        self.api = api
        self.state: AppState = app_state(api)
        self.read_path = read_path
        self.ofrep = ofrep
        self.write_path = write_path
        self.fast_paths = True  # off: FastAPI's routes answer everything (the parity tests)
        self._guarded_write_path = _wrapped(write_path, guards)
        self._guarded_api = _wrapped(api, guards)
        self._answer = _wrapped(self.dispatch, wrappers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # The server's own send, unwrapped: the read path's event streams may write their
            # changes straight to the connection (``konfig.delivery.stream``). Taken out again
            # at the end: uvicorn's send is a method of the request's cycle, which holds the
            # scope, and the reference cycle left behind would make every answer garbage for the
            # cyclic collector (about 7 objects each: its passes cost 5 us an answer).
            scope[SERVER_SEND] = send
            try:
                await self._answer(scope, receive, send)
            finally:
                del scope[SERVER_SEND]
        else:  # lifespan (and websockets, should a route ever take them)
            try:
                await self.api(scope, receive, send)
            finally:
                flush_access_lines()  # the app has stopped: the last access lines out now

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The branch point: the read path, the write path, or FastAPI."""
        if scope["path"].endswith("/"):
            scope = _without_trailing_slash(scope)
        if self.fast_paths:
            if scope["method"] in _READS and scope["path"].startswith(READ_PATH_PREFIX):
                await self.read_path(scope, receive, send)
                return
            if ofrep.takes(scope):
                await self.ofrep(scope, receive, send)
                return
            if WritePath.takes(scope):
                await self._guarded_write_path(scope, receive, send)
                return
        await self._guarded_api(scope, receive, send)


def _without_trailing_slash(scope: Scope) -> Scope:
    """An API path ending in '/' answered as the path without it: no route of the API ends in
    one, and Starlette's answer would be a bare 307 that clients drop a body or a method on."""
    path: str = scope["path"]
    if not path.startswith(API_PREFIX + "/"):
        return scope
    trimmed = path.rstrip("/")
    raw: bytes = scope.get("raw_path") or path.encode()
    return {**scope, "path": trimmed, "raw_path": raw.rstrip(b"/")}


def _wrapped(app: ASGIApp, wrappers: Sequence[Wrapper]) -> ASGIApp:
    """``app`` inside ``wrappers``, the first outermost."""
    for wrap in reversed(wrappers):
        app = wrap(app)
    return app
