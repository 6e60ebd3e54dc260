"""The per-request session: one transaction, committed once, with the tenant bound to it."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from konfig.errors import KonfigError, Record
from konfig.paths import WRITING_GETS

log = logging.getLogger("konfig.db")

WRITE_OPTION = "konfig_write"
COMMITTED = "konfig_committed"  # session.info key: revisions this transaction committed
CHANGED = "konfig_changed"  # session.info key: other changes (tokens, namespaces) to announce
TENANT = "konfig_tenant"  # session.info key: the tenant its transactions act for
ACROSS = "konfig_across"  # session.info key: why its transactions act across tenants
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Request scope key: the route answered with an error of its own making (a web page showing the
# error) rather than raising it, so the request's work is rolled back, not committed. Its value
# is True, or the ``KonfigError`` shown, whose traces the session writes after its rollback.
REFUSED = "konfig.refused"
# Request scope key: the request's session is open (until the route has answered).
SESSION_OPEN = "konfig.session_open"
_SET_TENANT = text("SELECT set_config('konfig.tenant_id', :tenant, true)")
_SET_ACROSS = text("SELECT set_config('konfig.across_tenants', :reason, true)")

# What a feature makes of a refused request's error: a record to write after the rollback, or
# None. The app registers them in ``refusal_traces`` (the audit feature: a denial's row).
RefusalTrace = Callable[[KonfigError], Record | None]

# What the other replicas must hear of a transaction about to commit, as ``(channel, payload)``
# pairs for PostgreSQL's NOTIFY, given its committed revisions and its other changes (the
# delivery layer's, set while its listener is PostgreSQL's; see ``notify_within``).
Notices = Callable[[Sequence[Any] | None, Sequence[Any] | None], list[tuple[str, str]]]
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Transactions(Protocol):
    """Where a request's session comes from, and who hears of what it committed (the app's
    ``konfig.state.AppState``; named here by its shape, so that ``db`` imports no feature)."""

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def write_engine(self) -> AsyncEngine: ...

    @property
    def commit_hooks(self) -> Sequence[Callable[[Any], Awaitable[None]]]: ...

    @property
    def change_hooks(self) -> Sequence[Callable[[Any], Awaitable[None]]]: ...

    @property
    def refusal_traces(self) -> Sequence[RefusalTrace]: ...

    @property
    def notices(self) -> Notices | None: ...


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
    written in a fresh transaction after the rollback, so the error leaves its trace; so is what
    the app's ``refusal_traces`` make of it (see ``write_trace``).
    """
    # A reveal writes its audit row, so it starts as a writer too (SQLite cannot upgrade a
    # reader that lost a race to a writer).
    reveal = request.query_params.get("reveal", "")
    write = (
        request.method not in _SAFE_METHODS
        or reveal not in ("", "false", "0")
        or request.url.path in WRITING_GETS
    )
    state: Transactions = request.app.konfig_state  # konfig.state.state_of, without its import
    async with request_session(state, write=write) as session:
        request.scope[SESSION_OPEN] = True
        try:
            yield session
        finally:
            request.scope[SESSION_OPEN] = False
        refused = request.scope.get(REFUSED)
        if refused:
            await discard(session)
            if isinstance(refused, KonfigError):  # its trace, now that the writer turn is free
                await write_trace(session, refused, state)


async def discard(session: AsyncSession) -> None:
    """Roll back what a refused request began: none of it is committed or announced."""
    session.info.pop(COMMITTED, None)
    session.info.pop(CHANGED, None)
    await session.rollback()


@asynccontextmanager
async def request_session(state: Transactions, *, write: bool) -> AsyncIterator[AsyncSession]:
    """A request's session, committed when the block ends well and rolled back otherwise.

    Nothing is sent to the database until the request needs it: a request answered from caches
    (a principal already known, an entry write handed to the group commit) never opens a
    transaction. A writing request's transaction starts as a writer (SQLite: BEGIN IMMEDIATE).
    """
    session: AsyncSession = (
        state.sessionmaker(bind=state.write_engine) if write else state.sessionmaker()
    )
    try:
        yield session
    except KonfigError as exc:
        await session.rollback()
        await write_trace(session, exc, state)
        raise
    except BaseException:
        await session.rollback()
        raise
    else:
        committed = session.info.pop(COMMITTED, None)
        changed = session.info.pop(CHANGED, None)
        if session.in_transaction():
            await notify_within(state, session, committed, changed)
            await session.commit()
        await announce(state, committed, changed)
    finally:
        await session.close()


async def notify_within(
    state: Transactions,
    session: AsyncSession,
    committed: Sequence[Any] | None,
    changed: Sequence[Any] | None,
) -> None:
    """Send the other replicas' announcement of what ``session`` is about to commit inside its
    transaction (PostgreSQL only: NOTIFY is delivered when the transaction commits, or never).
    Sent after the commit instead, a replica that died in between would leave the others
    serving the old state until their cache's max age."""
    if state.notices is None or not (committed or changed):
        return
    for channel, payload in state.notices(committed, changed):
        await session.execute(_NOTIFY, {"channel": channel, "payload": payload})


