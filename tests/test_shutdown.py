"""Graceful shutdown: SIGTERM turns /ready to 503, ends streams, drains, exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from konfig.app import create_app
from konfig.ops.server import GracefulServer
from konfig.state import state_of
from tests.conftest import PASSWORD, Backend, assert_error, make_settings, wipe
from tests.support.apps import free_port, konfig_serve


@pytest.fixture
async def clean(backend: Backend) -> AsyncIterator[Backend]:
    yield backend
    await wipe(backend.url)


def add_stream(app: object) -> None:
    """A long-lived stream standing in for the event streams of a later feature."""
    router = APIRouter()

    @router.get("/test/stream")
    async def stream(request: Request) -> StreamingResponse:
        shutdown: asyncio.Event = state_of(request).shutdown_event

        async def lines() -> AsyncIterator[bytes]:
            yield b"open\n"
            await shutdown.wait()
            yield b"closed\n"

        return StreamingResponse(lines(), media_type="text/plain")

    app.api.include_router(router)  # type: ignore[attr-defined]


async def test_sigterm_ends_streams_and_drains_with_ready_at_503(
    clean: Backend, tmp_path: Path
) -> None:
    app = create_app(make_settings(clean.url, tmp_path))
    add_stream(app)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    # A drain far longer than the test: the second SIGTERM below cuts it short.
    server = GracefulServer(config, app=app, drain_seconds=600)
    # uvicorn re-raises the signals it stopped on; here they must not end the test run.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        serving = asyncio.create_task(server.serve())
        for _ in range(600):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.05)
        assert server.started
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/ready")).status_code == 200
            async with http.stream("GET", "/test/stream") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "open"
                os.kill(os.getpid(), signal.SIGTERM)
                assert await anext(lines) == "closed"  # the stream saw the event and ended
                assert [line async for line in lines] == []
            assert stream.status_code == 200
            # Still serving while load balancers notice: readiness says no, the rest works.
            assert_error(await http.get("/ready"), 503, "UNAVAILABLE")
            assert (await http.get("/health")).status_code == 200
            assert not serving.done()
            os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM skips the rest of the drain
            await asyncio.wait_for(serving, timeout=60)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert server.should_exit and not server.force_exit


def login_in_thread(url: str, email: str, start: threading.Barrier, results: list[object]) -> None:
    start.wait()
    try:
        answer = httpx.post(
            f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=120
        )
        results.append(answer.status_code)
    except httpx.HTTPError as exc:  # a dropped request
        results.append(exc)


@pytest.mark.slow
def test_sigterm_under_load_drops_no_request_and_exits_0(tmp_path: Path) -> None:
    env = {
        "KONFIG_LOG_FORMAT": "json",
        "KONFIG_SHUTDOWN_GRACE_SECONDS": "60",
        "KONFIG_SHUTDOWN_DRAIN_SECONDS": "5",
        "KONFIG_LOGIN_RATE_LIMIT": "1000/minute",
        "KONFIG_LOGIN_ADDRESS_RATE_LIMIT": "1000/minute",
    }
    with konfig_serve(tmp_path, stdout=subprocess.PIPE, **env) as (url, process):
        email = "owner@acme.example.com"
        created = httpx.post(
            f"{url}/api/v1/auth/register",
            json={"name": "acme", "email": email, "password": PASSWORD},
            timeout=60,
        )
        assert created.status_code == 201, created.text
        # Logins hash a password each, so several of them are still running at SIGTERM.
        in_flight = 6
        start = threading.Barrier(in_flight + 1)
        results: list[object] = []
        threads = [
            threading.Thread(target=login_in_thread, args=(url, email, start, results))
            for _ in range(in_flight)
        ]
        with httpx.Client(base_url=url, timeout=60) as watcher:  # connected before SIGTERM
            assert watcher.get("/health").status_code == 200
            for thread in threads:
                thread.start()
            start.wait()
            process.send_signal(signal.SIGTERM)
            assert_error(watcher.get("/ready"), 503, "UNAVAILABLE")
        for thread in threads:
            thread.join(timeout=120)
        stdout, stderr = process.communicate(timeout=90)
        assert process.returncode == 0, stderr.decode()[-2000:]

    assert len(results) == in_flight
    assert all(isinstance(status, int) and status < 500 for status in results), results
    assert results.count(200) == in_flight
    logged = [orjson.loads(line) for line in stdout.splitlines()]  # every line is JSON
    events = [line["event"] for line in logged]
    assert any(event.startswith("SIGTERM") for event in events)
    assert "Finished server process" in " ".join(events)  # uvicorn's own lines, as JSON
    logins = [line for line in logged if line.get("route") == "/api/v1/auth/login"]
    assert len(logins) == in_flight
    assert PASSWORD.encode() not in stdout + stderr
