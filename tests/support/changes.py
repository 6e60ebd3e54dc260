"""Protection policies and change requests through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account

REQUESTS = "/api/v1/change-requests"


async def protect(
    client: httpx.AsyncClient, admin: Account, pattern: str, **rules: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/protection-policies", headers=admin.headers, json={"namespaces": pattern, **rules}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def step(
    client: httpx.AsyncClient, who: Account, request_id: str, action: str, **body: Any
) -> httpx.Response:
    """``POST …/{id}/{action}`` (submit, approve, reject, merge, comment)."""
    return await client.post(
        f"{REQUESTS}/{request_id}/{action}", headers=who.headers, json=body or None
    )


async def done(
    client: httpx.AsyncClient, who: Account, request_id: str, action: str, **body: Any
) -> dict[str, Any]:
    answer = await step(client, who, request_id, action, **body)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def propose(
    client: httpx.AsyncClient,
    who: Account,
    namespace_id: str,
    key: str,
    value: Any,
    *,
    message: str | None = None,
    value_type: str = "string",
) -> dict[str, Any]:
    """A PUT to a protected namespace: 202 with the change request it went into."""
    headers = {**who.headers, **({"X-Konfig-Message": message} if message else {})}
    answer = await client.put(
        f"/api/v1/namespaces/{namespace_id}/configs/{key}",
        headers=headers,
        json={"value": value, "value_type": value_type},
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"{REQUESTS}/{answer.json()['id']}"
    return answer.json()  # type: ignore[no-any-return]


async def listed(client: httpx.AsyncClient, who: Account, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get(REQUESTS, headers=who.headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]
