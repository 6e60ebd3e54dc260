"""The per-request session: one transaction, committed once, with the tenant bound to it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.errors import Forbidden, KonfigError

log = logging.getLogger("konfig.db")

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
    # A reveal writes its audit row, so it starts as a writer too (SQLite cannot upgrade a
    # reader that lost a race to a writer).
    reveal = request.query_params.get("reveal", "")
    write = request.method not in _SAFE_METHODS or reveal not in ("", "false", "0")
    session = await open_session(sessionmaker, write=write)
    try:
        yield session
    except KonfigError as exc:
        await session.rollback()
        await _keep_trace(session, exc)
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


async def _keep_trace(session: AsyncSession, exc: KonfigError) -> None:
    """Write what a refused request must leave behind (its ``record``; a denial's audit row)."""
    from konfig.audit.service import record_failure

    if exc.record is None and not isinstance(exc, Forbidden):
        return
    try:
        await session.connection(execution_options={WRITE_OPTION: True})
        if exc.record is not None:
            await exc.record(session)
        await record_failure(session, exc)
        await session.commit()
    except Exception:
        await session.rollback()
        log.exception("could not record the trace of a refused request")


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
