"""Health, readiness, and the offline API docs."""

from __future__ import annotations

import httpx

from konfig.dispatch import Dispatcher


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert "cdn." not in html and "unpkg" not in html and "googleapis" not in html
    swagger = (await client.get("/docs")).text
    script = swagger.split('<script src="', 1)[1].split('"', 1)[0]
    asset = await client.get(script)
    assert asset.status_code == 200 and len(asset.content) > 100_000


async def test_openapi_declares_the_password_flow_for_authorize(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    flow = next(iter(schemes.values()))["flows"]["password"]
    assert flow["tokenUrl"] == "/api/v1/auth/login"
    login_body = spec["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(login_body) == {"application/json", "application/x-www-form-urlencoded"}


async def test_ready_follows_the_schema(client: httpx.AsyncClient, app: Dispatcher) -> None:
    """Behind this build: not ready. Ahead of it (a newer replica migrated): still ready."""
    from sqlalchemy import text

    from konfig.db.migrate import head_revision

    sessionmaker = app.state.sessionmaker

    async def set_version(version: str) -> None:
        async with sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": version}
            )

    try:
        await set_version("0001")
        behind = await client.get("/ready")
        assert behind.status_code == 503
        assert "0001" in behind.json()["error"]["message"]
        await set_version("9999_from_a_newer_build")
        ahead = await client.get("/ready")
        assert ahead.status_code == 200
        assert "newer" in ahead.json()["note"]
    finally:
        await set_version(str(head_revision()))
