"""The read path's cost per request in-process, with no network in the way (prints figures only).

Builds the app as ``konfig serve`` does (JSON logs at INFO, here into /dev/null), seeds the same
namespaces as ``bench/read_path.py`` on SQLite, then calls the ASGI app directly N times with a
prebuilt scope for ``GET /api/v1/config/bench/production`` (a cached API token, a cached
namespace: the common case) and prints the median CPU microseconds per request over several rounds.
Steadier than a wrk run on a shared machine: compare two trees in the same session, alternating.

With ``--server``, the requests go through uvicorn's own HTTP protocol instead (httptools, the
proxy-headers middleware, a task per request, as ``konfig serve`` runs it), 32 connections at
a time over transports that keep nothing: what a wrk run costs the server, less the kernel's
share (about two thirds of it here), which the app's code does not change.

    .venv/bin/python bench/read_path_loop.py [--requests 20000] [--rounds 7] [--server]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from konfig.db.migrate import upgrade
from konfig.logs import configure_logging
from konfig.settings import Settings

PASSWORD = "BenchPassword123"
PATH = "/api/v1/config/bench/production"


async def seed(client: httpx.AsyncClient) -> str:
    """A tenant, `bench` (5 keys) under which `bench/production` (45 keys); a read token."""
    email = "owner@bench.example.com"
    account = {"name": "bench", "email": email, "password": PASSWORD}
    (await client.post("/api/v1/auth/register", json=account)).raise_for_status()
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    ids = {}
    for name in ("bench", "bench/production"):
        made = await client.post("/api/v1/namespaces", headers=headers, json={"name": name})
        ids[name] = made.raise_for_status().json()["id"]
    entries: list[tuple[str, str, str | int]] = [
        ("bench", f"shared_setting_{i:02d}", f"parent-value-{i:02d}-abcdefgh") for i in range(5)
    ]
    production = "bench/production"
    entries += [
        (production, f"service_setting_{i:02d}", f"value-{i:02d}-" + "x" * 40) for i in range(38)
    ]
    entries += [(production, f"limit_{i:02d}", 1000 + i) for i in range(7)]
    for namespace, key, value in entries:
        value_type = "number" if isinstance(value, int) else "string"
        (
            await client.put(
                f"/api/v1/namespaces/{ids[namespace]}/configs/{key}",
                headers=headers,
                json={"value": value, "value_type": value_type},
            )
        ).raise_for_status()
    reader = await client.post(
        "/api/v1/service-accounts", headers=headers, json={"name": "bench-reader"}
    )
    scopes = [
        {"namespaces": "bench", "permissions": ["read", "secrets"]},
        {"namespaces": "bench/**", "permissions": ["read", "secrets"]},
    ]
    token = await client.post(
        "/api/v1/tokens",
        headers=headers,
        json={"name": "bench", "service_account_id": reader.json()["id"], "scopes": scopes},
    )
    return str(token.raise_for_status().json()["token"])


async def round_of(
    app: Any,
    token: str,
    requests: int,
    *,
    method: str = "GET",
    path: str = PATH,
    body: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> float:
    """CPU microseconds per request over ``requests`` sequential calls of the app (CPU time:
    other processes on a shared machine slow the wall clock, not this figure, much). A read of
    ``PATH`` unless told otherwise (``bench/flags_loop.py`` posts OFREP evaluations)."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    all_headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"authorization", f"Bearer {token}".encode()),
        *headers,
    ]
    started = time.process_time()
    for _ in range(requests):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": all_headers,
            "state": {},
        }
        await app(scope, receive, send)
    elapsed = time.process_time() - started
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
    return elapsed / requests * 1e6


class _Transport:
    """A connection's transport that keeps nothing: what uvicorn's protocol asks of one."""

    def __init__(self, statuses: list[bytes]) -> None:
        self.statuses = statuses
        self.closing = False

    def write(self, data: bytes) -> None:
        if data[:5] == b"HTTP/":
            self.statuses.append(data[9:12])

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def server_round_of(
    app: Any, token: str, requests: int, *, connections: int = 32, path: str = PATH
) -> float:
    """CPU microseconds per request over ``requests`` GETs of ``path`` through uvicorn's
    httptools protocol as ``konfig serve`` configures it, ``connections`` at a time."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = uvicorn.Config(
        app, http="httptools", proxy_headers=True, log_config=None, access_log=False
    )
    config.load()
    state = ServerState()
    statuses: list[bytes] = []
    protocols = []
    for _ in range(connections):
        protocol = HttpToolsProtocol(config, state, {})
        protocol.connection_made(_Transport(statuses))  # type: ignore[arg-type]
        protocols.append(protocol)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    batches = max(1, requests // connections)
    started = time.process_time()
    for _ in range(batches):
        for protocol in protocols:
            protocol.data_received(request)
        while state.tasks:
            await asyncio.gather(*state.tasks)
    elapsed = time.process_time() - started
    for protocol in protocols:
        protocol.connection_lost(None)
    if set(statuses) != {b"200"}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
    return elapsed / (batches * connections) * 1e6


@asynccontextmanager
async def served() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The app as ``konfig serve`` builds it (JSON logs at INFO, into /dev/null) on a fresh
    SQLite database, started, with a client to seed it through."""
    workdir = Path(tempfile.mkdtemp(prefix="konfig-loop-"))
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    with open(os.devnull, "w") as devnull:
        configure_logging(log_format="json", level="INFO", stream=devnull)
        await upgrade(url)
        settings = Settings(
            database_url=url,
            data_dir=workdir,
            secret_key="bench-secret-key-that-is-long-enough-for-hs256",
            env="development",
            read_rate_limit_per_minute=10**9,
            backup_debounce_seconds=0,
        )
        app = create_app(settings)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                yield app, client


async def main(requests: int, rounds: int, server: bool) -> None:
    measure = server_round_of if server else round_of
    async with served() as (app, client):
        token = await seed(client)
        gc.collect()
        gc.freeze()  # as konfig serve does once started
        await measure(app, token, requests // 4)  # warm up
        figures = [await measure(app, token, requests) for _ in range(rounds)]
    where = "through uvicorn's protocol" if server else "in-process"
    print(
        f"read path {where}: median {statistics.median(figures):.1f} us/request "
        f"(min {min(figures):.1f}, max {max(figures):.1f}; {rounds} rounds of {requests})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--server", action="store_true", help="through uvicorn's httptools protocol, 32 at a time"
    )
    arguments = parser.parse_args()
    if arguments.server:
        import uvloop  # as konfig serve runs

        uvloop.run(main(arguments.requests, arguments.rounds, True))
    else:
        asyncio.run(main(arguments.requests, arguments.rounds, False))
