"""Usage analytics through HTTP: the issue's done-when on the API (30 instances of
payments/production, a change, 3 stop polling: 27 on the new revision, 3 stale by id), unread
keys, traffic, a token's use, the Prometheus series; and what a second replica sees comes from
the database alone. On every backend: the upserts differ on each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from konfig.analytics import repository
from konfig.analytics.models import ClientInstance
from konfig.app import create_app
from konfig.settings import Settings
from tests.conftest import Account, Backend, assert_error, backstage, make_settings
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres", "mariadb"], indirect=True)

STALE_SECONDS = 0.4
# Long enough that 27 reads and the views after them fit inside it on a loaded CI machine (at
# 0.6 s the last reads were sometimes older than the period when the view was asked for).
UNREAD_DAYS = 4 / 86400  # 4 s


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend.url,
        tmp_path,
        analytics_flush_seconds=0.05,
        analytics_stale_seconds=STALE_SECONDS,
        analytics_unread_days=UNREAD_DAYS,
    )


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll ``check`` until it returns something truthy (the flush runs every 50 ms)."""
    for _ in range(200):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def scene(client: httpx.AsyncClient, owner: Account) -> dict[str, Any]:
    payments = await make_namespace(client, owner, "payments")
    production = await make_namespace(client, owner, "payments/production")
    staging = await make_namespace(client, owner, "payments/staging")
    await set_entry(client, owner, payments, "region", "eu")
    await set_entry(client, owner, payments, "legacy_url", "http://old")  # overridden below
    await set_entry(client, owner, production, "legacy_url", "https://new")
    await set_entry(client, owner, production, "db_host", "db-1")
    await set_entry(client, owner, staging, "db_host", "db-staging")
    token = await make_token(client, owner, read("payments/**"), name="payments-reader")
    return {"ids": (payments, production, staging), "token": token}


def instance(number: int) -> str:
    return f"payments-api-{number:02d}"


async def poll(
    client: httpx.AsyncClient, secret: str, numbers: range, etags: dict[int, str]
) -> list[int]:
    """Each instance reads payments/production as an SDK does (If-None-Match when it holds a
    state); returns the statuses."""
    statuses = []
    for number in numbers:
        headers = {
            **bearer(secret),
            "X-Konfig-Instance": instance(number),
            "X-Konfig-SDK": "konfig-python/1.2.0",
        }
        if number in etags:
            headers["If-None-Match"] = etags[number]
        answer = await client.get("/api/v1/config/payments/production", headers=headers)
        assert answer.status_code in (200, 304), answer.text
        etags[number] = answer.headers["etag"]
        statuses.append(answer.status_code)
    return statuses


