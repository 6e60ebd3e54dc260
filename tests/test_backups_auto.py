"""Automatic backups: debounced after changes, flushed at shutdown, scheduled, pruned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from tests.conftest import Backend, make_settings, register, wipe
from tests.support.backups import backups_dir, content, restore, seed, take_backup

POLL_LIMIT = 60.0  # a generous bound on waiting for an outcome; nothing asserts on speed


@asynccontextmanager
async def running(
    backend: Backend, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app with these settings, its client, and a clean database afterwards."""
    application = create_app(make_settings(backend.url, tmp_path, **overrides))
    try:
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://konfig.test") as c:
                yield application, c
    finally:
        await wipe(backend.url)


async def eventually(check: Callable[[], Awaitable[bool] | bool]) -> None:
    """Poll until ``check`` holds (fails after POLL_LIMIT seconds, which no test relies on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POLL_LIMIT
    while True:
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        assert loop.time() < deadline, "the expected outcome never came"
        await asyncio.sleep(0.05)


def files(app: Any, tenant: str = "acme") -> list[Path]:
    directory = backups_dir(app, tenant)
    return sorted(directory.glob("*.yaml")) if directory.exists() else []


def trigger(path: Path) -> str:
    return str(yaml.safe_load(path.read_bytes())["trigger"])


async def test_a_burst_of_writes_makes_one_backup_after_the_quiet_period(
    backend: Backend, tmp_path: Path
) -> None:
    async with running(backend, tmp_path, backup_debounce_seconds=1.0, backup_interval=0) as (
        app,
        client,
    ):
        owner = await register(client, "acme")
        ids = await seed(client, owner)
        scheduler = app.state.backup_scheduler
        await eventually(lambda: not scheduler.pending)
        assert len(files(app)) == 1  # the seeding was one burst too

        configs = f"/api/v1/namespaces/{ids['shared']}/configs"
        for n in range(10):
            answer = await client.put(
                f"{configs}/burst", headers=owner.headers, json={"value": f"v{n}"}
            )
            assert answer.is_success
        await eventually(lambda: not scheduler.pending)
        made = files(app)
        assert len(made) == 2 and {trigger(p) for p in made} == {"auto"}
        # The newest holds the last write of the burst: restoring it would change nothing.
        dry = await restore(client, owner, made[-1].stem, dry_run=True)
        assert all(
            not (ns["added"] or ns["removed"] or ns["changed"]) for ns in dry.json()["namespaces"]
        )
        assert app.state.backups.status.tenants["acme"].successes == 2

        # A later change makes a later backup.
        await client.put(f"{configs}/burst", headers=owner.headers, json={"value": "later"})
        await eventually(lambda: len(files(app)) == 3 and not scheduler.pending)


async def test_pending_backups_are_taken_at_shutdown(backend: Backend, tmp_path: Path) -> None:
    async with running(backend, tmp_path, backup_debounce_seconds=3600, backup_interval=0) as (
        app,
        client,
    ):
        owner = await register(client, "acme")
        await seed(client, owner)
        before = await content(client, owner)
        assert files(app) == [] and app.state.backup_scheduler.pending
        stopped = app
    made = files(stopped)
    assert len(made) == 1 and trigger(made[0]) == "auto"
    document = yaml.safe_load(made[0].read_bytes())
    assert {ns["name"] for ns in document["namespaces"]} == set(before)
    assert document["entry_count"] == 8


async def test_keep_prunes_to_the_newest(backend: Backend, tmp_path: Path) -> None:
    async with running(backend, tmp_path, backup_keep=2, backup_debounce_seconds=0) as (
        app,
        client,
    ):
        owner = await register(client, "acme")
        await seed(client, owner)
        made = [(await take_backup(client, owner))["id"] for _ in range(4)]
        listed = await client.get("/api/v1/backups", headers=owner.headers)
        assert [i["id"] for i in listed.json()["items"]] == made[:1:-1]
        assert [p.stem for p in files(app)] == made[2:]


async def test_scheduled_backups_run_for_tenants_with_namespaces(
    backend: Backend, tmp_path: Path
) -> None:
    async with running(backend, tmp_path, backup_interval=0.2, backup_debounce_seconds=0) as (
        app,
        client,
    ):
        owner = await register(client, "acme")
        await register(client, "globex")  # no namespaces: nothing to back up
        await seed(client, owner)
        await eventually(lambda: len(files(app)) >= 2)
        assert {trigger(p) for p in files(app)} == {"scheduled"}
        assert files(app, "globex") == []
        assert app.state.backups.status.tenants["acme"].last_success_at is not None


async def test_no_automatic_backups_when_switched_off(backend: Backend, tmp_path: Path) -> None:
    async with running(backend, tmp_path, backup_interval=0, backup_debounce_seconds=0) as (
        app,
        client,
    ):
        owner = await register(client, "acme")
        await seed(client, owner)
        assert not app.state.backup_scheduler.pending
        keep = app
    assert files(keep) == []
