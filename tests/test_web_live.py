"""Live updates: the feed fed by the delivery layer's announcements, and the SSE endpoint."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from konfig.delivery.notifier import Event, encode
from konfig.settings import Settings
from konfig.web.live import NamespaceFeed
from tests.conftest import Account, Backend
from tests.support.apps import client_of, running
from tests.support.namespaces import make_ns
from tests.support.web import sign_in


def entry(ns: str, key: str) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/namespaces/{ns}/configs", {"key": key, "value": "x"}


async def write(client: httpx.AsyncClient, owner: Account, ns: str, key: str) -> None:
    url, body = entry(ns, key)
    created = await client.post(url, headers=owner.headers, json=body)
    assert created.status_code == 201, created.text


async def test_a_subscriber_gets_the_newest_revision_of_its_namespace_only(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    feed: NamespaceFeed = app.state.ui.feed
    mine = (await make_ns(client, owner, "payments/production"))["id"]
    other = (await make_ns(client, owner, "payments/staging"))["id"]
    subscription = feed.subscribe(uuid.UUID(mine))
    await write(client, owner, other, "a")
    await write(client, owner, mine, "a")
    await write(client, owner, mine, "b")
    await feed.idle()
    assert await asyncio.wait_for(anext(subscription), 5) == 2  # only the newest is kept
    waiting = asyncio.ensure_future(anext(subscription))
    await write(client, owner, other, "b")
    await feed.idle()
    await asyncio.sleep(0.05)
    assert not waiting.done()  # another namespace's change is not this one's
    await write(client, owner, mine, "c")
    assert await asyncio.wait_for(waiting, 5) == 3
    await subscription.aclose()
    assert feed.subscriber_count(uuid.UUID(mine)) == 0


async def test_the_stream_passes_on_new_revisions_only(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    await make_ns(client, owner, "shared")
    await write(client, owner, ns, "a")
    await sign_in(client, owner.email)
    ui = app.state.ui
    ui.stream_seconds = 1.0
    ui.keepalive_seconds = 0.5
    streaming = asyncio.ensure_future(
        client.get(f"/ui/namespaces/{ns}/events", params={"since": 1})
    )
    while ui.feed.subscriber_count(uuid.UUID(ns)) == 0:
        await asyncio.sleep(0.01)
    changed = await client.patch(
        f"/api/v1/namespaces/{ns}", headers=owner.headers, json={"includes": ["shared"]}
    )
    assert changed.status_code == 200, changed.text  # announced, but still revision 1
    await ui.feed.idle()
    await write(client, owner, ns, "b")
    answer = await asyncio.wait_for(streaming, 10)
    assert "id: 2\nevent: revision\ndata: 2\n" in answer.text
    assert "data: 1\n" not in answer.text


async def test_a_closed_subscription_ends_its_iteration(app: Any) -> None:
    subscription = app.state.ui.feed.subscribe(uuid.uuid4())
    waiting = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)
    await subscription.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)
    assert [revision async for revision in subscription] == []


async def test_a_change_committed_by_another_replica_reaches_the_open_page_feed(
    app: Any, client: httpx.AsyncClient, owner: Account, settings: Settings, backend: Backend
) -> None:
    """Another app on the same database stands for another replica. On PostgreSQL its
    announcement arrives through LISTEN/NOTIFY; SQLite and MariaDB have no transport of their
    own (one replica, or Redis), so there the message it would publish is handed to this
    process's notifier."""
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    feed: NamespaceFeed = app.state.ui.feed
    subscription = feed.subscribe(uuid.UUID(ns))
    waiting = asyncio.ensure_future(anext(subscription))
    async with running(settings) as replica, client_of(replica) as other:
        url, body = entry(ns, "timeout")
        created = await other.post(url, headers=owner.headers, json=body)
        assert created.status_code == 201, created.text
        if backend.name != "postgres":
            await feed.idle()
            assert not waiting.done()  # nothing travels by itself between these processes
            notifier = app.state.delivery.notifier
            own = encode(notifier.origin, [announced(owner, ns)])[0]
            notifier.received(own)  # its own echo is ignored
            await feed.idle()
            assert not waiting.done()
            message = encode(replica.state.delivery.notifier.origin, [announced(owner, ns)])[0]
            notifier.received(message)
        assert await asyncio.wait_for(waiting, 10) == 1
    await subscription.aclose()


def announced(owner: Account, ns: str) -> Event:
    return ("ns", uuid.UUID(owner.tenant_id), uuid.UUID(ns), "payments/production")


async def test_commits_through_the_api_reach_the_ui_feed(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    subscription = app.state.ui.feed.subscribe(uuid.UUID(ns))
    created = await client.post(
        f"/api/v1/namespaces/{ns}/configs",
        headers=owner.headers,
        json={"key": "timeout", "value": 30, "value_type": "number"},
    )
    assert created.status_code == 201
    assert await asyncio.wait_for(anext(subscription), 1) == 1
    await subscription.aclose()


async def test_the_event_stream_tells_a_page_that_is_behind(
    app: Any, client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    for key in ("a", "b"):
        await client.post(
            f"/api/v1/namespaces/{ns}/configs",
            headers=owner.headers,
            json={"key": key, "value": "x"},
        )
    await sign_in(client, owner.email)
    ui = app.state.ui
    ui.stream_seconds = 0.3  # the stream ends by itself; a browser would reconnect
    ui.keepalive_seconds = 0.1
    answer = await client.get(f"/ui/namespaces/{ns}/events", params={"since": 0})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "retry: 2000" in answer.text
    assert "id: 2\nevent: revision\ndata: 2\n" in answer.text
    assert ": still here" in answer.text
    current = await client.get(f"/ui/namespaces/{ns}/events", headers={"Last-Event-ID": "2"})
    assert "event: revision" not in current.text
    assert ui.feed.subscriber_count(uuid.UUID(ns)) == 0


async def test_the_event_stream_needs_a_login_and_the_tenant(
    app: Any, client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    anonymous = await client.get(
        f"/ui/namespaces/{ns}/events", headers={"Accept": "text/event-stream"}
    )
    assert anonymous.status_code == 401
    await sign_in(client, other_tenant.email)
    foreign = await client.get(
        f"/ui/namespaces/{ns}/events", headers={"Accept": "text/event-stream"}
    )
    assert foreign.status_code == 404
    assert app.state.ui.feed.subscriber_count(uuid.UUID(ns)) == 0
