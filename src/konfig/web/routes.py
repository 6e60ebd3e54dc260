"""The web UI under ``/ui``: server-rendered pages, a few fragments and a live-update stream.

Every page answers in HTML, errors included: a failed check becomes a page that says what
happened and what to do next, never the API's JSON.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from konfig.db.session import bind_tenant, open_session
from konfig.delivery.wiring import Delivery
from konfig.namespaces import repository as namespace_repository
from konfig.routing import include_once
from konfig.state import AppState, app_state
from konfig.web import (
    admin_pages,
    analytics_pages,
    audit_pages,
    auth_pages,
    backup_pages,
    bulk_pages,
    change_pages,
    entry_pages,
    environment_pages,
    flag_pages,
    group_pages,
    history_pages,
    namespace_pages,
    resolved_pages,
    sso_pages,
    template_pages,
    token_pages,
    webhook_pages,
)
from konfig.web.csrf import derive_key
from konfig.web.live import NamespaceFeed, ReadRevision, RevisionFeed
from konfig.web.rendering import STATIC_DIR, make_templates
from konfig.web.routing import UIRoute, error_page
from konfig.web.session import RefreshGate

PAGES = (
    auth_pages,
    namespace_pages,
    entry_pages,
    flag_pages,
    analytics_pages,
    history_pages,
    resolved_pages,
    environment_pages,
    template_pages,
    bulk_pages,
    admin_pages,
    token_pages,
    audit_pages,
    backup_pages,
    group_pages,
    sso_pages,
    webhook_pages,
    change_pages,
)


@dataclass
class UIState:
    """What the pages share (``AppState.ui``)."""

    templates: Jinja2Templates
    csrf_key: bytes
    feed: RevisionFeed
    refresh_gate: RefreshGate = field(default_factory=RefreshGate)
    stream_seconds: float = 60.0  # a live stream ends (and the browser reconnects) after this
    keepalive_seconds: float = 15.0


@functools.cache
def make_router() -> APIRouter:
    """The UI's pages (one router per process: see konfig.routing)."""
    router = APIRouter(include_in_schema=False)
    for pages in PAGES:
        router.include_router(pages.router, prefix="/ui")
    fallback = APIRouter(route_class=UIRoute)

    @fallback.get("/{rest:path}")
    async def no_such_page(request: Request, rest: str) -> Response:
        """Anything else under /ui."""
        return error_page(request, 404, "There is no such page.")

    router.include_router(fallback, prefix="/ui")
    return router


def revision_reader(state: AppState) -> ReadRevision:
    """Reads a namespace's current revision in a short transaction of its own."""

    async def read_revision(tenant_id: uuid.UUID, namespace_id: uuid.UUID) -> int | None:
        session = await open_session(state.sessionmaker, write=False)
        try:
            await bind_tenant(session, tenant_id)
            found = await namespace_repository.get(
                session, tenant_id=tenant_id, namespace_id=namespace_id
            )
            return None if found is None else found.revision
        finally:
            await session.close()

    return read_revision


def mount_ui(app: FastAPI, delivery: Delivery) -> None:
    """Serve the UI: its pages, its static files, and live updates fed by the change
    announcements of every replica (through the delivery layer)."""
    state = app_state(app)
    feed = NamespaceFeed(revision_reader(state))
    state.ui = UIState(
        templates=make_templates(),
        csrf_key=derive_key(state.signer.key),
        feed=feed,
    )
    delivery.listeners.append(feed.announced)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    include_once(app, make_router())

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return Response(status_code=307, headers={"Location": "/ui"})
