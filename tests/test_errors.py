"""Every error, whatever raised it, has the one shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter

from konfig.settings import Settings
from tests.conftest import Account, assert_error


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(await client.delete("/health"), 405, "METHOD_NOT_ALLOWED")


async def test_malformed_json(client: httpx.AsyncClient, owner: Account) -> None:
    answer = await client.post(
        "/api/v1/users",
        headers={**owner.headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert_error(answer, 422, "VALIDATION_ERROR")
    login = await client.post(
        "/api/v1/auth/login", headers={"Content-Type": "application/json"}, content=b"{"
    )
    assert_error(login, 422, "VALIDATION_ERROR")


async def test_oversized_body_by_length_and_by_stream(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    limit = settings.max_body_bytes
    big = b"x" * (limit + 1)
    answer = await client.post(
        "/api/v1/auth/register", content=big, headers={"Content-Type": "application/json"}
    )
    assert_error(answer, 413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the cap must count while streaming
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    streamed = await client.post(
        "/api/v1/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")


async def test_unhandled_errors_are_500_internal_without_a_trace(
    app: object, client: httpx.AsyncClient
) -> None:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret stack detail")

    app.api.include_router(router)  # type: ignore[attr-defined]
    answer = await client.get("/boom", headers={"X-Request-ID": "req-123"})
    error = assert_error(answer, 500, "INTERNAL")
    assert "secret stack detail" not in answer.text
    assert "Traceback" not in answer.text
    assert "req-123" in error["message"]
    assert answer.headers["x-request-id"] == "req-123"


async def test_request_ids_are_generated_and_echoed(client: httpx.AsyncClient) -> None:
    answer = await client.get("/health")
    assert len(answer.headers["x-request-id"]) >= 16
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-42"})
    assert echoed.headers["x-request-id"] == "abc-42"
    junk = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert junk.headers["x-request-id"] != "bad id\twith spaces"
