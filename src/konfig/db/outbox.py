"""The outbox: events written in the same transaction as the change they report.

A webhook must never be lost nor invented: a commit without its event, or an event without its
commit, is impossible because both are rows of one transaction. Features add their events here
(``record_event`` in a request's session; the revision writers add ``event_row``s to the rows
they write together, ``konfig.revisions.rows``). The webhooks worker (``konfig.webhooks``)
reads them after the commit, fans each out to the endpoints subscribed to it, and deletes it in
the transaction that writes those deliveries.

It lives under ``db/``, like the session it is written through, so that every feature can write
events without importing the webhooks feature, which reads the features.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Index, String, Table, Uuid, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from konfig.db.base import Base, Json, utcnow
from konfig.db.session import record_change

# What an event's ``data`` may list of changed keys; the total is given beside it.
MAX_LISTED_KEYS = 200


class OutboxEvent(Base):
    """One event waiting to be fanned out to the webhooks subscribed to it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_created_at", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    type: Mapped[str] = mapped_column(String(64))
    # The namespace it concerns (None: a tenant-wide event, a token, a backup).
    namespace_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    namespace: Mapped[str | None] = mapped_column(String(255), default=None)
    # Orders events of one namespace (a revision); 0 when there is none to order by.
    sequence: Mapped[int] = mapped_column(default=0)
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


TABLE = cast(Table, OutboxEvent.__table__)
_INSERT = insert(TABLE)


@dataclass(frozen=True, slots=True)
class EventsQueued:
    """Events were committed to the outbox: wake the webhooks worker (this process's)."""

    tenant_id: uuid.UUID


def event_row(
    *,
    tenant_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    namespace_id: uuid.UUID | None = None,
    namespace: str | None = None,
    sequence: int = 0,
    at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A whole outbox row."""
    return {
        "id": event_id or uuid.uuid4(),
        "tenant_id": tenant_id,
        "type": type,
        "namespace_id": namespace_id,
        "namespace": namespace,
        "sequence": sequence,
        "data": data,
        "created_at": at or utcnow(),
    }


def listed_keys(keys: list[str]) -> dict[str, Any]:
    """The changed keys an event names: the first ``MAX_LISTED_KEYS`` and how many in all."""
    return {"changed_keys": keys[:MAX_LISTED_KEYS], "changed_keys_total": len(keys)}


async def record_event(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    namespace_id: uuid.UUID | None = None,
    namespace: str | None = None,
) -> None:
    """Write an event in ``session``'s transaction: it commits with the change, or not at all."""
    await session.flush()
    row = event_row(
        tenant_id=tenant_id, type=type, data=data, namespace_id=namespace_id, namespace=namespace
    )
    await session.execute(_INSERT, row)
    record_change(session, EventsQueued(tenant_id))
