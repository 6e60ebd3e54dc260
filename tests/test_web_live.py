"""Live updates: the broadcaster, the commit hook that feeds it, and the SSE endpoint."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from konfig.revisions.writer import Committed
from konfig.web.live import Broadcaster
from tests.conftest import Account
from tests.test_namespaces import make_ns
from tests.web_helpers import sign_in


def committed(namespace_id: uuid.UUID, revision: int) -> Committed:
    return Committed(uuid.uuid4(), namespace_id, "payments/production", revision, ("k",))


async def test_a_subscriber_gets_the_newest_revision_of_its_namespace_only() -> None:
    feed = Broadcaster()
    mine, other = uuid.uuid4(), uuid.uuid4()
    subscription = feed.subscribe(mine)
    await feed.publish([committed(other, 7), committed(mine, 1)])
    await feed.publish([committed(mine, 2)])
    assert await asyncio.wait_for(anext(subscription), 1) == 2  # only the newest is kept
    waiting = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)
    assert not waiting.done()
    await feed.publish([committed(mine, 3)])
    assert await asyncio.wait_for(waiting, 1) == 3
    await subscription.aclose()
    assert feed.subscriber_count(mine) == 0


async def test_a_closed_subscription_ends_its_iteration() -> None:
    feed = Broadcaster()
    subscription = feed.subscribe(uuid.uuid4())
    waiting = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)
    await subscription.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)
    assert [revision async for revision in subscription] == []


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
    app.state.ui.stream_seconds = 0.3  # the stream ends by itself; a browser would reconnect
    app.state.ui.keepalive_seconds = 0.1
    answer = await client.get(f"/ui/namespaces/{ns}/events", params={"since": 0})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "retry: 2000" in answer.text
    assert "id: 2\nevent: revision\ndata: 2\n" in answer.text
    assert ": still here" in answer.text
    current = await client.get(f"/ui/namespaces/{ns}/events", headers={"Last-Event-ID": "2"})
    assert "event: revision" not in current.text
    assert app.state.ui.feed.subscriber_count(uuid.UUID(ns)) == 0


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
