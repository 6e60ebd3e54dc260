"""Event streams under `konfig serve`: changes written straight to the connections by one loop
(``konfig.delivery.stream``), framed as uvicorn frames them, with their ids, none missed; what
the loop cannot send (a state the token may no longer read) still goes through the stream's
own task."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import PASSWORD
from tests.support.apps import free_port, wait_ready
from tests.support.events import Events
from tests.support.readpath import watchers
from tests.test_metrics import value

URL = "/api/v1/config/payments/production"


@asynccontextmanager
async def _serving(tmp_path: Path, heartbeat: str) -> AsyncIterator[str]:
    """A `konfig serve` (uvicorn, httptools) on SQLite, with heartbeats this often."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    env |= {
        "KONFIG_DATA_DIR": str(tmp_path / "data"),
        "KONFIG_PORT": str(port),
        "KONFIG_SSE_HEARTBEAT_SECONDS": heartbeat,
    }
    proc = subprocess.Popen([sys.executable, "-m", "konfig", "serve"], env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_ready, url, proc)
        yield url
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


@pytest.fixture
async def base(tmp_path: Path) -> AsyncIterator[str]:
    """A `konfig serve`, heartbeats out of the way."""
    async with _serving(tmp_path, "600") as url:
        yield url


@pytest.fixture
async def beating(tmp_path: Path) -> AsyncIterator[str]:
    """A `konfig serve` with a heartbeat every 0.3 s."""
    async with _serving(tmp_path, "0.3") as url:
        yield url


