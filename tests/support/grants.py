"""Users made with grants (roles per namespace pattern) through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, add_user


def grant(role: str, namespaces: str) -> dict[str, str]:
    return {"role": role, "namespaces": namespaces}


async def add_granted(
    client: httpx.AsyncClient, admin: Account, email: str, grants: list[dict[str, str]]
) -> Account:
    """Add a user holding ``grants`` to ``admin``'s tenant and log them in."""
    return await add_user(client, admin, email, grants=grants)


async def put_grants(
    client: httpx.AsyncClient, admin: Account, user_id: str, grants: list[dict[str, str]]
) -> httpx.Response:
    return await client.put(
        f"/api/v1/users/{user_id}/grants", headers=admin.headers, json={"grants": grants}
    )


async def audit_of(client: httpx.AsyncClient, who: Account, action: str) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/audit", headers=who.headers, params={"action": action})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]
