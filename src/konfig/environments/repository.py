"""The queries behind search: the tenant's entries with their namespaces, and a cheap
signature of the tenant's namespaces that changes whenever any of them does."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs.models import ConfigEntry
from konfig.namespaces.models import Namespace


async def signature(session: AsyncSession, *, tenant_id: uuid.UUID) -> tuple[Any, ...]:
    """``(count, sum of revisions, latest change)`` of the tenant's namespaces: a write bumps a
    revision and the change time, a deletion the count."""
    query = select(
        func.count(Namespace.id), func.sum(Namespace.revision), func.max(Namespace.updated_at)
    ).where(Namespace.tenant_id == tenant_id)
    row = (await session.execute(query)).one()
    return (int(row[0] or 0), int(row[1] or 0), str(row[2]))


async def entries(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Any]:
    """Rows ``(namespace_id, namespace name, key, description, is_secret, value_ciphertext)``
    of every entry of the tenant (the ciphertext is None for a secret: search never reads
    one)."""
    query = (
        select(
            ConfigEntry.namespace_id,
            Namespace.name,
            ConfigEntry.key,
            ConfigEntry.description,
            ConfigEntry.is_secret,
            ConfigEntry.value_ciphertext,
        )
        .join(Namespace, Namespace.id == ConfigEntry.namespace_id)
        .where(ConfigEntry.tenant_id == tenant_id, Namespace.tenant_id == tenant_id)
        .order_by(Namespace.name, ConfigEntry.key)
    )
    return list((await session.execute(query)).all())
