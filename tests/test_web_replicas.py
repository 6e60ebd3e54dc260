"""Two `konfig serve` processes on one PostgreSQL database: a page open on one replica hears of
a change committed through the other (the UI feed listens to LISTEN/NOTIFY announcements)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from konfig.security.crypto import new_key_line
from tests.conftest import PASSWORD
from tests.support.servers import start_replica
from tests.support.web import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def replicas(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATABASE_URL": database_url,
        "KONFIG_SECRET_KEY": "replica-test-secret-key-that-is-long-enough",
        "KONFIG_ENCRYPTION_KEYS": new_key_line(),
    }
    started = []
    try:
        for name in ("ui-a", "ui-b"):
            started.append(start_replica(env, Path(tmp_path_factory.mktemp(name))))
        yield [url for _, url in started]
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, _ in started:
            assert proc.wait(timeout=30) == 0


async def test_a_page_on_one_replica_hears_a_change_made_on_the_other(
    replicas: list[str],
) -> None:
    a, b = replicas
    email = "owner@live.example.com"
    async with httpx.AsyncClient(base_url=a, timeout=30) as api:
        made = await api.post(
            "/api/v1/auth/register", json={"name": "live", "email": email, "password": PASSWORD}
        )
        assert made.status_code == 201, made.text
        login = await api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await api.post(
            "/api/v1/namespaces", headers=headers, json={"name": "payments/production"}
        )
        ns = created.json()["id"]
        async with httpx.AsyncClient(base_url=b, timeout=30) as page:
            await sign_in(page, email)
            url = f"/ui/namespaces/{ns}/events"
            async with page.stream("GET", url, params={"since": 0}) as events:
                assert events.status_code == 200
                lines = events.aiter_lines()
                assert await anext(lines) == "retry: 2000"  # subscribed on replica b
                written = await api.post(
                    f"/api/v1/namespaces/{ns}/configs",
                    headers=headers,
                    json={"key": "timeout", "value": 30, "value_type": "number"},
                )
                assert written.status_code == 201, written.text

                async def first_revision() -> str:
                    async for line in lines:
                        if line.startswith("data: "):
                            return line
                    raise AssertionError("the stream ended without an event")

                assert await asyncio.wait_for(first_revision(), 20) == "data: 1"
