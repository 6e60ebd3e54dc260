"""Flags as people look at them: each flag with when it changed and was last evaluated, the
stale ones, counts over time. The counts are gathered and written by ``konfig.analytics``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.analytics.evaluations import CountKey
from konfig.auth.principal import Principal
from konfig.configs.models import ConfigEntry
from konfig.configs.service import read_value
from konfig.errors import NotFound
from konfig.flags import repository
from konfig.flags.schemas import FlagEvaluations, FlagRead, HourCount
from konfig.namespaces import service as namespaces
from konfig.revisions.writer import WritePolicy
from konfig.users.models import Role


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _pending_of(
    pending: Mapping[CountKey, int], tenant_id: uuid.UUID, namespace: str
) -> dict[str, dict[str, int]]:
    """This replica's counts not written yet, per flag and variant."""
    found: dict[str, dict[str, int]] = {}
    for (tenant, name, flag, variant, _), number in list(pending.items()):
        if tenant == tenant_id and name == namespace:
            variants = found.setdefault(flag, {})
            variants[variant] = variants.get(variant, 0) + number
    return found


def _read(
    policy: WritePolicy,
    namespace: str,
    entry: ConfigEntry,
    used: tuple[int, datetime | None],
    unwritten: Mapping[str, int] | None,
    horizon: datetime,
    now: datetime,
) -> FlagRead:
    """One flag as people see it: its definition, its use, and whether it is stale."""
    definition = read_value(policy, entry)
    total, last = used
    if unwritten:
        total += sum(unwritten.values())
        last = now  # evaluated here since the last flush
    return FlagRead(
        namespace=namespace,
        key=entry.key,
        state=definition["state"],
        default_variant=definition["defaultVariant"],
        variants=definition["variants"],
        targeting=definition.get("targeting"),
        metadata=definition.get("metadata") or {},
        updated_at=entry.updated_at,
        last_evaluated_at=last,
        evaluations=total,
        stale=entry.updated_at < horizon and (last is None or last < horizon),
    )


async def stale_flags(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    pending: Mapping[CountKey, int],
    stale_days: float,
) -> list[FlagRead]:
    """Every flag of the tenant the caller may read that is stale, by namespace and key."""
    principal.require(Role.viewer)
    tenant_id = principal.tenant_id
    used = await repository.tenant_summary(session, tenant_id=tenant_id)
    now = datetime.now(UTC)
    horizon = now - timedelta(days=stale_days)
    found = []
    for namespace, entry in await repository.tenant_flag_entries(session, tenant_id=tenant_id):
        if not principal.allows(namespace, "read"):
            continue
        unwritten = _pending_of(pending, tenant_id, namespace).get(entry.key)
        flag = _read(
            policy,
            namespace,
            entry,
            used.get((namespace, entry.key), (0, None)),
            unwritten,
            horizon,
            now,
        )
        if flag.stale:
            found.append(flag)
    return found


async def list_flags(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    pending: Mapping[CountKey, int],
    stale_days: float,
) -> list[FlagRead]:
    """The namespace's own flags, with their use (written counts and this replica's)."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    entries = await repository.flag_entries(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
    )
    used = await repository.summary(
        session, tenant_id=namespace.tenant_id, namespace=namespace.name
    )
    unwritten = _pending_of(pending, namespace.tenant_id, namespace.name)
    now = datetime.now(UTC)
    horizon = now - timedelta(days=stale_days)
    flags = [
        _read(
            policy,
            namespace.name,
            entry,
            used.get(entry.key, (0, None)),
            unwritten.get(entry.key),
            horizon,
            now,
        )
        for entry in entries
    ]
    return flags


async def evaluations(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    hours: int,
    pending: Mapping[CountKey, int],
) -> FlagEvaluations:
    """A flag's evaluations per hour and variant over the last ``hours``."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    entries = await repository.flag_entries(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
    )
    if key not in {entry.key for entry in entries}:
        raise NotFound(f"no flag {key} in namespace {namespace.name}")
    now = hour_of(datetime.now(UTC))
    rows = await repository.by_hour(
        session,
        tenant_id=namespace.tenant_id,
        namespace=namespace.name,
        flag=key,
        since=now - timedelta(hours=hours - 1),
    )
    counted: dict[tuple[datetime, str], int] = {
        (hour_of(hour), variant): int(number) for hour, variant, number in rows
    }
    for variant, number in (
        _pending_of(pending, namespace.tenant_id, namespace.name).get(key, {}).items()
    ):
        counted[(now, variant)] = counted.get((now, variant), 0) + number
    totals: dict[str, int] = {}
    for (_, variant), number in counted.items():
        totals[variant] = totals.get(variant, 0) + number
    callers = await repository.by_caller(
        session,
        tenant_id=namespace.tenant_id,
        namespace=namespace.name,
        flag=key,
        since=now - timedelta(hours=hours - 1),
    )
    for (tenant, name, flag, _, actor), number in list(pending.items()):
        if (tenant, name, flag) == (namespace.tenant_id, namespace.name, key):
            callers[actor] = callers.get(actor, 0) + number
    return FlagEvaluations(
        namespace=namespace.name,
        key=key,
        hours=[HourCount(hour=h, variant=v, count=n) for (h, v), n in sorted(counted.items())],
        totals=totals,
        callers=dict(sorted(callers.items(), key=lambda item: -item[1])),
    )
