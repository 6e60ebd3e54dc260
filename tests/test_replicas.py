"""Two `konfig serve` processes on one PostgreSQL database: changes, revocations and a lost
listener connection travel between them through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from konfig.security.crypto import new_key_line
from tests.conftest import PASSWORD
from tests.support.readpath import waiting
from tests.support.servers import start_replica

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class Cluster:
    database_url: str
    a: str  # base URLs of the two replicas
    b: str


@pytest.fixture(scope="module")
def cluster(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATABASE_URL": database_url,
        "KONFIG_SECRET_KEY": "replica-test-secret-key-that-is-long-enough",
        "KONFIG_ENCRYPTION_KEYS": new_key_line(),
        "KONFIG_LISTENER_CHECK_SECONDS": "1",
    }
    a_proc, a_url = start_replica(env, tmp_path_factory.mktemp("replica-a"))
    try:
        b_proc, b_url = start_replica(env, tmp_path_factory.mktemp("replica-b"))
    except BaseException:
        a_proc.terminate()
        a_proc.wait(timeout=20)
        raise
    try:
        yield Cluster(database_url, a_url, b_url)
    finally:
        for proc in (a_proc, b_proc):
            proc.terminate()
        for proc in (a_proc, b_proc):
            assert proc.wait(timeout=30) == 0


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=40) as client:
        yield client


@dataclass
class Tenant:
    headers: dict[str, str]  # the owner's
    token: dict[str, Any]
    parent_id: str

    @property
    def reader(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token['token']}"}


async def _tenant(http: httpx.AsyncClient, base: str, name: str) -> Tenant:
    email = f"owner@{name}.example.com"
    created = await http.post(
        f"{base}/api/v1/auth/register", json={"name": name, "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    login = await http.post(
        f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    ids = {}
    for namespace in ("payments", "payments/production"):
        made = await http.post(
            f"{base}/api/v1/namespaces", headers=headers, json={"name": namespace}
        )
        assert made.status_code == 201, made.text
        ids[namespace] = made.json()["id"]
    tenant = Tenant(headers, {}, ids["payments"])
    await _set(http, base, tenant, ids["payments/production"], "currency", "USD")
    await _set(http, base, tenant, tenant.parent_id, "timeout", 1)
    account = await http.post(
        f"{base}/api/v1/service-accounts", headers=headers, json={"name": "reader"}
    )
    token = await http.post(
        f"{base}/api/v1/tokens",
        headers=headers,
        json={
            "name": "reader",
            "service_account_id": account.json()["id"],
            "scopes": [
                {"namespaces": "payments", "permissions": ["read"]},
                {"namespaces": "payments/**", "permissions": ["read"]},
            ],
        },
    )
    assert token.status_code == 201, token.text
    tenant.token = token.json()
    return tenant


async def _set(
    http: httpx.AsyncClient, base: str, tenant: Tenant, namespace_id: str, key: str, value: Any
) -> None:
    value_type = "number" if isinstance(value, int) else "string"
    answer = await http.put(
        f"{base}/api/v1/namespaces/{namespace_id}/configs/{key}",
        headers=tenant.headers,
        json={"value": value, "value_type": value_type},
    )
    assert answer.status_code in (200, 201), answer.text


CONFIG = "/api/v1/config/payments/production"


async def _timeout_on(http: httpx.AsyncClient, base: str, tenant: Tenant) -> int:
    answer = await http.get(f"{base}{CONFIG}", headers=tenant.reader)
    assert answer.status_code == 200, answer.text
    timeout = answer.json()["timeout"]
    assert isinstance(timeout, int)
    return timeout


async def _eventually(check: Any, what: str, attempts: int = 200) -> None:
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_a_write_on_one_replica_wakes_a_watcher_on_the_other(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    tenant = await _tenant(http, cluster.a, "wake")
    first = await http.get(f"{cluster.b}{CONFIG}", headers=tenant.reader)
    assert first.json()["timeout"] == 1  # B has it cached now
    etag = first.headers["etag"]

    poll_answered = False
    observed: list[tuple[bool, Any]] = []  # (asked after B's watcher woke, the timeout B served)
    stop = asyncio.Event()

    async def hammer_b() -> None:
        while not stop.is_set():
            asked_after_wake = poll_answered
            observed.append((asked_after_wake, await _timeout_on(http, cluster.b, tenant)))

    async def watch_b() -> httpx.Response:
        nonlocal poll_answered
        answer = await http.get(
            f"{cluster.b}{CONFIG}",
            headers={**tenant.reader, "If-None-Match": etag},
            params={"wait": 30},
        )
        poll_answered = True
        return answer

    hammering = asyncio.create_task(hammer_b())
    watching = await waiting(http, watch_b(), base=cluster.b)
    assert not watching.done()
    await _set(http, cluster.a, tenant, tenant.parent_id, "timeout", 2)
    woken = await watching
    assert woken.status_code == 200
    assert woken.json() == {"currency": "USD", "timeout": 2}
    while not hammering.done() and not any(after for after, _ in observed):
        await asyncio.sleep(0.01)  # until B has been asked again since its watcher woke
    stop.set()
    await hammering

    values = [value for _, value in observed]
    assert values[0] == 1 and values[-1] == 2
    # Once B served the new value it never went back, and nothing asked after its watcher woke
    # got the old one.
    assert values == sorted(values)
    assert all(value == 2 for after_wake, value in observed if after_wake)
    assert any(after_wake for after_wake, _ in observed)


async def test_revocation_on_one_replica_holds_on_the_other(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    tenant = await _tenant(http, cluster.a, "revoke")
    assert (await http.get(f"{cluster.b}{CONFIG}", headers=tenant.reader)).status_code == 200
    revoked = await http.delete(
        f"{cluster.a}/api/v1/tokens/{tenant.token['id']}", headers=tenant.headers
    )
    assert revoked.status_code == 204

    async def refused_on_b() -> bool:
        answer = await http.get(f"{cluster.b}{CONFIG}", headers=tenant.reader)
        return answer.status_code == 401

    await _eventually(refused_on_b, "B refuses the revoked token")
    for _ in range(20):  # and keeps refusing it
        assert (await http.get(f"{cluster.b}{CONFIG}", headers=tenant.reader)).status_code == 401


async def test_a_logout_on_one_replica_ends_the_login_on_the_other(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    tenant = await _tenant(http, cluster.a, "logout")
    for _ in range(3):  # B knows the login by now
        assert (
            await http.get(f"{cluster.b}/api/v1/auth/me", headers=tenant.headers)
        ).status_code == 200
    out = await http.post(f"{cluster.a}/api/v1/auth/logout", headers=tenant.headers)
    assert out.status_code == 204

    async def refused_on_b() -> bool:
        answer = await http.get(f"{cluster.b}/api/v1/auth/me", headers=tenant.headers)
        return answer.status_code == 401

    await _eventually(refused_on_b, "B refuses the ended login")
    for _ in range(20):  # and keeps refusing it
        assert (
            await http.get(f"{cluster.b}/api/v1/auth/me", headers=tenant.headers)
        ).status_code == 401


async def _listeners(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'konfig-listener' AND datname = current_database()"
            )
        )
    finally:
        await conn.close()


async def test_a_lost_listener_reconnects_and_drops_its_cache(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    tenant = await _tenant(http, cluster.a, "lost")
    assert await _timeout_on(http, cluster.b, tenant) == 1  # cached on B
    assert await _listeners(cluster.database_url) == 2

    conn = await asyncpg.connect(cluster.database_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'konfig-listener' AND datname = current_database()"
        )
    finally:
        await conn.close()
    assert killed == 2
    # Written while the replicas may not be listening: the notification may be lost for good.
    await _set(http, cluster.a, tenant, tenant.parent_id, "timeout", 3)

    async def b_serves_the_new_value() -> bool:
        return await _timeout_on(http, cluster.b, tenant) == 3

    await _eventually(b_serves_the_new_value, "B serves what was written during the outage")

    async def both_listen_again() -> bool:
        return await _listeners(cluster.database_url) == 2

    await _eventually(both_listen_again, "the replicas listen again", attempts=400)
    etag = (await http.get(f"{cluster.b}{CONFIG}", headers=tenant.reader)).headers["etag"]
    watching = await waiting(
        http,
        http.get(
            f"{cluster.b}{CONFIG}",
            headers={**tenant.reader, "If-None-Match": etag},
            params={"wait": 30},
        ),
        base=cluster.b,
    )
    assert not watching.done()
    await _set(http, cluster.a, tenant, tenant.parent_id, "timeout", 4)
    woken = await watching
    assert woken.status_code == 200 and woken.json()["timeout"] == 4
