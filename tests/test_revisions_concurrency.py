"""Concurrent writers to one namespace: nothing lost, and If-Match lets exactly one through."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.conftest import Account
from tests.support.revisions import API, namespace_revision, new_namespace, put_entry, snapshot

WRITERS = 20


async def test_concurrent_unconditional_writes_each_get_their_own_revision(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)

    async def write(n: int) -> httpx.Response:
        key = f"key_{n:02}" if n % 2 else "shared"
        return await client.put(
            f"{API}/namespaces/{ns}/configs/{key}",
            headers=owner.headers,
            json={"value": n, "value_type": "number"},
        )

    answers = await asyncio.gather(*(write(n) for n in range(WRITERS)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    assert sorted(a.json()["revision"] for a in answers) == list(range(1, WRITERS + 1))
    assert await namespace_revision(client, owner, ns) == WRITERS

    revisions = await client.get(
        f"{API}/namespaces/{ns}/revisions", headers=owner.headers, params={"limit": 100}
    )
    assert [r["revision"] for r in revisions.json()["items"]] == list(range(WRITERS, 0, -1))
    history = await client.get(
        f"{API}/namespaces/{ns}/configs/shared/history", headers=owner.headers
    )
    versions = history.json()["items"]
    assert [v["version"] for v in versions] == list(range(WRITERS // 2, 0, -1))
    assert sorted(v["value"] for v in versions) == list(range(0, WRITERS, 2))
    latest = await snapshot(client, owner, ns, WRITERS)
    assert len(latest["entries"]) == WRITERS // 2 + 1
    assert {e["key"]: e["value"] for e in latest["entries"]}["shared"] == versions[0]["value"]


async def test_concurrent_writes_with_the_same_entry_if_match_let_one_through(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    created = await put_entry(client, owner, ns, "limit", 0, value_type="number")

    async def write(n: int) -> httpx.Response:
        return await client.put(
            f"{API}/namespaces/{ns}/configs/limit",
            headers={**owner.headers, "If-Match": f'"{created["version"]}"'},
            json={"value": n + 1, "value_type": "number"},
        )

    answers = await asyncio.gather(*(write(n) for n in range(WRITERS)))
    assert Counter(a.status_code for a in answers) == {200: 1, 412: WRITERS - 1}
    assert all(
        a.json()["error"]["code"] == "PRECONDITION_FAILED" for a in answers if a.status_code == 412
    )
    winner = next(a for a in answers if a.status_code == 200).json()
    assert (winner["version"], winner["revision"]) == (2, 2)
    assert await namespace_revision(client, owner, ns) == 2


async def test_concurrent_documents_with_the_same_if_match_let_one_through(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    await put_entry(client, owner, ns, "seed", "x")

    async def write(n: int) -> httpx.Response:
        return await client.put(
            f"{API}/namespaces/{ns}/document",
            headers={**owner.headers, "If-Match": '"1"'},
            json={"entries": [{"key": "writer", "value": n, "value_type": "number"}]},
        )

    answers = await asyncio.gather(*(write(n) for n in range(WRITERS)))
    assert Counter(a.status_code for a in answers) == {200: 1, 412: WRITERS - 1}
    winner = next(a for a in answers if a.status_code == 200).json()
    assert (winner["revision"], winner["committed"]) == (2, True)
    latest = await snapshot(client, owner, ns, 2)
    assert [(e["key"], e["value"]) for e in latest["entries"]] == [
        ("writer", winner["diff"]["added"][0]["new"]["value"])
    ]
    assert await namespace_revision(client, owner, ns) == 2
