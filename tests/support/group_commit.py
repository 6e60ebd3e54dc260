"""Holding a namespace and watching the group commit take up and queue writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from konfig.configs.writes import EntryWriter
from konfig.db.session import bind_tenant, open_session
from konfig.revisions.writer import lock_namespace
from tests.conftest import Account


@asynccontextmanager
async def held(app: Any, owner: Account, namespace_id: str) -> AsyncIterator[None]:
    """Hold the namespace in a transaction of our own until the block ends."""
    session = await open_session(app.state.sessionmaker, write=True)
    try:
        await bind_tenant(session, uuid.UUID(owner.tenant_id))
        await lock_namespace(
            session, tenant_id=uuid.UUID(owner.tenant_id), namespace_id=uuid.UUID(namespace_id)
        )
        yield
    finally:
        await session.rollback()
        await session.close()


async def taken_up(writer: EntryWriter) -> None:
    """Wait until the writer has taken the first write into a batch (which waits for the lock)."""
    for _ in range(500):
        if writer.committing and writer.queued == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the first write never reached the writer")


async def queued(tasks: list[asyncio.Task[httpx.Response]], writer: EntryWriter) -> None:
    """Wait until every write but the first (whose batch waits for the lock) has queued up."""
    for _ in range(500):
        if writer.queued == len(tasks) - 1:
            break
        await asyncio.sleep(0.01)
    assert writer.queued == len(tasks) - 1
    assert not any(t.done() for t in tasks), "a write finished while the namespace was held"
