"""Write-path and history benchmarks. Prints figures; never passes or fails on time.

    .venv/bin/python bench/writes.py [--backends sqlite,postgres] [--writes 2000]

For each backend:
- single-entry writes/s as a service sees them: `konfig serve` (1 uvicorn worker) in its own
  process and database, `wrk` in another sending PUT …/configs/key_N (100 keys, each write a new
  value, so every request commits a revision) with a user's access token, at 1, 8 and 32
  connections for --seconds each; req/s, p50, p99;
Then through the HTTP API in-process (httpx ASGITransport, the whole app stack; the client shares
the process, so these rates are lower than a served process reaches):
- single-entry writes/s (PUT …/configs/{key}), one client and 8 concurrent clients;
- the time to import a 10,000-key YAML document (PUT …/document) and to export it again;
- the time to read the snapshot at revision 1 (and at the latest) of a namespace with 10,000
  revisions, seeded by calling ``commit_changes`` in a loop; then writes/s into that namespace,
  to show that the cost of a write does not grow with the length of history.
PostgreSQL runs in a throwaway database (CREATE DATABASE / DROP DATABASE) on KONFIG_BENCH_PG_URL
(default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from konfig.db.migrate import upgrade
from konfig.db.session import open_session
from konfig.logs import configure_logging
from konfig.revisions.writer import EntryDraft, commit_changes
from konfig.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "KONFIG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
API = "/api/v1"
PASSWORD = "SecurePassword123"


@asynccontextmanager
async def database(backend: str, workdir: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    import asyncpg

    name = f"konfig_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield (
            PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            + f"/{name}"
        )
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def konfig(
    url: str, workdir: Path
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, dict[str, str]]]:
    await upgrade(url)
    settings = Settings(
        database_url=url,
        data_dir=workdir,
        secret_key="bench-secret-key-that-is-long-enough-for-hs256",
        env="development",
        rate_limit_per_minute=10**9,
        max_body_bytes=64 * 1024 * 1024,
        # No automatic backup in the background of the timings (it follows a quiet period
        # after changes, and would overlap the next figure: a 10,000-key tenant is a big file).
        backup_debounce_seconds=0,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        # What `konfig serve` does once started (konfig.ops.server): the start-up heap is kept
        # out of the collector's way, so full collections during a big write stay short.
        gc.collect()
        gc.freeze()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=600
        ) as client:
            answer = await client.post(
                f"{API}/auth/register",
                json={"name": "bench", "email": "bench@example.com", "password": PASSWORD},
            )
            answer.raise_for_status()
            tokens = await client.post(
                f"{API}/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
            )
            tokens.raise_for_status()
            headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            yield app, client, headers


async def new_namespace(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> str:
    answer = await client.post(f"{API}/namespaces", headers=headers, json={"name": name})
    answer.raise_for_status()
    return str(answer.json()["id"])


async def writes_per_second(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    namespaces: list[str],
    count: int,
    clients: int,
) -> float:
    """PUTs of one entry each; client n writes to namespaces[n % len(namespaces)]."""

    async def worker(offset: int) -> None:
        ns = namespaces[offset % len(namespaces)]
        for i in range(offset, count, clients):
            answer = await client.put(
                f"{API}/namespaces/{ns}/configs/key_{i % 100}",
                headers=headers,
                json={"value": i, "value_type": "number"},
            )
            if answer.status_code not in (200, 201):
                raise RuntimeError(answer.text)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    return count / (time.perf_counter() - started)


def document(keys: int) -> bytes:
    entries: list[dict[str, Any]] = []
    for i in range(keys):
        if i % 10 == 0:
            entries.append({"key": f"limit_{i:05}", "value": i, "value_type": "number"})
        else:
            entries.append(
                {"key": f"setting_{i:05}", "value": f"value number {i}", "description": "bench"}
            )
    text: str = yaml.dump({"entries": entries}, Dumper=yaml.CSafeDumper, sort_keys=False)
    return text.encode()


async def timed(label: str, call: Any, repeat: int = 1) -> Any:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        times.append(time.perf_counter() - started)
    shown = statistics.median(times)
    extra = f" (median of {repeat})" if repeat > 1 else ""
    print(f"  {label}: {shown * 1000:.0f} ms{extra}")
    return result


async def seed_revisions(app: Any, tenant_id: uuid.UUID, ns: str, revisions: int) -> float:
    """``revisions`` single-key commits through the writer, committed every 1,000."""
    policy, sessionmaker = app.state.write_policy, app.state.sessionmaker
    started = time.perf_counter()
    done = 0
    while done < revisions:
        session = await open_session(sessionmaker, write=True)
        try:
            for _ in range(min(1000, revisions - done)):
                await commit_changes(
                    session,
                    policy=policy,
                    tenant_id=tenant_id,
                    namespace_id=uuid.UUID(ns),
                    actor="bench",
                    upserts=[EntryDraft(f"key_{done % 50}", f"value {done}")],
                )
                done += 1
            await session.commit()
        finally:
            await session.close()
    return time.perf_counter() - started


async def calibrate() -> None:
    """How busy this machine is: figures from a shared or loaded box are not comparable."""
    import aiosqlite

    async with aiosqlite.connect(":memory:") as db:
        started = time.perf_counter()
        for _ in range(500):
            await db.execute("SELECT 1")
        hop = (time.perf_counter() - started) / 500
    loop_started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    spin = time.perf_counter() - loop_started
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"  machine: {os.cpu_count()} CPUs, load average {load}; aiosqlite round trip "
        f"{hop * 1e6:.0f} us; 1M-step Python loop {spin * 1000:.0f} ms"
    )


PUT_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"value": ' .. counter .. ', "value_type": "number"}'
  return wrk.format("PUT", wrk.path .. "key_" .. (counter % 100), nil, body)
end
"""


