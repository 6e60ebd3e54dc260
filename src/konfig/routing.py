"""Routers included once per process, however many apps it builds, and the API's routers
included after start-up.

Including a router makes FastAPI analyse every route: each parameter's type, each body and
answer model (pydantic builds a validator and serializer for each). For Konfig's routes that is
about 200 ms, and it was redone by every ``create_app``; the test suite builds an app per test.
The analysed routes hold nothing of the app they were first built for (a request finds its app
in the ASGI scope), so later apps take the same route objects.

Importing the features' routers (their schemas, services and the libraries only they use) is
a third of start-up: ``DeferredRoutes`` imports and includes them after the server has started
(``konfig.ops.server``), a feature at a time in a thread while requests are served, or at once
for the first request that could need them (``RoutesOnFirstUse``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

# Keyed by the routers' identities and how they are included; the routers are kept alive
# beside their routes, so an identity is never reused for another router while its entry exists.
_Key = tuple[tuple[int, ...], str, bool]
_included: dict[_Key, tuple[tuple[APIRouter, ...], tuple[BaseRoute, ...]]] = {}


def include_once(
    app: FastAPI, *routers: APIRouter, prefix: str = "", include_in_schema: bool = True
) -> None:
    """``app.include_router(router, prefix=prefix, …)`` for each router in turn, the analysis
    done once per process.

    Give each router its full prefix here rather than gathering them under a router of their
    own: FastAPI analyses a route again for every router it is included through, and an
    inclusion without a prefix analyses them at once (to check their paths) instead of on the
    first request that needs them.
    """
    app.router.routes.extend(_routes(routers, prefix, include_in_schema))


def _routes(
    routers: tuple[APIRouter, ...], prefix: str, include_in_schema: bool
) -> tuple[BaseRoute, ...]:
    key = (tuple(id(router) for router in routers), prefix, include_in_schema)
    built = _included.get(key)
    if built is None:
        holder = APIRouter()  # the same defaults as a FastAPI app's own router
        for router in routers:
            if router.on_startup or router.on_shutdown:  # they would land on the holder
                raise TypeError(f"{router!r}: Konfig's routers start nothing; the lifespan does")
            holder.include_router(router, prefix=prefix, include_in_schema=include_in_schema)
        built = _included[key] = (routers, tuple(holder.routes))
    return built[1]


# Each step imports what it needs and gives the next routers, in the order they are included.
RouterSteps = Callable[[], Iterator[tuple[APIRouter, ...]]]


class DeferredRoutes:
    """Routers included after start-up where they would have been included at once: ahead of
    the routes that follow them when the app is built, so that the routes match, and the
    OpenAPI document lists them, in the same order.

    ``load`` includes them all at once; ``load_in_background`` imports them a step at a time
    in a thread, while the event loop goes on serving. Both end the same way, and only once:
    ``loaded`` is set when the routes are in.
    """

    def __init__(self, app: FastAPI, steps: RouterSteps, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.loaded = False
        self._steps = steps()  # nothing imported until the first step is taken
        self._stepping = threading.Lock()  # one taker of steps at a time: a thread, or a request
        self._routers: list[APIRouter] = []
        # The routes included after these: the deferred ones go in just before it.
        self._position = len(app.router.routes)
        self._next: BaseRoute | None = None
        self.listeners: list[Callable[[], object]] = []  # called once the routes are in

    def mark(self) -> None:
        """Call once the routes that follow the deferred ones are included."""
        routes = self.app.router.routes
        self._next = routes[self._position] if self._position < len(routes) else None

    def load(self) -> None:
        """Include the routes that are not in yet, now (waiting for a step a thread is taking)."""
        if self.loaded:
            return
        with self._stepping:
            for routers in self._steps:
                self._routers.extend(routers)
        routes = self.app.router.routes
        position = len(routes) if self._next is None else routes.index(self._next)
        routes[position:position] = _routes(tuple(self._routers), self.prefix, True)
        self.loaded = True
        for listener in self.listeners:
            listener()

    async def load_in_background(self) -> None:
        """Import them a step at a time (a feature's modules: a few ms to a few tens) in a
        thread, so that the read path and the other routes that are in keep answering; then
        include them (on the event loop, as every change to the routes is made)."""
        while not self.loaded:
            if not await asyncio.to_thread(self._step):
                self.load()

    def _step(self) -> bool:
        """Take the next step; False when there is none left."""
        with self._stepping:
            routers = next(self._steps, None)
            if routers is None:
                return False
            self._routers.extend(routers)
            return True


class RoutesOnFirstUse:
    """Includes the deferred routes (``DeferredRoutes.load``) before any request other than
    ``without`` (liveness and metrics: their routes are in from the start) goes on: no request
    is ever a 404 or a 405 for coming early, and ``/ready`` answers once they are in. Put it
    outside what reads the routes (``konfig.methods.AllowedMethods``)."""

    def __init__(self, app: ASGIApp, routes: DeferredRoutes, without: frozenset[str]) -> None:
        self.app = app
        self.routes = routes
        self.without = without

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.routes.loaded and scope["type"] != "lifespan":
            if scope["path"] not in self.without:
                self.routes.load()
        await self.app(scope, receive, send)
