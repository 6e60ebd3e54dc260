"""Usage analytics on the read path (prints figures only, never fails on time).

1. Throughput: two apps built as ``konfig serve`` builds them, one with analytics on and one
   with ``KONFIG_ANALYTICS_ENABLED=false``, seeded alike (``read_path_loop.seed``), called
   in-process with the same requests (a cached token, a cached namespace, ``X-Konfig-Instance``
   cycling over 100 instances and ``X-Konfig-SDK``), rounds alternating between them; prints
   the median CPU microseconds per request of each and the ratio of throughputs (on / off).
2. Memory: 10,000 distinct instances over 1,000 namespaces read through the same app; prints
   the bytes the record holds per instance (tracemalloc), the time one flush takes to write them
   all, and what the record holds after it (it empties: memory stays bounded by the flush
   interval and KONFIG_ANALYTICS_MAX_INSTANCES).

    .venv/bin/python bench/analytics.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from read_path_loop import PASSWORD, PATH, seed

from konfig.analytics import service as analytics
from konfig.app import create_app
from konfig.db.migrate import upgrade
from konfig.logs import configure_logging
from konfig.settings import Settings

INSTANCES = 10_000
NAMESPACES = 1_000


def scope_of(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


class Caller:
    """Calls the ASGI app directly and keeps the statuses."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: list[int] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.statuses.append(message["status"])

    async def get(self, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        await self.app(scope_of(path, headers), self.receive, self.send)

    def check(self) -> None:
        if set(self.statuses) != {200}:
            raise SystemExit(f"unexpected statuses: {sorted(set(self.statuses))}")
        self.statuses.clear()


def headers_for(token: str, instance: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"konfig-python"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"x-konfig-instance", f"payments-api-{instance:05d}".encode()),
        (b"x-konfig-sdk", b"konfig-python/1.2.0"),
    ]


async def round_of(caller: Caller, token: str, requests: int) -> float:
    """CPU microseconds per request over ``requests`` sequential calls."""
    headers = [headers_for(token, i) for i in range(100)]
    started = time.process_time()
    for i in range(requests):
        await caller.get(PATH, headers[i % 100])
    elapsed = time.process_time() - started
    caller.check()
    return elapsed / requests * 1e6


def settings_for(workdir: Path, url: str, *, enabled: bool) -> Settings:
    return Settings(
        database_url=url,
        data_dir=workdir,
        secret_key="bench-secret-key-that-is-long-enough-for-hs256",
        env="development",
        read_rate_limit_per_minute=10**9,
        rate_limit_per_minute=10**9,
        backup_debounce_seconds=0,
        analytics_enabled=enabled,
        analytics_flush_seconds=3600,  # flushed by hand below
        webhooks_enabled=False,  # its fan-out of the seeded namespaces would hold the writer lock
    )


async def app_for(workdir: Path, name: str, *, enabled: bool) -> tuple[Any, LifespanManager, str]:
    url = f"sqlite+aiosqlite:///{workdir / name}"
    await upgrade(url)
    app = create_app(settings_for(workdir, url, enabled=enabled))
    manager = LifespanManager(app)
    await manager.__aenter__()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        token = await seed(client)
    return app, manager, token


async def throughput(workdir: Path, requests: int, rounds: int) -> None:
    on_app, on_manager, on_token = await app_for(workdir, "on.db", enabled=True)
    off_app, off_manager, off_token = await app_for(workdir, "off.db", enabled=False)
    on, off = Caller(on_app), Caller(off_app)
    gc.collect()
    gc.freeze()
    await round_of(on, on_token, requests // 4)  # warm up
    await round_of(off, off_token, requests // 4)
    figures: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        figures["off"].append(await round_of(off, off_token, requests))
        figures["on"].append(await round_of(on, on_token, requests))
        on_app.state.delivery.analytics.drain()  # as a flush would: the record stays small
    off_us, on_us = statistics.median(figures["off"]), statistics.median(figures["on"])
    print(
        f"read path, analytics off: median {off_us:.1f} us/request "
        f"(min {min(figures['off']):.1f}, max {max(figures['off']):.1f})"
    )
    print(
        f"read path, analytics on:  median {on_us:.1f} us/request "
        f"(min {min(figures['on']):.1f}, max {max(figures['on']):.1f})"
    )
    print(
        f"throughput on / off: {off_us / on_us:.3f}x "
        f"({rounds} alternating rounds of {requests} requests)"
    )
    await on_manager.__aexit__(None, None, None)
    await off_manager.__aexit__(None, None, None)


async def many_instances(workdir: Path) -> None:
    url = f"sqlite+aiosqlite:///{workdir / 'many.db'}"
    await upgrade(url)
    app = create_app(settings_for(workdir, url, enabled=True))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            token = await seed(client)
            login = await client.post(
                "/api/v1/auth/login",
                json={"email": "owner@bench.example.com", "password": PASSWORD},
            )
            owner = {"Authorization": f"Bearer {login.json()['access_token']}"}
            started = time.perf_counter()
            for n in range(NAMESPACES):
                made = await client.post(
                    "/api/v1/namespaces", headers=owner, json={"name": f"bench/service-{n:04d}"}
                )
                made.raise_for_status()
            print(f"seeded {NAMESPACES} namespaces in {time.perf_counter() - started:.1f} s")
        state = app.state
        recorder = state.delivery.analytics
        caller = Caller(app)
        paths = [f"/api/v1/config/bench/service-{n:04d}" for n in range(NAMESPACES)]
        for path in paths:  # resolve and cache every namespace first (not the record's memory)
            await caller.get(path, headers_for(token, 0))
        caller.check()
        recorder.drain()
        recorder.written()
        headers = [headers_for(token, i) for i in range(INSTANCES)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(INSTANCES):
            await caller.get(paths[i % NAMESPACES], headers[i])
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        caller.statuses.clear()
        entries = len(recorder.entries)
        print(
            f"{entries} instances over {NAMESPACES} namespaces held in memory: "
            f"{held / 1024:.0f} KiB, {held / entries:.0f} bytes per instance "
            f"(headers included; at most KONFIG_ANALYTICS_MAX_INSTANCES="
            f"{state.settings.analytics_max_instances} between flushes)"
        )
        tracemalloc.stop()  # it slows everything down several times: not during the flush
        started = time.perf_counter()
        await analytics.flush(recorder, state.sessionmaker, state.settings)
        flushed = time.perf_counter() - started
        print(
            f"one flush wrote them in {flushed * 1000:.0f} ms (SQLite, one transaction); the "
            f"record holds {len(recorder.entries)} entries after it"
        )


async def main(requests: int, rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="konfig-analytics-"))
    with open(os.devnull, "w") as devnull:
        configure_logging(log_format="json", level="INFO", stream=devnull)
        await throughput(workdir, requests, rounds)
        await many_instances(workdir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.rounds))
