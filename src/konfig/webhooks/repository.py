"""The SQL of webhooks: endpoints, the outbox, deliveries and their attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, delete, func, insert, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs.models import ConfigEntry
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


async def inheritors_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, source_name: str, source_id: uuid.UUID | None
) -> list[NamespaceNode]:
    """The namespaces other than the source whose resolution reads it: its path descendants,
    those that include it, those whose values reference it (``${ref:ns:key}``, named in
    ``config_entries.refs``), and, in turn, theirs. A few indexed-or-narrowed queries per level
    of inheritance, whatever the tenant's size (no whole-tenant graph in Python)."""
    found: dict[str, NamespaceNode] = {}
    names, ids = [source_name], [source_id] if source_id is not None else []
    while names or ids:
        conditions = [Namespace.name.startswith(f"{n}/", autoescape=True) for n in names]
        conditions += [sql_cast(Namespace.includes, Text).contains(str(i)) for i in ids]
        referencing = select(ConfigEntry.namespace_id).where(
            ConfigEntry.tenant_id == tenant_id,
            or_(*(sql_cast(ConfigEntry.refs, Text).contains(f'"{n}"') for n in names)),
        )
        if names:
            conditions.append(Namespace.id.in_(referencing))
        query = select(Namespace.id, Namespace.name, Namespace.includes).where(
            Namespace.tenant_id == tenant_id, or_(*conditions)
        )
        wanted = {str(i) for i in ids}
        fresh: list[NamespaceNode] = []
        referrers = set((await session.execute(referencing)).scalars()) if names else set()
        for ns_id, name, includes in (await session.execute(query)).all():
            below = any(name.startswith(f"{n}/") for n in names)
            includes_one = bool(wanted.intersection(str(i) for i in includes or ()))
            refers = ns_id in referrers
            if (below or includes_one or refers) and name != source_name and name not in found:
                found[name] = NamespaceNode(ns_id, name)
                fresh.append(found[name])
        names, ids = [n.name for n in fresh], [n.id for n in fresh]
    return sorted(found.values(), key=lambda node: node.name)


async def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_DELIVERIES), rows)


# Sending.


Key = tuple[uuid.UUID, str]  # deliveries to one endpoint about one namespace go in order


@dataclass(frozen=True, slots=True)
class Pending:
    """What deciding whether a delivery may go now needs (its payload is read once it may)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    order_key: str
    created_at: datetime
    next_attempt_at: datetime
    locked_until: datetime | None


async def pending_in_order(session: AsyncSession, *, limit: int) -> list[Pending]:
    """The oldest pending deliveries to enabled endpoints, due or not, leased or not (the
    caller tells which it may send), locked (others skip them: SKIP LOCKED)."""
    d = WebhookDelivery
    enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    query = (
        select(
            d.id,
            d.tenant_id,
            d.endpoint_id,
            d.order_key,
            d.created_at,
            d.next_attempt_at,
            d.locked_until,
        )
        .where(d.status == "pending", d.endpoint_id.in_(enabled))
        .order_by(d.created_at, d.sequence)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Pending(*row) for row in (await session.execute(query)).all()]


async def deliveries_by_id(
    session: AsyncSession, *, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
    return {d.id: d for d in (await session.execute(query)).scalars()}


async def oldest_pending(session: AsyncSession, *, keys: Sequence[Key]) -> dict[Key, datetime]:
    """For these keys, the creation of the oldest pending delivery (rows another replica holds
    locked included: they were skipped by ``pending_in_order``); an index seek per key."""
    found: dict[Key, datetime] = {}
    d = WebhookDelivery
    for endpoint_id, order_key in keys:
        query = select(func.min(d.created_at)).where(
            d.endpoint_id == endpoint_id, d.order_key == order_key, d.status == "pending"
        )
        oldest = (await session.execute(query)).scalar_one_or_none()
        if oldest is not None:
            found[(endpoint_id, order_key)] = oldest
    return found


async def unfanned_since(
    session: AsyncSession, *, besides: Sequence[uuid.UUID] = ()
) -> dict[uuid.UUID, datetime]:
    """Per tenant, the oldest event not yet fanned out (other than ``besides``): no delivery
    newer than it may go first."""
    query = select(OutboxEvent.tenant_id, func.min(OutboxEvent.created_at)).group_by(
        OutboxEvent.tenant_id
    )
    if besides:
        query = query.where(OutboxEvent.id.not_in(besides))
    return {row[0]: row[1] for row in (await session.execute(query)).all()}


async def pending_of(session: AsyncSession, *, keys: Sequence[Key]) -> dict[Key, set[uuid.UUID]]:
    """The pending deliveries of these keys (leased or not). Read through the index of pending
    deliveries: a key's history of sent ones is never scanned."""
    d = WebhookDelivery
    query = select(d.endpoint_id, d.order_key, d.id).where(
        d.status == "pending",
        d.endpoint_id.in_({endpoint_id for endpoint_id, _ in keys}),
        d.order_key.in_({order_key for _, order_key in keys}),
    )
    found: dict[Key, set[uuid.UUID]] = {}
    for endpoint_id, order_key, delivery_id in (await session.execute(query)).all():
        found.setdefault((endpoint_id, order_key), set()).add(delivery_id)
    return found


async def lease(session: AsyncSession, *, ids: Sequence[uuid.UUID], until: datetime | None) -> None:
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(locked_until=until)
    )


async def endpoints_by_id(
    session: AsyncSession, *, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids))
    return {e.id: e for e in (await session.execute(query)).scalars()}


async def add_attempts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(_ATTEMPTS), rows)


_SUCCEEDED = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery_id"))
    .values(
        status="succeeded",
        attempts=bindparam("attempts"),
        last_attempt_at=bindparam("at"),
        locked_until=None,
    )
)


async def succeeded(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Mark deliveries sent: ``{delivery_id, attempts, at}`` each, in one statement."""
    if rows:
        await session.execute(_SUCCEEDED, rows)


async def recovered(session: AsyncSession, *, endpoint_ids: Sequence[uuid.UUID]) -> None:
    """These endpoints answered: they are failing no more."""
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id.in_(endpoint_ids), WebhookEndpoint.failing_since.is_not(None))
        .values(failing_since=None)
    )


async def update_delivery(session: AsyncSession, delivery_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
    )


async def update_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(**values)
    )


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
