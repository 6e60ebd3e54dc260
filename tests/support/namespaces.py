"""Namespaces made through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account


async def make_ns(
    client: httpx.AsyncClient, who: Account, name: str, **extra: object
) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/namespaces", headers=who.headers, json={"name": name, **extra}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]
