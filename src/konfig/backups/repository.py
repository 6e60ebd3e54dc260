"""The queries backups need: a tenant's whole state in one statement, and its current entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs.models import ConfigEntry
from konfig.namespaces.models import Namespace
from konfig.tenants.models import Tenant


@dataclass(slots=True)
class StoredEntry:
    key: str
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool
    version: int
    ciphertext: bytes


@dataclass(slots=True)
class StoredNamespace:
    id: uuid.UUID
    name: str
    description: str
    include_ids: list[str]
    revision: int
    entries: list[StoredEntry] = field(default_factory=list)
    template: dict[str, Any] | None = None  # the template it declares (konfig.namespaces)


async def tenant_name(session: AsyncSession, *, tenant_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))


async def tenant_id_by_name(session: AsyncSession, *, name: str) -> uuid.UUID | None:
    return await session.scalar(select(Tenant.id).where(Tenant.name == name))


async def tenants_with_namespaces(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    query = (
        select(Tenant.id, Tenant.name)
        .where(exists().where(Namespace.tenant_id == Tenant.id))
        .order_by(Tenant.name)
    )
    return [(tenant_id, name) for tenant_id, name in (await session.execute(query)).all()]


async def snapshot(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[StoredNamespace]:
    """Every namespace of the tenant with its entries, read by one statement, and the
    templates they declare.

    One statement sees one consistent state on every backend, even at READ COMMITTED.
    """
    query = (
        select(
            Namespace.id,
            Namespace.name,
            Namespace.description,
            Namespace.includes,
            Namespace.revision,
            ConfigEntry.key,
            ConfigEntry.value_type,
            ConfigEntry.validation_schema,
            ConfigEntry.description,
            ConfigEntry.is_secret,
            ConfigEntry.version,
            ConfigEntry.value_ciphertext,
        )
        .outerjoin(ConfigEntry, ConfigEntry.namespace_id == Namespace.id)
        .where(Namespace.tenant_id == tenant_id)
        .order_by(Namespace.name, ConfigEntry.key)
    )
    namespaces: dict[uuid.UUID, StoredNamespace] = {}
    for row in (await session.execute(query)).all():
        namespace = namespaces.get(row[0])
        if namespace is None:
            namespace = StoredNamespace(row[0], row[1], row[2], list(row[3] or []), row[4])
            namespaces[row[0]] = namespace
        if row[5] is not None:
            namespace.entries.append(
                StoredEntry(row[5], row[6], row[7], row[8], row[9], row[10], bytes(row[11]))
            )
    # Templates apart, in a second statement: joined, a template would repeat on every entry
    # row of its namespace. They are not revisioned with the entries, so a template declared
    # between the two statements is simply backed up as it is a moment later.
    declared = select(Namespace.id, Namespace.template).where(
        Namespace.tenant_id == tenant_id, Namespace.template.is_not(None)
    )
    for namespace_id, template in (await session.execute(declared)).all():
        if namespace_id in namespaces and template:
            namespaces[namespace_id].template = template
    return list(namespaces.values())


async def namespaces_by_name(
    session: AsyncSession, *, tenant_id: uuid.UUID, names: Sequence[str]
) -> dict[str, Namespace]:
    if not names:
        return {}
    query = (
        select(Namespace)
        .where(Namespace.tenant_id == tenant_id, Namespace.name.in_(names))
        .execution_options(populate_existing=True)
    )
    return {ns.name: ns for ns in (await session.execute(query)).scalars()}


async def entries_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ConfigEntry]]:
    found: dict[uuid.UUID, list[ConfigEntry]] = {ns_id: [] for ns_id in namespace_ids}
    if not namespace_ids:
        return found
    query = (
        select(ConfigEntry)
        .where(ConfigEntry.tenant_id == tenant_id, ConfigEntry.namespace_id.in_(namespace_ids))
        .order_by(ConfigEntry.key)
        .execution_options(populate_existing=True)
    )
    for entry in (await session.execute(query)).scalars():
        found[entry.namespace_id].append(entry)
    return found