async def test_after_a_change_27_instances_hold_it_and_the_3_that_stopped_are_stale(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account, settings: Settings
) -> None:
    made = await scene(client, owner)
    payments, production, staging = made["ids"]
    secret = made["token"]["token"]
    etags: dict[int, str] = {}
    assert await poll(client, secret, range(30), etags) == [200] * 30
    await set_entry(client, owner, production, "db_host", "db-2")  # the change
    assert await poll(client, secret, range(27), etags) == [200] * 27  # 3 stopped polling
    clients_url = f"/api/v1/namespaces/{production}/clients"

    async def three_stale() -> dict[str, Any] | None:
        answer = await client.get(clients_url, headers=owner.headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body if body["stale"] == 3 else None

    seen = await until(three_stale, "3 stale instances")
    revision = seen["revision"]
    assert (seen["instances"], seen["on_current"]) == (30, 27)
    assert seen["headline"].startswith(f"27 of 30 instances on revision {revision}; 3 behind since")
    assert sorted(c["instance"] for c in seen["stale_clients"]) == [
        instance(n) for n in (27, 28, 29)
    ]
    assert {c["revision"] for c in seen["stale_clients"]} == {revision - 1}
    by_instance = {c["instance"]: c for c in seen["items"]}
    assert by_instance[instance(0)]["current"] and by_instance[instance(0)]["revision"] == revision
    assert by_instance[instance(0)]["sdk"] == "konfig-python/1.2.0"
    assert by_instance[instance(0)]["actor"] == f"token:{made['token']['id']}"

    # Another replica on the same database sees the same, from what was flushed alone.
    async with replica(settings) as second:

        async def flushed() -> dict[str, Any] | None:
            answer = await second.get(clients_url, headers=owner.headers)
            body: dict[str, Any] = answer.json()
            return body if (body["instances"], body["stale"]) == (30, 3) else None

        elsewhere = await until(flushed, "the second replica sees the 30 instances")
        assert elsewhere["on_current"] == 27

    # Keys: payments' legacy_url is overridden wherever it is read; staging is never read.
    await asyncio.sleep(UNREAD_DAYS * 86400)  # the unread period passes for every key
    assert await poll(client, secret, range(27), etags) == [304] * 27  # still reading
    keys = {}
    for name, namespace in (
        ("payments", payments),
        ("production", production),
        ("staging", staging),
    ):
        answer = await client.get(
            f"/api/v1/namespaces/{namespace}/key-reads", headers=owner.headers
        )
        assert answer.status_code == 200, answer.text
        keys[name] = {row["key"]: row for row in answer.json()["items"]}
    assert (
        keys["payments"]["legacy_url"]["unread"]
        and keys["payments"]["legacy_url"]["last_read_at"] is None
    )
    assert not keys["payments"]["region"]["unread"], keys  # delivered by every production read
    assert (
        not keys["production"]["db_host"]["unread"]
        and not keys["production"]["legacy_url"]["unread"]
    )
    assert keys["staging"]["db_host"]["unread"]
    tenant_wide = await client.get(
        "/api/v1/keys/unread", params={"unread_days": UNREAD_DAYS}, headers=owner.headers
    )
    assert tenant_wide.status_code == 200, tenant_wide.text
    assert [(k["namespace"], k["key"]) for k in tenant_wide.json()["items"]] == [
        ("payments", "legacy_url"),
        ("payments/staging", "db_host"),
    ]
    theirs = await client.get("/api/v1/keys/unread", headers=other_tenant.headers)
    assert theirs.json()["items"] == []  # another tenant sees none of these

    traffic = await client.get(f"/api/v1/namespaces/{production}/traffic", headers=owner.headers)
    totals = traffic.json()["totals"]
    assert (totals["reads"], totals["not_modified"], totals["pushes"]) == (57, 27, 0)
    assert len(traffic.json()["buckets"]) == 24
    week = await client.get(
        f"/api/v1/namespaces/{production}/traffic?period=week", headers=owner.headers
    )
    assert week.json()["totals"]["reads"] == 57 and len(week.json()["buckets"]) == 28

    usage = await client.get(f"/api/v1/tokens/{made['token']['id']}/usage", headers=owner.headers)
    assert usage.status_code == 200, usage.text
    [used] = usage.json()["namespaces"]
    assert (used["namespace"], used["requests"], used["instances"]) == (
        "payments/production",
        84,
        30,
    )
    assert usage.json()["last_used_at"] is not None

    async def stale_metric() -> str | None:
        text = (await client.get("/metrics")).text
        return (
            text if 'konfig_stale_instances{namespace="payments/production"} 3.0' in text else None
        )

    metrics = await until(stale_metric, "the stale instances in /metrics")
    assert (
        'konfig_namespace_reads_total{kind="read",namespace="payments/production"} 57.0' in metrics
    )
    assert 'konfig_client_instances{namespace="payments/production"} 30.0' in metrics

    # Analytics leave the tenant in nothing: not in its backup (configuration only).
    backup = await client.post("/api/v1/backups", headers=owner.headers)
    assert backup.status_code == 201, backup.text
    download = await client.get(
        f"/api/v1/backups/{backup.json()['id']}/download", headers=owner.headers
    )
    assert download.status_code == 200 and "db_host" in download.text
    assert instance(0) not in download.text and "konfig-python" not in download.text

    # Another tenant's analytics are not there for it: the namespace and token are not found.
    for path in (
        clients_url,
        f"/api/v1/namespaces/{production}/key-reads",
        f"/api/v1/namespaces/{production}/traffic",
        f"/api/v1/tokens/{made['token']['id']}/usage",
    ):
        assert_error(await client.get(path, headers=other_tenant.headers), 404, "NOT_FOUND")


async def test_without_an_instance_header_a_client_is_counted_by_token_and_address(
    client: httpx.AsyncClient, owner: Account
) -> None:
    made = await scene(client, owner)
    _, production, _ = made["ids"]
    for _ in range(3):
        answer = await client.get(
            "/api/v1/config/payments/production", headers=bearer(made["token"]["token"])
        )
        assert answer.status_code == 200
    body = (
        await client.get(f"/api/v1/namespaces/{production}/clients", headers=owner.headers)
    ).json()
    [only] = body["items"]
    assert (only["instance"], only["address"], only["sdk"]) == (None, "127.0.0.1", "")
    assert body["headline"] == f"1 of 1 instances on revision {body['revision']}"


async def test_bad_parameters_are_refused_in_the_one_error_shape(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    for path in (
        f"/api/v1/namespaces/{production}/traffic?period=year",
        f"/api/v1/namespaces/{production}/key-reads?unread_days=-1",
        f"/api/v1/namespaces/{production}/clients?window_hours=0",
    ):
        assert_error(await client.get(path, headers=owner.headers), 422, "VALIDATION_ERROR")


@asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database, with its own memory: what it shows, it read there."""
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://konfig.test") as http:
            yield http


async def test_a_late_flush_never_turns_an_instance_back(app: Any, owner: Account) -> None:
    """Two replicas flush the same instance: the later sighting wins whichever writes last."""
    now = datetime.now(UTC)

    def sighting(revision: int, seconds_ago: float) -> dict[str, Any]:
        return {
            "tenant_id": uuid.UUID(owner.tenant_id),
            "namespace": "payments/production",
            "actor": "token:x",
            "instance": "payments-api-00",
            "address": "",
            "sdk": "konfig-go/0.1.0",
            "revision": revision,
            "state": f"state-{revision}",
            "last_seen_at": now - timedelta(seconds=seconds_ago),
            "last_pushed_at": None,
        }

    for rows in ([sighting(8, 1)], [sighting(9, 0)], [sighting(7, 30)]):
        async with backstage(app) as session:
            await repository.upsert_clients(session, rows)
    async with backstage(app) as session:
        [row] = (await session.execute(select(ClientInstance))).scalars().all()
    assert (row.revision, row.state, row.last_seen_at) == (9, "state-9", now)
