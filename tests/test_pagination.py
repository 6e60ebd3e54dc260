"""Every list pages alike: a page of ``limit`` items and a cursor to the next, walked to the
end without a repeat or a gap; a cursor the server never gave out is the same 422 on each."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.conftest import Account, add_user, assert_error

NOT_A_CURSOR = "cursor: not a cursor this server gave out"
# Each refused by every list, whatever its order (a name, a time and an id, a number).
FORGED = [
    b"%%%",  # not base64
    b"nope",  # not JSON
    b'"x"',  # not a list
    b"{}",
    b"[]",
    b"[true]",
    b"[null, null, null]",
    b'["2026-01-01T00:00:00+00:00", 5]',  # a time with an id that is not one
    b'[5, "0b1d5c6e-4c7e-4c57-9d69-6c1f0f6d7a11"]',
    b"[99999999999]",
]


def _cursor(position: bytes) -> str:
    if position == b"%%%":
        return "%%%"
    return base64.urlsafe_b64encode(position).decode().rstrip("=")


async def _seed(client: httpx.AsyncClient, owner: Account) -> list[tuple[str, dict[str, str]]]:
    """Two or more items in every list; the lists, each with its query."""
    namespace = ""
    for name in ("a", "b"):
        created = await client.post(
            "/api/v1/namespaces", headers=owner.headers, json={"name": name}
        )
        assert created.status_code == 201, created.text
        namespace = namespace or created.json()["id"]
    configs = f"/api/v1/namespaces/{namespace}/configs"
    for key, value in (("k", "1"), ("j", "1"), ("k", "2")):
        written = await client.put(f"{configs}/{key}", headers=owner.headers, json={"value": value})
        assert written.status_code in (200, 201), written.text
    await add_user(client, owner, "second@acme.example.com", "viewer")
    for name in ("reader", "writer"):
        account = await client.post(
            "/api/v1/service-accounts", headers=owner.headers, json={"name": name}
        )
        assert account.status_code == 201, account.text
        token = await client.post(
            "/api/v1/tokens",
            headers=owner.headers,
            json={"name": name, "scopes": [{"namespaces": "**", "permissions": ["read"]}]},
        )
        assert token.status_code == 201, token.text
    for _ in range(2):
        assert (await client.post("/api/v1/backups", headers=owner.headers)).status_code == 201
    return [
        ("/api/v1/namespaces", {}),
        (configs, {}),
        (f"{configs}/k/history", {}),
        (f"/api/v1/namespaces/{namespace}/revisions", {}),
        ("/api/v1/users", {}),
        ("/api/v1/service-accounts", {}),
        ("/api/v1/tokens", {}),
        ("/api/v1/backups", {}),
        ("/api/v1/audit", {"action": "config."}),
    ]


async def _walk(
    client: httpx.AsyncClient, owner: Account, path: str, query: dict[str, str], limit: int
) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        params = query | {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        page = await client.get(path, headers=owner.headers, params=params)
        assert page.status_code == 200, (path, page.text)
        body = page.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_every_list_walks_page_by_page_to_what_one_page_holds(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for path, query in await _seed(client, owner):
        whole = await _walk(client, owner, path, query, limit=200)
        assert len(whole) >= 2, path
        assert await _walk(client, owner, path, query, limit=1) == whole, path


async def test_a_cursor_the_server_never_gave_out_is_the_same_422_on_every_list(
    client: httpx.AsyncClient, owner: Account
) -> None:
    lists = await _seed(client, owner)
    refused = []
    for position in FORGED:
        for path, query in lists:
            params = query | {"cursor": _cursor(position)}
            answer = await client.get(path, headers=owner.headers, params=params)
            if answer.status_code != 422:
                refused.append((path, position, answer.status_code))
                continue
            error = assert_error(answer, 422, "VALIDATION_ERROR")
            assert error["message"] == NOT_A_CURSOR, (path, position)
    assert refused == []
