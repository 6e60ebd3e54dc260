"""The web UI under ``/ui``: server-rendered pages, a few fragments and a live-update stream.

Every page answers in HTML, errors included: a failed check becomes a page that says what
happened and what to do next, never the API's JSON.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from konfig.db.session import bind_tenant, open_session
from konfig.delivery.wiring import Delivery
from konfig.namespaces import repository as namespace_repository
from konfig.state import AppState, app_state
from konfig.web import STATIC_DIR
from konfig.web.csrf import derive_key
from konfig.web.live import NamespaceFeed, ReadRevision, RevisionFeed
from konfig.web.session import RefreshGate


@dataclass
class UIState:
    """What the pages share (``AppState.ui``); the templates are the process's, made by the
    first page (``konfig.web.rendering.make_templates``)."""

    csrf_key: bytes
    feed: RevisionFeed
    refresh_gate: RefreshGate = field(default_factory=RefreshGate)
    stream_seconds: float = 60.0  # a live stream ends (and the browser reconnects) after this
    keepalive_seconds: float = 15.0


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


class PagesOnFirstUse:
    """Includes the UI's pages (``konfig.web.pages``) on the first request under ``/ui``.

    A replica serving only the API never imports them: they are a fifth of the app's modules
    and a third of its routes. The first page asked for waits for them (a few tens of ms,
    once, on the event loop, as FastAPI's own first-request work does); none is ever a 404
    for being early.
    """

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.included = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.included and scope["type"] == "http":
            path: str = scope["path"]
            if path == "/ui" or path.startswith("/ui/"):
                from konfig.web.pages import include_pages

                include_pages(self.api)
                self.included = True
        await self.app(scope, receive, send)


def mount_ui(app: FastAPI, delivery: Delivery) -> None:
    """Serve the UI: its pages (included on first use, ``PagesOnFirstUse``), its static
    files, and live updates fed by the change announcements of every replica (through the
    delivery layer). Call it after the other middleware is added: it adds the outermost."""
    state = app_state(app)
    feed = NamespaceFeed(revision_reader(state))
    state.ui = UIState(
        csrf_key=derive_key(state.signer.key),
        feed=feed,
    )
    delivery.listeners.append(feed.announced)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    # Outside AllowedMethods (added after it): its table must see the pages.
    app.add_middleware(PagesOnFirstUse, api=app)

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return Response(status_code=307, headers={"Location": "/ui"})
