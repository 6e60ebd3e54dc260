from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
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


async def names_by_id(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, str]:
    """Every namespace id (as a string) to its name, for rendering ``includes``."""
    query = select(Namespace.id, Namespace.name).where(Namespace.tenant_id == tenant_id)
    return {str(ns_id): name for ns_id, name in (await session.execute(query)).all()}


async def include_graph(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, list[str]]:
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
