"""Change push: long polls and server-sent events, woken by changes to what a namespace inherits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from konfig.settings import Settings
from tests.conftest import Account, Backend, assert_error, make_settings
from tests.readpath_helpers import (
    bearer,
    make_namespace,
    make_token,
    read,
    service_account,
    set_entry,
)

URL = "/api/v1/config/payments/production"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    """Heartbeats every 0.3 s, so a test sees one without waiting long."""
    return make_settings(backend.url, tmp_path, sse_heartbeat_seconds=0.3)


@pytest.fixture
async def served(app: Any) -> AsyncIterator[str]:
    """The test app behind a real HTTP server, for streaming responses."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _setup(
    client: httpx.AsyncClient, owner: Account
) -> tuple[dict[str, str], dict[str, Any]]:
    parent = await make_namespace(client, owner, "payments")
    production = await make_namespace(client, owner, "payments/production")
    await make_namespace(client, owner, "orders")
    await set_entry(client, owner, parent, "timeout", 10, value_type="number")
    await set_entry(client, owner, production, "currency", "USD")
    account_id = await service_account(client, owner, "svc")
    scopes = [*read("payments"), *read("payments/**")]  # a resolved read needs its ancestors
    token = await make_token(client, owner, scopes, service_account_id=account_id)
    return {"parent": parent, "production": production}, token


async def _write_soon(
    client: httpx.AsyncClient, owner: Account, namespace: str, key: str, value: Any
) -> None:
    await asyncio.sleep(0.3)  # let the watcher start waiting (if it has not, it answers at once)
    await set_entry(client, owner, namespace, key, value, value_type="number")


async def test_a_long_poll_answers_when_the_parent_changes(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    etag = (await client.get(URL, headers=headers)).headers["etag"]
    poll = client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 30})
    answer, _ = await asyncio.gather(poll, _write_soon(client, owner, ids["parent"], "timeout", 12))
    assert answer.status_code == 200
    assert answer.json() == {"currency": "USD", "timeout": 12}
    assert answer.headers["etag"] != etag
    # ... and in the format asked for.
    env_etag = (await client.get(URL, headers=headers, params={"format": "env"})).headers["etag"]
    poll = client.get(
        URL, headers={**headers, "If-None-Match": env_etag}, params={"wait": 30, "format": "env"}
    )
    answer, _ = await asyncio.gather(poll, _write_soon(client, owner, ids["parent"], "timeout", 13))
    assert answer.text == "CURRENCY=USD\nTIMEOUT=13\n"


async def test_a_long_poll_ends_with_304_when_nothing_it_inherits_changes(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    etag = (await client.get(URL, headers=headers)).headers["etag"]
    orders = (
        await client.get("/api/v1/namespaces", headers=owner.headers, params={"prefix": "orders"})
    ).json()
    orders_id = orders["items"][0]["id"]

    async def unrelated_writes() -> None:
        await asyncio.sleep(0.2)
        await set_entry(client, owner, orders_id, "x", 1, value_type="number")
        await set_entry(client, owner, ids["parent"], "currency", "EUR")  # overridden below

    poll = client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 1.5})
    answer, _ = await asyncio.gather(poll, unrelated_writes())
    assert answer.status_code == 304
    assert answer.headers["etag"] == etag


async def test_a_long_poll_answers_at_once_when_the_client_is_behind(
    client: httpx.AsyncClient, owner: Account
) -> None:
    _, token = await _setup(client, owner)
    headers = bearer(token["token"])
    stale = await client.get(
        URL, headers={**headers, "If-None-Match": '"old"'}, params={"wait": 60}
    )
    assert stale.status_code == 200 and stale.json()["currency"] == "USD"
    plain = await client.get(URL, headers=headers, params={"wait": 60})
    assert plain.status_code == 200


async def test_revoking_a_token_ends_its_long_poll(
    client: httpx.AsyncClient, owner: Account
) -> None:
    _, token = await _setup(client, owner)
    headers = bearer(token["token"])
    etag = (await client.get(URL, headers=headers)).headers["etag"]

    async def revoke_soon() -> None:
        await asyncio.sleep(0.3)
        revoked = await client.delete(f"/api/v1/tokens/{token['id']}", headers=owner.headers)
        assert revoked.status_code == 204

    poll = client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 30})
    answer, _ = await asyncio.gather(poll, revoke_soon())
    assert_error(answer, 401, "UNAUTHENTICATED")


async def test_a_long_poll_on_a_deleted_namespace_is_404(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    etag = (await client.get(URL, headers=headers)).headers["etag"]

    async def delete_soon() -> None:
        await asyncio.sleep(0.3)
        gone = await client.delete(
            f"/api/v1/namespaces/{ids['production']}",
            headers=owner.headers,
            params={"force": "true"},
        )
        assert gone.status_code == 204

    poll = client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 30})
    answer, _ = await asyncio.gather(poll, delete_soon())
    assert_error(answer, 404, "NOT_FOUND")


