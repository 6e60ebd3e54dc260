"""The queries behind analytics: upserts of clients and key reads, traffic and flag evaluation
rows, the views' reads, and the roll-ups that keep the tables bounded."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.analytics.models import ClientInstance, FlagEvaluation, KeyRead, Traffic
from konfig.configs.models import ConfigEntry
from konfig.namespaces.models import Namespace
from konfig.revisions.models import Revision
from konfig.tokens.models import ApiToken


async def _upsert(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    newest: str,
    keep_when_null: Sequence[str] = (),
) -> None:
    """Insert ``rows``, or update the row holding the same ``keys``, in one statement per batch
    whichever replica wrote first; a row already newer by its ``newest`` column is left alone (a
    replica's late flush never turns an instance back to the state it left). Columns in
    ``keep_when_null`` keep their value when the new one is null."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    columns = [name for name in rows[0] if name not in (*keys, "id", newest)]
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(table)
        new: Any = my.inserted
        fresher = new[newest] >= table.c[newest]
        updates = {
            name: func.if_(
                fresher,
                func.coalesce(new[name], table.c[name]) if name in keep_when_null else new[name],
                table.c[name],
            )
            for name in columns
        }
        # Last: MariaDB assigns left to right, and the others compare with the old value.
        updates[newest] = func.greatest(new[newest], table.c[newest])
        await session.execute(my.on_duplicate_key_update(updates), list(rows))
        return
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(table)
    new = statement.excluded
    updates = {
        name: func.coalesce(new[name], table.c[name]) if name in keep_when_null else new[name]
        for name in [*columns, newest]
    }
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys), set_=updates, where=new[newest] >= table.c[newest]
        ),
        list(rows),
    )


