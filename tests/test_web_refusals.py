"""A web page that fails after it began writing keeps nothing of what it wrote: the UI turns the
failure into a page, so the request's session must roll back rather than commit."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from sqlalchemy import func, select

from konfig.app import create_app
from konfig.db.session import SessionDep, bind_tenant
from konfig.errors import Conflict
from konfig.namespaces.models import Namespace
from konfig.settings import Settings
from konfig.web.routing import UIRoute
from tests.conftest import Backend, backstage, register, wipe


def _half_writing_page(app: Any) -> None:
    """A page that writes a namespace for the tenant named in its path, then fails."""
    router = APIRouter(route_class=UIRoute, include_in_schema=False)

    @router.get("/ui/test-half-written/{tenant_id}")
    async def half_written(session: SessionDep, tenant_id: uuid.UUID) -> None:
        await bind_tenant(session, tenant_id)
        session.add(Namespace(tenant_id=tenant_id, name="half-written"))
        await session.flush()  # written, in the request's transaction
        raise Conflict("refused after writing")

    app.api.include_router(router)
    app.api.router.routes.insert(0, app.api.router.routes.pop())  # ahead of the UI's catch-all 404


async def test_a_page_that_fails_midway_keeps_nothing(settings: Settings, backend: Backend) -> None:
    app = create_app(settings)
    _half_writing_page(app)
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                owner = await register(client, "halfway")
                answer = await client.get(f"/ui/test-half-written/{owner.tenant_id}")
                assert answer.status_code == 409
                assert "refused after writing" in answer.text
                async with backstage(app) as session:
                    count = select(func.count()).where(Namespace.name == "half-written")
                    assert await session.scalar(count) == 0
    finally:
        await wipe(backend.url)
