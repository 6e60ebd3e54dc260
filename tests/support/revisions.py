"""Shared steps for the revision, document and import/export tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account

API = "/api/v1"


async def new_namespace(
    client: httpx.AsyncClient, account: Account, name: str = "payments/production"
) -> str:
    created = await client.post(f"{API}/namespaces", headers=account.headers, json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def put_entry(
    client: httpx.AsyncClient,
    account: Account,
    namespace_id: str,
    key: str,
    value: Any,
    *,
    message: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    headers = dict(account.headers)
    if message:
        headers["X-Konfig-Message"] = message
    answer = await client.put(
        f"{API}/namespaces/{namespace_id}/configs/{key}",
        headers=headers,
        json={"value": value, **fields},
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()  # type: ignore[no-any-return]


async def delete_entry(
    client: httpx.AsyncClient, account: Account, namespace_id: str, key: str
) -> None:
    answer = await client.delete(
        f"{API}/namespaces/{namespace_id}/configs/{key}", headers=account.headers
    )
    assert answer.status_code == 204, answer.text


async def snapshot(
    client: httpx.AsyncClient, account: Account, namespace_id: str, revision: int, **params: Any
) -> dict[str, Any]:
    answer = await client.get(
        f"{API}/namespaces/{namespace_id}/revisions/{revision}",
        headers=account.headers,
        params=params,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def contents(snapshot_body: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """What a snapshot holds, without the bookkeeping (versions, times, actors)."""
    return {
        e["key"]: (
            e["value"],
            e["value_type"],
            e["validation_schema"],
            e["description"],
            e["is_secret"],
        )
        for e in snapshot_body["entries"]
    }


async def namespace_revision(client: httpx.AsyncClient, account: Account, namespace_id: str) -> int:
    answer = await client.get(f"{API}/namespaces/{namespace_id}", headers=account.headers)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["revision"])