async def upsert_clients(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await _upsert(
        session,
        ClientInstance.__table__,  # type: ignore[arg-type]
        rows,
        ("tenant_id", "namespace", "actor", "instance", "address"),
        "last_seen_at",
        keep_when_null=("last_pushed_at",),
    )


async def mark_keys(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await _upsert(
        session,
        KeyRead.__table__,  # type: ignore[arg-type]
        rows,
        ("tenant_id", "namespace", "key"),
        "last_read_at",
    )


async def add_traffic(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(Traffic), list(rows))


async def clients(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str, since: datetime
) -> list[ClientInstance]:
    """The namespace's clients seen since ``since``, most recently seen first."""
    query = (
        select(ClientInstance)
        .where(
            ClientInstance.tenant_id == tenant_id,
            ClientInstance.namespace == namespace,
            ClientInstance.last_seen_at >= since,
        )
        .order_by(ClientInstance.last_seen_at.desc())
    )
    return list((await session.execute(query)).scalars())


async def clients_of_actor(
    session: AsyncSession, *, tenant_id: uuid.UUID, actor: str
) -> list[ClientInstance]:
    query = select(ClientInstance).where(
        ClientInstance.tenant_id == tenant_id, ClientInstance.actor == actor
    )
    return list((await session.execute(query)).scalars())


async def traffic(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    since: datetime,
    namespace: str | None = None,
    actor: str | None = None,
) -> list[Any]:
    """Rows ``(start, namespace, reads, not_modified, pushes)`` since ``since``."""
    query = (
        select(
            Traffic.start,
            Traffic.namespace,
            func.sum(Traffic.reads),
            func.sum(Traffic.not_modified),
            func.sum(Traffic.pushes),
        )
        .where(Traffic.tenant_id == tenant_id, Traffic.start >= since)
        .group_by(Traffic.start, Traffic.namespace)
    )
    if namespace is not None:
        query = query.where(Traffic.namespace == namespace)
    if actor is not None:
        query = query.where(Traffic.actor == actor)
    return list((await session.execute(query)).all())


async def key_reads(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str
) -> dict[str, datetime]:
    query = select(KeyRead.key, KeyRead.last_read_at).where(
        KeyRead.tenant_id == tenant_id, KeyRead.namespace == namespace
    )
    return dict((await session.execute(query)).all())


async def tenant_entries(
    session: AsyncSession, *, tenant_id: uuid.UUID, created_before: datetime
) -> list[tuple[str, str]]:
    """``(namespace, key)`` of every entry of the tenant made before ``created_before``."""
    query = (
        select(Namespace.name, ConfigEntry.key)
        .join(Namespace, Namespace.id == ConfigEntry.namespace_id)
        .where(ConfigEntry.tenant_id == tenant_id, ConfigEntry.created_at < created_before)
        .order_by(Namespace.name, ConfigEntry.key)
    )
    return [(name, key) for name, key in (await session.execute(query)).all()]


async def tenant_key_reads(
    session: AsyncSession, *, tenant_id: uuid.UUID
) -> dict[tuple[str, str], datetime]:
    query = select(KeyRead.namespace, KeyRead.key, KeyRead.last_read_at).where(
        KeyRead.tenant_id == tenant_id
    )
    return {(name, key): at for name, key, at in (await session.execute(query)).all()}


async def entries(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID
) -> list[tuple[str, datetime]]:
    """The namespace's own keys and when each was made, by key."""
    query = (
        select(ConfigEntry.key, ConfigEntry.created_at)
        .where(ConfigEntry.tenant_id == tenant_id, ConfigEntry.namespace_id == namespace_id)
        .order_by(ConfigEntry.key)
    )
    return [(key, at) for key, at in (await session.execute(query)).all()]


async def revision_times(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, after: int
) -> dict[int, datetime]:
    """When each revision of the namespace after ``after`` was committed."""
    query = select(Revision.revision, Revision.created_at).where(
        Revision.tenant_id == tenant_id,
        Revision.namespace_id == namespace_id,
        Revision.revision > after,
    )
    return dict((await session.execute(query)).all())


async def last_change(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_ids: Sequence[uuid.UUID]
) -> datetime | None:
    """The latest change among these namespaces (a resolved config's layers)."""
    query = select(func.max(Namespace.updated_at)).where(
        Namespace.tenant_id == tenant_id, Namespace.id.in_(namespace_ids)
    )
    found: datetime | None = (await session.execute(query)).scalar()
    return found


async def recent_clients(session: AsyncSession, *, since: datetime) -> list[Any]:
    """Every tenant's clients seen since ``since``, with their namespace's revision and last
    change: rows ``(tenant_id, namespace, held revision, held state, current revision,
    changed at)``."""
    query = select(
        ClientInstance.tenant_id,
        ClientInstance.namespace,
        ClientInstance.revision,
        ClientInstance.state,
        Namespace.revision,
        Namespace.updated_at,
    ).join(
        Namespace,
        (Namespace.tenant_id == ClientInstance.tenant_id)
        & (Namespace.name == ClientInstance.namespace),
    )
    return list((await session.execute(query.where(ClientInstance.last_seen_at >= since))).all())


async def changed_at(
    session: AsyncSession, *, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """When each of these namespaces (of any tenant) last changed."""
    found: dict[uuid.UUID, datetime] = {}
    for at in range(0, len(ids), 500):
        query = select(Namespace.id, Namespace.updated_at).where(
            Namespace.id.in_(ids[at : at + 500])
        )
        found.update((await session.execute(query)).all())
    return found


# What a roll-up sums, per table: the columns that name a row's bucket, then its counters.
ROLLED_UP: dict[type[Traffic] | type[FlagEvaluation], tuple[tuple[str, ...], tuple[str, ...]]] = {
    Traffic: (("tenant_id", "namespace", "actor"), ("reads", "not_modified", "pushes")),
    FlagEvaluation: (("tenant_id", "namespace", "flag", "variant", "actor"), ("count",)),
}


async def rows_to_roll_up(
    session: AsyncSession,
    model: type[Traffic] | type[FlagEvaluation],
    *,
    span: int,
    before: datetime,
) -> list[Any]:
    """Rows of ``span`` seconds starting before ``before``: ``(id, start, *names, *counters)``
    as ``ROLLED_UP`` names them."""
    names, counters = ROLLED_UP[model]
    table: Any = model.__table__
    query = select(table.c.id, table.c.start, *(table.c[c] for c in (*names, *counters))).where(
        table.c.span == span, table.c.start < before
    )
    return list((await session.execute(query)).all())


async def add_rows(
    session: AsyncSession,
    model: type[Traffic] | type[FlagEvaluation],
    rows: Sequence[dict[str, Any]],
) -> None:
    if rows:
        await session.execute(insert(model), list(rows))


async def delete_rows(
    session: AsyncSession, model: type[Traffic] | type[FlagEvaluation], ids: Sequence[uuid.UUID]
) -> int:
    deleted = 0
    table: Any = model.__table__
    for at in range(0, len(ids), 500):
        result = await session.execute(
            delete(table)
            .where(table.c.id.in_(ids[at : at + 500]))
            .execution_options(synchronize_session=False)
        )
        deleted += getattr(result, "rowcount", 0)
    return deleted


async def forget_before(session: AsyncSession, *, before: datetime) -> None:
    """Delete what retention no longer keeps: day rows, clients and key reads older."""
    for statement in (
        delete(Traffic).where(Traffic.start < before),
        delete(FlagEvaluation).where(FlagEvaluation.start < before),
        delete(ClientInstance).where(ClientInstance.last_seen_at < before),
        delete(KeyRead).where(KeyRead.last_read_at < before),
    ):
        await session.execute(statement.execution_options(synchronize_session=False))


async def token_names(
    session: AsyncSession, *, tenant_id: uuid.UUID, token_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The names of these tokens of the tenant (names are not secrets)."""
    if not token_ids:
        return {}
    query = select(ApiToken.id, ApiToken.name).where(
        ApiToken.tenant_id == tenant_id, ApiToken.id.in_(token_ids)
    )
    return dict((await session.execute(query)).all())