async def _seed(http: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str], str]:
    """The owner's headers, the namespaces' ids, and a token reading payments and below."""
    email = "owner@direct.example.com"
    created = await http.post(
        "/api/v1/auth/register", json={"name": "direct", "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201
    login = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    owner = {"Authorization": f"Bearer {login.json()['access_token']}"}
    ids = {}
    for name in ("payments", "payments/production", "shared"):
        made = await http.post("/api/v1/namespaces", headers=owner, json={"name": name})
        assert made.status_code == 201
        ids[name] = made.json()["id"]
    account = await http.post("/api/v1/service-accounts", headers=owner, json={"name": "svc"})
    scopes = [{"namespaces": n, "permissions": ["read"]} for n in ("payments", "payments/**")]
    token = await http.post(
        "/api/v1/tokens",
        headers=owner,
        json={"name": "svc", "service_account_id": account.json()["id"], "scopes": scopes},
    )
    assert token.status_code == 201
    return owner, ids, token.json()["token"]


async def _set(http: httpx.AsyncClient, owner: dict[str, str], namespace: str, seq: int) -> None:
    url = f"/api/v1/namespaces/{namespace}/configs/seq"
    answer = await http.put(url, headers=owner, json={"value": seq, "value_type": "number"})
    assert answer.status_code in (200, 201)


async def _events_total(http: httpx.AsyncClient) -> tuple[float, float]:
    text = (await http.get("/metrics")).text
    return (
        value(text, "konfig_config_events_total", path="direct"),
        value(text, "konfig_config_events_total", path="asgi"),
    )


@pytest.mark.slow
async def test_changes_reach_every_stream_written_directly_with_their_ids(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http, AsyncExitStack() as opened:
        owner, ids, token = await _seed(http)
        reader = {"Authorization": f"Bearer {token}"}
        await _set(http, owner, ids["payments"], 0)
        current = (await http.get(URL, headers=reader)).headers["etag"].strip('"')

        streams = []
        for resume in (None, None, current):  # the third resumes at the current state
            headers = reader if resume is None else {**reader, "Last-Event-ID": resume}
            response = await opened.enter_async_context(
                http.stream("GET", f"{URL}/events", headers=headers)
            )
            assert response.headers["transfer-encoding"] == "chunked"
            streams.append(Events(response))
        for events in streams[:2]:
            first = await events.next_event()
            assert first["id"] == current
            assert orjson.loads(first["data"])["config"] == {"seq": 0}
        before = await _events_total(http)

        for seq in (1, 2, 3):
            await _set(http, owner, ids["payments"], seq)  # the parent: inherited
            etag = (await http.get(URL, headers=reader)).headers["etag"].strip('"')
            for events in streams:
                event = await events.next_event()
                assert event["event"] == "change"
                assert event["id"] == etag  # Last-Event-ID resumes from it
                assert orjson.loads(event["data"])["config"] == {"seq": seq}

        direct, asgi = await _events_total(http)
        assert (direct - before[0], asgi - before[1]) == (9, 0)

        # A state the token may not read (an include outside its scopes) is no state to write:
        # the stream's task sends the refusal, through ASGI.
        patched = await http.patch(
            f"/api/v1/namespaces/{ids['payments/production']}",
            headers=owner,
            json={"includes": ["shared"]},
        )
        assert patched.status_code == 200
        for events in streams:
            refused = await events.next_event()
            assert refused["event"] == "error"
            assert orjson.loads(refused["data"])["code"] == "FORBIDDEN"

        # A new stream after all that still starts from the current state.
        etag = (await http.get(URL, headers=owner)).headers["etag"].strip('"')
        async with http.stream("GET", f"{URL}/events", headers=owner) as response:
            event = await Events(response).next_event()
            assert event["id"] == etag


async def _watchers_become(http: httpx.AsyncClient, count: int) -> int:
    """konfig_active_watchers once it is ``count``, or what it is after a few seconds."""
    found = -1
    for _ in range(100):
        found = await watchers(http)
        if found == count:
            break
        await asyncio.sleep(0.1)
    return found


@pytest.mark.slow
async def test_a_stream_whose_client_leaves_is_let_go_without_a_heartbeat(base: str) -> None:
    """A stream written directly hears of its client leaving from the connection (no task
    reads the request for it): it is let go at once, not at the next heartbeat (600 s here),
    and the streams that stay still get every change."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        owner, ids, token = await _seed(http)
        reader = {"Authorization": f"Bearer {token}"}
        await _set(http, owner, ids["payments"], 0)
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as staying,
            staying.stream("GET", f"{URL}/events", headers=reader) as kept,
        ):
            events = Events(kept)
            await events.next_event()
            async with httpx.AsyncClient(base_url=base, timeout=30) as leaving:
                async with leaving.stream("GET", f"{URL}/events", headers=reader) as left:
                    await Events(left).next_event()
                    assert await _watchers_become(http, 2) == 2
            assert await _watchers_become(http, 1) == 1

            await _set(http, owner, ids["payments"], 1)
            event = await events.next_event()
            assert orjson.loads(event["data"])["config"] == {"seq": 1}


@pytest.mark.slow
async def test_a_long_poll_whose_client_leaves_is_let_go_before_its_wait_ends(base: str) -> None:
    """A long poll hears of its client leaving from the connection too: it stops waiting at
    once, not when its `wait` (30 s here) runs out."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        _, _, token = await _seed(http)
        reader = {"Authorization": f"Bearer {token}"}
        etag = (await http.get(URL, headers=reader)).headers["etag"]
        async with httpx.AsyncClient(base_url=base, timeout=60) as leaving:
            poll = asyncio.create_task(
                leaving.get(f"{URL}?wait=30", headers={**reader, "If-None-Match": etag})
            )
            assert await _watchers_become(http, 1) == 1
            poll.cancel()
            with pytest.raises(asyncio.CancelledError):
                await poll
        assert await _watchers_become(http, 0) == 0


@pytest.mark.slow
async def test_heartbeats_written_directly_still_end_a_stream_whose_token_expired(
    beating: str,
) -> None:
    """Heartbeats are written straight to the connections too (no task woken per stream), with
    the token checked as the stream's task checks it: a stream whose token expired gets its
    error at the next heartbeat, the others their heartbeats and every change."""
    async with httpx.AsyncClient(base_url=beating, timeout=30) as http, AsyncExitStack() as opened:
        owner, ids, token = await _seed(http)
        account = await http.post("/api/v1/service-accounts", headers=owner, json={"name": "brief"})
        expiring = await http.post(
            "/api/v1/tokens",
            headers=owner,
            json={
                "name": "brief",
                "service_account_id": account.json()["id"],
                "scopes": [{"namespaces": "payments/**", "permissions": ["read"]}],
                "expires_at": (datetime.now(UTC) + timedelta(seconds=6)).isoformat(),
            },
        )
        assert expiring.status_code == 201
        await _set(http, owner, ids["payments"], 0)
        streams = []
        for secret in (token, expiring.json()["token"]):
            headers = {"Authorization": f"Bearer {secret}"}
            response = await opened.enter_async_context(
                http.stream("GET", f"{URL}/events", headers=headers)
            )
            events = Events(response)
            await events.next_event()
            streams.append(events)
        kept, ending = streams

        pings = 0
        while pings < 3:
            pings += (await kept.next()).get("comment") == "ping"
        for _ in range(200):  # heartbeats until the token expires, 6 s after it was made
            found = await ending.next()
            if "comment" not in found:
                break
        assert found["event"] == "error"
        assert orjson.loads(found["data"])["code"] == "UNAUTHENTICATED"

        await _set(http, owner, ids["payments"], 1)
        event = await kept.next_event()
        assert orjson.loads(event["data"])["config"] == {"seq": 1}