async def served_writes(backend: str, workdir: Path, seconds: int) -> None:
    """Single-entry writes/s of `konfig serve`, driven by wrk from another process."""
    import read_path  # bench/read_path.py: free_port, wait_for, wrk

    if shutil.which("wrk") is None:
        print("  wrk is not installed (apt-get install wrk): skipping the served figures")
        return
    async with database(backend, workdir / "served") as url:
        await upgrade(url)
        port = read_path.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
        env |= {
            "KONFIG_DATABASE_URL": url,
            "KONFIG_DATA_DIR": str(workdir / "served"),
            "KONFIG_PORT": str(port),
            "KONFIG_RATE_LIMIT_PER_MINUTE": str(10**9),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "konfig", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            read_path.wait_for(f"{base}/ready", proc, "konfig serve")
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                email = "served@example.com"
                await http.post(
                    f"{API}/auth/register",
                    json={"name": "served", "email": email, "password": PASSWORD},
                )
                login = await http.post(
                    f"{API}/auth/login", json={"email": email, "password": PASSWORD}
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                ns = await new_namespace(http, headers, "served")
            script = workdir / "put.lua"
            script.write_text(PUT_SCRIPT)
            candidate = read_path.Candidate(
                "konfig",
                f"{base}{API}/namespaces/{ns}/configs/",
                [
                    "-s",
                    str(script),
                    "-H",
                    f"Authorization: {headers['Authorization']}",
                    "-H",
                    "Content-Type: application/json",
                ],
            )
            read_path.wrk(candidate, 1, 2)  # warm up
            for connections in (1, 8, 32):
                rps, p50, p99 = read_path.wrk(candidate, connections, seconds)
                print(
                    f"  single-entry writes through konfig serve, {connections} connection(s): "
                    f"{rps:,.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def run(backend: str, args: argparse.Namespace) -> None:
    print(f"== {backend}")
    await calibrate()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "served").mkdir()
        await served_writes(backend, workdir, args.seconds)
        async with (
            database(backend, workdir) as url,
            konfig(url, workdir) as (app, client, headers),
        ):
            ns = await new_namespace(client, headers, "writes")
            await writes_per_second(client, headers, [ns], 200, 1)  # warm up
            for clients in (1, 8):
                rate = await writes_per_second(client, headers, [ns], args.writes, clients)
                print(f"  single-entry writes, one namespace, {clients} client(s): {rate:,.0f}/s")
            spread = [await new_namespace(client, headers, f"writes/{n}") for n in range(8)]
            rate = await writes_per_second(client, headers, spread, args.writes, 8)
            print(f"  single-entry writes, 8 clients on 8 namespaces: {rate:,.0f}/s")

            body = document(args.keys)
            big = await new_namespace(client, headers, "import")

            async def put_document() -> httpx.Response:
                answer = await client.put(
                    f"{API}/namespaces/{big}/document",
                    headers={**headers, "Content-Type": "application/yaml"},
                    content=body,
                )
                answer.raise_for_status()
                return answer

            print(f"  {args.keys:,}-key YAML document: {len(body) / 1e6:.1f} MB")
            await timed(f"import {args.keys:,}-key YAML document (PUT …/document)", put_document)
            await timed("the same document again (no change)", put_document)

            async def export() -> None:
                answer = await client.get(
                    f"{API}/namespaces/{big}/export", headers=headers, params={"format": "yaml"}
                )
                answer.raise_for_status()

            await timed(f"export {args.keys:,} keys as YAML", export)

            me = (await client.get(f"{API}/auth/me", headers=headers)).json()
            deep = await new_namespace(client, headers, "history")
            seconds = await seed_revisions(app, uuid.UUID(me["tenant_id"]), deep, args.revisions)
            rate = args.revisions / seconds
            print(f"  seeded {args.revisions:,} revisions in {seconds:.1f} s ({rate:,.0f}/s)")

            async def read(revision: int) -> None:
                answer = await client.get(
                    f"{API}/namespaces/{deep}/revisions/{revision}", headers=headers
                )
                answer.raise_for_status()

            await timed("snapshot at revision 1", lambda: read(1), repeat=5)
            await timed(
                f"snapshot at revision {args.revisions:,}", lambda: read(args.revisions), repeat=5
            )

            async def diff() -> None:
                answer = await client.get(
                    f"{API}/namespaces/{deep}/diff", headers=headers, params={"from": 1}
                )
                answer.raise_for_status()

            await timed(f"diff revision 1 to {args.revisions:,}", diff, repeat=5)
            rate = await writes_per_second(client, headers, [deep], args.writes, 1)
            print(
                f"  single-entry writes after {args.revisions:,} revisions, 1 client: {rate:,.0f}/s"
            )
    await calibrate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--revisions", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per figure")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    configure_logging(level="WARNING")  # no access log line per request among the figures
    for backend in args.backends.split(","):
        asyncio.run(run(backend.strip(), args))


if __name__ == "__main__":
    main()
