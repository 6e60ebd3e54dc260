"""The SDK's HTTP behaviour with a mock transport: retries, error mapping, the cache file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig.client import (
    AsyncKonfig,
    ConnectionError,
    Konfig,
    KonfigError,
    LastKnownGood,
    NotFound,
    RateLimited,
    RetryPolicy,
    ServerError,
    StaleConfigWarning,
    ValidationError,
)

FAST = RetryPolicy(attempts=3, base=0.001, cap=0.001)


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"status": "error", "error": {"code": code, "message": message, "details": {"k": 1}}}
    return httpx.Response(status, json=body, headers=headers)


def konfig(handler: Any, **kwargs: Any) -> Konfig:
    return Konfig("http://konfig.test", "tok", transport=httpx.MockTransport(handler), **kwargs)


def async_konfig(handler: Any, **kwargs: Any) -> AsyncKonfig:
    transport = httpx.MockTransport(handler)
    return AsyncKonfig("http://konfig.test", "tok", transport=transport, **kwargs)


def test_errors_map_to_the_tree_with_the_servers_message() -> None:
    answers = {
        "/api/v1/auth/me": error(422, "VALIDATION_ERROR", "name: too long"),
        "/api/v1/namespaces": error(429, "RATE_LIMITED", "slow down", **{"Retry-After": "7"}),
    }
    kfg = konfig(lambda request: answers[request.url.path], retry=FAST)
    with pytest.raises(ValidationError) as caught:
        kfg.auth.me()
    assert caught.value.message == "name: too long"
    assert caught.value.details == {"k": 1}
    assert caught.value.status_code == 422
    with pytest.raises(RateLimited) as limited:
        kfg.namespaces.list()
    assert limited.value.retry_after == 7.0


def test_an_error_without_the_shape_still_maps_by_status() -> None:
    kfg = konfig(lambda request: httpx.Response(404, text="nope"), retry=FAST)
    with pytest.raises(NotFound) as caught:
        kfg.auth.me()
    assert "404" in caught.value.message


def test_idempotent_calls_are_retried_on_5xx_and_transport_errors() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) == 1:
            raise httpx.ConnectError("refused")
        if len(seen) == 2:
            return error(503, "UNAVAILABLE", "starting")
        return httpx.Response(200, json={"email": "a@b.c"})

    assert konfig(handler, retry=FAST).auth.me() == {"email": "a@b.c"}
    assert seen == ["GET", "GET", "GET"]


def test_post_and_4xx_are_never_retried() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if request.method == "POST":
            return error(503, "UNAVAILABLE", "down")
        return error(409, "CONFLICT", "exists")

    kfg = konfig(handler, retry=FAST)
    with pytest.raises(ServerError):
        kfg.namespaces.create("payments")
    with pytest.raises(KonfigError) as caught:
        kfg.auth.me()
    assert caught.value.code == "CONFLICT"
    assert seen == ["POST", "GET"]


def test_giving_up_raises_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(ConnectionError) as caught:
        konfig(handler, retry=FAST).auth.me()
    assert "http://konfig.test" in caught.value.message


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(attempts=5, base=0.5, cap=2.0)
    pauses = [policy.pause(n) for n in range(1, 6) for _ in range(20)]
    assert all(0 <= p <= 2.0 for p in pauses)
    assert len(set(pauses)) > 10


def test_last_known_good_file_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "konfig.json"
    cache = LastKnownGood(path)
    cache.put("payments/production", "json", {"a": 1}, '"r1"')
    cache.put("payments/production", "json", {"a": 2}, '"r2"')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["konfig.json"]  # no temporary file left behind
    content = json.loads(path.read_text())
    assert content["configs"]["payments/production"]["json"]["value"] == {"a": 2}
    cached = cache.get("payments/production", "json")
    assert cached is not None and cached.etag == '"r2"'


def test_get_config_falls_back_to_the_cache_with_a_warning(tmp_path: Path) -> None:
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            raise httpx.ConnectError("refused")
        assert request.url.path == "/api/v1/config/payments/production"
        return httpx.Response(200, json={"port": 8080}, headers={"ETag": '"e1"'})

    kfg = konfig(handler, retry=FAST, cache_path=tmp_path / "lkg.json")
    assert kfg.get_config("payments/production") == {"port": 8080}
    up = False
    with pytest.warns(StaleConfigWarning, match="last-known-good"):
        assert kfg.get_config("payments/production") == {"port": 8080}
    with pytest.raises(ConnectionError):
        kfg.get_config("payments/staging")


def test_watch_reconnects_with_backoff_and_resumes_from_the_etag() -> None:
    import threading

    answers: list[Any] = [
        httpx.Response(200, json={"v": 1}, headers={"ETag": '"e1"'}),
        httpx.ConnectError("server restarting"),
        error(503, "UNAVAILABLE", "draining"),
        httpx.Response(304, headers={"ETag": '"e1"'}),
        httpx.Response(200, json={"v": 2}, headers={"ETag": '"e2"'}),
    ]
    sent: list[tuple[str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.headers.get("If-None-Match"), request.url.params.get("wait")))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    seen: list[Any] = []
    stop = threading.Event()

    def on_change(config: Any) -> None:
        seen.append(config)
        if len(seen) == 2:
            stop.set()

    konfig(handler, retry=FAST).follow("payments/production", on_change, wait=5, stop=stop)
    assert seen == [{"v": 1}, {"v": 2}]
    # The first read is plain; every later one is a long poll resuming from the ETag held.
    assert sent[0] == (None, None)
    assert all(header == '"e1"' and wait == "5" for header, wait in sent[1:])


def test_watch_raises_what_retrying_cannot_fix() -> None:
    kfg = konfig(lambda request: error(401, "UNAUTHENTICATED", "token revoked"), retry=FAST)
    with pytest.raises(KonfigError) as caught:
        kfg.follow("payments/production", lambda config: None)
    assert caught.value.message == "token revoked"


# The asyncio client behaves the same.


async def test_the_async_client_retries_idempotent_calls_and_then_gives_up() -> None:
    seen: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) == 1:
            raise httpx.ConnectError("refused")
        if len(seen) == 2:
            return error(503, "UNAVAILABLE", "starting")
        return httpx.Response(200, json={"email": "a@b.c"})

    async with async_konfig(flaky, retry=FAST) as kfg:
        assert await kfg.auth.me() == {"email": "a@b.c"}
    assert seen == ["GET", "GET", "GET"]

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with async_konfig(down, retry=FAST) as kfg:
        with pytest.raises(ConnectionError) as caught:
            await kfg.auth.me()
    assert "http://konfig.test" in caught.value.message


async def test_the_async_client_falls_back_to_the_cache(tmp_path: Path) -> None:
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            return error(503, "UNAVAILABLE", "draining")
        return httpx.Response(200, text="PORT=8080\n", headers={"ETag": '"e1"'})

    async with async_konfig(handler, retry=FAST, cache_path=tmp_path / "lkg.json") as kfg:
        assert await kfg.get_config("payments/production", format="env") == "PORT=8080\n"
        up = False
        with pytest.warns(StaleConfigWarning, match="last-known-good"):
            cached = await kfg.get_config("payments/production", format="env")
        assert cached == "PORT=8080\n"
        with pytest.raises(ServerError):
            await kfg.get_config("payments/staging")


async def test_the_async_watch_reconnects_and_awaits_a_coroutine_callback() -> None:
    answers: list[Any] = [
        httpx.Response(200, json={"v": 1}, headers={"ETag": '"e1"'}),
        httpx.ConnectError("server restarting"),
        error(429, "RATE_LIMITED", "slow down", **{"Retry-After": "1"}),
        httpx.Response(304, headers={"ETag": '"e1"'}),
        httpx.Response(200, json={"v": 2}, headers={"ETag": '"e2"'}),
    ]
    sent: list[tuple[str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.headers.get("If-None-Match"), request.url.params.get("wait")))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer

    seen: list[Any] = []
    both = asyncio.Event()

    async def on_change(config: Any) -> None:
        seen.append(config)
        if len(seen) == 2:
            both.set()
            await asyncio.Event().wait()  # the watch awaits this until it is cancelled

    async with async_konfig(handler, retry=RetryPolicy(attempts=1)) as kfg:
        watching = asyncio.create_task(kfg.follow("payments/production", on_change, wait=5))
        await asyncio.wait_for(both.wait(), 30)
        assert not watching.done()  # it runs until cancelled
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watching
    assert seen == [{"v": 1}, {"v": 2}]
    assert sent[0] == (None, None)
    assert all(header == '"e1"' and wait == "5" for header, wait in sent[1:])
