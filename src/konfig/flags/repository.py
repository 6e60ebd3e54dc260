"""The queries behind flags: a namespace's flag entries, and their evaluation counts (written
by ``konfig.analytics`` with the rest of the usage record, minute rows rolled up into hours and
days: readers sum whatever spans there are)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.analytics.models import FlagEvaluation
from konfig.configs.models import ConfigEntry
from konfig.namespaces.models import Namespace


async def flag_entries(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID
) -> list[ConfigEntry]:
    """The namespace's own entries of value type ``flag``, by key."""
    query = (
        select(ConfigEntry)
        .where(
            ConfigEntry.tenant_id == tenant_id,
            ConfigEntry.namespace_id == namespace_id,
            ConfigEntry.value_type == "flag",
        )
        .order_by(ConfigEntry.key)
    )
    return list((await session.execute(query)).scalars())


async def summary(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str
) -> dict[str, tuple[int, datetime]]:
    """Per flag of the namespace: evaluations counted, and the start of the last minute, hour or
    day (as rolled up) one was."""
    query = (
        select(FlagEvaluation.flag, func.sum(FlagEvaluation.count), func.max(FlagEvaluation.start))
        .where(FlagEvaluation.tenant_id == tenant_id, FlagEvaluation.namespace == namespace)
        .group_by(FlagEvaluation.flag)
    )
    return {flag: (int(total), last) for flag, total, last in (await session.execute(query)).all()}


async def by_hour(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str, flag: str, since: datetime
) -> list[Any]:
    """Rows ``(start, variant, count)`` of a flag's evaluations since ``since``, oldest first
    (a row's start is its minute's, hour's or day's)."""
    query = (
        select(FlagEvaluation.start, FlagEvaluation.variant, func.sum(FlagEvaluation.count))
        .where(
            FlagEvaluation.tenant_id == tenant_id,
            FlagEvaluation.namespace == namespace,
            FlagEvaluation.flag == flag,
            FlagEvaluation.start >= since,
        )
        .group_by(FlagEvaluation.start, FlagEvaluation.variant)
        .order_by(FlagEvaluation.start, FlagEvaluation.variant)
    )
    return list((await session.execute(query)).all())


async def by_caller(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str, flag: str, since: datetime
) -> dict[str, int]:
    """A flag's evaluations since ``since`` per caller (``token:<id>``, ``user:<id>``)."""
    query = (
        select(FlagEvaluation.actor, func.sum(FlagEvaluation.count))
        .where(
            FlagEvaluation.tenant_id == tenant_id,
            FlagEvaluation.namespace == namespace,
            FlagEvaluation.flag == flag,
            FlagEvaluation.start >= since,
        )
        .group_by(FlagEvaluation.actor)
    )
    return {actor: int(total) for actor, total in (await session.execute(query)).all()}


async def tenant_flag_entries(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Any]:
    """Rows ``(namespace name, entry)`` of every flag entry of the tenant, by namespace and key."""
    query = (
        select(Namespace.name, ConfigEntry)
        .join(Namespace, Namespace.id == ConfigEntry.namespace_id)
        .where(ConfigEntry.tenant_id == tenant_id, ConfigEntry.value_type == "flag")
        .order_by(Namespace.name, ConfigEntry.key)
    )
    return list((await session.execute(query)).all())


async def tenant_summary(
    session: AsyncSession, *, tenant_id: uuid.UUID
) -> dict[tuple[str, str], tuple[int, datetime]]:
    """Per (namespace, flag) of the tenant: evaluations counted, and the start of the last
    minute, hour or day one was."""
    query = (
        select(
            FlagEvaluation.namespace,
            FlagEvaluation.flag,
            func.sum(FlagEvaluation.count),
            func.max(FlagEvaluation.start),
        )
        .where(FlagEvaluation.tenant_id == tenant_id)
        .group_by(FlagEvaluation.namespace, FlagEvaluation.flag)
    )
    rows = (await session.execute(query)).all()
    return {(namespace, flag): (int(total), last) for namespace, flag, total, last in rows}
