"""The database out of reach: every path answers 503 with Retry-After in the one error shape,
and the log says so once per kind of failure, without a traceback per request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from tests.conftest import Backend, assert_error, make_settings, only_postgres, register, wipe
from tests.support.relay import Relay
from tests.support.web import browser, sign_in, text_of


@pytest.fixture
async def relay(backend: Backend) -> AsyncIterator[Relay]:
    assert backend.name == "postgres", "mark the test only_postgres"
    relay = Relay("127.0.0.1", 5432)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()


@pytest.fixture
async def app_behind_relay(relay: Relay, backend: Backend, tmp_path: Path) -> AsyncIterator[Any]:
    url = backend.url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    application = create_app(make_settings(url, tmp_path))
    async with LifespanManager(application):
        yield application
    await wipe(backend.url)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def assert_unavailable(answer: httpx.Response) -> None:
    assert_error(answer, 503, "UNAVAILABLE")
    assert answer.headers["retry-after"] == "5"


@only_postgres
async def test_every_path_answers_503_and_logs_once(app_behind_relay: Any, relay: Relay) -> None:
    lines = Lines()
    logging.getLogger("konfig").addHandler(lines)  # konfig.db, konfig.http, … propagate to it
    transport = httpx.ASGITransport(app=app_behind_relay)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://konfig.test") as client:
            owner = await register(client, "acme")
            created = await client.post(
                "/api/v1/namespaces", headers=owner.headers, json={"name": "app"}
            )
            entry_url = f"/api/v1/namespaces/{created.json()['id']}/configs/k"
            written = await client.put(entry_url, headers=owner.headers, json={"value": "v"})
            assert written.status_code == 201, written.text
            relay.cut()
            lines.records.clear()
            for _ in range(3):
                assert_unavailable(await client.get("/api/v1/namespaces", headers=owner.headers))
                # The fast write path (the login is known: no session until the group commit).
                assert_unavailable(
                    await client.put(entry_url, headers=owner.headers, json={"value": "w"})
                )
                # The read path, for a namespace it has not cached.
                assert_unavailable(await client.get("/api/v1/config/app", headers=owner.headers))
                login = {"email": owner.email, "password": "SecurePassword123"}
                assert_unavailable(await client.post("/api/v1/auth/login", json=login))
            # The access log and metrics count what was answered: 503s, no 500.
            metrics = (await client.get("/metrics")).text
            assert 'route="/api/v1/namespaces",status="503"' in metrics
            assert 'route="/api/v1/namespaces/{namespace_id}/configs/{key}",status="503"' in metrics
            assert 'route="/api/v1/config/{name}",status="503"' in metrics
            assert 'status="500"' not in metrics
            relay.up = True
            again = await client.get("/api/v1/namespaces", headers=owner.headers)
            assert again.status_code == 200, again.text
    finally:
        logging.getLogger("konfig").removeHandler(lines)
    told = [r for r in lines.records if "the database is unavailable" in r.getMessage()]
    assert len(told) == len({r.args[0] for r in told if isinstance(r.args, tuple)}) >= 1, told
    assert all(r.exc_info is None for r in told)
    tracebacks = [r for r in lines.records if r.exc_info is not None]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


@only_postgres
async def test_the_web_ui_shows_a_503_page(app_behind_relay: Any, relay: Relay) -> None:
    async with browser(app_behind_relay) as client:
        owner = await register(client, "acme")
        await sign_in(client, owner.email)
        assert (await client.get("/ui")).status_code == 200
        relay.cut()
        page = await client.get("/ui")
        assert page.status_code == 503, page.text
        assert page.headers["retry-after"] == "5"
        assert "cannot reach its database" in text_of(page.text)
