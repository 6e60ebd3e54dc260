"""The read path's scene (namespaces, entries, tokens) and its long polls, watched waiting."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import Any

import httpx

from tests.conftest import Account


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make_namespace(
    client: httpx.AsyncClient, admin: Account, name: str, includes: list[str] | None = None
) -> str:
    created = await client.post(
        "/api/v1/namespaces",
        headers=admin.headers,
        json={"name": name, "includes": includes or []},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def put_entry(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    namespace_id: str,
    key: str,
    value: Any,
    *,
    value_type: str = "string",
    is_secret: bool = False,
) -> httpx.Response:
    return await client.put(
        f"/api/v1/namespaces/{namespace_id}/configs/{key}",
        headers=headers,
        json={"value": value, "value_type": value_type, "is_secret": is_secret},
    )


async def set_entry(
    client: httpx.AsyncClient,
    admin: Account,
    namespace_id: str,
    key: str,
    value: Any,
    **kwargs: Any,
) -> None:
    answer = await put_entry(client, admin.headers, namespace_id, key, value, **kwargs)
    assert answer.status_code in (200, 201), answer.text


async def service_account(client: httpx.AsyncClient, admin: Account, name: str) -> str:
    created = await client.post(
        "/api/v1/service-accounts", headers=admin.headers, json={"name": name}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def make_token(
    client: httpx.AsyncClient,
    account: Account,
    scopes: list[dict[str, Any]],
    *,
    service_account_id: str | None = None,
    name: str = "test-token",
    **extra: Any,
) -> dict[str, Any]:
    """Create a token (for a service account when given, else for ``account`` itself)."""
    payload: dict[str, Any] = {"name": name, "scopes": scopes, **extra}
    if service_account_id is not None:
        payload["service_account_id"] = service_account_id
    created = await client.post("/api/v1/tokens", headers=account.headers, json=payload)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def read(pattern: str) -> list[dict[str, Any]]:
    return [{"namespaces": pattern, "permissions": ["read"]}]


def read_secrets(*patterns: str) -> list[dict[str, Any]]:
    """Read these namespaces with their secret values decrypted."""
    return [{"namespaces": p, "permissions": ["read", "secrets"]} for p in patterns]


def read_write(pattern: str) -> list[dict[str, Any]]:
    return [{"namespaces": pattern, "permissions": ["read", "write"]}]


_WATCHERS = re.compile(r"^konfig_active_watchers (\S+)$", re.MULTILINE)


async def watchers(client: httpx.AsyncClient, base: str = "") -> int:
    """How many long polls and event streams the server counts waiting for a change."""
    answer = await client.get(f"{base}/metrics")
    assert answer.status_code == 200, answer.text
    found = _WATCHERS.search(answer.text)
    assert found, "no konfig_active_watchers in /metrics"
    return int(float(found.group(1)))


async def watchers_become(client: httpx.AsyncClient, count: int) -> int:
    """konfig_active_watchers once it is ``count``, or what it is after a few seconds."""
    found = -1
    for _ in range(100):
        found = await watchers(client)
        if found == count:
            break
        await asyncio.sleep(0.1)
    return found


async def waiting(
    client: httpx.AsyncClient,
    request: Awaitable[httpx.Response],
    *,
    base: str = "",
    count: int = 1,
) -> asyncio.Task[httpx.Response]:
    """Start ``request`` (a long poll) and hand it back once the server at ``base`` counts
    ``count`` watchers waiting for a change, the request not answered yet."""
    task = asyncio.ensure_future(request)
    for _ in range(2000):
        if await watchers(client, base) >= count:
            assert not task.done(), "the long poll answered before any change"
            return task
        assert not task.done(), f"the long poll answered without waiting: {task.result().text}"
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server never counted {count} watcher(s)")
