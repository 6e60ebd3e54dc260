"""Every query of protection policies and change requests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.changes.models import ChangeRequest, ChangeRequestEvent, ProtectionPolicy
from konfig.namespaces.models import Namespace
from konfig.users.models import User


async def policies(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[ProtectionPolicy]:
    query = (
        select(ProtectionPolicy)
        .where(ProtectionPolicy.tenant_id == tenant_id)
        .order_by(ProtectionPolicy.created_at, ProtectionPolicy.id)
    )
    return list((await session.execute(query)).scalars())


async def policy(
    session: AsyncSession, *, tenant_id: uuid.UUID, policy_id: uuid.UUID
) -> ProtectionPolicy | None:
    query = select(ProtectionPolicy).where(
        ProtectionPolicy.tenant_id == tenant_id, ProtectionPolicy.id == policy_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def add(session: AsyncSession, row: ProtectionPolicy | ChangeRequest) -> None:
    session.add(row)
    await session.flush()


async def delete_policy(session: AsyncSession, row: ProtectionPolicy) -> None:
    await session.delete(row)
    await session.flush()


async def namespace_protections(
    session: AsyncSession, *, tenant_id: uuid.UUID
) -> list[tuple[uuid.UUID, str, str | None]]:
    query = select(Namespace.id, Namespace.name, Namespace.protection).where(
        Namespace.tenant_id == tenant_id
    )
    return [(row[0], row[1], row[2]) for row in (await session.execute(query)).all()]


async def set_protection(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    namespace_ids: Sequence[uuid.UUID],
    to: str | None,
) -> None:
    if namespace_ids:
        await session.execute(
            update(Namespace)
            .where(Namespace.tenant_id == tenant_id, Namespace.id.in_(namespace_ids))
            .values(protection=to)
            .execution_options(synchronize_session=False)
        )


async def draft_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID, author: str
) -> ChangeRequest | None:
    """The author's draft for the namespace (the newest, should there be several)."""
    query = (
        select(ChangeRequest)
        .where(
            ChangeRequest.tenant_id == tenant_id,
            ChangeRequest.namespace_id == namespace_id,
            ChangeRequest.author == author,
            ChangeRequest.status == "draft",
        )
        .order_by(ChangeRequest.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    return (await session.execute(query)).scalars().first()


async def request(
    session: AsyncSession, *, tenant_id: uuid.UUID, request_id: uuid.UUID, lock: bool = False
) -> ChangeRequest | None:
    query = select(ChangeRequest).where(
        ChangeRequest.tenant_id == tenant_id, ChangeRequest.id == request_id
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def requests(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    statuses: Sequence[str],
    namespace_id: uuid.UUID | None,
    author: str | None,
    visible_to_author: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    count: int,
) -> list[ChangeRequest]:
    """Newest first. Drafts are their author's alone: ``visible_to_author`` names whose
    drafts a reader sees (None: every draft is left out)."""
    query = select(ChangeRequest).where(
        ChangeRequest.tenant_id == tenant_id, ChangeRequest.status.in_(statuses)
    )
    if namespace_id is not None:
        query = query.where(ChangeRequest.namespace_id == namespace_id)
    if author is not None:
        query = query.where(ChangeRequest.author == author)
    query = query.where(
        or_(ChangeRequest.status != "draft", ChangeRequest.author == (visible_to_author or ""))
    )
    if after is not None:
        query = query.where(
            tuple_(ChangeRequest.created_at, ChangeRequest.id) < tuple_(after[0], after[1])
        )
    query = query.order_by(ChangeRequest.created_at.desc(), ChangeRequest.id.desc()).limit(count)
    return list((await session.execute(query)).scalars())


async def events(
    session: AsyncSession, *, tenant_id: uuid.UUID, request_ids: Sequence[uuid.UUID]
) -> list[ChangeRequestEvent]:
    if not request_ids:
        return []
    query = (
        select(ChangeRequestEvent)
        .where(
            ChangeRequestEvent.tenant_id == tenant_id,
            ChangeRequestEvent.change_request_id.in_(request_ids),
        )
        .order_by(ChangeRequestEvent.created_at, ChangeRequestEvent.id)
    )
    return list((await session.execute(query)).scalars())


async def add_event(session: AsyncSession, event: ChangeRequestEvent) -> None:
    session.add(event)
    await session.flush()


async def namespaces_by_id(
    session: AsyncSession, *, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Namespace]:
    if not ids:
        return {}
    query = select(Namespace).where(Namespace.tenant_id == tenant_id, Namespace.id.in_(set(ids)))
    return {ns.id: ns for ns in (await session.execute(query)).scalars()}


async def user(session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    query = select(User).where(User.tenant_id == tenant_id, User.id == user_id)
    return (await session.execute(query)).scalar_one_or_none()
