"""The UI's pages, included under ``/ui`` on the first request there
(``konfig.web.routes.PagesOnFirstUse``)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from konfig.routing import include_once
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
from konfig.web.routing import UIRoute, error_page

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


_fallback = APIRouter(route_class=UIRoute)


@_fallback.get("/{rest:path}")
async def no_such_page(request: Request, rest: str) -> Response:
    """Anything else under /ui."""
    return error_page(request, 404, "There is no such page.")


def include_pages(app: FastAPI) -> None:
    """Every page under ``/ui``, then the 404 page for anything else there; none in OpenAPI
    (each router with its full prefix, once per process: see ``konfig.routing``)."""
    include_once(
        app, *(pages.router for pages in PAGES), _fallback, prefix="/ui", include_in_schema=False
    )
