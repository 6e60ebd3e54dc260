"""The queries behind a resolved config: the namespaces it inherits from, and their entries."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs.models import ConfigEntry
from konfig.namespaces.models import Namespace
from konfig.tokens.models import ApiToken


async def namespaces(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    names: Collection[str],
    ids: Collection[uuid.UUID],
) -> list[Any]:
    """Rows ``(id, name, includes, revision)`` of the tenant's namespaces named or numbered so."""
    conditions = []
    if names:
        conditions.append(Namespace.name.in_(list(names)))
    if ids:
        conditions.append(Namespace.id.in_(list(ids)))
    if not conditions:
        return []
    query = select(Namespace.id, Namespace.name, Namespace.includes, Namespace.revision).where(
        Namespace.tenant_id == tenant_id, or_(*conditions)
    )
    return list((await session.execute(query)).all())


async def entries(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_ids: Collection[uuid.UUID]
) -> list[Any]:
    """Rows ``(namespace_id, key, value_ciphertext, revision, is_secret, value_type)`` of these
    namespaces' entries."""
    if not namespace_ids:
        return []
    query = select(
        ConfigEntry.namespace_id,
        ConfigEntry.key,
        ConfigEntry.value_ciphertext,
        ConfigEntry.revision,
        ConfigEntry.is_secret,
        ConfigEntry.value_type,
    ).where(ConfigEntry.tenant_id == tenant_id, ConfigEntry.namespace_id.in_(list(namespace_ids)))
    return list((await session.execute(query)).all())


async def changed_since(session: AsyncSession, since: datetime) -> list[Any]:
    """Rows ``(tenant_id, id, name, revision)`` of every tenant's namespaces updated since
    ``since`` (the caller's session acts across tenants)."""
    query = select(Namespace.tenant_id, Namespace.id, Namespace.name, Namespace.revision).where(
        Namespace.updated_at > since
    )
    return list((await session.execute(query)).all())


async def revoked_since(session: AsyncSession, since: datetime) -> list[Any]:
    """Rows ``(tenant_id, id)`` of every tenant's tokens revoked since ``since``."""
    query = select(ApiToken.tenant_id, ApiToken.id).where(ApiToken.revoked_at > since)
    return list((await session.execute(query)).all())


async def referrers(
    session: AsyncSession, *, tenant_id: uuid.UUID, names: Collection[str], under: bool = False
) -> list[str]:
    """The namespaces other than ``names`` whose entries' values reference one of them
    (``${ref:name:…}``, as ``config_entries.refs`` lists them); with ``under``, or a namespace
    below one of them."""
    if not names:
        return []
    conditions = []
    refs = cast(ConfigEntry.refs, Text)
    for name in names:
        quoted = orjson.dumps(name).decode()
        conditions.append(refs.contains(quoted, autoescape=True))
        if under:  # '"payments/' begins every name below payments in the JSON list
            conditions.append(refs.contains(quoted[:-1] + "/", autoescape=True))
    query = (
        select(Namespace.name)
        .join(ConfigEntry, ConfigEntry.namespace_id == Namespace.id)
        .where(
            ConfigEntry.tenant_id == tenant_id,
            Namespace.tenant_id == tenant_id,
            or_(*conditions),
            Namespace.name.not_in(list(names)),
        )
        .distinct()
    )
    return sorted((await session.execute(query)).scalars())


async def heirs(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, namespace_id: uuid.UUID
) -> list[str]:
    """The namespaces whose resolution takes keys from ``name``: those below it, those that
    include it, and in turn theirs. One query per level of inheritance, narrowed by the
    database (names by prefix, includes on the list's text), confirmed on the parsed list."""
    found: set[str] = set()
    names, ids = [name], [namespace_id]
    while names:
        wanted = {str(i) for i in ids}
        conditions = [Namespace.name.startswith(f"{n}/", autoescape=True) for n in names]
        conditions += [cast(Namespace.includes, Text).contains(i) for i in wanted]
        query = select(Namespace.id, Namespace.name, Namespace.includes).where(
            Namespace.tenant_id == tenant_id, or_(*conditions)
        )
        fresh: list[tuple[uuid.UUID, str]] = []
        for ns_id, ns_name, includes in (await session.execute(query)).all():
            below = any(ns_name.startswith(f"{n}/") for n in names)
            including = bool(wanted.intersection(str(i) for i in includes or ()))
            if (below or including) and ns_name != name and ns_name not in found:
                found.add(ns_name)
                fresh.append((ns_id, ns_name))
        names, ids = [n for _, n in fresh], [i for i, _ in fresh]
    return sorted(found)


async def names_under(session: AsyncSession, *, tenant_id: uuid.UUID, name: str) -> list[str]:
    """The names of the tenant's namespaces below ``name`` (``payments/…``)."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(Namespace.name).where(
        Namespace.tenant_id == tenant_id, Namespace.name.like(f"{escaped}/%", escape="\\")
    )
    return sorted((await session.execute(query)).scalars())
