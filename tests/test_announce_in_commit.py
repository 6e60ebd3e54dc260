"""On PostgreSQL a replica's announcement of a change rides the committing transaction (NOTIFY is
delivered on commit or not at all): a replica that stops right after committing, before any of
its own post-commit work, cannot leave the others serving the old state until their cache's max
age (300 s). Through Redis the announcement follows the commit; there each replica's revision
check (every ``KONFIG_REVISION_POLL_SECONDS``) is the backstop.

Two apps on one PostgreSQL database stand in for two replicas. Replica A is made to freeze right
after each commit: a commit or change hook, placed first, waits until the test ends — exactly
where a replica killed between its commit and a NOTIFY sent afterwards would have stopped.
Replica B must still hear of every kind of change promptly: an entry write (the group commit), a
document (a request's transaction) and a revoked token (a change, not a revision).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from konfig.db.migrate import upgrade
from konfig.dispatch import Dispatcher
from konfig.security.crypto import new_key_line
from konfig.state import app_state
from tests.conftest import (
    REDIS_URL,
    Account,
    create_pg_database,
    drop_pg_database,
    make_settings,
    register,
)
from tests.support.apps import client_of, running
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry

CONFIG = "/api/v1/config/payments/production"


@dataclass
class Replicas:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    frozen: asyncio.Event  # set: replica A carries on after its commits
    froze: asyncio.Event  # replica A has committed something and stopped there


def _freeze(thaw: asyncio.Event, froze: asyncio.Event) -> Callable[[Any], Awaitable[None]]:
    async def hook(_what: Any) -> None:
        froze.set()
        await thaw.wait()

    return hook


@pytest.fixture(params=["postgres", "redis"])
async def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replicas]:
    plain = await create_pg_database()
    url = plain.replace("postgresql://", "postgresql+asyncpg://", 1)
    through: dict[str, Any] = {}
    if request.param == "redis":
        channel = f"konfig_test_{uuid.uuid4().hex[:8]}"
        through = {"redis_url": REDIS_URL, "notify_channel": channel, "redis_key_prefix": channel}
        through["revision_poll_seconds"] = 0.2
    try:
        await upgrade(url)
        keys = new_key_line()
        async with AsyncExitStack() as stack:
            apps: list[Dispatcher] = []
            clients = []
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
                settings = make_settings(
                    url,
                    tmp_path / name,
                    encryption_keys=keys,
                    cache_max_age_seconds=300,
                    **through,
                )
                app = await stack.enter_async_context(running(settings))
                apps.append(app)
                clients.append(await stack.enter_async_context(client_of(app)))
            thaw, froze = asyncio.Event(), asyncio.Event()
            stack.callback(thaw.set)  # first thing on the way out: A finishes its work
            replicas = Replicas(clients[0], clients[1], thaw, froze)
            replicas.a.app_state = app_state(apps[0].api)  # type: ignore[attr-defined]
            yield replicas
    finally:
        await drop_pg_database(plain)


def _freeze_after_commits(replicas: Replicas) -> None:
    state = replicas.a.app_state  # type: ignore[attr-defined]
    state.commit_hooks.insert(0, _freeze(replicas.frozen, replicas.froze))
    state.change_hooks.insert(0, _freeze(replicas.frozen, replicas.froze))


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"replica B still had not heard after {seconds} s")
        await asyncio.sleep(0.05)


async def _setup(replicas: Replicas) -> tuple[Account, str, dict[str, str], str]:
    a, b = replicas.a, replicas.b
    owner = await register(a, "acme")
    namespace_id = await make_namespace(a, owner, "payments/production")
    await set_entry(a, owner, namespace_id, "timeout", 1, value_type="number")
    token = await make_token(a, owner, read("payments/**"))
    reader = bearer(token["token"])
    assert (await b.get(CONFIG, headers=reader)).json() == {"timeout": 1}  # B caches it
    return owner, namespace_id, reader, token["id"]


async def test_an_entry_write_is_heard_though_its_replica_stopped_after_the_commit(
    replicas: Replicas,
) -> None:
    owner, namespace_id, reader, _ = await _setup(replicas)
    _freeze_after_commits(replicas)
    write = asyncio.create_task(
        set_entry(replicas.a, owner, namespace_id, "timeout", 2, value_type="number")
    )
    await asyncio.wait_for(replicas.froze.wait(), 10)

    async def b_serves_the_new_value() -> bool:
        answer: dict[str, int] = (await replicas.b.get(CONFIG, headers=reader)).json()
        return answer == {"timeout": 2}

    await _eventually(b_serves_the_new_value)
    assert not write.done()  # A never got as far as answering, let alone announcing
    replicas.frozen.set()
    await write


async def test_a_document_is_heard_though_its_replica_stopped_after_the_commit(
    replicas: Replicas,
) -> None:
    owner, namespace_id, reader, _ = await _setup(replicas)
    _freeze_after_commits(replicas)
    document = {"entries": [{"key": "timeout", "value": 3, "value_type": "number"}]}
    write = asyncio.create_task(
        replicas.a.put(
            f"/api/v1/namespaces/{namespace_id}/document", headers=owner.headers, json=document
        )
    )
    await asyncio.wait_for(replicas.froze.wait(), 10)

    async def b_serves_the_document() -> bool:
        answer: dict[str, int] = (await replicas.b.get(CONFIG, headers=reader)).json()
        return answer == {"timeout": 3}

    await _eventually(b_serves_the_document)
    replicas.frozen.set()
    assert (await write).status_code == 200


async def test_a_revoked_token_is_refused_though_its_replica_stopped_after_the_commit(
    replicas: Replicas,
) -> None:
    owner, _, reader, token_id = await _setup(replicas)
    _freeze_after_commits(replicas)
    revoke = asyncio.create_task(
        replicas.a.delete(f"/api/v1/tokens/{token_id}", headers=owner.headers)
    )
    await asyncio.wait_for(replicas.froze.wait(), 10)

    async def b_refuses_the_token() -> bool:
        return (await replicas.b.get(CONFIG, headers=reader)).status_code == 401

    await _eventually(b_refuses_the_token)
    replicas.frozen.set()
    assert (await revoke).status_code in (200, 204)
