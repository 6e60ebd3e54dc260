"""The audit queries behind aggregated events (reads of secrets counted per day)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit.models import AuditEvent


async def find_event(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    action: str,
    actor: str,
    namespace: str,
    target: str | None = None,
    for_update: bool = False,
) -> tuple[uuid.UUID, dict[str, Any]] | None:
    """``(id, summary)`` of one event of this action by this actor on this namespace (and
    target, when given), or None."""
    query = select(AuditEvent.id, AuditEvent.summary).where(
        AuditEvent.tenant_id == tenant_id,
        AuditEvent.action == action,
        AuditEvent.actor == actor,
        AuditEvent.namespace == namespace,
    )
    if target is not None:
        query = query.where(AuditEvent.target == target)
    query = query.order_by(AuditEvent.created_at, AuditEvent.id).limit(1)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], dict(row[1] or {}))


async def set_summary(
    session: AsyncSession, *, tenant_id: uuid.UUID, event_id: uuid.UUID, summary: dict[str, Any]
) -> None:
    await session.execute(
        update(AuditEvent)
        .where(AuditEvent.tenant_id == tenant_id, AuditEvent.id == event_id)
        .values(summary=summary)
    )
