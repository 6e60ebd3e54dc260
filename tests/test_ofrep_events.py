"""OFREP's change stream, `GET /ofrep/v1/events`, over a real HTTP server: a message per change
of the namespace's flags (not of its other entries), heartbeats, resuming with Last-Event-ID,
and its end when the token is revoked or the namespace deleted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from konfig.settings import Settings
from tests.conftest import Account, Backend, make_settings
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry

FLAG = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend.url, tmp_path, sse_heartbeat_seconds=0.2)


async def _lines(stream: httpx.Response) -> AsyncIterator[str]:
    async for line in stream.aiter_lines():
        yield line


async def _next(lines: AsyncIterator[str], prefix: str) -> str:
    async def find() -> str:
        async for line in lines:
            if line.startswith(prefix):
                return line
        raise AssertionError(f"the stream ended before a line starting {prefix!r}")

    return await asyncio.wait_for(find(), 20)


async def test_events_tell_of_flag_changes_only(
    served: str, client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await make_namespace(client, owner, "shop/production")
    await set_entry(client, owner, ns, "banner", FLAG, value_type="flag")
    token = (await make_token(client, owner, read("shop/production")))["token"]
    async with (
        httpx.AsyncClient(base_url=served, headers=bearer(token), timeout=30) as http,
        http.stream("GET", "/ofrep/v1/events") as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = _lines(stream)
        assert await _next(lines, "retry:") == "retry: 2000"
        await _next(lines, ": ping")  # a heartbeat while nothing changes
        await set_entry(client, owner, ns, "title", "not a flag")
        await set_entry(
            client, owner, ns, "banner", {**FLAG, "state": "DISABLED"}, value_type="flag"
        )
        event_id = await _next(lines, "id: ")
        data: dict[str, Any] = orjson.loads((await _next(lines, "data: "))[6:])
        assert data["type"] == "refetchEvaluation" and data["etag"] == event_id[4:]
        assert isinstance(data["lastModified"], int)
        bulk = await http.post("/ofrep/v1/evaluate/flags", json={"context": {}})
        assert bulk.headers["etag"].startswith(f'"{data["etag"]}.')

    # Resuming from an older state: a message at once.
    headers = {**bearer(token), "Last-Event-ID": "an-older-state"}
    async with (
        httpx.AsyncClient(base_url=served, headers=headers, timeout=30) as http,
        http.stream("GET", "/ofrep/v1/events", params={"namespace": "shop/production"}) as stream,
    ):
        assert (await _next(_lines(stream), "id: ")) == f"id: {data['etag']}"


async def test_events_end_when_the_token_is_revoked_or_the_namespace_deleted(
    served: str, client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await make_namespace(client, owner, "shop/production")
    await set_entry(client, owner, ns, "banner", FLAG, value_type="flag")
    created = await make_token(client, owner, read("shop/production"))
    async with (
        httpx.AsyncClient(base_url=served, headers=bearer(created["token"]), timeout=30) as http,
        http.stream("GET", "/ofrep/v1/events") as stream,
    ):
        lines = _lines(stream)
        await _next(lines, "retry:")
        revoked = await client.delete(f"/api/v1/tokens/{created['id']}", headers=owner.headers)
        assert revoked.status_code in (200, 204), revoked.text
        error = orjson.loads((await _next(lines, "data: "))[6:])
        assert error["code"] == "UNAUTHENTICATED"

    other = await make_token(client, owner, read("shop/production"))
    async with (
        httpx.AsyncClient(base_url=served, headers=bearer(other["token"]), timeout=30) as http,
        http.stream("HEAD", "/ofrep/v1/events") as head,
    ):
        assert head.status_code == 200
    async with (
        httpx.AsyncClient(base_url=served, headers=bearer(other["token"]), timeout=30) as http,
        http.stream("GET", "/ofrep/v1/events") as stream,
    ):
        lines = _lines(stream)
        await _next(lines, "retry:")
        deleted = await client.delete(
            f"/api/v1/namespaces/{ns}", headers=owner.headers, params={"force": "true"}
        )
        assert deleted.status_code in (200, 204), deleted.text
        async for _ in lines:  # the stream ends
            pass
