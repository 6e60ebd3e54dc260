"""The SQL of webhooks: endpoints, the outbox, deliveries and their attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from konfig.db.outbox import OutboxEvent
from konfig.namespaces.models import Namespace
from konfig.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_ATTEMPTS = cast(Table, WebhookAttempt.__table__)


async def add(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    session.add(endpoint)
    await session.flush()


async def get(
    session: AsyncSession, *, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_endpoints(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[WebhookEndpoint]:
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        .limit(limit)
    )
    if after is not None:
        at, endpoint_id = after
        query = query.where(
            (WebhookEndpoint.created_at > at)
            | ((WebhookEndpoint.created_at == at) & (WebhookEndpoint.id > endpoint_id))
        )
    return list((await session.execute(query)).scalars())


async def delete_endpoint(session: AsyncSession, *, endpoint: WebhookEndpoint) -> None:
    # Its deliveries and their attempts first: SQLite enforces no foreign keys here.
    ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    await session.delete(endpoint)
    await session.flush()


# The outbox and the fan-out.


async def claim_events(session: AsyncSession, *, limit: int) -> list[OutboxEvent]:
    """The oldest events, locked (others skip them: PostgreSQL and MariaDB SKIP LOCKED; SQLite
    has one writer at a time)."""
    query = (
        select(OutboxEvent)
        .order_by(OutboxEvent.created_at, OutboxEvent.sequence)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(query)).scalars())


async def delete_events(session: AsyncSession, *, ids: Sequence[uuid.UUID]) -> None:
    await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))


async def subscribed(
    session: AsyncSession, *, tenant_ids: Sequence[uuid.UUID]
) -> list[WebhookEndpoint]:
    """The enabled endpoints of these tenants."""
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id.in_(tenant_ids), WebhookEndpoint.enabled.is_(True)
    )
    return list((await session.execute(query)).scalars())


@dataclass(frozen=True, slots=True)
class NamespaceNode:
    id: uuid.UUID
    name: str
    includes: tuple[str, ...]


async def namespace_graph(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[NamespaceNode]:
    query = select(Namespace.id, Namespace.name, Namespace.includes).where(
        Namespace.tenant_id == tenant_id
    )
    return [
        NamespaceNode(ns_id, name, tuple(str(i) for i in includes or ()))
        for ns_id, name, includes in (await session.execute(query)).all()
    ]


async def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_DELIVERIES), rows)


# Sending.


def _due(now: datetime) -> Any:
    """Deliveries that may be attempted now: pending, due, not being attempted elsewhere, to an
    enabled endpoint, with no earlier pending one to the same endpoint about the same namespace
    (order per namespace), and no older event of their tenant still waiting to be fanned out."""
    earlier = aliased(WebhookDelivery)
    d = WebhookDelivery
    before = or_(
        earlier.created_at < d.created_at,
        and_(earlier.created_at == d.created_at, earlier.sequence < d.sequence),
    )
    queued_before = exists().where(
        earlier.endpoint_id == d.endpoint_id,
        earlier.order_key == d.order_key,
        earlier.status == "pending",
        before,
    )
    unfanned = exists().where(
        OutboxEvent.tenant_id == d.tenant_id, OutboxEvent.created_at < d.created_at
    )
    enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    return and_(
        d.status == "pending",
        d.next_attempt_at <= now,
        or_(d.locked_until.is_(None), d.locked_until < now),
        d.endpoint_id.in_(enabled),
        or_(d.order_key == "", ~queued_before),
        ~unfanned,
    )


async def claim_deliveries(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[WebhookDelivery]:
    """Up to ``limit`` due deliveries, leased to this worker until ``lease_until``."""
    query = (
        select(WebhookDelivery)
        .where(_due(now))
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = list((await session.execute(query)).scalars())
    if claimed:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([d.id for d in claimed]))
            .values(locked_until=lease_until)
        )
    return claimed


async def endpoints_by_id(
    session: AsyncSession, *, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids))
    return {e.id: e for e in (await session.execute(query)).scalars()}


async def add_attempt(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(_ATTEMPTS), row)


async def update_delivery(session: AsyncSession, delivery_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
    )


async def update_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(**values)
    )


async def next_due(session: AsyncSession) -> datetime | None:
    """When the next pending delivery falls due."""
    query = select(func.min(WebhookDelivery.next_attempt_at)).where(
        WebhookDelivery.status == "pending"
    )
    return (await session.execute(query)).scalar_one_or_none()


async def queue_stats(session: AsyncSession) -> tuple[int, datetime | None]:
    """Pending deliveries to enabled endpoints and the oldest one's creation, with the events
    not yet fanned out."""
    enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    deliveries = (
        await session.execute(
            select(func.count(), func.min(WebhookDelivery.created_at)).where(
                WebhookDelivery.status == "pending", WebhookDelivery.endpoint_id.in_(enabled)
            )
        )
    ).one()
    events = (await session.execute(select(func.count(), func.min(OutboxEvent.created_at)))).one()
    oldest = [at for at in (deliveries[1], events[1]) if at is not None]
    return int(deliveries[0]) + int(events[0]), min(oldest) if oldest else None


async def prune(session: AsyncSession, *, before: datetime) -> None:
    """Forget attempts older than ``before``, and finished deliveries left with none."""
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.attempted_at < before))
    attempted = select(WebhookAttempt.delivery_id)
    await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status != "pending",
            WebhookDelivery.created_at < before,
            WebhookDelivery.id.not_in(attempted),
        )
    )


# The delivery log.


async def list_deliveries(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[WebhookDelivery]:
    """Newest first."""
    d = WebhookDelivery
    query = (
        select(d)
        .where(d.tenant_id == tenant_id, d.endpoint_id == endpoint_id)
        .order_by(d.created_at.desc(), d.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(d.status == status)
    if since is not None:
        query = query.where(d.created_at >= since)
    if until is not None:
        query = query.where(d.created_at < until)
    if after is not None:
        at, delivery_id = after
        query = query.where((d.created_at < at) | ((d.created_at == at) & (d.id < delivery_id)))
    return list((await session.execute(query)).scalars())


async def attempts_of(
    session: AsyncSession, *, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    found: dict[uuid.UUID, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if not delivery_ids:
        return found
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
    )
    for attempt in (await session.execute(query)).scalars():
        found[attempt.delivery_id].append(attempt)
    return found


async def get_delivery(
    session: AsyncSession, *, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id,
        WebhookDelivery.tenant_id == tenant_id,
        WebhookDelivery.endpoint_id == endpoint_id,
    )
    return (await session.execute(query)).scalar_one_or_none()
