"""Change push: long polls and server-sent events, woken by changes to what a namespace inherits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from konfig.settings import Settings
from tests.conftest import Account, Backend, assert_error, make_settings
from tests.support.events import Events
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    read,
    service_account,
    set_entry,
    waiting,
    watchers,
)

URL = "/api/v1/config/payments/production"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    """Heartbeats every 0.3 s, so a test sees one without waiting long."""
    return make_settings(backend.url, tmp_path, sse_heartbeat_seconds=0.3)


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


async def test_a_long_poll_answers_when_the_parent_changes(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    etag = (await client.get(URL, headers=headers)).headers["etag"]
    poll = await waiting(
        client, client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 30})
    )
    assert not poll.done()
    await set_entry(client, owner, ids["parent"], "timeout", 12, value_type="number")
    answer = await poll
    assert await watchers(client) == 0  # konfig_active_watchers counts the waiting ones only
    assert answer.status_code == 200
    assert answer.json() == {"currency": "USD", "timeout": 12}
    assert answer.headers["etag"] != etag
    # ... and in the format asked for.
    env_etag = (await client.get(URL, headers=headers, params={"format": "env"})).headers["etag"]
    poll = await waiting(
        client,
        client.get(
            URL,
            headers={**headers, "If-None-Match": env_etag},
            params={"wait": 30, "format": "env"},
        ),
    )
    assert not poll.done()
    await set_entry(client, owner, ids["parent"], "timeout", 13, value_type="number")
    answer = await poll
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

    poll = await waiting(
        client, client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 3})
    )
    assert not poll.done()
    await set_entry(client, owner, orders_id, "x", 1, value_type="number")
    await set_entry(client, owner, ids["parent"], "currency", "EUR")  # overridden below
    assert not poll.done()  # neither write woke it: it answers at its timeout
    answer = await poll
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

    poll = await waiting(
        client, client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 30})
    )
    assert not poll.done()
    revoked = await client.delete(f"/api/v1/tokens/{token['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    assert_error(await poll, 401, "UNAUTHENTICATED")


async def test_a_long_poll_on_a_deleted_namespace_is_404(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ids, token = await _setup(client, owner)
    headers = bearer(token["token"])
    etag = (await client.get(URL, headers=headers)).headers["etag"]

    poll = await waiting(
        client, client.get(URL, headers={**headers, "If-None-Match": etag}, params={"wait": 30})
    )
    assert not poll.done()
    gone = await client.delete(
        f"/api/v1/namespaces/{ids['production']}", headers=owner.headers, params={"force": "true"}
    )
    assert gone.status_code == 204
    assert_error(await poll, 404, "NOT_FOUND")


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
        await waiting(
            client,
            client.get(url, headers={**headers, "If-None-Match": etag}, params={"wait": 30}),
            count=count,
        )
        for count, (url, etag) in enumerate(zip(urls, etags, strict=True), start=1)
    ]
    assert not any(poll.done() for poll in polls)
    await set_entry(client, owner, ids["parent"], "timeout", 42, value_type="number")
    answers = [await poll for poll in polls]
    assert [a.json() for a in answers] == [
        {"currency": "USD", "timeout": 42},
        {"currency": "XTS", "timeout": 42},
    ]

    # A sibling's change is not the other sibling's business.
    production_etag = answers[0].headers["etag"]
    poll = await waiting(
        client,
        client.get(URL, headers={**headers, "If-None-Match": production_etag}, params={"wait": 3}),
    )
    assert not poll.done()
    await set_entry(client, owner, staging, "limit", 5, value_type="number")
    assert not poll.done()  # the sibling's write did not wake it: it answers at its timeout
    answer = await poll
    assert answer.status_code == 304


async def test_what_a_namespace_inherits_is_tracked_as_it_is_created_included_and_deleted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """The cache's index of who inherits what (``ResolvedCache._readers``) wakes exactly the
    namespaces a change concerns: an include added or dropped, an ancestor created after its
    descendant, a namespace deleted; the others sleep on."""
    ids, _ = await _setup(client, owner)
    eu = await make_namespace(client, owner, "payments/production/eu")
    await set_entry(client, owner, eu, "region", "eu-central-1")
    orders = (
        await client.get("/api/v1/namespaces", headers=owner.headers, params={"prefix": "orders"})
    ).json()["items"][0]["id"]
    token = await make_token(client, owner, read("**"))
    headers = bearer(token["token"])
    paths = {
        "production": URL,
        "eu": "/api/v1/config/payments/production/eu",
        "orders": "/api/v1/config/orders",
        "prod": "/api/v1/config/apps/web/prod",
    }

    async def poll(*names: str, wait: float = 30) -> dict[str, Any]:
        """Long polls on ``names`` (waiting, all of them) as tasks by name."""
        tasks: dict[str, Any] = {}
        for name in names:
            etag = (await client.get(paths[name], headers=headers)).headers["etag"]
            request = client.get(
                paths[name], headers={**headers, "If-None-Match": etag}, params={"wait": wait}
            )
            tasks[name] = await waiting(client, request, count=len(tasks) + 1)
        return tasks

    # An include added wakes the namespace and its descendants, not the others.
    shared = await make_namespace(client, owner, "shared")
    await set_entry(client, owner, shared, "log_level", "debug")
    polls = await poll("production", "eu", "orders", wait=3)
    patched = await client.patch(
        f"/api/v1/namespaces/{ids['production']}",
        headers=owner.headers,
        json={"includes": ["shared"]},
    )
    assert patched.status_code == 200
    for name in ("production", "eu"):
        assert (await polls[name]).json()["log_level"] == "debug"
    assert not polls["orders"].done()
    assert (await polls["orders"]).status_code == 304

    # The included namespace's changes now reach both; dropped, they no longer do.
    polls = await poll("production", "eu")
    await set_entry(client, owner, shared, "log_level", "info")
    for name in ("production", "eu"):
        assert (await polls[name]).json()["log_level"] == "info"
    polls = await poll("production", "eu")
    patched = await client.patch(
        f"/api/v1/namespaces/{ids['production']}", headers=owner.headers, json={"includes": []}
    )
    for name in ("production", "eu"):
        assert "log_level" not in (await polls[name]).json()
    polls = await poll("production", "eu", wait=2)
    await set_entry(client, owner, shared, "log_level", "warn")
    await set_entry(client, owner, orders, "x", 1, value_type="number")
    for name in ("production", "eu"):
        assert (await polls[name]).status_code == 304

    # An ancestor created after its descendant joins the descendant's config, and goes again
    # with its deletion.
    prod = await make_namespace(client, owner, "apps/web/prod")
    await set_entry(client, owner, prod, "replicas", 3, value_type="number")
    polls = await poll("prod")
    web = await make_namespace(client, owner, "apps/web")
    await set_entry(client, owner, web, "port", 8080, value_type="number")
    answer = await polls["prod"]
    if "port" not in answer.json():  # woken by the creation, before the entry: read again
        answer = await client.get(paths["prod"], headers=headers)
    assert answer.json() == {"port": 8080, "replicas": 3}
    polls = await poll("prod")
    deleted = await client.delete(
        f"/api/v1/namespaces/{web}", headers=owner.headers, params={"force": "true"}
    )
    assert deleted.status_code == 204
    assert (await polls["prod"]).json() == {"replicas": 3}