class Events:
    """Reads server-sent events (and comments) off a streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self) -> dict[str, str]:
        """The next event or comment: ``{"id", "event", "data"}`` or ``{"comment"}``."""
        fields: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(anext(self.lines), timeout=15)
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                return {"comment": line[1:].strip()}
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")

    async def next_event(self) -> dict[str, str]:
        while True:
            found = await self.next()
            if "comment" not in found and "retry" not in found:
                return found


async def test_events_stream_every_change_with_heartbeats(
    client: httpx.AsyncClient, owner: Account, served: str
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    async with httpx.AsyncClient(base_url=served, timeout=20) as http:
        async with http.stream("GET", f"{URL}/events", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = Events(response)
            first = await events.next_event()
            assert first["event"] == "change"
            data = orjson.loads(first["data"])
            assert data["config"] == {"currency": "USD", "timeout": 10}
            assert data["namespace"] == "payments/production"
            etag = (await client.get(URL, headers=headers)).headers["etag"]
            assert data["etag"] == etag and first["id"] == etag.strip('"')

            await set_entry(client, owner, ids["parent"], "timeout", 20, value_type="number")
            second = await events.next_event()
            assert orjson.loads(second["data"])["config"]["timeout"] == 20
            assert second["id"] != first["id"]

            await set_entry(client, owner, ids["production"], "currency", "CHF")
            third = await events.next_event()
            assert orjson.loads(third["data"])["config"] == {"currency": "CHF", "timeout": 20}

            assert (await events.next()) == {"comment": "ping"}


async def test_events_resume_from_last_event_id(
    client: httpx.AsyncClient, owner: Account, served: str
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    current = (await client.get(URL, headers=headers)).headers["etag"].strip('"')
    async with httpx.AsyncClient(base_url=served, timeout=20) as http:
        # Up to date: nothing but heartbeats until the next change.
        async with http.stream(
            "GET", f"{URL}/events", headers={**headers, "Last-Event-ID": current}
        ) as response:
            events = Events(response)
            assert (await events.next()) == {"retry": "2000"}
            assert (await events.next()) == {"comment": "ping"}
            await set_entry(client, owner, ids["parent"], "timeout", 30, value_type="number")
            changed = await events.next_event()
            assert orjson.loads(changed["data"])["config"]["timeout"] == 30
        # Behind: the current state at once.
        async with http.stream(
            "GET", f"{URL}/events", headers={**headers, "Last-Event-ID": current}
        ) as response:
            events = Events(response)
            assert (await events.next()) == {"retry": "2000"}
            caught_up = await events.next()
            assert caught_up["event"] == "change"
            assert orjson.loads(caught_up["data"])["config"]["timeout"] == 30


async def test_events_end_when_the_token_is_revoked_or_the_namespace_deleted(
    client: httpx.AsyncClient, owner: Account, served: str
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    async with httpx.AsyncClient(base_url=served, timeout=20) as http:
        async with http.stream("GET", f"{URL}/events", headers=headers) as response:
            events = Events(response)
            await events.next_event()
            revoked = await client.delete(f"/api/v1/tokens/{token['id']}", headers=owner.headers)
            assert revoked.status_code == 204
            ended = await events.next_event()
            assert ended["event"] == "error"
            assert orjson.loads(ended["data"])["code"] == "UNAUTHENTICATED"
            assert [line async for line in events.lines if line] == []

        async with http.stream("GET", f"{URL}/events", headers=owner.headers) as response:
            events = Events(response)
            await events.next_event()
            gone = await client.delete(
                f"/api/v1/namespaces/{ids['production']}",
                headers=owner.headers,
                params={"force": "true"},
            )
            assert gone.status_code == 204
            deleted = await events.next_event()
            assert deleted["event"] == "deleted"
            assert [line async for line in events.lines if line] == []


async def test_events_refuse_other_formats(client: httpx.AsyncClient, owner: Account) -> None:
    _, token = await _setup(client, owner)
    answer = await client.get(
        f"{URL}/events", headers=bearer(token["token"]), params={"format": "yaml"}
    )
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert_error(await client.get(f"{URL}/events"), 401, "UNAUTHENTICATED")


async def test_a_parent_change_wakes_each_child_with_its_own_content(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids, token = await _setup(client, owner)
    staging = await make_namespace(client, owner, "payments/staging")
    await set_entry(client, owner, staging, "currency", "XTS")
    headers = bearer(token["token"])
    urls = [URL, "/api/v1/config/payments/staging"]
    etags = [(await client.get(url, headers=headers)).headers["etag"] for url in urls]
    polls = [
        client.get(url, headers={**headers, "If-None-Match": etag}, params={"wait": 30})
        for url, etag in zip(urls, etags, strict=True)
    ]
    *answers, _ = await asyncio.gather(
        *polls, _write_soon(client, owner, ids["parent"], "timeout", 42)
    )
    assert [a.json() for a in answers] == [
        {"currency": "USD", "timeout": 42},
        {"currency": "XTS", "timeout": 42},
    ]

    # A sibling's change is not the other sibling's business.
    production_etag = answers[0].headers["etag"]
    poll = client.get(
        URL, headers={**headers, "If-None-Match": production_etag}, params={"wait": 1}
    )
    answer, _ = await asyncio.gather(poll, _write_soon(client, owner, staging, "limit", 5))
    assert answer.status_code == 304
