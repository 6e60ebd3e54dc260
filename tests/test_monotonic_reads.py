"""A replica that has not heard of a change yet never sends a client a state older than one the
client already holds (``If-None-Match``, ``Last-Event-ID``): it asks the database instead.

Two apps on one SQLite file stand in for two replicas whose announcement is late: on SQLite
there is no transport between them, so B keeps its cached state until told otherwise, exactly
as a replica does between another one's commit and the announcement reaching it (or for
``KONFIG_CACHE_MAX_AGE_SECONDS`` when a crash lost the announcement). ``tests/test_cluster.py``
shows the same through nginx on three real replicas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.db.migrate import upgrade
from konfig.delivery import resolve
from konfig.security.crypto import new_key_line
from tests.conftest import Account, Backend, make_settings, register, wipe
from tests.support.apps import client_of, running
from tests.support.readpath import bearer, make_namespace, make_token, read, set_entry

CONFIG = "/api/v1/config/payments/production"


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'konfig.db'}"
    await upgrade(url)
    keys = new_key_line()
    async with AsyncExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            settings = make_settings(url, tmp_path / name, encryption_keys=keys)
            app = await stack.enter_async_context(running(settings))
            clients.append(await stack.enter_async_context(client_of(app)))
        yield clients[0], clients[1]


@pytest.fixture
async def setup(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> tuple[Account, str, dict[str, str]]:
    a, _ = replicas
    owner = await register(a, "acme")
    namespace_id = await make_namespace(a, owner, "payments/production")
    await set_entry(a, owner, namespace_id, "timeout", 1, value_type="number")
    token = await make_token(a, owner, read("payments/**"))
    return owner, namespace_id, bearer(token["token"])


async def _behind(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
    setup: tuple[Account, str, dict[str, str]],
) -> str:
    """B caches timeout=1; A commits timeout=2 and a client reads it there: its ETag."""
    a, b = replicas
    owner, namespace_id, reader = setup
    assert (await b.get(CONFIG, headers=reader)).json() == {"timeout": 1}
    await set_entry(a, owner, namespace_id, "timeout", 2, value_type="number")
    fresh = await a.get(CONFIG, headers=reader)
    assert fresh.json() == {"timeout": 2}
    # B has not heard: a client that holds nothing is still answered from its cache.
    assert (await b.get(CONFIG, headers=reader)).json() == {"timeout": 1}
    return fresh.headers["etag"]


async def test_a_conditional_read_never_goes_back(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
    setup: tuple[Account, str, dict[str, str]],
) -> None:
    etag = await _behind(replicas, setup)
    _, b = replicas
    _, _, reader = setup
    answer = await b.get(CONFIG, headers=reader | {"If-None-Match": etag})
    assert answer.status_code == 304  # not timeout=1
    assert answer.headers["etag"] == etag
    # B looked in the database and cached what it found there: it has caught up for everyone.
    assert (await b.get(CONFIG, headers=reader)).json() == {"timeout": 2}


async def test_a_long_poll_waits_instead_of_going_back(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
    setup: tuple[Account, str, dict[str, str]],
) -> None:
    etag = await _behind(replicas, setup)
    _, b = replicas
    _, _, reader = setup
    answer = await b.get(CONFIG, headers=reader | {"If-None-Match": etag}, params={"wait": 0.2})
    assert answer.status_code == 304


async def test_an_older_etag_it_knows_costs_no_reload(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
    setup: tuple[Account, str, dict[str, str]],
) -> None:
    """A client behind this replica gets the replica's state straight from its cache."""
    a, b = replicas
    owner, namespace_id, reader = setup
    old = await b.get(CONFIG, headers=reader)
    await set_entry(a, owner, namespace_id, "timeout", 2, value_type="number")
    # B still holds timeout=1; a client holding B's own old ETag is up to date as far as B
    # knows (304), and one holding an ETag B never had makes B look in the database.
    same = await b.get(CONFIG, headers=reader | {"If-None-Match": old.headers["etag"]})
    assert same.status_code == 304
    unknown = await b.get(CONFIG, headers=reader | {"If-None-Match": '"not-a-state-of-b"'})
    assert unknown.status_code == 200
    assert unknown.json() == {"timeout": 2}


async def test_a_resolution_reads_one_snapshot(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its queries see one state: REPEATABLE READ on PostgreSQL and MariaDB, whose writers read
    committed; one transaction on SQLite."""
    load_many = resolve.load_many
    seen: list[str] = []
    asked = {
        "postgres": "SHOW transaction_isolation",
        "mariadb": "SELECT lower(replace(@@tx_isolation, '-', ' '))",
    }

    async def observed(session: AsyncSession, **arguments: Any) -> Any:
        if backend.name in asked:
            level = (await session.execute(text(asked[backend.name]))).scalar()
            seen.append(str(level))
        else:
            seen.append("one transaction" if session.in_transaction() else "autocommit")
        return await load_many(session, **arguments)

    try:
        async with running(make_settings(backend.url, tmp_path)) as app, client_of(app) as http:
            owner = await register(http, "acme")
            namespace_id = await make_namespace(http, owner, "payments/production")
            await set_entry(http, owner, namespace_id, "timeout", 1, value_type="number")
            token = await make_token(http, owner, read("payments/**"))
            monkeypatch.setattr(resolve, "load_many", observed)
            answer = await http.get(CONFIG, headers=bearer(token["token"]))
    finally:
        await wipe(backend.url)  # the tenant it made
    assert answer.json() == {"timeout": 1}
    expected = "one transaction" if backend.name == "sqlite" else "repeatable read"
    assert seen and set(seen) == {expected}
