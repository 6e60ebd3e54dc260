"""The queries behind flags: a namespace's flag entries, and evaluation counts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs.models import ConfigEntry
from konfig.flags.counts import CountKey
from konfig.flags.models import FlagEvaluation
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


async def add_counts(
    session: AsyncSession, *, counts: Mapping[CountKey, int], hour: datetime
) -> None:
    """Add ``counts`` to the hour's rows (a row per key; made when missing)."""
    for (tenant_id, namespace, flag, variant, actor), number in counts.items():
        added = await session.execute(
            update(FlagEvaluation)
            .where(
                FlagEvaluation.tenant_id == tenant_id,
                FlagEvaluation.namespace == namespace,
                FlagEvaluation.flag == flag,
                FlagEvaluation.variant == variant,
                FlagEvaluation.actor == actor,
                FlagEvaluation.hour == hour,
            )
            .values(count=FlagEvaluation.count + number)
            .execution_options(synchronize_session=False)
        )
        if getattr(added, "rowcount", 0) == 0:
            session.add(
                FlagEvaluation(
                    tenant_id=tenant_id,
                    namespace=namespace,
                    flag=flag,
                    variant=variant,
                    actor=actor,
                    hour=hour,
                    count=number,
                )
            )
    await session.flush()


async def summary(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str
) -> dict[str, tuple[int, datetime]]:
    """Per flag of the namespace: evaluations counted, and the last hour one was."""
    query = (
        select(FlagEvaluation.flag, func.sum(FlagEvaluation.count), func.max(FlagEvaluation.hour))
        .where(FlagEvaluation.tenant_id == tenant_id, FlagEvaluation.namespace == namespace)
        .group_by(FlagEvaluation.flag)
    )
    return {flag: (int(total), last) for flag, total, last in (await session.execute(query)).all()}


async def by_hour(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str, flag: str, since: datetime
) -> list[Any]:
    """Rows ``(hour, variant, count)`` of a flag's evaluations since ``since``, oldest first."""
    query = (
        select(FlagEvaluation.hour, FlagEvaluation.variant, func.sum(FlagEvaluation.count))
        .where(
            FlagEvaluation.tenant_id == tenant_id,
            FlagEvaluation.namespace == namespace,
            FlagEvaluation.flag == flag,
            FlagEvaluation.hour >= since,
        )
        .group_by(FlagEvaluation.hour, FlagEvaluation.variant)
        .order_by(FlagEvaluation.hour, FlagEvaluation.variant)
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
            FlagEvaluation.hour >= since,
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
    """Per (namespace, flag) of the tenant: evaluations counted, and the last hour one was."""
    query = (
        select(
            FlagEvaluation.namespace,
            FlagEvaluation.flag,
            func.sum(FlagEvaluation.count),
            func.max(FlagEvaluation.hour),
        )
        .where(FlagEvaluation.tenant_id == tenant_id)
        .group_by(FlagEvaluation.namespace, FlagEvaluation.flag)
    )
    rows = (await session.execute(query)).all()
    return {(namespace, flag): (int(total), last) for namespace, flag, total, last in rows}
