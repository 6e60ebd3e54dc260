"""Single-entry writes answered ahead of FastAPI's routing: the same answers as the routes give,
the app's middleware still around them, and whatever is malformed left to FastAPI to refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.conftest import Account, assert_error
from tests.support.revisions import API, new_namespace


def entry(ns: str, key: str = "") -> str:
    return f"{API}/namespaces/{ns}/configs" + (f"/{key}" if key else "")


async def revision_of(client: httpx.AsyncClient, owner: Account, ns: str) -> int:
    answer = await client.get(f"{API}/namespaces/{ns}", headers=owner.headers)
    return int(answer.json()["revision"])


async def test_a_write_answers_as_the_entry_reads(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    headers = {**owner.headers, "X-Request-ID": "write-path-1", "X-Konfig-Message": "why"}
    created = await client.put(
        entry(ns, "pool"), headers=headers, json={"value": 5, "value_type": "number"}
    )
    assert created.status_code == 201
    read = await client.get(entry(ns, "pool"), headers=owner.headers)
    assert created.json() == read.json()
    assert created.headers["etag"] == read.headers["etag"] == '"1"'
    assert created.headers["content-type"] == "application/json"
    # The app's middleware still wraps it: request id, security headers.
    assert created.headers["x-request-id"] == "write-path-1"
    assert created.headers["x-content-type-options"] == "nosniff"
    revisions = await client.get(f"{API}/namespaces/{ns}/revisions", headers=owner.headers)
    assert revisions.json()["items"][0]["message"] == "why"

    posted = await client.post(
        entry(ns), headers=owner.headers, json={"key": "name", "value": "x", "description": "d"}
    )
    assert posted.status_code == 201 and posted.headers["etag"] == '"1"'
    patched = await client.patch(
        entry(ns, "name"), headers={**owner.headers, "If-Match": '"1"'}, json={"value": "y"}
    )
    assert patched.status_code == 200
    assert patched.json()["value"] == "y" and patched.json()["description"] == "d"
    gone = await client.delete(entry(ns, "name"), headers={**owner.headers, "If-Match": '"2"'})
    assert gone.status_code == 204 and gone.content == b""

    metrics = (await client.get("/metrics")).text
    for method, route in (
        ("PUT", "/api/v1/namespaces/{namespace_id}/configs/{key}"),
        ("POST", "/api/v1/namespaces/{namespace_id}/configs"),
        ("DELETE", "/api/v1/namespaces/{namespace_id}/configs/{key}"),
    ):
        assert f'method="{method}",route="{route}",status=' in metrics, (method, route)


async def test_malformed_writes_are_refused_as_before(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    json_headers = {**owner.headers, "Content-Type": "application/json"}

    bad_id = await client.put(
        f"{API}/namespaces/not-a-uuid/configs/k", headers=owner.headers, json={"value": 1}
    )
    assert ["path", "namespace_id"] in [
        e["loc"] for e in assert_error(bad_id, 422, "VALIDATION_ERROR")["details"]["errors"]
    ]
    bad_key = await client.put(entry(ns, "9lives"), headers=owner.headers, json={"value": 1})
    assert ["path", "key"] in [
        e["loc"] for e in assert_error(bad_key, 422, "VALIDATION_ERROR")["details"]["errors"]
    ]
    extra = await client.put(entry(ns, "k"), headers=owner.headers, json={"value": 1, "bogus": 2})
    assert ["body", "bogus"] in [
        e["loc"] for e in assert_error(extra, 422, "VALIDATION_ERROR")["details"]["errors"]
    ]
    broken = await client.put(entry(ns, "k"), headers=json_headers, content=b'{"value": ')
    assert_error(broken, 422, "VALIDATION_ERROR")
    no_key = await client.post(entry(ns), headers=owner.headers, json={"value": 1})
    assert ["body", "key"] in [
        e["loc"] for e in assert_error(no_key, 422, "VALIDATION_ERROR")["details"]["errors"]
    ]
    long_message = await client.put(
        entry(ns, "k"), headers={**owner.headers, "X-Konfig-Message": "m" * 1001}, json={"value": 1}
    )
    assert ["header", "X-Konfig-Message"] in [
        e["loc"] for e in assert_error(long_message, 422, "VALIDATION_ERROR")["details"]["errors"]
    ]
    as_text = await client.put(
        entry(ns, "k"),
        headers={**owner.headers, "Content-Type": "text/plain"},
        content=b'{"value": 1}',
    )
    assert as_text.status_code in (415, 422) and as_text.json()["status"] == "error"
    # A value beyond 64 bits reaches the value rules unchanged (a float would have been stored).
    huge = await client.put(
        entry(ns, "k"), headers=owner.headers, json={"value": 2**70, "value_type": "number"}
    )
    assert_error(huge, 422, "VALIDATION_ERROR")
    assert await revision_of(client, owner, ns) == 0


async def test_a_streamed_body_over_the_cap_is_refused(
    client: httpx.AsyncClient, owner: Account, app: Any
) -> None:
    ns = await new_namespace(client, owner)
    limit = app.state.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"value": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    answer = await client.put(
        entry(ns, "big"),
        headers={**owner.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert_error(answer, 413, "PAYLOAD_TOO_LARGE")
    assert await revision_of(client, owner, ns) == 0


async def test_credentials_are_checked_as_on_every_route(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await new_namespace(client, owner)
    missing = await client.put(entry(ns, "k"), json={"value": 1})
    assert_error(missing, 401, "UNAUTHENTICATED")
    assert missing.headers["www-authenticate"] == "Bearer"
    forged = await client.put(
        entry(ns, "k"), headers={"Authorization": "Bearer nope"}, json={"value": 1}
    )
    assert_error(forged, 401, "UNAUTHENTICATED")
    unknown_token = await client.put(
        entry(ns, "k"), headers={"Authorization": "Bearer kfg_" + "a" * 48}, json={"value": 1}
    )
    assert_error(unknown_token, 401, "UNAUTHENTICATED")
    assert await revision_of(client, owner, ns) == 0