async def announce(
    state: Transactions, committed: list[Any] | None, changed: list[Any] | None
) -> None:
    """Tell the hooks what a transaction committed: after the commit, never before, so that
    listeners (caches, watchers, the YAML mirror, backups) only ever see durable changes."""
    if committed:
        for hook in state.commit_hooks:
            await hook(committed)
    if changed:
        for hook in state.change_hooks:
            await hook(changed)


def traces_of(state: Transactions, exc: KonfigError) -> list[Record]:
    """What a refused request must leave behind: the error's own ``record`` and what each of
    the app's ``refusal_traces`` makes of it. Empty for most errors (a 404, a 422)."""
    made = (trace(exc) for trace in state.refusal_traces)
    return [record for record in (exc.record, *made) if record is not None]


async def write_trace(session: AsyncSession, exc: KonfigError, state: Transactions) -> None:
    """Write the ``traces_of`` a refused request in ``session``'s next transaction (the one it
    began was rolled back), and announce what they changed (a login a record ended, say)."""
    records = traces_of(state, exc)
    if not records:
        return
    try:
        await session.connection(execution_options={WRITE_OPTION: True})
        for record in records:
            await record(session)
        changed = session.info.pop(CHANGED, None)
        await notify_within(state, session, None, changed)
        await session.commit()
    except Exception:
        await session.rollback()
        log.exception("could not record the trace of a refused request")
        return
    await announce(state, None, changed)


def record_change(session: AsyncSession, change: object) -> None:
    """Announce ``change`` to the app's ``change_hooks`` once this transaction has committed."""
    session.info.setdefault(CHANGED, []).append(change)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def bind_tenant(session: AsyncSession, tenant_id: uuid.UUID | None) -> None:
    """Tell the database which tenant this transaction acts for (PostgreSQL row-level security).

    ``SET LOCAL`` semantics: the setting ends with the transaction, so a pooled connection never
    carries one request's tenant into the next. A session that has not begun its transaction
    yet binds it when it does (``_bind_on_begin``): asking now would begin it.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    if session.in_transaction() and session.info.get(TENANT, _UNBOUND) == tenant_id:
        return  # bound already, in this transaction: no round trip to say it again
    session.info[TENANT] = tenant_id
    if session.in_transaction():
        await session.execute(_SET_TENANT, {"tenant": str(tenant_id) if tenant_id else ""})


_UNBOUND = object()


def begin_bound(tenant_ids: Iterable[uuid.UUID]) -> str:
    """``BEGIN`` and ``konfig.tenant_id`` for a transaction that writes for several tenants (the
    group commit), as one script: the row-level security policy admits the rows of each, and of
    no other. Sent by the simple query protocol, so the ids are spelled in: UUIDs, nothing else."""
    tenants = ",".join(sorted({str(uuid.UUID(str(tenant_id))) for tenant_id in tenant_ids}))
    return f"BEGIN; SELECT set_config('konfig.tenant_id', '{tenants}', true)"


@asynccontextmanager
async def across_tenants(session: AsyncSession, reason: str) -> AsyncIterator[None]:
    """Let the statements of this block see and write every tenant's rows on PostgreSQL.

    Row-level security admits only the tenant a transaction is bound to. A few paths work
    before the tenant is known or for all of them (a login by email, a token by its hash,
    registering a tenant, the superuser's administration, the backups scheduler, key rotation);
    each names itself here with ``reason``, and only for the statements that need it: the
    setting is cleared when the block ends. The list of callers is a test's (see
    tests/test_row_level_security_paths.py), so a new one is a decision, not an accident.
    """
    if not reason:
        raise ValueError("across_tenants needs a reason")
    if session.get_bind().dialect.name != "postgresql" or ACROSS in session.info:
        yield  # nothing to bind, or an enclosing block already did (it clears it, not this)
        return
    session.info[ACROSS] = reason
    if session.in_transaction():
        await session.execute(_SET_ACROSS, {"reason": reason})
    try:
        yield
    finally:
        session.info.pop(ACROSS, None)
        if session.in_transaction():
            with contextlib.suppress(DBAPIError, InvalidRequestError):
                await session.execute(_SET_ACROSS, {"reason": ""})


async def connection_across_tenants(connection: AsyncConnection, reason: str) -> None:
    """``across_tenants`` for the rest of a connection's current transaction."""
    if connection.dialect.name == "postgresql":
        await connection.execute(_SET_ACROSS, {"reason": reason})


@event.listens_for(Session, "after_begin")
def _bind_on_begin(session: Session, _transaction: Any, connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    if TENANT in session.info:
        tenant_id = session.info[TENANT]
        connection.execute(_SET_TENANT, {"tenant": str(tenant_id) if tenant_id else ""})
    if ACROSS in session.info:
        connection.execute(_SET_ACROSS, {"reason": session.info[ACROSS]})
