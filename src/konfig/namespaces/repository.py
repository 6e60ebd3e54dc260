from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs.models import ConfigEntry
from konfig.namespaces.models import Namespace


async def get(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID
) -> Namespace | None:
    query = select(Namespace).where(Namespace.id == namespace_id, Namespace.tenant_id == tenant_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_name(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str
) -> Namespace | None:
    query = select(Namespace).where(Namespace.tenant_id == tenant_id, Namespace.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def by_names(
    session: AsyncSession, *, tenant_id: uuid.UUID, names: Sequence[str]
) -> dict[str, Namespace]:
    if not names:
        return {}
    query = select(Namespace).where(Namespace.tenant_id == tenant_id, Namespace.name.in_(names))
    return {ns.name: ns for ns in (await session.execute(query)).scalars()}


async def names_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Collection[str]
) -> dict[str, str]:
    """These namespaces' ids (as strings) to their names, for rendering ``includes``: one
    indexed lookup, whatever the size of the tenant."""
    if not ids:
        return {}
    query = select(Namespace.id, Namespace.name).where(
        Namespace.tenant_id == tenant_id, Namespace.id.in_([uuid.UUID(i) for i in set(ids)])
    )
    return {str(ns_id): name for ns_id, name in (await session.execute(query)).all()}


async def includes_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Collection[str]
) -> dict[str, list[str]]:
    """What each of these namespaces includes (ids as strings)."""
    if not ids:
        return {}
    query = select(Namespace.id, Namespace.includes).where(
        Namespace.tenant_id == tenant_id, Namespace.id.in_([uuid.UUID(i) for i in set(ids)])
    )
    return {
        str(ns_id): list(includes or []) for ns_id, includes in (await session.execute(query)).all()
    }


async def includers_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID
) -> list[str]:
    """The names of the namespaces whose includes list ``namespace_id``: narrowed by the
    database on the list's text (no row comes back to Python that does not name the id), then
    confirmed on the parsed list."""
    wanted = str(namespace_id)
    query = select(Namespace.name, Namespace.includes).where(
        Namespace.tenant_id == tenant_id, cast(Namespace.includes, Text).contains(wanted)
    )
    rows = (await session.execute(query)).all()
    return sorted(name for name, includes in rows if wanted in (includes or ()))


async def names_by_id(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, str]:
    """Every namespace id (as a string) to its name (a whole tenant's restore)."""
    query = select(Namespace.id, Namespace.name).where(Namespace.tenant_id == tenant_id)
    return {str(ns_id): name for ns_id, name in (await session.execute(query)).all()}


async def include_graph(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, list[str]]:
    """Every namespace's includes (a whole tenant's restore)."""
    query = select(Namespace.id, Namespace.includes).where(Namespace.tenant_id == tenant_id)
    return {
        str(ns_id): list(includes or []) for ns_id, includes in (await session.execute(query)).all()
    }


async def list_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    prefix: str | None,
    after: str | None,
    limit: int,
) -> list[Namespace]:
    query = (
        select(Namespace)
        .where(Namespace.tenant_id == tenant_id)
        .order_by(Namespace.name)
        .limit(limit)
    )
    if prefix:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Namespace.name.like(f"{escaped}%", escape="\\"))
    if after is not None:
        query = query.where(Namespace.name > after)
    return list((await session.execute(query)).scalars())


async def entry_counts(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not namespace_ids:
        return {}
    query = (
        select(ConfigEntry.namespace_id, func.count())
        .where(ConfigEntry.tenant_id == tenant_id, ConfigEntry.namespace_id.in_(namespace_ids))
        .group_by(ConfigEntry.namespace_id)
    )
    return {ns_id: int(n) for ns_id, n in (await session.execute(query)).all()}


async def create(session: AsyncSession, *, namespace: Namespace) -> Namespace:
    session.add(namespace)
    await session.flush()
    return namespace


async def delete(session: AsyncSession, *, namespace: Namespace) -> None:
    await session.delete(namespace)
    await session.flush()


async def descendants(session: AsyncSession, *, tenant_id: uuid.UUID, name: str) -> list[Namespace]:
    """Every namespace under ``name`` (``payments/…``), by name."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        select(Namespace)
        .where(Namespace.tenant_id == tenant_id, Namespace.name.like(f"{escaped}/%", escape="\\"))
        .order_by(Namespace.name)
    )
    return list((await session.execute(query)).scalars())


async def with_templates(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, Any]:
    """The templates the tenant's namespaces declare, by namespace name."""
    query = select(Namespace.name, Namespace.template).where(
        Namespace.tenant_id == tenant_id, Namespace.template.is_not(None)
    )
    return {name: template for name, template in (await session.execute(query)).all() if template}
