"""The audit of refused requests: a permission denial leaves its row though its work is undone.

The request's transaction is rolled back, so the row is written in a transaction of its own
after it: ``denial_trace`` is registered in the app's ``refusal_traces`` (the session dependency
writes it for every route), and ``keep_trace`` does the same for a request refused before it
had a session (the single-entry write path, a UI page).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit.context import current
from konfig.audit.service import record_failure
from konfig.db.session import Transactions, bind_tenant, traces_of, write_trace
from konfig.errors import Forbidden, KonfigError, Record


def denial_trace(exc: KonfigError) -> Record | None:
    """A denial's ``permission.denied`` row; nothing for any other error."""
    if not isinstance(exc, Forbidden):
        return None

    async def write(session: AsyncSession) -> None:
        await record_failure(session, exc)

    return write


async def keep_trace(state: Transactions, exc: KonfigError) -> None:
    """Write a refused request's trace when it had no session of its own."""
    if not traces_of(state, exc):
        return
    session: AsyncSession = state.sessionmaker(bind=state.write_engine)
    try:
        await bind_tenant(session, current().tenant_id)  # the refused principal's tenant
        await write_trace(session, exc, state)
    finally:
        await session.close()
