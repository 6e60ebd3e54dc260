"""Two app instances that hear each other through Redis pub/sub (``KONFIG_REDIS_URL``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from konfig.db.migrate import upgrade
from konfig.security.crypto import new_key_line
from tests.conftest import REDIS_URL, Account, make_settings, register, service_missing
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    read,
    service_account,
    set_entry,
    waiting,
)

pytestmark = pytest.mark.redis

CONFIG = "/api/v1/config/payments/production"


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        await client.aclose()
        service_missing("Redis at 127.0.0.1:6379", exc)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def replicas(
    redis_client: redis.Redis, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, str]]:
    """Clients of two apps on one database, announcing changes on a channel of their own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'konfig.db'}"
    await upgrade(url)
    channel = f"konfig_test_{uuid.uuid4().hex[:12]}"
    keys = new_key_line()  # both apps must read what the other wrote
    clients = []
    async with AsyncExitStack() as stack:
        for name in ("a", "b"):
            data_dir = tmp_path / name
            data_dir.mkdir()
            settings = make_settings(
                url,
                data_dir,
                encryption_keys=keys,
                redis_url=REDIS_URL,
                notify_channel=channel,
                listener_check_seconds=1,
            )
            app = create_app(settings)
            await stack.enter_async_context(LifespanManager(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url=f"http://{name}.test")
                )
            )
        yield clients[0], clients[1], channel


async def _setup(a: httpx.AsyncClient) -> tuple[Account, str, dict[str, str]]:
    owner = await register(a, "acme")
    parent = await make_namespace(a, owner, "payments")
    production = await make_namespace(a, owner, "payments/production")
    await set_entry(a, owner, parent, "timeout", 1, value_type="number")
    await set_entry(a, owner, production, "currency", "USD")
    account_id = await service_account(a, owner, "svc")
    scopes = [*read("payments"), *read("payments/**")]  # a resolved read needs its ancestors
    token = await make_token(a, owner, scopes, service_account_id=account_id)
    return owner, parent, {"id": token["id"], **bearer(token["token"])}


async def _eventually(check: Any, what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_a_write_on_one_app_wakes_a_watcher_on_the_other(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient, str],
) -> None:
    a, b, _ = replicas
    owner, parent, token = await _setup(a)
    reader = {"Authorization": token["Authorization"]}
    first = await b.get(CONFIG, headers=reader)
    assert first.json()["timeout"] == 1
    watching = await waiting(
        b,
        b.get(
            CONFIG, headers={**reader, "If-None-Match": first.headers["etag"]}, params={"wait": 30}
        ),
    )
    assert not watching.done()
    await set_entry(a, owner, parent, "timeout", 2, value_type="number")
    woken = await watching
    assert woken.status_code == 200 and woken.json()["timeout"] == 2
    assert (await b.get(CONFIG, headers=reader)).json()["timeout"] == 2

    revoked = await a.delete(f"/api/v1/tokens/{token['id']}", headers=owner.headers)
    assert revoked.status_code == 204

    async def refused_on_b() -> bool:
        return (await b.get(CONFIG, headers=reader)).status_code == 401

    await _eventually(refused_on_b, "B refuses the revoked token")


async def test_a_lost_subscription_reconnects_and_drops_the_cache(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient, str], redis_client: redis.Redis
) -> None:
    a, b, channel = replicas
    owner, parent, token = await _setup(a)
    reader = {"Authorization": token["Authorization"]}
    assert (await b.get(CONFIG, headers=reader)).json()["timeout"] == 1

    async def subscribers() -> list[dict[str, Any]]:
        listed = await redis_client.client_list(_type="pubsub")
        return [c for c in listed if c.get("name") == f"konfig-listener:{channel}"]

    assert len(await subscribers()) == 2
    for client in await subscribers():
        await redis_client.client_kill_filter(_id=client["id"])
    await set_entry(a, owner, parent, "timeout", 3, value_type="number")

    async def b_serves_the_new_value() -> bool:
        timeout: int = (await b.get(CONFIG, headers=reader)).json()["timeout"]
        return timeout == 3

    await _eventually(b_serves_the_new_value, "B serves what was written during the outage")

    async def both_subscribed() -> bool:
        return len(await subscribers()) == 2

    await _eventually(both_subscribed, "both apps subscribe again")
    etag = (await b.get(CONFIG, headers=reader)).headers["etag"]
    watching = await waiting(
        b, b.get(CONFIG, headers={**reader, "If-None-Match": etag}, params={"wait": 30})
    )
    assert not watching.done()
    await set_entry(a, owner, parent, "timeout", 4, value_type="number")
    woken = await watching
    assert woken.status_code == 200 and woken.json()["timeout"] == 4
