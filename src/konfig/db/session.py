"""The per-request session: one transaction, committed once, with the tenant bound to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.errors import KonfigError

WRITE_OPTION = "konfig_write"
COMMITTED = "konfig_committed"  # session.info key: revisions this transaction committed
CHANGED = "konfig_changed"  # session.info key: other changes (tokens, namespaces) to announce
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def open_session(
    sessionmaker: async_sessionmaker[AsyncSession], *, write: bool
) -> AsyncSession:
    """A session whose transaction starts as a writer (SQLite: BEGIN IMMEDIATE) when asked."""
    session = sessionmaker()
    await session.connection(execution_options={WRITE_OPTION: write})
    return session


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session; commits when the route returns, rolls back on any error.

    A ``KonfigError`` may carry a ``record`` (a failed login, a reused refresh token): it is
    written in a fresh transaction after the rollback, so the error leaves its trace.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    session = await open_session(sessionmaker, write=request.method not in _SAFE_METHODS)
    try:
        yield session
    except KonfigError as exc:
        await session.rollback()
        if exc.record is not None:
            await session.connection(execution_options={WRITE_OPTION: True})
            await exc.record(session)
            await session.commit()
        raise
    except BaseException:
        await session.rollback()
        raise
    else:
        committed = session.info.pop(COMMITTED, None)
        changed = session.info.pop(CHANGED, None)
        await session.commit()
        if committed:
            # After the commit, never before: listeners (caches, watchers, the YAML mirror,
            # backups) must only ever see changes that are durable.
            for hook in request.app.state.commit_hooks:
                await hook(committed)
        if changed:
            for hook in getattr(request.app.state, "change_hooks", ()):
                await hook(changed)
    finally:
        await session.close()


def record_change(session: AsyncSession, change: object) -> None:
    """Announce ``change`` to ``app.state.change_hooks`` once this transaction has committed."""
    session.info.setdefault(CHANGED, []).append(change)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def bind_tenant(session: AsyncSession, tenant_id: uuid.UUID | None) -> None:
    """Tell the database which tenant this transaction acts for (PostgreSQL row-level security).

    ``SET LOCAL`` semantics: the setting ends with the transaction, so a pooled connection never
    carries one request's tenant into the next.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        text("SELECT set_config('konfig.tenant_id', :tenant, true)"),
        {"tenant": str(tenant_id) if tenant_id else ""},
    )
