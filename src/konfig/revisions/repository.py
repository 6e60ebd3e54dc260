"""Every query over history: versions of a key, revisions, and the namespace as of a revision.

A snapshot is one indexed query (see ``EntryVersion``): nothing here replays history, so reading
revision 1 of a namespace with 10,000 revisions costs what reading revision 10,000 does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Select, Text, and_, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs.models import ConfigEntry
from konfig.revisions.models import EntryVersion, Revision

_CHUNK = 500


def _live_at(namespace_id: uuid.UUID, revision: int) -> Select[EntryVersion]:
    """Versions that were current at ``revision``: written at or before it, not yet replaced."""
    return select(EntryVersion).where(
        EntryVersion.namespace_id == namespace_id,
        EntryVersion.revision <= revision,
        or_(EntryVersion.superseded_at.is_(None), EntryVersion.superseded_at > revision),
        EntryVersion.action != "delete",
    )


async def snapshot(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    namespace_id: uuid.UUID,
    revision: int,
    keys: Sequence[str] | None = None,
) -> dict[str, EntryVersion]:
    """The live version of every key (or of ``keys``) at ``revision``, by key."""
    base = _live_at(namespace_id, revision).where(EntryVersion.tenant_id == tenant_id)
    if keys is None:
        rows = (await session.execute(base.order_by(EntryVersion.key))).scalars()
        return {v.key: v for v in rows}
    found: dict[str, EntryVersion] = {}
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), _CHUNK):
        query = base.where(EntryVersion.key.in_(wanted[start : start + _CHUNK]))
        found.update({v.key: v for v in (await session.execute(query)).scalars()})
    return dict(sorted(found.items()))


async def keys_changed_between(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, low: int, high: int
) -> list[str]:
    """Keys written by any revision in (low, high]: the only keys a diff needs to look at."""
    query = (
        select(EntryVersion.key)
        .where(
            EntryVersion.tenant_id == tenant_id,
            EntryVersion.namespace_id == namespace_id,
            EntryVersion.revision > low,
            EntryVersion.revision <= high,
        )
        .distinct()
    )
    return sorted((await session.execute(query)).scalars())


async def key_versions(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    namespace_id: uuid.UUID,
    key: str,
    before: int | None,
    limit: int,
) -> list[EntryVersion]:
    """Versions of one key, newest first, below version ``before`` when given."""
    query = (
        select(EntryVersion)
        .where(
            EntryVersion.tenant_id == tenant_id,
            EntryVersion.namespace_id == namespace_id,
            EntryVersion.key == key,
        )
        .order_by(EntryVersion.version.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(EntryVersion.version < before)
    return list((await session.execute(query)).scalars())


async def key_version(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, key: str, version: int
) -> EntryVersion | None:
    query = select(EntryVersion).where(
        EntryVersion.tenant_id == tenant_id,
        EntryVersion.namespace_id == namespace_id,
        EntryVersion.key == key,
        EntryVersion.version == version,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def secret_now(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, keys: Sequence[str]
) -> set[str]:
    """Keys among ``keys`` whose latest version (deletions included) is marked secret."""
    latest = and_(
        EntryVersion.tenant_id == tenant_id,
        EntryVersion.namespace_id == namespace_id,
        EntryVersion.superseded_at.is_(None),
        EntryVersion.is_secret.is_(True),
    )
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        query = select(EntryVersion.key).where(
            latest, EntryVersion.key.in_(wanted[start : start + _CHUNK])
        )
        found.update((await session.execute(query)).scalars())
    return found


async def revisions_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    namespace_id: uuid.UUID,
    before: int | None,
    limit: int,
    filters: RevisionFilters | None = None,
) -> list[Revision]:
    """Revisions newest first, below ``before`` when given, narrowed by ``filters``."""
    query = (
        select(Revision)
        .where(Revision.tenant_id == tenant_id, Revision.namespace_id == namespace_id)
        .order_by(Revision.revision.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Revision.revision < before)
    if filters is not None:
        if filters.key is not None:  # the JSON list of keys holds it, quoted
            quoted = orjson.dumps(filters.key).decode()
            query = query.where(cast(Revision.keys, Text).contains(quoted, autoescape=True))
        if filters.actors is not None:
            query = query.where(Revision.actor.in_(filters.actors))
        if filters.since is not None:
            query = query.where(Revision.created_at >= filters.since)
        if filters.until is not None:
            query = query.where(Revision.created_at < filters.until)
    return list((await session.execute(query)).scalars())


@dataclass(frozen=True, slots=True)
class RevisionFilters:
    """What a history search narrows to: a key it touched, who wrote it, when."""

    key: str | None = None
    actors: list[str] | None = None  # ``user:<id>``…; an empty list matches nothing
    since: datetime | None = None
    until: datetime | None = None


async def get_revision(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, revision: int
) -> Revision | None:
    query = select(Revision).where(
        Revision.tenant_id == tenant_id,
        Revision.namespace_id == namespace_id,
        Revision.revision == revision,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def messages(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, numbers: list[int]
) -> dict[int, str]:
    """The change notes of these revisions of the namespace (those that have one)."""
    if not numbers:
        return {}
    query = select(Revision.revision, Revision.message).where(
        Revision.tenant_id == tenant_id,
        Revision.namespace_id == namespace_id,
        Revision.revision.in_(numbers),
        Revision.message.is_not(None),
    )
    return {number: message for number, message in (await session.execute(query)).all() if message}


async def written_by(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    namespace_id: uuid.UUID,
    revisions: Sequence[int],
) -> list[tuple[int, str, int, str]]:
    """(revision, key, version, action) for every version ``revisions`` wrote."""
    if not revisions:
        return []
    query = (
        select(EntryVersion.revision, EntryVersion.key, EntryVersion.version, EntryVersion.action)
        .where(
            EntryVersion.tenant_id == tenant_id,
            EntryVersion.namespace_id == namespace_id,
            EntryVersion.revision.in_(list(revisions)),
        )
        .order_by(EntryVersion.revision, EntryVersion.key)
    )
    return [(r, k, v, a) for r, k, v, a in (await session.execute(query)).all()]


async def current_entry(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, key: str
) -> ConfigEntry | None:
    query = (
        select(ConfigEntry)
        .where(
            ConfigEntry.tenant_id == tenant_id,
            ConfigEntry.namespace_id == namespace_id,
            ConfigEntry.key == key,
        )
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def entries(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID
) -> list[ConfigEntry]:
    """The namespace's current entries, by key."""
    query = (
        select(ConfigEntry)
        .where(ConfigEntry.tenant_id == tenant_id, ConfigEntry.namespace_id == namespace_id)
        .order_by(ConfigEntry.key)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(query)).scalars())
