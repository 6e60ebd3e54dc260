"""Routers included once per process, however many apps it builds.

Including a router makes FastAPI analyse every route: each parameter's type, each body and
answer model (pydantic builds a validator and serializer for each). For Konfig's routes that is
about 200 ms, and it was redone by every ``create_app``; the test suite builds an app per test.
The analysed routes hold nothing of the app they were first built for (a request finds its app
in the ASGI scope), so later apps take the same route objects.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute

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
    key = (tuple(id(router) for router in routers), prefix, include_in_schema)
    built = _included.get(key)
    if built is None:
        holder = APIRouter()  # the same defaults as a FastAPI app's own router
        for router in routers:
            if router.on_startup or router.on_shutdown:  # they would land on the holder
                raise TypeError(f"{router!r}: Konfig's routers start nothing; the lifespan does")
            holder.include_router(router, prefix=prefix, include_in_schema=include_in_schema)
        built = _included[key] = (routers, tuple(holder.routes))
    app.router.routes.extend(built[1])
